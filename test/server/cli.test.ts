// The `provisio` command line as a user runs it: `provisio serve` in a child process, then curl
// (the README's recipe) creates an enrollment, registers a device with a SAS token from
// `provisio sas`, assigned at once (the default fast path). Needs the built CLI (turbo builds it first).
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI as cli, startServe, type ServeProcess } from '../lib/cli.js'

let serve: ServeProcess<{ idScope: string; serviceConnectionString: string; caCertificate: string; ports: { https: number }; hubs: { hostName: string; connectionString: string }[] }>
let dataDir: string
let endpoints: (typeof serve)['endpoints']

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
