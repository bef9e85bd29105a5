// Cloud-to-device queues of the embedded hub through the server: messages enqueued with the
// server's C2D API in-process (the service's AMQP sender is not served yet), the purge route
// `DELETE /devices/{id}/commands` of the service REST API over real TLS with a hub service token,
// IoT Hub's answers for an unknown device and a full queue, the queue dropped when its device is
// deleted through azure-iothub's Registry, the counts on /metrics, and two instances on one
// PostgreSQL database sharing the queues.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { httpsRequest } from '../lib/https-client.js'
import { hubServiceToken } from '../lib/mqtt.js'
import { registryOn } from '../lib/registry.js'
import { POSTGRES_URL, dropSchema, postgresReachable } from '../lib/postgres.js'
import { startTestServer, type TestServer } from '../lib/server.js'

const HUB = 'hub-c2d.example'

let server: TestServer

function connectionString(): string {
  return server.endpoints.hubs.find((h) => h.hostName === HUB)!.connectionString
}

async function createDevice(deviceId: string): Promise<void> {
  const key = Buffer.alloc(32, 9).toString('base64')
  await registryOn(server, connectionString()).create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } } } as never)
}

function purge(deviceId: string, token = hubServiceToken(server, HUB)) {
  return httpsRequest(server.port, server.caPem, 'DELETE', `/devices/${encodeURIComponent(deviceId)}/commands?api-version=2021-04-12`, { headers: { authorization: token } })
}

beforeAll(async () => {
  server = await startTestServer({ hubs: [{ hostName: HUB }] })
})

afterAll(async () => {
  await server?.close()
})

describe('cloud-to-device queue purge over the service REST API', () => {
  it('purges the queue and answers with the count, as IoT Hub does', async () => {
    await createDevice('c2d-purge')
    for (let i = 0; i < 3; i++) await server.c2d.send(HUB, 'c2d-purge', { messageId: `m${i}`, ack: 'negative', body: Buffer.from(`message ${i}`) })
    expect(await server.c2d.depth(HUB, 'c2d-purge')).toBe(3)
    const answer = await purge('C2D-PURGE')
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.body)).toEqual({ deviceId: 'c2d-purge', moduleId: null, totalMessagesPurged: 3 })
    expect(await server.c2d.depth(HUB, 'c2d-purge')).toBe(0)
    expect(JSON.parse((await purge('c2d-purge')).body)).toMatchObject({ totalMessagesPurged: 0 })
    const metrics = await httpsRequest(server.port, server.caPem, 'GET', '/metrics')
    expect(metrics.body).toContain(`provisio_hub_c2d_messages_total{hub="${HUB}",event="purged"} 3`)
    expect(metrics.body).toContain(`provisio_hub_c2d_messages_total{hub="${HUB}",event="sent"} 3`)
  })

  it('answers 404 DeviceNotFound for an unknown device and 401 without a token', async () => {
    const missing = await purge('nobody-here')
    expect(missing.status).toBe(404)
    expect(missing.headers['iothub-errorcode']).toBe('DeviceNotFound')
    expect(JSON.parse(missing.body).Message).toMatch(/^ErrorCode:DeviceNotFound;/)
    const anonymous = await httpsRequest(server.port, server.caPem, 'DELETE', '/devices/c2d-purge/commands?api-version=2021-04-12')
    expect(anonymous.status).toBe(401)
  })

  it('refuses the 51st message with DeviceMaximumQueueDepthExceeded, and a deleted device takes its queue along', async () => {
    await createDevice('c2d-full')
    for (let i = 0; i < 50; i++) await server.c2d.send(HUB, 'c2d-full', { body: Buffer.from(String(i)) })
    await expect(server.c2d.send(HUB, 'c2d-full', { body: Buffer.from('51') })).rejects.toMatchObject({ code: 'DEVICE_QUEUE_FULL', errorCode: 403004 })
    await registryOn(server, connectionString()).delete('c2d-full')
    await expect(server.c2d.send(HUB, 'c2d-full', { body: Buffer.from('x') })).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await createDevice('c2d-full')
    expect(await server.c2d.depth(HUB, 'c2d-full')).toBe(0)
  })
})

// Two instances on one PostgreSQL database share the queues: what one enqueues, the other leases,
// settles and purges.
const available = await postgresReachable()
describe.skipIf(!available)('cloud-to-device queues shared by two instances on PostgreSQL', () => {
  const schema = `provisio_c2d_${process.pid}_${Date.now().toString(36)}`
  let a: TestServer
  let b: TestServer

  beforeAll(async () => {
    const store = `${POSTGRES_URL}?schema=${schema}`
    a = await startTestServer({ store, hubs: [{ hostName: HUB }] })
    b = await startTestServer({ store, hubs: [{ hostName: HUB }] })
  })

  afterAll(async () => {
    await a?.close()
    await b?.close()
    await dropSchema(schema)
  })

  it('leases on one instance what the other enqueued, once, and purges across them', async () => {
    const key = Buffer.alloc(32, 5).toString('base64')
    const cs = a.endpoints.hubs.find((h) => h.hostName === HUB)!.connectionString
    await registryOn(a, cs).create({ deviceId: 'shared', status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } } } as never)
    await a.c2d.send(HUB, 'shared', { messageId: 'one', body: Buffer.from('first') })
    await a.c2d.send(HUB, 'shared', { messageId: 'two', body: Buffer.from('second') })
    const [fromA, fromB] = await Promise.all([a.c2d.receive(HUB, 'shared'), b.c2d.receive(HUB, 'shared')])
    expect([fromA?.messageId, fromB?.messageId].sort()).toEqual(['one', 'two'])
    expect(await b.c2d.receive(HUB, 'shared')).toBeUndefined()
    await b.c2d.complete(HUB, 'shared', fromA!.lockToken)
    const answer = await httpsRequest(b.port, b.caPem, 'DELETE', '/devices/shared/commands?api-version=2021-04-12', { headers: { authorization: hubServiceToken(b, HUB) } })
    expect(JSON.parse(answer.body)).toEqual({ deviceId: 'shared', moduleId: null, totalMessagesPurged: 1 })
    expect(await a.c2d.depth(HUB, 'shared')).toBe(0)
  })
})
