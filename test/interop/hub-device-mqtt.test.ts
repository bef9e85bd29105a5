// The embedded hub, proven with Microsoft's own clients over real TLS and WSS on loopback: a device
// provisions with azure-iot-provisioning-device (symmetric key from an enrollment group), then
// connects to the embedded hub DPS assigned it with azure-iot-device + azure-iot-device-mqtt
// (`Mqtt`, and once `MqttWs`), reads the enrollment's initial desired properties from its twin,
// patches reported properties (seen by azure-iothub Registry.getTwin), receives the desired change
// the service makes with Registry.updateTwin, and sends telemetry that is read back through the
// hub's HTTP API and `provisio telemetry`. A wrong key is refused at CONNECT.
//
// Plumbing (the clients stay unmodified): `Mqtt` always dials port 8883 of the hub host name, so
// `redirectMqtts` sends those TLS connections to the test server's MQTT port on loopback (the SNI
// stays the hub's name); `MqttWs` takes an https.Agent through `setOptions({ mqtt: { webSocketAgent } })`
// and Registry its REST client's agent (as in iothub-registry.test.ts): `loopbackHttpsAgent` dials loopback. Hubs are named
// `*.example`, so nothing resolves them by DNS.
import { execFile } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { Client, Message } from 'azure-iot-device'
import { Mqtt as DeviceMqtt, MqttWs as DeviceMqttWs } from 'azure-iot-device-mqtt'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key'
import type { Registry } from 'azure-iothub'
import { NoRetry } from 'azure-iot-common'
import { deriveDeviceKey } from '@provisio/crypto'
import { readHubTelemetry } from '../lib/mqtt.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { desiredUpdate, registryOn } from '../lib/registry.js'
import { loopbackHttpsAgent, redirectMqtts } from '../lib/tls-plumbing.js'

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'packages', 'server', 'dist', 'cli.js')
const HUB_A = 'hub-a.example'
const HUB_B = 'hub-b.example'
const GROUP_KEY = Buffer.alloc(64, 0x5a).toString('base64')

let server: TestServer & { logs: string[] }
let undoRedirect: () => void
const clients: Client[] = []

interface Assignment {
  assignedHub: string
  deviceId: string
}

function provision(registrationId: string, key: string): Promise<Assignment> {
  const client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(), new SymmetricKeySecurityClient(registrationId, key) as never)
  return new Promise((resolve, reject) => client.register((err?: Error, r?: unknown) => (err ? reject(err) : resolve(r as Assignment))))
}

function registryFor(hostName: string): Registry {
  return registryOn(server, server.endpoints.hubs.find((h) => h.hostName === hostName)!.connectionString)
}

async function deviceClient(transport: 'Mqtt' | 'MqttWs', a: Assignment, key: string, options: { retry?: boolean } = {}): Promise<Client> {
  const client = Client.fromConnectionString(`HostName=${a.assignedHub};DeviceId=${a.deviceId};SharedAccessKey=${key}`, transport === 'Mqtt' ? DeviceMqtt : DeviceMqttWs)
  clients.push(client)
  if (options.retry === false) client.setRetryPolicy(new NoRetry())
  await client.setOptions(transport === 'Mqtt' ? { ca: server.caPem } : ({ ca: server.caPem, mqtt: { webSocketAgent: loopbackHttpsAgent(server) } } as never))
  await client.open()
  return client
}

const readTelemetry = (hostName: string, deviceId: string) => readHubTelemetry(server, hostName, deviceId)

beforeAll(async () => {
  server = (await startTestServer({ hubs: [{ hostName: HUB_A }, { hostName: HUB_B }] })) as typeof server
  server.useAsDefaultHttpsAgent()
  undoRedirect = redirectMqtts(server)
  // Devices of this group land on hub B (static), so the hub is picked by name among several.
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'hub-fleet',
    allocationPolicy: 'static',
    iotHubs: [HUB_B],
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: Buffer.alloc(64, 0x5b).toString('base64') } },
    initialTwin: { tags: { fleet: 'hub' }, properties: { desired: { interval: 10, mode: 'eco' } } },
  })
}, 60_000)

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
  undoRedirect?.()
  await server?.stop()
})

