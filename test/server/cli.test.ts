// The `provisio` command line as a user runs it: `provisio serve` in a child process, then curl
// (the README's recipe) creates an enrollment and registers a device with a SAS token from
// `provisio sas` (assigned at once by default; with --assignment-budget-ms 0, 202 then polls, as
// Azure DPS); a second start on the same data directory says it reuses the state. Every command
// answers --help, -h and `provisio help <command>`; --version; unknown options exit 2 with the
// usage. Needs the built CLI (turbo builds it first).
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { SETTINGS } from '@provisio/server'
import { CLI as cli, startServe, type ServeProcess } from '../lib/cli.js'

let serve: ServeProcess<{ idScope: string; serviceConnectionString: string; caCertificate: string; ports: { https: number }; hubs: { hostName: string; connectionString: string }[] }>
let dataDir: string
let endpoints: (typeof serve)['endpoints']

/** Runs the CLI; its exit code and output. */
function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function curl(args: string[]): { status: number; body: string } {
  const out = execFileSync('curl', ['-sS', '--cacert', endpoints.caCertificate, '-w', '\n%{http_code}', ...args], { encoding: 'utf8' })
  const cut = out.lastIndexOf('\n')
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) }
}

beforeAll(async () => {
  serve = await startServe({ dataDirPrefix: 'provisio-cli-', args: ['--retry-after', '1'] })
  dataDir = serve.dataDir
  endpoints = serve.endpoints
})

afterAll(() => serve?.stop())

describe('provisio serve', () => {
  it('prints the endpoints, the ID scope, the connection string and how to trust the CA', () => {
    expect(serve.stdout).toContain(endpoints.idScope)
    expect(serve.stdout).toContain(endpoints.serviceConnectionString)
    expect(serve.stdout).toContain(`export NODE_EXTRA_CA_CERTS=${endpoints.caCertificate}`)
    expect(endpoints.idScope).toMatch(/^0ne[0-9A-F]{8}$/)
    expect(endpoints.hubs).toHaveLength(1)
    expect(existsSync(join(dataDir, 'provisio.db'))).toBe(true)
    // Logs are JSON lines.
    const first = serve.stderr.split('\n').find((l) => l.trim() !== '')!
    expect(JSON.parse(first)).toMatchObject({ level: 'info' })
  })

  it('provisions a device with curl and a token from `provisio sas` (the README recipe)', async () => {
    const serviceToken = execFileSync(process.execPath, [cli, 'sas', '--service', '--data-dir', dataDir], { encoding: 'utf8' }).trim()
    expect(serviceToken).toMatch(/^SharedAccessSignature sr=localhost&sig=.*&skn=provisioningserviceowner$/)
    const base = `https://localhost:${endpoints.ports.https}`
    const deviceKey = Buffer.alloc(32, 5).toString('base64')
    const created = curl(['-X', 'PUT', `${base}/enrollments/curl-dev?api-version=2021-10-01`, '-H', `Authorization: ${serviceToken}`, '-H', 'Content-Type: application/json',
      '-d', JSON.stringify({ registrationId: 'curl-dev', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: deviceKey, secondaryKey: deviceKey } } })])
    expect(created.status).toBe(200)

    const token = execFileSync(process.execPath, [cli, 'sas', '--registration-id', 'curl-dev', '--key', deviceKey, '--data-dir', dataDir], { encoding: 'utf8' }).trim()
    expect(token).toMatch(/^SharedAccessSignature sr=/)
    const registered = curl(['-X', 'PUT', `${base}/${endpoints.idScope}/registrations/curl-dev/register?api-version=2021-06-01`, '-H', `Authorization: ${token}`,
      '-H', 'Content-Type: application/json', '-d', '{"registrationId":"curl-dev"}'])
    // The default: the assignment is done within --assignment-budget-ms, so register answers it.
    expect(registered.status).toBe(200)
    expect(JSON.parse(registered.body)).toMatchObject({ status: 'assigned', registrationState: { assignedHub: endpoints.hubs[0]!.hostName, deviceId: 'curl-dev' } })
  })

  it('stops cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => serve.child.once('exit', (code) => resolve(code)))
    serve.child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(serve.stderr).toContain('"msg":"stopped"')
  })

  it('says on a later start that it reuses the state; --assignment-budget-ms 0 answers 202 and the device polls, as Azure DPS', async () => {
    expect(serve.stdout).not.toContain('Reusing')
    const again = await startServe<typeof endpoints>({ dataDirPrefix: 'provisio-cli-', dataDir, args: ['--assignment-budget-ms', '0', '--retry-after', '1'] })
    try {
      expect(again.endpoints.idScope).toBe(endpoints.idScope)
      expect(again.stdout).toContain(`Reusing the existing state in ${dataDir} (ID scope ${endpoints.idScope}, keys and certificates kept: 1 individual enrollment(s), 0 enrollment group(s)).`)
      const base = `https://localhost:${again.endpoints.ports.https}`
      const token = execFileSync(process.execPath, [cli, 'sas', '--registration-id', 'curl-dev', '--key', Buffer.alloc(32, 5).toString('base64'), '--data-dir', dataDir], { encoding: 'utf8' }).trim()
      const registered = curl(['-X', 'PUT', `${base}/${endpoints.idScope}/registrations/curl-dev/register?api-version=2021-06-01`, '-H', `Authorization: ${token}`,
        '-H', 'Content-Type: application/json', '-d', '{"registrationId":"curl-dev"}'])
      expect(registered.status).toBe(202)
      expect(JSON.parse(registered.body)).toMatchObject({ status: 'assigning' })
      const { operationId } = JSON.parse(registered.body) as { operationId: string }
      const poll = () => curl([`${base}/${endpoints.idScope}/registrations/curl-dev/operations/${operationId}?api-version=2021-06-01`, '-H', `Authorization: ${token}`])
      const answer = await vi.waitFor(() => {
        const a = poll()
        expect(a.status).toBe(200)
        return a
      }, { timeout: 10_000, interval: 200 })
      expect(JSON.parse(answer.body)).toMatchObject({ status: 'assigned', registrationState: { deviceId: 'curl-dev' } })
    } finally {
      again.stop()
    }
  })
})

