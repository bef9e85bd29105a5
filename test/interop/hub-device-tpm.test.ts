// A TPM device end to end (#9's last point): azure-iot-security-tpm on our software TPM (through
// the Microsoft TPM-simulator front) provisions over azure-iot-provisioning-device-http, imports
// the hub key DPS sent in the activation blob, and then connects to its embedded hub with
// azure-iot-device's TpmAuthenticationProvider over `Mqtt`: the CONNECT password is a device SAS
// signed inside the TPM (TPM2_HMAC with the imported key), checked by the hub against the identity's
// key. It reads its twin, reports, and sends telemetry.
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, Message } from 'azure-iot-device'
import { Mqtt as DeviceMqtt } from 'azure-iot-device-mqtt'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { TpmAuthenticationProvider, TpmSecurityClient } from 'azure-iot-security-tpm'
import { startTpmSimulator, type TpmSimulator } from '@provisio/server'
import { startTestServer, type TestServer } from '../lib/server.js'
import { redirectMqtts } from '../lib/tls-plumbing.js'

// The tss.js the TPM client itself uses (its own dependency).
const requireFromClient = createRequire(createRequire(import.meta.url).resolve('azure-iot-security-tpm'))
const { Tpm } = requireFromClient('tss.js') as { Tpm: new (useSimulator: boolean, host: string, port: number) => unknown }

let server: TestServer
let sim: TpmSimulator
let undoRedirect: () => void
let client: Client | undefined

function call<T>(fn: (cb: (err?: Error, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))))
}

beforeAll(async () => {
  server = await startTestServer()
  server.useAsDefaultHttpsAgent()
  undoRedirect = redirectMqtts(server)
  sim = await startTpmSimulator({ seed: new Uint8Array(32).fill(91), port: 0 })
}, 60_000)

afterAll(async () => {
  await client?.close().catch(() => undefined)
  undoRedirect?.()
  await sim?.close()
  await server?.stop()
})

describe('azure-iot-security-tpm: provision, then connect to the hub with TpmAuthenticationProvider', () => {
  it('signs the hub SAS with the imported key inside the TPM and is admitted', async () => {
    const security = new TpmSecurityClient(undefined as unknown as string, new Tpm(true, sim.host, sim.port) as never)
    const ek = await call<Buffer>((cb) => security.getEndorsementKey(cb as never))
    const registrationId = await call<string>((cb) => security.getRegistrationId(cb as never))
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId,
      attestation: { type: 'tpm', tpm: { endorsementKey: ek.toString('base64') } },
      initialTwin: { properties: { desired: { sampling: 'tpm' } } },
    })
    const dps = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(), security as never)
    const result = await call<{ registrationState: { assignedHub: string; deviceId: string } }>((cb) => dps.register(cb as never))
    const { assignedHub, deviceId } = result.registrationState
    expect(assignedHub).toBe('localhost')

    client = Client.fromAuthenticationProvider(TpmAuthenticationProvider.fromTpmSecurityClient(deviceId, assignedHub, security as never) as never, DeviceMqtt)
    await client.setOptions({ ca: server.caPem })
    await client.open()
    const twin = await client.getTwin()
    expect(twin.properties.desired).toMatchObject({ sampling: 'tpm' })
    await call<void>((cb) => twin.properties.reported.update({ attested: 'tpm' }, cb as never))
    expect((await server.hubs.get('localhost')!.getTwin(deviceId))?.properties.reported).toMatchObject({ attested: 'tpm' })
    await client.sendEvent(new Message('from the TPM device'))
    await client.close()
    client = undefined
  })
})
