// The first minutes of a new user, for real: `git clone` of this repository into a temporary
// directory, `npm install` (which builds, through the root package's `prepare`), `npx provisio
// --help`, then `npx provisio serve` on free ports until "Provisio is running", and a request to
// the endpoint it printed. Slow (the install compiles better-sqlite3: minutes), so it runs under
// CI=true, or when PROVISIO_FRESH_CLONE=1; it clones the committed HEAD. The clone's build reuses
// this checkout's turbo cache (TURBO_CACHE_DIR; turbo shares it between worktrees the same way):
// what is proved is the install, its prepare step, the bin and the server, not a second compile of
// the same sources.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it, vi } from 'vitest'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const enabled = process.env.CI === 'true' || process.env.CI === '1' || process.env.PROVISIO_FRESH_CLONE === '1'
const run = promisify(execFile)
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx'

let dir: string | undefined
let serve: ChildProcess | undefined

afterAll(async () => {
  // serve runs in its own process group (npx, then node): end the whole group.
  if (serve?.pid !== undefined && serve.exitCode === null) process.kill(-serve.pid, 'SIGKILL')
  // A clone with its node_modules: removing it takes a while on a busy machine.
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
}, 5 * 60_000)

describe.skipIf(!enabled)('a fresh clone', () => {
  it('installs, answers npx provisio --help, and serves on the printed endpoints', { timeout: 20 * 60_000 }, async () => {
    dir = mkdtempSync(join(tmpdir(), 'provisio-clone-'))
    const clone = join(dir, 'provisio')
    await run('git', ['clone', '--quiet', REPO, clone], { timeout: 120_000 })
    const gitDir = (await run('git', ['rev-parse', '--path-format=absolute', '--git-common-dir'], { cwd: REPO, encoding: 'utf8' })).stdout.trim()
    const env = {
      ...process.env,
      TURBO_CACHE_DIR: join(dirname(gitDir), '.turbo', 'cache'),
      npm_config_prefer_offline: 'true',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    }
    const install = await run('npm', ['install'], { cwd: clone, env, timeout: 15 * 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' })
    // The build ran inside the install, saying what it did (scripts/start.mjs --build-only).
    expect(install.stdout + install.stderr).toMatch(/provisio: build ready in [\d.]+ s/)

    const help = await run(npx, ['provisio', '--help'], { cwd: clone, env, timeout: 60_000, encoding: 'utf8' })
    expect(help.stdout).toMatch(/^Usage: provisio \[options\] \[command\]\n/)
    expect(help.stdout).toContain('Commands:')

    const dataDir = join(dir, 'data')
    serve = spawn(npx, ['provisio', 'serve', '--data-dir', dataDir, '--https-port', '0', '--mqtt-port', '0', '--amqp-port', '0'], { cwd: clone, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    serve.stdout!.on('data', (c: Buffer) => (stdout += c.toString()))
    serve.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
    await vi.waitFor(() => {
      if (serve!.exitCode !== null) throw new Error(`provisio serve exited ${serve!.exitCode}:\n${stdout}\n${stderr}`)
      expect(stdout).toContain('Provisio is running')
    }, { timeout: 60_000, interval: 100 })

    // The printed endpoint: host and HTTPS port from the banner, the CA it says to trust.
    const endpoint = /Device endpoint \(global\)\s+(\S+)\s+\(HTTPS (\d+),/.exec(stdout)
    const ca = /export NODE_EXTRA_CA_CERTS=(\S+)/.exec(stdout)
    expect(endpoint, stdout).not.toBeNull()
    expect(ca, stdout).not.toBeNull()
    const health = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: endpoint![1], port: Number(endpoint![2]), path: '/health', ca: readFileSync(ca![1]!, 'utf8'), timeout: 10_000 }, (res) => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.on('timeout', () => req.destroy(new Error('no answer within 10 s')))
      req.on('error', reject)
      req.end()
    })
    expect(health.status).toBe(200)
  })
})
