// The embedded hub as Microsoft's clients and IoT Hub's MQTT rules expect it, on a real
// `provisio serve` over TLS and WSS on loopback:
// - azure-iot-device (Mqtt and MqttWs) renews its SAS token with updateSharedAccessSignature, which
//   reconnects with clean session 0 and does not subscribe again: its session must still hold, so
//   twin reads and desired pushes keep arriving;
// - a raw client (@provisio/codec-mqtt's packet codec, on mqtt-packet) subscribes with each filter
//   form the SDKs use (the Embedded C SDK's `devices/+/messages/devicebound/#` among them) and
//   reconnects with clean session 0: session present 1, subscriptions kept, an unacknowledged QoS 1
//   message sent again;
// - twin patches that clear a section (`{"tags": null}`, `{"properties": {"desired": null}}`)
//   through azure-iothub (Registry.updateTwin, Twin.update), with the device pushed the change;
// - azure-iothub Registry bulk (addDevices, updateDevices, removeDevices) and IoT Edge scopes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client } from 'azure-iot-device'
import { Mqtt as DeviceMqtt, MqttWs as DeviceMqttWs } from 'azure-iot-device-mqtt'
import { NoRetry } from 'azure-iot-common'
import type { Registry } from 'azure-iothub'
import type { MqttPublishPacket, encodePacket } from '@provisio/codec-mqtt'
import { buildSasToken } from '@provisio/protocol'
import { rawMqttClient, type RawMqttClient } from '../lib/mqtt.js'
import { desiredUpdate, registryOn } from '../lib/registry.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { loopbackHttpsAgent, redirectMqtts } from '../lib/tls-plumbing.js'

const HUB = 'hub-f.example'
const KEY = Buffer.alloc(32, 0x46).toString('base64')
let server: TestServer & { logs: string[] }
let registry: Registry
let undoRedirect: () => void
const clients: Client[] = []

const sas = (deviceId: string, ttlSeconds = 600) =>
  buildSasToken({ resource: `${HUB}/devices/${deviceId}`, key: KEY, expiresAt: Math.floor(Date.now() / 1000) + ttlSeconds })

async function createDevice(deviceId: string): Promise<void> {
  await server.hubs.get(HUB).createOrUpdateDevice({ deviceId, authentication: { type: 'sas', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } } })
}

/** azure-iot-device from a SAS token (so that the test renews it), connected over `transport`. */
async function sasDevice(transport: 'Mqtt' | 'MqttWs', deviceId: string): Promise<Client> {
  const client = Client.fromSharedAccessSignature(sas(deviceId, 300), transport === 'Mqtt' ? DeviceMqtt : DeviceMqttWs)
  clients.push(client)
  client.setRetryPolicy(new NoRetry())
  await client.setOptions(transport === 'Mqtt' ? { ca: server.caPem } : ({ ca: server.caPem, mqtt: { webSocketAgent: loopbackHttpsAgent(server) } } as never))
  await client.open()
  return client
}

function hubConnect(deviceId: string, clean: boolean): Parameters<typeof encodePacket>[0] {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, keepalive: 60, clientId: deviceId, username: `${HUB}/${deviceId}/?api-version=2021-04-12`, password: Buffer.from(sas(deviceId)) }
}

async function rawDevice(deviceId: string, clean: boolean): Promise<{ client: RawMqttClient; sessionPresent: boolean }> {
  const client = await rawMqttClient(server, { host: '127.0.0.1', servername: HUB, maxPacketBytes: 1 << 20 })
  client.send(hubConnect(deviceId, clean))
  const connack = await client.next()
  expect(connack).toMatchObject({ cmd: 'connack', returnCode: 0 })
  return { client, sessionPresent: (connack as { sessionPresent: boolean }).sessionPresent }
}

const text = (p: MqttPublishPacket) => Buffer.from(p.payload).toString()

/** A device as the registry answers it, with the IoT Edge fields azure-iothub's Device type lacks. */
interface EdgeDevice {
  deviceId: string
  generationId: string
  status: string
  deviceScope: string
  parentScopes: string[]
}
const edgeDevice = (r: { responseBody: unknown }) => r.responseBody as EdgeDevice

