// Issue 9 proof with a real TPM 2.0 implementation behind Microsoft's TPM client: Debian's swtpm
// (libtpms) behind our simulator-protocol front (swtpmBackend bridges tss.js's Microsoft
// simulator protocol to swtpm's raw command socket, dps-protocol.md §11), and
// azure-iot-security-tpm + azure-iot-provisioning-device-http registering against `provisio
// serve`: the activation blobs built in software are activated and imported by libtpms, and the
// hub key ends up inside it. Skipped only when swtpm is absent outside CI (.ci/run installs it).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { TpmSecurityClient } from 'azure-iot-security-tpm'
import { startTpmSimulator, swtpmBackend, type TpmSimulator } from '@provisio/server'
import { startTestServer, type TestServer } from '../lib/server.js'

const { Tpm } = createRequire(createRequire(import.meta.url).resolve('azure-iot-security-tpm'))('tss.js') as { Tpm: new (useSimulator: boolean, host: string, port: number) => unknown }

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function freePortPair(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => {
        const t = createServer()
        t.once('error', () => resolve(freePortPair()))
        t.listen(port + 1, '127.0.0.1', () => t.close(() => resolve(port)))
      })
    })
    s.on('error', reject)
  })
}

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy()
      resolve(true)
    })
    s.on('error', () => resolve(false))
  })
}

function call<T>(fn: (cb: (err?: Error, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))))
}

interface TpmClient {
  getEndorsementKey(cb: (err?: Error, ek?: Buffer) => void): void
  getRegistrationId(cb: (err?: Error, id?: string) => void): void
  signWithIdentity(data: Buffer, cb: (err?: Error, sig?: Buffer) => void): void
}

describe.skipIf(!has('swtpm') && !process.env.CI)('azure-iot-security-tpm on swtpm (through the simulator bridge) + provisioning-device-http', () => {
  let server: TestServer
  let swtpm: ChildProcess
  let dir: string
  let front: TpmSimulator

  beforeAll(async () => {
    server = await startTestServer()
    server.useAsDefaultHttpsAgent()
    dir = mkdtempSync(join(tmpdir(), 'provisio-swtpm-'))
    const port = await freePortPair()
    swtpm = spawn('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, '--flags', 'not-need-init,startup-clear'], { stdio: 'ignore' })
    for (let i = 0; i < 50 && !(await reachable(port)); i++) await new Promise((r) => setTimeout(r, 100))
    front = await startTpmSimulator({ backend: swtpmBackend({ port }), port: 0 })
  })

  afterAll(async () => {
    await front?.close()
    swtpm?.kill()
    if (dir) rmSync(dir, { recursive: true, force: true })
    await server?.stop()
  })

  it('provisions, and libtpms holds the hub key', async () => {
    const security = new TpmSecurityClient(undefined as unknown as string, new Tpm(true, front.host, front.port) as never) as unknown as TpmClient
    const ek = await call<Buffer>((cb) => security.getEndorsementKey(cb))
    const registrationId = await call<string>((cb) => security.getRegistrationId(cb))
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, { registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: ek.toString('base64') } } })
    const client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(), security as never)
    const result = await call<{ status: string; registrationState: { deviceId: string } }>((cb) => client.register(cb as never))
    expect(result.status).toBe('assigned')
    expect(result.registrationState.deviceId).toBe(registrationId)
    const primaryKey = (await server.hubs.get('localhost')!.getDevice(registrationId))?.authentication.symmetricKey?.primaryKey
    const data = Buffer.from(`localhost%2Fdevices%2F${registrationId}\n1800000000`)
    const signature = await call<Buffer>((cb) => security.signWithIdentity(data, cb))
    expect(signature.toString('base64')).toBe(createHmac('sha256', Buffer.from(primaryKey!, 'base64')).update(data).digest('base64'))
  })
})
