// Device telemetry over the embedded hub's HTTPS device API, with Microsoft's own clients over real
// TLS on loopback: devices provision with azure-iot-provisioning-device (Http transport; a
// symmetric-key group, and an X.509 individual enrollment), then azure-iot-device's `Client` over
// azure-iot-device-http's `Http` transport sends `sendEvent` (application and system properties as
// headers) and `sendEventBatch` (`application/vnd.microsoft.iothub.json`), read back through the
// hub's telemetry API. A wrong key, another certificate and a message over 256 KB are refused with
// IoT Hub's errors and the reason logged; nothing refused is stored; the messages are counted on
// /metrics.
//
// Plumbing (the clients stay unmodified): the Http transport dials port 443 of the hub host name;
// its documented `setOptions({ http: { agent, receivePolicy } })` takes `loopbackHttpsAgent`, which dials the test
// server's HTTPS port on loopback. Hubs are named `*.example`, so nothing resolves them by DNS.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, Message } from 'azure-iot-device'
import { Http as DeviceHttp } from 'azure-iot-device-http'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key'
import { X509Security } from 'azure-iot-security-x509'
import { deriveDeviceKey } from '@provisio/crypto'
import { readHubTelemetry } from '../lib/mqtt.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { loopbackHttpsAgent } from '../lib/tls-plumbing.js'
import { OpensslPki } from './x509-openssl.js'

const HUB = 'hub-http.example'
const GROUP_KEY = Buffer.alloc(64, 0x3c).toString('base64')

let server: TestServer & { logs: string[] }
let pki: OpensslPki
const clients: Client[] = []

interface Assignment {
  assignedHub: string
  deviceId: string
}

function register(security: unknown): Promise<Assignment> {
  const client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(), security as never)
  return new Promise((resolve, reject) => client.register((err?: Error, r?: unknown) => (err ? reject(err) : resolve(r as Assignment))))
}

/** An azure-iot-device Client over Http for `connectionString`, its requests sent to the test server. */
async function httpClient(connectionString: string, x509?: { cert: string; key: string }): Promise<Client> {
  const client = Client.fromConnectionString(connectionString, DeviceHttp)
  clients.push(client)
  // The Http transport calls setOptions' callback only when a receive policy is among the options
  // (without one the promise never settles), so its default policy is passed along.
  await client.setOptions({ ...(x509 ?? {}), http: { agent: loopbackHttpsAgent(server), receivePolicy: { interval: 1 } } } as never)
  await client.open()
  return client
}

function refusalLogged(code: string): Record<string, unknown> | undefined {
  return server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'hub https request refused' && l.code === code)
}

beforeAll(async () => {
  server = (await startTestServer({ hubs: [{ hostName: HUB }] })) as typeof server
  server.useAsDefaultHttpsAgent()
  pki = new OpensslPki()
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'http-fleet',
    allocationPolicy: 'static',
    iotHubs: [HUB],
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: Buffer.alloc(64, 0x3d).toString('base64') } },
  })
}, 60_000)

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
  await server?.stop()
  pki?.dispose()
})