beforeAll(async () => {
  server = (await startTestServer({ hubs: [{ hostName: HUB }] })) as typeof server
  server.useAsDefaultHttpsAgent()
  undoRedirect = redirectMqtts(server)
  registry = registryOn(server, server.endpoints.hubs[0]!.connectionString)
}, 60_000)

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
  undoRedirect?.()
  await server?.stop()
})

describe.each(['Mqtt', 'MqttWs'] as const)('azure-iot-device over %s renewing its SAS token', (transport) => {
  it('still reads its twin and receives desired pushes after updateSharedAccessSignature', async () => {
    const deviceId = `renew-${transport.toLowerCase()}`
    await createDevice(deviceId)
    const client = await sasDevice(transport, deviceId)
    const twin = await client.getTwin()
    expect(twin.properties.desired).toMatchObject({ $version: 1 })

    // The SDK disconnects and CONNECTs again with the new token, clean session 0, and does not subscribe again.
    await new Promise<void>((resolve, reject) => client.updateSharedAccessSignature(sas(deviceId, 900), (err?: Error) => (err ? reject(err) : resolve())))
    await registry.updateTwin(deviceId, { properties: { desired: { interval: 5 } } } as never, '*')
    const again = await client.getTwin()
    expect(again.properties.desired).toMatchObject({ interval: 5, $version: 2 })

    const heard = desiredUpdate(twin, (d) => d.interval === 7)
    await registry.updateTwin(deviceId, { properties: { desired: { interval: 7 } } } as never, '*')
    expect(await heard).toMatchObject({ interval: 7, $version: 3 })
    expect(server.logs.some((l) => l.includes('hub device connected') && l.includes(deviceId) && l.includes('"clean":false'))).toBe(true)
    await client.close()
  }, 30_000)
})

describe('hub MQTT subscriptions and persistent sessions (raw client)', () => {
  it('grants every filter form the SDKs subscribe with, matched as MQTT matches filters, and refuses the rest', async () => {
    const deviceId = 'filters-1'
    await createDevice(deviceId)
    const { client } = await rawDevice(deviceId, true)
    const filters = [
      'devices/+/messages/devicebound/#',
      `devices/${deviceId}/messages/devicebound/#`,
      '$iothub/methods/POST/#',
      '$iothub/twin/res/#',
      '$iothub/twin/PATCH/properties/desired/#',
      '$iothub/twin/+/#',
      'devices/other/messages/devicebound/#',
      '#',
      '$iothub/twin/res#',
      '$dps/registrations/res/#',
    ]
    client.send({ cmd: 'subscribe', messageId: 3, subscriptions: filters.map((topic, i) => ({ topic, qos: i === 1 ? 1 : 0 })) })
    expect(await client.next()).toEqual({ cmd: 'suback', messageId: 3, granted: [0, 1, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80] })
    // A twin response reaches the device through `$iothub/twin/res/#` (and `$iothub/twin/+/#`): once, at the highest QoS granted.
    client.send({ cmd: 'publish', topic: '$iothub/twin/GET/?$rid=9', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false })
    const res = (await client.next()) as MqttPublishPacket
    expect(res).toMatchObject({ topic: '$iothub/twin/res/200/?$rid=9', qos: 0 })
    client.end()
  })

  it('a clean-session-0 reconnect finds its session: present 1, subscriptions kept, the unacknowledged QoS 1 message sent again', async () => {
    const deviceId = 'persist-1'
    await createDevice(deviceId)
    const first = await rawDevice(deviceId, false)
    expect(first.sessionPresent).toBe(false)
    first.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$iothub/twin/PATCH/properties/desired/#', qos: 1 }, { topic: '$iothub/twin/res/#', qos: 0 }] })
    expect(await first.client.next()).toEqual({ cmd: 'suback', messageId: 1, granted: [1, 0] })
    await registry.updateTwin(deviceId, { properties: { desired: { mode: 'eco' } } } as never, '*')
    const pushed = (await first.client.next()) as MqttPublishPacket
    expect(pushed).toMatchObject({ cmd: 'publish', topic: '$iothub/twin/PATCH/properties/desired/?$version=2', qos: 1, dup: false })
    // No PUBACK: the connection drops with the message unacknowledged.
    first.client.end()
    await first.client.closed

    const second = await rawDevice(deviceId, false)
    expect(second.sessionPresent).toBe(true)
    const again = (await second.client.next()) as MqttPublishPacket
    expect(again).toMatchObject({ topic: pushed.topic, qos: 1, dup: true, messageId: pushed.messageId })
    expect(JSON.parse(text(again))).toEqual({ mode: 'eco', $version: 2 })
    second.client.send({ cmd: 'puback', messageId: again.messageId! })
    // The subscriptions held without a new SUBSCRIBE: the twin response and the next push arrive.
    second.client.send({ cmd: 'publish', topic: '$iothub/twin/GET/?$rid=r2', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false })
    expect(await second.client.next()).toMatchObject({ topic: '$iothub/twin/res/200/?$rid=r2', qos: 0 })
    await registry.updateTwin(deviceId, { properties: { desired: { mode: 'max' } } } as never, '*')
    const next = (await second.client.next()) as MqttPublishPacket
    expect(next).toMatchObject({ topic: '$iothub/twin/PATCH/properties/desired/?$version=3', qos: 1, dup: false })
    second.client.send({ cmd: 'puback', messageId: next.messageId! })
    second.client.end()
    await second.client.closed

    // A desired change while the device is away waits in its session (QoS 1 subscription).
    await registry.updateTwin(deviceId, { properties: { desired: { mode: 'off' } } } as never, '*')
    const third = await rawDevice(deviceId, false)
    expect(third.sessionPresent).toBe(true)
    expect(await third.client.next()).toMatchObject({ topic: '$iothub/twin/PATCH/properties/desired/?$version=4', qos: 1, dup: false })
    third.client.end()
    await third.client.closed

    // Clean session 1 discards it.
    const fresh = await rawDevice(deviceId, true)
    expect(fresh.sessionPresent).toBe(false)
    fresh.client.send({ cmd: 'publish', topic: '$iothub/twin/GET/?$rid=r3', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false })
    fresh.client.send({ cmd: 'pingreq' })
    expect(await fresh.client.next()).toEqual({ cmd: 'pingresp' })
    fresh.client.end()
  })
})