describe.each(['Mqtt', 'MqttWs'] as const)('azure-iot-device over %s on the hub DPS assigned', (transport) => {
  const registrationId = `hub-flow-${transport.toLowerCase()}`
  const key = deriveDeviceKey(GROUP_KEY, registrationId)

  it('provisions, reads the initial twin, reports, receives a desired change and sends telemetry', async () => {
    const assignment = await provision(registrationId, key)
    expect(assignment).toMatchObject({ assignedHub: HUB_B, deviceId: registrationId })

    const client = await deviceClient(transport, assignment, key)
    const twin = await client.getTwin()
    expect(twin.properties.desired).toMatchObject({ interval: 10, mode: 'eco', $version: expect.any(Number) })

    // Reported properties, seen by the service.
    await new Promise<void>((resolve, reject) => twin.properties.reported.update({ firmware: '1.2.3', battery: { level: 87 } }, (err?: Error) => (err ? reject(err) : resolve())))
    const registry = registryFor(HUB_B)
    const serviceTwin = (await registry.getTwin(registrationId)).responseBody
    expect(serviceTwin.properties.reported).toMatchObject({ firmware: '1.2.3', battery: { level: 87 } })
    expect(serviceTwin.tags).toEqual({ fleet: 'hub' })

    // The service changes desired properties; the device hears of it.
    const heard = desiredUpdate(twin, (d) => d.interval === 30)
    await registry.updateTwin(registrationId, { properties: { desired: { interval: 30 } } } as never, '*')
    const update = await heard
    expect(update).toMatchObject({ interval: 30, $version: (twin.properties.desired.$version as number) })
    expect(twin.properties.desired).toMatchObject({ interval: 30, mode: 'eco' })

    // Telemetry with application and system properties.
    const message = new Message(JSON.stringify({ temperature: 21.5 }))
    message.properties.add('unit', '°C')
    message.messageId = `${transport}-1`
    message.contentType = 'application/json'
    message.contentEncoding = 'utf-8'
    await client.sendEvent(message)
    await client.sendEvent(new Message('second'))
    const read = await readTelemetry(HUB_B, registrationId)
    expect(read.status).toBe(200)
    expect(read.body.dropped).toBe(0)
    expect(read.body.messages.map((m) => m.body)).toEqual(['{"temperature":21.5}', 'second'])
    expect(read.body.messages[0]).toMatchObject({ properties: { unit: '°C' }, systemProperties: { '$.mid': `${transport}-1`, '$.ct': 'application/json', '$.ce': 'utf-8' } })
    const label = transport === 'Mqtt' ? 'mqtts' : 'mqtt-ws'
    expect(await server.metrics.hubTelemetry.get([label])).toBeGreaterThanOrEqual(2)
    expect(await server.metrics.hubTwin.get([label, 'reportedPatch', '204'])).toBeGreaterThanOrEqual(1)
    expect(await server.metrics.render()).toMatch(new RegExp(`provisio_hub_connections_total\\{transport="${label}",result="accepted"\\} [1-9]`))
    expect(await server.metrics.hubDesiredPushes.get(['sent'])).toBeGreaterThanOrEqual(1)
    // Connected now, counted until the connection closes.
    const connected = await server.metrics.hubConnected.get([label])
    expect(connected).toBeGreaterThanOrEqual(1)
    await client.close()
    await vi.waitFor(async () => expect(await server.metrics.hubConnected.get([label])).toBe(connected - 1), { timeout: 5000 })
  })
})