describe('azure-iot-device over Http on the hub DPS assigned', () => {
  it('a symmetric-key device sends one message and a batch, read back with their properties', async () => {
    const registrationId = 'http-sas-device'
    const key = deriveDeviceKey(GROUP_KEY, registrationId)
    const assignment = await register(new SymmetricKeySecurityClient(registrationId, key))
    expect(assignment).toMatchObject({ assignedHub: HUB, deviceId: registrationId })
    const client = await httpClient(`HostName=${assignment.assignedHub};DeviceId=${assignment.deviceId};SharedAccessKey=${key}`)

    const message = new Message(JSON.stringify({ temperature: 19.5 }))
    message.properties.add('unit', 'C')
    message.properties.add('dt-subject', 'thermostat')
    message.messageId = 'http-1'
    message.correlationId = 'corr-1'
    message.contentType = 'application/json'
    message.contentEncoding = 'utf-8'
    await client.sendEvent(message)

    const first = new Message('batch one')
    first.properties.add('seq', '1')
    await client.sendEventBatch([first, new Message(Buffer.from([0, 1, 2, 255]))])

    const read = await readHubTelemetry(server, HUB, registrationId)
    expect(read.status).toBe(200)
    expect(read.body.dropped).toBe(0)
    expect(read.body.messages.map((m) => m.body)).toEqual(['{"temperature":19.5}', 'batch one', Buffer.from([0, 1, 2, 255]).toString('base64')])
    expect(read.body.messages[0]).toMatchObject({
      properties: { unit: 'C' },
      systemProperties: { '$.mid': 'http-1', '$.cid': 'corr-1', '$.ct': 'application/json', '$.ce': 'utf-8', '$.sub': 'thermostat', '$.to': `/devices/${registrationId}/messages/events` },
    })
    expect(read.body.messages[1]).toMatchObject({ properties: { seq: '1' } })
    expect(read.body.messages[2]).toMatchObject({ bodyEncoding: 'base64', properties: {} })
    expect(await server.metrics.hubTelemetry.get(['https'])).toBeGreaterThanOrEqual(3)
    expect(await server.metrics.hubHttps.get(['telemetry', 'accepted'])).toBeGreaterThanOrEqual(2)
  })

  it('refuses a wrong key and a message over 256 KB with the reason logged, storing nothing', async () => {
    const registrationId = 'http-sas-refused'
    const key = deriveDeviceKey(GROUP_KEY, registrationId)
    const assignment = await register(new SymmetricKeySecurityClient(registrationId, key))
    const wrong = Buffer.alloc(32, 0x44).toString('base64')
    const impostor = await httpClient(`HostName=${assignment.assignedHub};DeviceId=${assignment.deviceId};SharedAccessKey=${wrong}`)
    await expect(impostor.sendEvent(new Message('not mine'))).rejects.toMatchObject({ name: 'UnauthorizedError' })
    expect(refusalLogged('SAS_BAD_SIGNATURE')).toMatchObject({ route: 'telemetry', reason: expect.stringContaining('signature') })

    const client = await httpClient(`HostName=${assignment.assignedHub};DeviceId=${assignment.deviceId};SharedAccessKey=${key}`)
    await expect(client.sendEvent(new Message(Buffer.alloc(256 * 1024 + 1, 0x61)))).rejects.toMatchObject({ name: 'MessageTooLargeError' })
    expect(refusalLogged('PAYLOAD_TOO_LARGE')).toMatchObject({ reason: expect.stringContaining(String(256 * 1024)) })
    // Exactly 256 KB is IoT Hub's limit and is taken.
    await client.sendEvent(new Message(Buffer.alloc(256 * 1024, 0x62)))

    const read = await readHubTelemetry(server, HUB, registrationId)
    expect(read.body.messages.map((m) => m.body.length)).toEqual([256 * 1024])
    expect(await server.metrics.hubHttps.get(['telemetry', 'SAS_BAD_SIGNATURE'])).toBeGreaterThanOrEqual(1)
  })

  it('an X.509 device sends with its TLS client certificate; another certificate is refused', async () => {
    const registrationId = 'http-x509-device'
    const device = pki.selfSignedDevice(registrationId, 'ec')
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId,
      allocationPolicy: 'static',
      iotHubs: [HUB],
      attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: device.pem } } } },
    })
    const assignment = await register(new X509Security(registrationId, { cert: device.pem, key: device.keyPem }))
    expect(assignment).toMatchObject({ assignedHub: HUB, deviceId: registrationId })
    const connectionString = `HostName=${assignment.assignedHub};DeviceId=${assignment.deviceId};x509=true`
    const client = await httpClient(connectionString, { cert: device.pem, key: device.keyPem })
    await client.sendEvent(new Message('x509 over https'))
    await client.sendEventBatch([new Message('x509 batch 1'), new Message('x509 batch 2')])

    const other = pki.selfSignedDevice(registrationId, 'ec')
    const impostor = await httpClient(connectionString, { cert: other.pem, key: other.keyPem })
    await expect(impostor.sendEvent(new Message('forged'))).rejects.toMatchObject({ name: 'UnauthorizedError' })
    expect(refusalLogged('CERTIFICATE_INVALID')).toMatchObject({ reason: expect.stringMatching(/thumbprint/) })

    const read = await readHubTelemetry(server, HUB, registrationId)
    expect(read.body.messages.map((m) => m.body)).toEqual(['x509 over https', 'x509 batch 1', 'x509 batch 2'])
  })
})