describe('twin patches that clear a section (azure-iothub)', () => {
  it('{"properties":{"desired":null}} and {"tags":null} clear them; the device is pushed the removed properties as null', async () => {
    const deviceId = 'null-patch-1'
    await createDevice(deviceId)
    await registry.updateTwin(deviceId, { tags: { site: 'lab', floor: 2 }, properties: { desired: { a: 1, b: { c: 2 } } } } as never, '*')
    const client = await sasDevice('Mqtt', deviceId)
    const twin = await client.getTwin()
    expect(twin.properties.desired).toMatchObject({ a: 1, b: { c: 2 } })

    const cleared = desiredUpdate(twin, (d) => d.a === null)
    const after = (await registry.updateTwin(deviceId, { properties: { desired: null } } as never, '*')).responseBody
    expect(after.properties.desired).toEqual({ $version: 3 })
    expect(await cleared).toEqual({ a: null, b: null, $version: 3 })
    expect(twin.properties.desired).not.toHaveProperty('a')

    // Through the service Twin object (Twin.update sends the twin's etag as If-Match).
    const serviceTwin = (await registry.getTwin(deviceId)).responseBody
    expect(serviceTwin.tags).toEqual({ site: 'lab', floor: 2 })
    const tagless = (await serviceTwin.update({ tags: null } as never)).result
    expect(tagless.tags).toEqual({})
    expect((await registry.getTwin(deviceId)).responseBody.tags).toEqual({})

    // null on one property deletes it (and is pushed as such).
    await registry.updateTwin(deviceId, { properties: { desired: { x: 1, y: 2 } } } as never, '*')
    const removed = desiredUpdate(twin, (d) => d.x === null)
    const one = (await registry.updateTwin(deviceId, { properties: { desired: { x: null } } } as never, '*')).responseBody
    expect(one.properties.desired).toEqual({ y: 2, $version: 5 })
    expect(await removed).toEqual({ x: null, $version: 5 })
    await client.close()
  }, 30_000)
})