describe('the hub device endpoint refuses and recovers', () => {
  it('refuses a SAS signed with a wrong key (CONNACK 5, reason logged) and admits the secondary key', async () => {
    const registrationId = 'hub-wrong-key'
    const key = deriveDeviceKey(GROUP_KEY, registrationId)
    const assignment = await provision(registrationId, key)
    const wrong = Buffer.alloc(32, 0x77).toString('base64')
    const bad = Client.fromConnectionString(`HostName=${assignment.assignedHub};DeviceId=${assignment.deviceId};SharedAccessKey=${wrong}`, DeviceMqtt)
    await bad.setOptions({ ca: server.caPem })
    await expect(bad.open()).rejects.toMatchObject({ name: 'UnauthorizedError' })
    await bad.close().catch(() => undefined)
    const refusal = server.logs.find((l) => l.includes('hub connect refused') && l.includes(registrationId))
    expect(refusal).toBeDefined()
    expect(JSON.parse(refusal!)).toMatchObject({ returnCode: 5, reason: expect.stringContaining('SAS_BAD_SIGNATURE') })
    expect(await server.metrics.hubConnections.get(['mqtts', 'refused_5'])).toBeGreaterThanOrEqual(1)

    // The group's secondary key derives the identity's secondary key; it is admitted too.
    const secondary = deriveDeviceKey(Buffer.alloc(64, 0x5b).toString('base64'), registrationId)
    const client = await deviceClient('Mqtt', assignment, secondary)
    expect((await client.getTwin()).properties.desired).toMatchObject({ interval: 10 })
    await client.close()
  })

  it('disabling a connected device ends its connection, and it is refused from then on', async () => {
    const registrationId = 'hub-disabled'
    const key = deriveDeviceKey(GROUP_KEY, registrationId)
    const assignment = await provision(registrationId, key)
    const connected = await deviceClient('Mqtt', assignment, key, { retry: false })
    const dropped = new Promise<void>((resolve) => connected.on('disconnect', () => resolve()))
    const registry = registryFor(HUB_B)
    const device = (await registry.get(registrationId)).responseBody
    await registry.update({ ...device, status: 'disabled' } as never)
    await dropped
    expect(server.logs.some((l) => l.includes('IDENTITY_REVOKED') && l.includes(`device ${registrationId} was disabled on hub ${HUB_B}`))).toBe(true)

    const client = Client.fromConnectionString(`HostName=${assignment.assignedHub};DeviceId=${assignment.deviceId};SharedAccessKey=${key}`, DeviceMqtt)
    await client.setOptions({ ca: server.caPem })
    await expect(client.open()).rejects.toMatchObject({ name: 'UnauthorizedError' })
    await client.close().catch(() => undefined)
    expect(server.logs.some((l) => l.includes('hub connect refused') && l.includes('DEVICE_DISABLED'))).toBe(true)
  })

  it('a second connection of the same device takes over the first, which the SDK sees as a disconnect', async () => {
    const registrationId = 'hub-takeover'
    const key = deriveDeviceKey(GROUP_KEY, registrationId)
    const assignment = await provision(registrationId, key)
    // Without retries, or the older client would take the connection back at once.
    const first = await deviceClient('Mqtt', assignment, key, { retry: false })
    const dropped = new Promise<void>((resolve) => first.on('disconnect', () => resolve()))
    const second = await deviceClient('Mqtt', assignment, key)
    await dropped
    expect(server.logs.some((l) => l.includes('TAKEN_OVER'))).toBe(true)
    await second.sendEvent(new Message('from the newer connection'))
    const read = await readTelemetry(HUB_B, registrationId)
    expect(read.body.messages.map((m) => m.body)).toEqual(['from the newer connection'])
    await second.close()
  })

  it('`provisio telemetry` prints the messages as JSON lines', async () => {
    const registrationId = 'hub-cli'
    const key = deriveDeviceKey(GROUP_KEY, registrationId)
    const assignment = await provision(registrationId, key)
    const client = await deviceClient('Mqtt', assignment, key)
    for (let i = 1; i <= 3; i++) await client.sendEvent(new Message(JSON.stringify({ i })))
    await client.close()
    const { stdout } = await promisify(execFile)(process.execPath, [cli, 'telemetry', '--data-dir', server.dataDir, '--hub', HUB_B, '--device', registrationId, '--after', '1'], { encoding: 'utf8' })
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { sequenceNumber: number; body: string })
    expect(lines.map((l) => [l.sequenceNumber, l.body])).toEqual([
      [2, '{"i":2}'],
      [3, '{"i":3}'],
    ])
    const failed = await promisify(execFile)(process.execPath, [cli, 'telemetry', '--data-dir', server.dataDir, '--hub', 'nowhere.example', '--device', 'x']).catch((e: { code: number; stderr: string }) => e)
    expect(failed).toMatchObject({ code: 2, stderr: expect.stringContaining('no embedded hub "nowhere.example"') })
  })
})
