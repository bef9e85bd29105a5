// TPM attestation with a real TPM 2.0 implementation behind Microsoft's TPM client: Debian's swtpm
// (libtpms) behind our simulator-protocol front (swtpmBackend bridges tss.js's Microsoft
// simulator protocol to swtpm's raw command socket, docs/protocol.md §11), and
// azure-iot-security-tpm + azure-iot-provisioning-device-http registering against `provisio
// serve`: the activation blobs built in software are activated and imported by libtpms, and the
// hub key ends up inside it. Skipped only when swtpm is absent outside CI (.ci/run installs it).
import { createHmac } from 'node:crypto'
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { TpmSecurityClient } from 'azure-iot-security-tpm'
import { startTpmSimulator, swtpmBackend, type TpmSimulator } from '@provisio/server'
import { startTestServer, type TestServer } from '../lib/server.js'
import { startSwtpm, swtpmAvailable, type Swtpm } from '../lib/swtpm.js'


const { Tpm } = createRequire(createRequire(import.meta.url).resolve('azure-iot-security-tpm'))('tss.js') as { Tpm: new (useSimulator: boolean, host: string, port: number) => unknown }

function call<T>(fn: (cb: (err?: Error, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))))
}

interface TpmClient {
  getEndorsementKey(cb: (err?: Error, ek?: Buffer) => void): void
  getRegistrationId(cb: (err?: Error, id?: string) => void): void
  signWithIdentity(data: Buffer, cb: (err?: Error, sig?: Buffer) => void): void
}

describe.skipIf(!swtpmAvailable && !process.env.CI)('azure-iot-security-tpm on swtpm (through the simulator bridge) + provisioning-device-http', () => {
  let server: TestServer
  let swtpm: Swtpm
  let front: TpmSimulator

  beforeAll(async () => {
    server = await startTestServer()
    server.useAsDefaultHttpsAgent()
    swtpm = await startSwtpm()
    front = await startTpmSimulator({ backend: swtpmBackend({ port: swtpm.port }), port: 0 })
  })

  afterAll(async () => {
    await front?.close()
    swtpm?.stop()
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
