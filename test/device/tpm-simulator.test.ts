// @provisio/device's tpmSimulator(): a TPM reached over the Microsoft TPM-simulator TCP protocol,
// driven with raw TPM 2.0 commands (CreatePrimary/EvictControl for EK and SRK, PolicySecret +
// ActivateCredential + Import + Load + EvictControl for the blob, HMAC for the SAS). Against our
// simulator front on the software TPM, and on Debian's swtpm (libtpms, a real TPM 2.0
// implementation) through the same front; registers over HTTP and AMQP with `provisio serve`, and
// the TPM ends up holding the hub key. The swtpm suite is skipped only when swtpm is absent outside CI.
import { createHmac } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningClient, tpm, tpmSimulator, DeviceError, type DeviceTpm, type TransportName } from '@provisio/device'
import { startTpmSimulator, swtpmBackend, type TpmSimulator } from '@provisio/server'
import { defaultRegistrationId } from '@provisio/tpm'
import { clientOptions } from '../lib/device.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { startSwtpm, swtpmAvailable, type Swtpm } from '../lib/swtpm.js'

let server: TestServer
const fronts: TpmSimulator[] = []
const tpms: DeviceTpm[] = []

beforeAll(async () => {
  server = await startTestServer()
})

afterAll(async () => {
  for (const t of tpms) await t.close?.().catch(() => undefined)
  for (const f of fronts) await f.close()
  await server?.stop()
})

async function provisionWith(t: DeviceTpm, transport: TransportName, label: string) {
  const ek = await t.endorsementKey()
  // The SDK templates: an RSA-2048 EK with attributes 0x000300B2 (the familiar AToAAQALAAMAsgAg prefix).
  expect(Buffer.from(ek.subarray(0, 12)).toString('base64')).toBe('AToAAQALAAMAsgAg')
  const registrationId = defaultRegistrationId(ek)
  await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, { registrationId, deviceId: `${label}-${transport}`, attestation: { type: 'tpm', tpm: { endorsementKey: Buffer.from(ek).toString('base64') } } })
  const result = await new ProvisioningClient(clientOptions(server, transport, tpm({ tpm: t }))).register()
  expect(result).toMatchObject({ status: 'assigned', assignedHub: 'localhost', deviceId: `${label}-${transport}`, registrationId })
  const primaryKey = (await server.hubs.get('localhost')!.getDevice(`${label}-${transport}`))?.authentication.symmetricKey?.primaryKey
  expect(primaryKey).toBeTruthy()
  const data = new TextEncoder().encode(`localhost%2Fdevices%2F${label}-${transport}\n1800000000`)
  expect(Buffer.from(await t.sign(data)).toString('base64')).toBe(createHmac('sha256', Buffer.from(primaryKey!, 'base64')).update(data).digest('base64'))
}

describe('tpmSimulator() on the software TPM behind the simulator front', () => {
  it.each(['http', 'amqp'] as const)('registers over %s and holds the hub key', async (transport) => {
    const front = await startTpmSimulator({ seed: new Uint8Array(32).fill(transport === 'http' ? 0x71 : 0x72), port: 0 })
    fronts.push(front)
    const t = tpmSimulator({ host: front.host, port: front.port })
    tpms.push(t)
    await provisionWith(t, transport, 'simfront')
  })

  it('reports an unreachable simulator as a TPM error', async () => {
    const t = tpmSimulator({ host: '127.0.0.1', port: 1 })
    const err = await t.endorsementKey().then(() => undefined, (e: unknown) => e as DeviceError)
    expect(err).toBeInstanceOf(DeviceError)
    expect(err!.code).toBe('TPM')
    expect(err!.message).toMatch(/cannot reach the TPM simulator at 127\.0\.0\.1:2/)
  })
})

describe.skipIf(!swtpmAvailable && !process.env.CI)('tpmSimulator() on swtpm (libtpms) through the simulator front', () => {
  let swtpm: Swtpm
  beforeAll(async () => {
    swtpm = await startSwtpm()
  })
  afterAll(() => {
    swtpm?.stop()
  })

  it('registers over http and amqp with the same TPM and holds the hub key', async () => {
    const front = await startTpmSimulator({ backend: swtpmBackend({ port: swtpm.port }), port: 0 })
    fronts.push(front)
    const t = tpmSimulator({ host: front.host, port: front.port })
    tpms.push(t)
    await provisionWith(t, 'http', 'swtpm')
    await provisionWith(t, 'amqp', 'swtpm')
  })
})