describe('registry bulk operations and IoT Edge scopes (azure-iothub)', () => {
  it('addDevices, updateDevices and removeDevices create, change and delete up to 100 devices in one request', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => `bulk-${i}`)
    const added = await registry.addDevices(ids.map((deviceId) => ({ deviceId })) as never)
    expect(added.responseBody).toMatchObject({ isSuccessful: true, errors: [] })
    expect((await registry.get('bulk-42')).responseBody).toMatchObject({ deviceId: 'bulk-42', status: 'enabled', authentication: { type: 'sas' } })

    // One entry fails (it exists); IoT Hub answers 400 with the errors, the SDK rejects.
    await expect(registry.addDevices([{ deviceId: 'bulk-new' }, { deviceId: 'bulk-1' }] as never)).rejects.toMatchObject({
      responseBody: expect.stringContaining('DeviceAlreadyExists'),
    })
    expect((await registry.get('bulk-new')).responseBody.deviceId).toBe('bulk-new')

    const updated = await registry.updateDevices(ids.slice(0, 10).map((deviceId) => ({ deviceId, status: 'disabled' })) as never, true)
    expect(updated.responseBody).toMatchObject({ isSuccessful: true })
    expect((await registry.get('bulk-3')).responseBody.status).toBe('disabled')
    const etag = (await registry.get('bulk-20')).responseBody.etag
    await expect(registry.updateDevices([{ deviceId: 'bulk-20', status: 'disabled', etag: 'stale' }] as never, false)).rejects.toMatchObject({
      responseBody: expect.stringContaining('PreconditionFailed'),
    })
    expect((await registry.updateDevices([{ deviceId: 'bulk-20', status: 'disabled', eTag: etag }] as never, false)).responseBody).toMatchObject({ isSuccessful: true })

    const removed = await registry.removeDevices([...ids, 'bulk-new'].slice(1).map((deviceId) => ({ deviceId })) as never, true)
    expect(removed.responseBody).toMatchObject({ isSuccessful: true })
    expect((await registry.list()).responseBody.map((d: { deviceId: string }) => d.deviceId).filter((id: string) => id.startsWith('bulk-'))).toEqual(['bulk-0'])
  }, 60_000)

  it('an Edge device gets its deviceScope; a leaf child and an Edge child name it (deviceScope / parentScopes)', async () => {
    const edge = edgeDevice(await registry.create({ deviceId: 'edge-gw', capabilities: { iotEdge: true } } as never))
    expect(edge.deviceScope).toBe(`ms-azure-iot-edge://edge-gw-${edge.generationId}`)
    expect(edge.parentScopes).toEqual([])

    const leaf = edgeDevice(await registry.create({ deviceId: 'edge-leaf', deviceScope: edge.deviceScope } as never))
    expect(leaf).toMatchObject({ deviceScope: edge.deviceScope, parentScopes: [edge.deviceScope] })
    const child = edgeDevice(await registry.create({ deviceId: 'edge-child', capabilities: { iotEdge: true }, parentScopes: [edge.deviceScope] } as never))
    expect(child.deviceScope).toBe(`ms-azure-iot-edge://edge-child-${child.generationId}`)
    expect(child.parentScopes).toEqual([edge.deviceScope])
    expect(edgeDevice(await registry.get('edge-leaf'))).toMatchObject({ deviceScope: edge.deviceScope, parentScopes: [edge.deviceScope] })

    // An update that names no parent keeps it (the SDK sends the device back as read).
    const read = edgeDevice(await registry.get('edge-leaf'))
    expect(edgeDevice(await registry.update({ ...read, status: 'disabled' } as never))).toMatchObject({ status: 'disabled', deviceScope: edge.deviceScope })

    // A parent that is not an Edge device of the hub is refused.
    await expect(registry.create({ deviceId: 'edge-orphan', deviceScope: 'ms-azure-iot-edge://nobody-123' } as never)).rejects.toMatchObject({ responseBody: expect.stringContaining('ArgumentInvalid') })
    await expect(registry.create({ deviceId: 'edge-orphan', deviceScope: leaf.deviceScope.replace('edge-gw', 'edge-leaf') } as never)).rejects.toMatchObject({ responseBody: expect.stringContaining('ArgumentInvalid') })
  })
})
