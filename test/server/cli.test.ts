// The `provisio` command line as a user runs it: `provisio serve` in a child process, then curl
// (the README's recipe) creates an enrollment, registers a device with a SAS token from
// `provisio sas`, and polls until it is assigned. Needs the built CLI (turbo builds it first).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'packages', 'server', 'dist', 'cli.js')
let dataDir: string
let child: ChildProcess
let stdout = ''
let stderr = ''
let endpoints: { idScope: string; serviceConnectionString: string; caCertificate: string; ports: { https: number }; hubs: { hostName: string; connectionString: string }[] }

function curl(args: string[]): { status: number; body: string } {
  const out = execFileSync('curl', ['-sS', '--cacert', endpoints.caCertificate, '-w', '\n%{http_code}', ...args], { encoding: 'utf8' })
  const cut = out.lastIndexOf('\n')
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) }
}

beforeAll(async () => {
  expect(existsSync(cli), `${cli} must be built (turbo runs build before these tests)`).toBe(true)
  dataDir = mkdtempSync(join(tmpdir(), 'provisio-cli-'))
  child = spawn(process.execPath, [cli, 'serve', '--data-dir', dataDir, '--https-port', '0', '--mqtt-port', '0', '--amqp-port', '0', '--retry-after', '1'], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  const deadline = Date.now() + 30_000
  while (!stdout.includes('Provisio is running')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`provisio serve did not start:\n${stdout}\n${stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  endpoints = JSON.parse(readFileSync(join(dataDir, 'endpoints.json'), 'utf8'))
})

afterAll(() => {
  child?.kill('SIGKILL')
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

describe('provisio serve', () => {
  it('prints the endpoints, the ID scope, the connection string and how to trust the CA', () => {
    expect(stdout).toContain(endpoints.idScope)
    expect(stdout).toContain(endpoints.serviceConnectionString)
    expect(stdout).toContain(`export NODE_EXTRA_CA_CERTS=${endpoints.caCertificate}`)
    expect(endpoints.idScope).toMatch(/^0ne[0-9A-F]{8}$/)
    expect(endpoints.hubs).toHaveLength(1)
    expect(existsSync(join(dataDir, 'provisio.db'))).toBe(true)
    // Logs are JSON lines.
    const first = stderr.split('\n').find((l) => l.trim() !== '')!
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
    expect(registered.status).toBe(202)
    const { operationId } = JSON.parse(registered.body) as { operationId: string }
    let answer = { status: 202, body: '' }
    for (let i = 0; i < 40 && answer.status === 202; i++) {
      await new Promise((r) => setTimeout(r, 100))
      answer = curl([`${base}/${endpoints.idScope}/registrations/curl-dev/operations/${operationId}?api-version=2021-06-01`, '-H', `Authorization: ${token}`])
    }
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.body)).toMatchObject({ status: 'assigned', registrationState: { assignedHub: endpoints.hubs[0]!.hostName, deviceId: 'curl-dev' } })
  })

  it('stops cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(stderr).toContain('"msg":"stopped"')
  })
})

describe('provisio usage errors', () => {
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