describe('provisio --help, -h, help <command>, --version', () => {
  const commands = ['serve', 'sas', 'pki', 'telemetry', 'policies', 'enrollments', 'simulate']

  it.each(commands)('%s answers --help, -h and `provisio help <command>` with its options and exit code 0', (command) => {
    const outputs = [run([command, '--help']), run([command, '-h']), run(['help', command])]
    for (const r of outputs) {
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout).toMatch(new RegExp(`^Usage: provisio ${command} `))
      expect(r.stdout).toContain('Options:')
      expect(r.stderr).toBe('')
    }
    expect(outputs[1]!.stdout).toBe(outputs[0]!.stdout)
    expect(outputs[2]!.stdout).toBe(outputs[0]!.stdout)
  })

  it('serve --help lists every setting of config.ts with its environment variable', () => {
    const r = run(['serve', '--help'])
    expect(r.status).toBe(0)
    for (const s of SETTINGS) {
      expect(r.stdout).toContain(`--${s.flag} <`)
      expect(r.stdout).toContain(s.env)
    }
    expect(r.stdout).toContain('--config <file>')
  })

  it('`provisio help`, --help and -h start with the list of commands', () => {
    for (const args of [['help'], ['--help'], ['-h']]) {
      const r = run(args)
      expect(r.status, r.stderr).toBe(0)
      const lines = r.stdout.split('\n')
      expect(lines[0]).toBe('Usage: provisio [options] [command]')
      const at = lines.indexOf('Commands:')
      expect(at).toBeGreaterThan(0)
      expect(at).toBeLessThan(lines.indexOf('Options:'))
      expect(lines.slice(at + 1, at + 1 + commands.length).map((l) => l.trim().split(' ')[0])).toEqual(commands)
    }
  })

  it('the bin npm links (bin/provisio.js, present before any build) runs the built CLI, and says how to build when it is not', () => {
    const bin = join(dirname(cli), '..', 'bin', 'provisio.js')
    const { bin: declared } = JSON.parse(readFileSync(join(dirname(cli), '..', 'package.json'), 'utf8')) as { bin: Record<string, string> }
    expect(declared).toEqual({ provisio: './bin/provisio.js' })
    const built = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', timeout: 30_000 })
    expect(built.status).toBe(0)
    expect(built.stdout).toMatch(/^Usage: provisio \[options\] \[command\]/)
    // The same launcher in a package without dist/ (a clone before its build).
    const unbuilt = mkdtempSync(join(tmpdir(), 'provisio-unbuilt-'))
    try {
      mkdirSync(join(unbuilt, 'bin'))
      copyFileSync(bin, join(unbuilt, 'bin', 'provisio.js'))
      writeFileSync(join(unbuilt, 'package.json'), '{"type":"module"}')
      const r = spawnSync(process.execPath, [join(unbuilt, 'bin', 'provisio.js'), '--help'], { encoding: 'utf8', timeout: 30_000 })
      expect(r.status).toBe(1)
      expect(r.stderr).toContain('provisio: the command is not built yet (packages/server/dist/cli.js is missing)')
      expect(r.stderr).toContain('`npm run build`')
    } finally {
      rmSync(unbuilt, { recursive: true, force: true })
    }
  })

  it('--version and -V print the version of @provisio/server', () => {
    const { version } = JSON.parse(readFileSync(join(dirname(cli), '..', 'package.json'), 'utf8')) as { version: string }
    for (const flag of ['--version', '-V']) {
      const r = run([flag])
      expect(r.status).toBe(0)
      expect(r.stdout).toBe(`${version}\n`)
    }
  })
})

