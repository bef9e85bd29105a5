// The hub's MQTT dialect on the wire of a real `provisio serve` with two embedded hubs, with a raw
// client built on @provisio/codec-mqtt's packet codec over TLS: DPS and hub CONNECTs on one port,
// the hub picked by the username's host name, a TLS SNI that names another hub refused, the SDK's
// method and C2D subscriptions granted, a bad PUBLISH closing only its own connection, and the
// telemetry API's errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MqttPublishPacket, encodePacket } from '@provisio/codec-mqtt'
import { buildSasToken } from '@provisio/protocol'
import { httpsRequest } from '../lib/https-client.js'
import { hubServiceToken, rawMqttClient } from '../lib/mqtt.js'
import { startTestServer, type TestServer } from '../lib/server.js'

const HUB_A = 'hub-a.example'
const HUB_B = 'hub-b.example'
const KEY = Buffer.alloc(32, 0x44).toString('base64')
let server: TestServer & { logs: string[] }

const rawClient = (servername: string) => rawMqttClient(server, { host: '127.0.0.1', servername, maxPacketBytes: 1 << 20 })

function hubConnect(hub: string, deviceId: string, key = KEY): Parameters<typeof encodePacket>[0] {
  const password = buildSasToken({ resource: `${hub}/devices/${deviceId}`, key, expiresAt: Math.floor(Date.now() / 1000) + 600 })
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, keepalive: 60, clientId: deviceId, username: `${hub}/${deviceId}/?api-version=2021-04-12`, password: Buffer.from(password) }
}

const hubToken = (hub: string) => hubServiceToken(server, hub)
const get = (path: string, authorization: string) => httpsRequest(server.port, server.caPem, 'GET', path, { headers: { authorization } })

beforeAll(async () => {
  server = (await startTestServer({ hubs: [{ hostName: HUB_A }, { hostName: HUB_B }] })) as typeof server
  for (const [hub, id] of [[HUB_A, 'wire-a'], [HUB_B, 'wire-b']] as const) {
    await server.hubs.get(hub)!.createOrUpdateDevice({ deviceId: id, authentication: { type: 'sas', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } } })
  }
}, 60_000)

afterAll(async () => {
  await server?.stop()
})

describe('the hub dialect on the shared MQTT port', () => {
  it('picks the hub by the username host; a device of hub B is unknown on hub A', async () => {
    const b = await rawClient(HUB_B)
    b.send(hubConnect(HUB_B, 'wire-b'))
    expect(await b.next()).toEqual({ cmd: 'connack', returnCode: 0, sessionPresent: false })
    b.end()
    const a = await rawClient(HUB_A)
    a.send(hubConnect(HUB_A, 'wire-b'))
    expect(await a.next()).toEqual({ cmd: 'connack', returnCode: 5, sessionPresent: false })
    await a.closed
    expect(server.logs.some((l) => l.includes('hub connect refused') && l.includes('does not exist on hub hub-a.example'))).toBe(true)
  })

  it('refuses a CONNECT whose TLS SNI names another embedded hub, naming both', async () => {
    const c = await rawClient(HUB_A)
    c.send(hubConnect(HUB_B, 'wire-b'))
    expect(await c.next()).toMatchObject({ cmd: 'connack', returnCode: 5 })
    await c.closed
    const line = server.logs.find((l) => l.includes('TLS SNI names hub'))
    expect(line).toMatch(/TLS SNI names hub \\"hub-a\.example\\", but the CONNECT username names hub \\"hub-b\.example\\"/)
  })

  it('serves a DPS CONNECT on the same port (DPS answers for its own dialect)', async () => {
    const c = await rawClient('localhost')
    const token = buildSasToken({ resource: `${server.endpoints.idScope}/registrations/nobody`, key: KEY, keyName: 'registration', expiresAt: Math.floor(Date.now() / 1000) + 600 })
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'nobody', username: `${server.endpoints.idScope}/registrations/nobody/api-version=2019-03-31`, password: Buffer.from(token) })
    expect(await c.next()).toMatchObject({ cmd: 'connack', returnCode: 5 })
    expect(server.logs.some((l) => l.includes('mqtt connect refused') && l.includes('nobody'))).toBe(true)
  })

  it('grants the SDK subscriptions, answers the twin, and a PUBLISH outside the dialect closes only that connection', async () => {
    const c = await rawClient(HUB_A)
    c.send(hubConnect(HUB_A, 'wire-a'))
    expect(await c.next()).toMatchObject({ cmd: 'connack', returnCode: 0 })
    c.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [
        { topic: '$iothub/twin/res/#', qos: 0 },
        { topic: '$iothub/methods/POST/#', qos: 0 },
        { topic: 'devices/wire-a/messages/devicebound/#', qos: 1 },
      ],
    })
    expect(await c.next()).toEqual({ cmd: 'suback', messageId: 1, granted: [0, 0, 1] })
    c.send({ cmd: 'publish', topic: '$iothub/twin/GET/?$rid=7', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false })
    const res = (await c.next()) as MqttPublishPacket
    expect(res.topic).toBe('$iothub/twin/res/200/?$rid=7')
    expect(JSON.parse(Buffer.from(res.payload).toString())).toEqual({ desired: { $version: 1 }, reported: { $version: 1 } })

    const other = await rawClient(HUB_B)
    other.send(hubConnect(HUB_B, 'wire-b'))
    expect(await other.next()).toMatchObject({ returnCode: 0 })
    c.send({ cmd: 'publish', topic: 'devices/wire-b/messages/events/', payload: Buffer.from('x'), qos: 1, messageId: 2, retain: false, dup: false })
    await c.closed
    expect(server.logs.some((l) => l.includes('"code":"UNSUPPORTED"') && l.includes('wire-b'))).toBe(true)
    other.send({ cmd: 'pingreq' })
    expect(await other.next()).toEqual({ cmd: 'pingresp' })
    other.end()
  })

  it('the telemetry API answers 404 for an unknown device, 401 without the hub key, 400 for bad paging', async () => {
    expect((await get('/devices/ghost/messages/events?api-version=2021-04-12', hubToken(HUB_A))).status).toBe(404)
    expect((await get('/devices/wire-a/messages/events?api-version=2021-04-12', hubToken(HUB_A).replace(/sig=[^&]+/, 'sig=AAAA'))).status).toBe(401)
    expect((await get('/devices/wire-a/messages/events?api-version=2021-04-12&limit=5000', hubToken(HUB_A))).status).toBe(400)
    const ok = await get('/devices/wire-a/messages/events?api-version=2021-04-12', hubToken(HUB_A))
    expect(JSON.parse(ok.body)).toEqual({ deviceId: 'wire-a', messages: [], dropped: 0, lastSequenceNumber: 0 })
  })
})
