/**
 * The built `provisio` CLI as a user runs it: `provisio serve` in a child process on ephemeral
 * ports with its own data directory, ready once it printed "Provisio is running", its
 * `endpoints.json` read. For the suites that test the command line itself (test/server/cli,
 * test/server/simulate) and the server process as a whole (test/hostile/memory).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'

/** The built CLI (turbo builds it before the tests). */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'packages', 'server', 'dist', 'cli.js')

export interface ServeProcess<Endpoints> {
  readonly child: ChildProcess
  readonly dataDir: string
  /** The data directory's `endpoints.json`. */
  readonly endpoints: Endpoints
  /** Everything the process wrote so far. */
  readonly stdout: string
  readonly stderr: string
  /** Kills the process (SIGKILL) and removes the data directory. */
  stop(): void
}

/**
 * Starts `node [nodeArgs] cli.js serve --data-dir <fresh, or the one given> --https-port 0 --mqtt-port 0
 * --amqp-port 0 [args]`; fails with its output when it exits or is not running within 30 s (and
 * then leaves no process or directory behind).
 */
export async function startServe<Endpoints>(options: { dataDirPrefix: string; dataDir?: string; args?: readonly string[]; nodeArgs?: readonly string[]; env?: NodeJS.ProcessEnv }): Promise<ServeProcess<Endpoints>> {
  expect(existsSync(CLI), `${CLI} must be built (turbo runs build before these tests)`).toBe(true)
  // An existing data directory (a later start on it) is left in place by stop().
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), options.dataDirPrefix))
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), CLI, 'serve', '--data-dir', dataDir, '--https-port', '0', '--mqtt-port', '0', '--amqp-port', '0', ...(options.args ?? [])],
    { stdio: ['ignore', 'pipe', 'pipe'], ...(options.env === undefined ? {} : { env: { ...process.env, ...options.env } }) },
  )
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  const stop = () => {
    child.kill('SIGKILL')
    if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    const deadline = Date.now() + 30_000
    while (!stdout.includes('Provisio is running')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`provisio serve did not start:\n${stdout}\n${stderr}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    const endpoints = JSON.parse(readFileSync(join(dataDir, 'endpoints.json'), 'utf8')) as Endpoints
    return {
      child,
      dataDir,
      endpoints,
      get stdout() {
        return stdout
      },
      get stderr() {
        return stderr
      },
      stop,
    }
  } catch (error) {
    stop()
    throw error
  }
}