describe('provisio usage errors', () => {
  it.each([
    [['serve', '--bogus']],
    [['--bogus']],
    [['sas', '--bogus']],
    [['pki', 'root', '--bogus']],
    [['telemetry', '--bogus']],
    [['policies', 'list', '--bogus']],
    [['simulate', '--bogus']],
  ])('refuses the unknown option of %j with exit code 2 and the usage of the command', (args) => {
    const r = run(args)
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("unknown option '--bogus'")
    const command = args.length === 1 ? 'serve' : args[0]!
    expect(r.stderr).toContain(`Usage: provisio ${command} `)
    expect(r.stdout).toBe('')
  })

  it('refuses an unknown command and a pki kind it does not make with exit code 2', () => {
    const unknown = run(['provision-everything'])
    expect(unknown.status).toBe(2)
    expect(unknown.stderr).toContain("unknown command 'provision-everything'")
    expect(unknown.stderr).toContain('Commands:')
    const kind = run(['pki', 'leaf'])
    expect(kind.status).toBe(2)
    expect(kind.stderr).toMatch(/'leaf' is invalid.*root, intermediate, device, verification/)
  })

  it('a bad value in the environment is named as such', () => {
    const r = spawnSync(process.execPath, [cli, 'serve'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, PROVISIO_HTTPS_PORT: 'eighty' } })
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('httpsPort (environment PROVISIO_HTTPS_PORT) must be a port number')
  })

  it('takes a setting from the flag, else the environment, else the config file (seen in the check of two settings)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-precedence-'))
    try {
      const file = join(dir, 'provisio.json')
      writeFileSync(file, JSON.stringify({ connectTimeoutMs: 5000, requestTimeoutMs: 1000 }))
      const serveWith = (args: string[], env: NodeJS.ProcessEnv) => spawnSync(process.execPath, [cli, 'serve', '--config', file, '--data-dir', dir, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } })
      const fromFile = serveWith([], {})
      expect(fromFile.status).toBe(2)
      expect(fromFile.stderr).toContain('connectTimeoutMs (5000) must not exceed requestTimeoutMs (1000)')
      const fromEnv = serveWith([], { PROVISIO_CONNECT_TIMEOUT_MS: '6000' })
      expect(fromEnv.stderr).toContain('connectTimeoutMs (6000) must not exceed requestTimeoutMs (1000)')
      const fromFlag = serveWith(['--connect-timeout-ms', '7000'], { PROVISIO_CONNECT_TIMEOUT_MS: '6000' })
      expect(fromFlag.stderr).toContain('connectTimeoutMs (7000) must not exceed requestTimeoutMs (1000)')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('names the bad setting and exits 2', () => {
    let failure: { status: number; stderr: string } | undefined
    try {
      execFileSync(process.execPath, [cli, 'serve', '--https-port', 'eighty'], { encoding: 'utf8', stdio: 'pipe' })
    } catch (error) {
      failure = error as { status: number; stderr: string }
    }
    expect(failure?.status).toBe(2)
    expect(failure?.stderr).toMatch(/--https-port.*port number/)
  })

  it('sas refuses a missing registration id', () => {
    let failure: { status: number; stderr: string } | undefined
    try {
      execFileSync(process.execPath, [cli, 'sas', '--key', 'AAAA', '--id-scope', '0ne00000001'], { encoding: 'utf8', stdio: 'pipe' })
    } catch (error) {
      failure = error as { status: number; stderr: string }
    }
    expect(failure?.status).toBe(2)
    expect(failure?.stderr).toMatch(/--registration-id is required/)
  })
})
