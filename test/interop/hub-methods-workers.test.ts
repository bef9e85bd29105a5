// Direct methods against `provisio serve --workers 2` (the built CLI, SQLite): azure-iot-device over
// Mqtt holds its connection on one worker while azure-iothub's Client.invokeDeviceMethod calls
// arrive on new connections, which round-robin scheduling spreads over both workers. A call that
// lands on the worker without the device travels over the hub event relay (through the cluster
// primary) to the worker that holds it, and the device's answer travels back. Which worker held the
// device and which answered each call is read from the per-worker series of /metrics. Also: a
// call waiting for a device that connects later is delivered, and a device connected nowhere is
// answered 404103. The same relay reaches a device connected over Amqp (its method links on one
// worker; docs/protocol.md §12.7).
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client } from 'azure-iot-device'
import { Mqtt as DeviceMqtt } from 'azure-iot-device-mqtt'
import { Amqp as DeviceAmqp } from 'azure-iot-device-amqp'
import { NoRetry } from 'azure-iot-common'
import type { Client as ServiceClient } from 'azure-iothub'
import { startServe, type ServeProcess } from '../lib/cli.js'
import { httpsRequest } from '../lib/https-client.js'
import { registryOn, serviceClientOn } from '../lib/registry.js'
import { redirectHubAmqp, redirectMqtts } from '../lib/tls-plumbing.js'

const HUB = 'hub-workers.example'

interface Endpoints {
  caCertificate: string
  ports: { https: number; mqtt: number; amqp: number }
  hubs: { hostName: string; connectionString: string }[]
}

let serve: ServeProcess<Endpoints>
let target: { port: number; caPem: string; endpoints: { ports: { mqtt: number; amqp: number } } }
let service: ServiceClient
let undoRedirect: () => void
let undoAmqpRedirect: () => void
const clients: Client[] = []

async function connect(deviceId: string, key: string, transport: typeof DeviceMqtt | typeof DeviceAmqp = DeviceMqtt): Promise<Client> {
  const client = Client.fromConnectionString(`HostName=${HUB};DeviceId=${deviceId};SharedAccessKey=${key}`, transport)
  clients.push(client)
  client.setRetryPolicy(new NoRetry())
  await client.setOptions({ ca: target.caPem })
  await client.open()
  client.onDeviceMethod('where', (req, res) => void res.send(200, { pid: process.pid, asked: req.payload }))
  return client
}

async function createDevice(deviceId: string): Promise<string> {
  const key = Buffer.alloc(32, deviceId.length + 3).toString('base64')
  await registryOn(target, serve.endpoints.hubs[0]!.connectionString).create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } } } as never)
  return key
}

/** Per worker: `series` lines of /metrics matching `filter`, summed. */
async function byWorker(filter: RegExp): Promise<Map<string, number>> {
  const answer = await httpsRequest(target.port, target.caPem, 'GET', '/metrics')
  const counts = new Map<string, number>()
  for (const line of answer.body.split('\n')) {
    const m = filter.test(line) ? /worker="(\d+)"\} (\d+)$/.exec(line) : null
    if (m !== null) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + Number(m[2]))
  }
  return counts
}

beforeAll(async () => {
  // Round-robin scheduling: new connections alternate between the workers.
  serve = await startServe<Endpoints>({ dataDirPrefix: 'provisio-methods-workers-', args: ['--workers', '2', '--hubs', HUB, '--log-level', 'warn'], env: { NODE_CLUSTER_SCHED_POLICY: 'rr' } })
  target = { port: serve.endpoints.ports.https, caPem: readFileSync(serve.endpoints.caCertificate, 'utf8'), endpoints: { ports: { mqtt: serve.endpoints.ports.mqtt, amqp: serve.endpoints.ports.amqp } } }
  undoRedirect = redirectMqtts(target)
  undoAmqpRedirect = redirectHubAmqp(target, [HUB])
  service = serviceClientOn(target, serve.endpoints.hubs[0]!.connectionString)
  service.setRetryPolicy(new NoRetry())
})

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
  undoRedirect?.()
  undoAmqpRedirect?.()
  serve?.stop()
})

describe('direct methods across the workers of provisio serve --workers 2', () => {
  it('answers calls that reach the worker without the device through the other worker', async () => {
    const deviceId = 'methods-on-one-worker'
    await connect(deviceId, await createDevice(deviceId))
    const deviceWorkers = [...(await byWorker(/^provisio_hub_connections_total\{.*result="accepted"/))].filter(([, n]) => n > 0).map(([w]) => w)
    expect(deviceWorkers).toHaveLength(1)
    let answeredOn: string[] = []
    // Until a call was answered by the worker that does not hold the device (at most 8 rounds). Two
    // calls and a scrape per round: an odd number of connections, so rounds do not repeat one worker.
    for (let i = 0; i < 8 && !answeredOn.some((w) => w !== deviceWorkers[0]); i++) {
      for (const n of [2 * i, 2 * i + 1]) {
        const result = (await service.invokeDeviceMethod(deviceId, { methodName: 'where', payload: { n }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 } as never)).result as unknown
        expect(result).toMatchObject({ status: 200, payload: { asked: { n } } })
      }
      answeredOn = [...(await byWorker(/^provisio_hub_method_calls_total\{.*outcome="answered"/))].filter(([, n]) => n > 0).map(([w]) => w)
    }
    expect(answeredOn.some((w) => w !== deviceWorkers[0])).toBe(true)
  })

  it('delivers a call waiting for its device when the device connects, and answers 404103 for a device connected nowhere', async () => {
    const deviceId = 'methods-connects-later'
    const key = await createDevice(deviceId)
    const call = service.invokeDeviceMethod(deviceId, { methodName: 'where', payload: 'late', responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 20 } as never)
    await connect(deviceId, key)
    expect((await call).result).toMatchObject({ status: 200, payload: { asked: 'late' } })

    const nobody = 'methods-nowhere'
    await createDevice(nobody)
    const error = await service.invokeDeviceMethod(nobody, { methodName: 'where' } as never).then(
      () => undefined,
      (e: { response?: { statusCode: number }; responseBody?: string }) => e,
    )
    expect(error?.response?.statusCode).toBe(404)
    expect(error?.responseBody).toContain('404103')
  })

  it('answers calls for a device connected over Amqp on either worker', async () => {
    const deviceId = 'methods-amqp-device'
    await connect(deviceId, await createDevice(deviceId), DeviceAmqp)
    const before = await byWorker(/^provisio_hub_method_calls_total\{.*outcome="answered"/)
    const grew = async () => [...(await byWorker(/^provisio_hub_method_calls_total\{.*outcome="answered"/))].filter(([w, n]) => n > (before.get(w) ?? 0)).map(([w]) => w)
    let answeredOn: string[] = []
    // Until both workers answered a call (at most 8 rounds of two): one of them does not hold the device.
    for (let i = 0; i < 8 && answeredOn.length < 2; i++) {
      for (const n of [2 * i, 2 * i + 1]) {
        // The first call waits for the method links, which attach after onDeviceMethod.
        const result = (await service.invokeDeviceMethod(deviceId, { methodName: 'where', payload: { n }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 } as never)).result as unknown
        expect(result).toMatchObject({ status: 200, payload: { asked: { n } } })
      }
      answeredOn = await grew()
    }
    expect(answeredOn).toHaveLength(2)
  })
})
