// Two `provisio serve` instances on one PostgreSQL database, with Microsoft's clients: a device
// (azure-iot-device over MQTT) connected to instance B hears the desired-property changes the
// service writes through instance A (azure-iothub Registry) — small ones in the NOTIFY payload,
// a large one through the notices table — and is disconnected when A disables its identity.
// A direct method invoked through A reaches the device on B and its answer comes back to A's caller.
// Without the hub event channel between the instances, B never learns of A's writes and these
// waits end in the timeout failure, naming what was not heard.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client } from 'azure-iot-device'
import { Mqtt as DeviceMqtt } from 'azure-iot-device-mqtt'
import type { Registry } from 'azure-iothub'
import { NoRetry } from 'azure-iot-common'
import { POSTGRES_URL, dropSchema, postgresReachable } from '../lib/postgres.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { desiredUpdate, registryOn, serviceClientOn } from '../lib/registry.js'
import { redirectMqtts } from '../lib/tls-plumbing.js'

const HUB = 'hub-shared.example'
const available = await postgresReachable()
const schema = `provisio_hub_events_${process.pid}_${Date.now().toString(36)}`

let a: TestServer & { logs: string[] }
let b: TestServer & { logs: string[] }
let undoRedirect: (() => void) | undefined
const clients: Client[] = []

beforeAll(async () => {
  if (!available) return
  const store = `${POSTGRES_URL}?schema=${schema}`
  a = (await startTestServer({ store, hubs: [{ hostName: HUB }] })) as typeof a
  // B adopts A's DPS instance and hub keys from the database.
  b = (await startTestServer({ store, hubs: [{ hostName: HUB }] })) as typeof b
  undoRedirect = redirectMqtts(b)
})

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
  undoRedirect?.()
  await b?.stop()
  await a?.stop()
  if (available) await dropSchema(schema)
})

/** The hub's Registry, talking to instance `server`. */
function registryFor(server: TestServer): Registry {
  return registryOn(server, server.endpoints.hubs.find((h) => h.hostName === HUB)!.connectionString)
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Creates the identity through A and connects it to B (MQTT on B's port). */
async function deviceOnB(deviceId: string): Promise<{ client: Client; registry: Registry }> {
  const key = Buffer.alloc(32, deviceId.length).toString('base64')
  const registry = registryFor(a)
  await registry.create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } } } as never)
  const client = Client.fromConnectionString(`HostName=${HUB};DeviceId=${deviceId};SharedAccessKey=${key}`, DeviceMqtt)
  clients.push(client)
  client.setRetryPolicy(new NoRetry())
  await client.setOptions({ ca: b.caPem })
  await client.open()
  return { client, registry }
}

describe.skipIf(!available)('hub events between two instances on one PostgreSQL database', () => {
  it('a device on instance B receives the desired changes written through instance A, small and large', async () => {
    const deviceId = 'events-desired'
    const { client, registry } = await deviceOnB(deviceId)
    const twin = await client.getTwin()
    expect(b.hubs.get(HUB)).toBeDefined()

    const small = desiredUpdate(twin, (d) => d.interval === 30)
    await registry.updateTwin(deviceId, { properties: { desired: { interval: 30, mode: 'eco' } } } as never, '*')
    expect(await within(small, 10_000, 'small desired change written on A, heard by the device on B')).toMatchObject({ interval: 30, mode: 'eco' })

    // Over NOTIFY's 8000-byte payload: travels through the notices table.
    const blob = 'b'.repeat(12_000)
    const large = desiredUpdate(twin, (d) => d.blob === blob)
    await registry.updateTwin(deviceId, { properties: { desired: { blob, mode: null } } } as never, '*')
    const heard = await within(large, 10_000, 'large desired change written on A, heard by the device on B')
    expect(heard.mode).toBeNull()
    expect(twin.properties.desired).toMatchObject({ interval: 30, blob })
    expect(twin.properties.desired.mode).toBeUndefined()
    await client.close()
  })

  it('a direct method invoked through instance A reaches the device on instance B, whose answer comes back', async () => {
    const deviceId = 'events-method'
    const { client } = await deviceOnB(deviceId)
    client.onDeviceMethod('where', (req, res) => void res.send(202, { on: 'B', asked: req.payload }))
    const service = serviceClientOn(a, a.endpoints.hubs.find((h) => h.hostName === HUB)!.connectionString)
    service.setRetryPolicy(new NoRetry())
    const answer = await service.invokeDeviceMethod(deviceId, { methodName: 'where', payload: { from: 'A' }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 } as never)
    expect(answer.result).toEqual({ status: 202, payload: { on: 'B', asked: { from: 'A' } } })
    expect(a.logs.some((l) => l.includes('hub method answered') && l.includes(deviceId))).toBe(true)
    await client.close()
  })

  it('disabling the identity through instance A ends its connection on instance B', async () => {
    const deviceId = 'events-disabled'
    const { client, registry } = await deviceOnB(deviceId)
    const dropped = new Promise<void>((resolve) => client.on('disconnect', () => resolve()))
    const device = (await registry.get(deviceId)).responseBody
    await registry.update({ ...device, status: 'disabled' } as never)
    await within(dropped, 10_000, 'disconnect on B after disabling on A')
    expect(b.logs.some((l) => l.includes('IDENTITY_REVOKED') && l.includes(`device ${deviceId} was disabled on hub ${HUB}`))).toBe(true)
  })
})
