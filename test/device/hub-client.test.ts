// The @provisio/device hub client against the embedded hub of a real `provisio serve`: a device
// registers through DPS, then connects to its assigned hub over MQTT and MQTT-over-WebSocket with
// the credential it registered with (symmetric-key SAS, the TPM-held hub key, the X.509
// certificate), reads its twin, patches reported properties, receives a desired change and sends
// telemetry that the hub's service side reads back.
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningClient, connectHub, symmetricKey, tpm, softwareTpm, x509, DeviceError, type SecurityProvider, type TransportName, type HubClient } from '@provisio/device'
import { clientOptions } from '../lib/device.js'
import { hubServiceToken } from '../lib/mqtt.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { httpsRequest } from '../lib/https-client.js'
import { OpensslPki } from '../interop/x509-openssl.js'

let server: TestServer
let pki: OpensslPki
const GROUP_KEY = randomBytes(64).toString('base64')
const open: HubClient[] = []

async function provision(security: SecurityProvider, transport: TransportName = 'amqp') {
  return new ProvisioningClient(clientOptions(server, transport, security)).register()
}

async function hub(hostName: string, deviceId: string, security: SecurityProvider, transport: 'mqtt' | 'mqtt-ws'): Promise<HubClient> {
  const c = await connectHub({ hostName, deviceId, security, transport, port: transport === 'mqtt' ? server.endpoints.ports.mqtt : server.port, ca: server.caPem })
  open.push(c)
  return c
}

async function telemetryOf(deviceId: string): Promise<{ messages: { body: string; properties: Record<string, string>; systemProperties: Record<string, string> }[] }> {
  const answer = await httpsRequest(server.port, server.caPem, 'GET', `/devices/${encodeURIComponent(deviceId)}/messages/events?api-version=2021-04-12`, { headers: { authorization: hubServiceToken(server), host: 'localhost' } })
  expect(answer.status).toBe(200)
  return JSON.parse(answer.body) as never
}

beforeAll(async () => {
  server = await startTestServer()
  pki = new OpensslPki()
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'hub-client-fleet',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: randomBytes(64).toString('base64') } },
    initialTwin: { properties: { desired: { interval: 30 } } },
  })
}, 60_000)

afterAll(async () => {
  for (const c of open) await c.close().catch(() => undefined)
  await server?.stop()
  pki?.dispose()
})

describe.each(['mqtt', 'mqtt-ws'] as const)('hub client over %s', (transport) => {
  it('symmetric key: twin GET, reported PATCH, desired change, telemetry', async () => {
    const security = symmetricKey({ registrationId: `hub-${transport}-sym`, groupKey: GROUP_KEY })
    const reg = await provision(security)
    const c = await hub(reg.assignedHub, reg.deviceId, security, transport)
    const twin = await c.getTwin()
    expect(twin.desired).toMatchObject({ interval: 30 })
    expect(typeof twin.desired.$version).toBe('number')

    const version = await c.updateReported({ firmware: '1.2.3', battery: { level: 87 } })
    expect(typeof version).toBe('number')
    const stored = await server.hubs.get(reg.assignedHub)!.getTwin(reg.deviceId)
    expect(stored?.properties.reported).toMatchObject({ firmware: '1.2.3', battery: { level: 87 } })
    expect((await c.getTwin()).reported).toMatchObject({ firmware: '1.2.3' })

    const change = new Promise<{ patch: Record<string, unknown>; version: number | undefined }>((resolve) => c.onDesired((patch, v) => resolve({ patch, version: v })))
    await server.hubs.get(reg.assignedHub)!.updateTwin(reg.deviceId, { properties: { desired: { interval: 5 } } })
    const seen = await change
    expect(seen.patch).toMatchObject({ interval: 5 })
    expect(seen.version).toBeGreaterThan(twin.desired.$version!)

    await c.sendTelemetry({ temperature: 21.5 }, { properties: { alert: 'no', 'unit name': 'c°' }, messageId: 'm-1' })
    await c.sendTelemetry('plain text')
    const { messages } = await telemetryOf(reg.deviceId)
    expect(messages).toHaveLength(2)
    expect(JSON.parse(messages[0]!.body)).toEqual({ temperature: 21.5 })
    expect(messages[0]!.properties).toEqual({ alert: 'no', 'unit name': 'c°' })
    expect(messages[0]!.systemProperties).toMatchObject({ '$.mid': 'm-1', '$.ct': 'application/json', '$.ce': 'utf-8' })
    expect(messages[1]!.body).toBe('plain text')
  })

  it('TPM: connects with a SAS signed by the hub key the TPM activated', async () => {
    const t = softwareTpm(new Uint8Array(32).fill(transport === 'mqtt' ? 0x61 : 0x62))
    const ek = Buffer.from(await t.endorsementKey()).toString('base64')
    const registrationId = `hub-${transport}-tpm`
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, { registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: ek } }, initialTwin: { properties: { desired: { mode: 'tpm' } } } })
    const security = tpm({ tpm: t, registrationId })
    const reg = await provision(security, 'http')
    const c = await hub(reg.assignedHub, reg.deviceId, security, transport)
    expect((await c.getTwin()).desired).toMatchObject({ mode: 'tpm' })
    await c.sendTelemetry({ ok: true })
    expect((await telemetryOf(reg.deviceId)).messages).toHaveLength(1)
  })

  it('X.509: connects with the certificate it registered with', async () => {
    const id = `hub-${transport}-x509`
    const device = pki.selfSignedDevice(id, 'ec')
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, { registrationId: id, attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: device.pem } } } } })
    const security = x509({ cert: device.pem, key: device.keyPem })
    const reg = await provision(security, 'mqtt')
    const c = await hub(reg.assignedHub, reg.deviceId, security, transport)
    expect(await c.updateReported({ x509: true })).toBeGreaterThan(0)
  })

  it('is refused with REFUSED/401 for a wrong key', async () => {
    const security = symmetricKey({ registrationId: `hub-${transport}-sym`, key: randomBytes(32).toString('base64') })
    const err = await connectHub({ hostName: 'localhost', deviceId: `hub-${transport}-sym`, security, transport, port: transport === 'mqtt' ? server.endpoints.ports.mqtt : server.port, ca: server.caPem }).then(
      (c) => {
        open.push(c)
        return undefined
      },
      (e: unknown) => e as DeviceError,
    )
    expect(err).toBeInstanceOf(DeviceError)
    expect(err).toMatchObject({ code: 'REFUSED', status: 401 })
  })
})
