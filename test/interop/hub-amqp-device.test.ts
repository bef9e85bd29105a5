// Twin and direct methods on the embedded hub's AMQP device links (docs/protocol.md §12.6, §12.7),
// proven with Microsoft's own clients over real TLS and WSS on loopback:
// - azure-iot-device + azure-iot-device-amqp (`Amqp`, `AmqpWs`) with a device key: `getTwin` reads
//   the desired properties the service set, a reported patch is read back through azure-iothub's
//   `Registry.getTwin`, and a desired change made with `Registry.updateTwin` arrives on
//   `twin.on('properties.desired')`;
// - `client.onDeviceMethod` answers azure-iothub's `Client.invokeDeviceMethod` (HTTPS REST) with the
//   device's payload and status; a call to a device whose method links went away is answered 404103;
// - a raw rhea client for what the SDK does not show: a twin request the hub does not serve is
//   answered with status 400 and a JSON body saying why, with the request's correlation id; disabling
//   the device detaches its twin links with amqp:unauthorized-access.
//
// Plumbing as in hub-amqp.test.ts: `redirectHubAmqp` sends the SDK's connections for the hub host
// to the test server on loopback; the service clients use `registryOn` / `serviceClientOn`.
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import rhea, { type Connection, type EventContext, type Message as RheaMessage } from 'rhea'
import { Client as DeviceClient, type Twin } from 'azure-iot-device'
import { Amqp as DeviceAmqp, AmqpWs as DeviceAmqpWs } from 'azure-iot-device-amqp'
import { NoRetry } from 'azure-iot-common'
import type { Client as ServiceClient, Registry } from 'azure-iothub'
import { buildSasToken } from '@provisio/protocol'
import { desiredUpdate, registryOn, serviceClientOn } from '../lib/registry.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { redirectHubAmqp } from '../lib/tls-plumbing.js'

const HUB = 'amqp-device.example'
const KEY = Buffer.alloc(32, 0x24).toString('base64')
const WAIT_MS = 10_000

let server: TestServer & { logs: string[] }
let undoRedirect: () => void
let registry: Registry
let service: ServiceClient
const closers: (() => Promise<unknown>)[] = []

const connectionString = () => server.endpoints.hubs.find((h) => h.hostName === HUB)!.connectionString

async function createDevice(deviceId: string): Promise<void> {
  await registry.create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: KEY, secondaryKey: KEY } } } as never)
}

async function openDevice(deviceId: string, transport: typeof DeviceAmqp | typeof DeviceAmqpWs): Promise<DeviceClient> {
  const client = DeviceClient.fromConnectionString(`HostName=${HUB};DeviceId=${deviceId};SharedAccessKey=${KEY}`, transport)
  client.setRetryPolicy(new NoRetry())
  closers.push(() => client.close())
  await client.setOptions({ ca: server.caPem })
  await client.open()
  return client
}

/** Settles with `promise` or fails after WAIT_MS. */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${WAIT_MS} ms`)), WAIT_MS)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function reportedUpdate(twin: Twin, patch: Record<string, unknown>): Promise<void> {
  return new Promise<void>((resolve, reject) => twin.properties.reported.update(patch, (err?: Error) => (err ? reject(err) : resolve())))
}

async function invoke(deviceId: string, params: { methodName: string; payload?: unknown; responseTimeoutInSeconds?: number; connectTimeoutInSeconds?: number }) {
  return (await service.invokeDeviceMethod(deviceId, params as never)).result as unknown as { status: number; payload: unknown }
}

/** Resolves with the first event of `names` on `emitter` (bounded). */
function nextEvent(emitter: { once(name: string, fn: (ctx: EventContext) => void): unknown }, names: string[]): Promise<{ name: string; context: EventContext }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`none of ${names.join(', ')} within ${WAIT_MS} ms`)), WAIT_MS)
    for (const name of names) {
      emitter.once(name, (context: EventContext) => {
        clearTimeout(timer)
        resolve({ name, context })
      })
    }
  })
}

beforeAll(async () => {
  server = (await startTestServer({ hubs: [{ hostName: HUB }] })) as typeof server
  undoRedirect = redirectHubAmqp(server, [HUB])
  registry = registryOn(server, connectionString())
  service = serviceClientOn(server, connectionString())
  // Every outcome here is final; the SDK would retry transient ones for minutes.
  service.setRetryPolicy(new NoRetry())
}, 60_000)

afterAll(async () => {
  await Promise.all(closers.map((close) => close().catch(() => undefined)))
  undoRedirect?.()
  await server?.stop()
})

describe.each([
  ['Amqp', DeviceAmqp],
  ['AmqpWs', DeviceAmqpWs],
] as const)('azure-iot-device over %s: twin and direct methods on the embedded hub', (name, transport) => {
  it('reads the twin, reports properties the service reads back, and hears of a desired change', async () => {
    const deviceId = `amqp-twin-${name.toLowerCase()}`
    await createDevice(deviceId)
    await registry.updateTwin(deviceId, { properties: { desired: { interval: 10, mode: 'eco' } } } as never, '*')
    const client = await openDevice(deviceId, transport)

    const twin = await within(client.getTwin(), 'getTwin')
    expect(twin.properties.desired).toMatchObject({ interval: 10, mode: 'eco', $version: expect.any(Number) })

    await within(reportedUpdate(twin, { firmware: '2.0.1', battery: { level: 64 }, via: name }), 'reported patch')
    const serviceTwin = (await registry.getTwin(deviceId)).responseBody
    expect(serviceTwin.properties.reported).toMatchObject({ firmware: '2.0.1', battery: { level: 64 }, via: name })

    // getTwin subscribed to desired changes (the SDK's PUT on the twin link); the service changes one.
    const heard = desiredUpdate(twin, (d) => d['interval'] === 30)
    await registry.updateTwin(deviceId, { properties: { desired: { interval: 30 } } } as never, '*')
    const update = await within(heard, 'desired change')
    const serviceVersion = (await registry.getTwin(deviceId)).responseBody.properties.desired.$version
    expect(update).toMatchObject({ interval: 30, $version: serviceVersion })
    expect(twin.properties.desired).toMatchObject({ interval: 30, mode: 'eco' })

    const label = name === 'Amqp' ? 'amqps' : 'amqp-ws'
    expect(await server.metrics.hubTwin.get([label, 'get', '200'])).toBeGreaterThanOrEqual(1)
    expect(await server.metrics.hubTwin.get([label, 'reportedPatch', '204'])).toBeGreaterThanOrEqual(1)
    await client.close()
  }, 30_000)

  it('answers invokeDeviceMethod with its payload and status; once its links are gone the call is 404103', async () => {
    const deviceId = `amqp-methods-${name.toLowerCase()}`
    await createDevice(deviceId)
    const client = await openDevice(deviceId, transport)
    const seen: unknown[] = []
    client.onDeviceMethod('reboot', (request, response) => {
      seen.push(request.payload)
      void response.send(201, { accepted: true, delayS: (request.payload as { delayS: number }).delayS, via: name })
    })
    // The method links attach after onDeviceMethod; the call waits up to its connect timeout for them.
    const answer = await invoke(deviceId, { methodName: 'reboot', payload: { delayS: 5 }, connectTimeoutInSeconds: 10, responseTimeoutInSeconds: 10 })
    expect(answer).toEqual({ status: 201, payload: { accepted: true, delayS: 5, via: name } })
    expect(seen).toEqual([{ delayS: 5 }])

    const second = await invoke(deviceId, { methodName: 'reboot', payload: { delayS: 0 }, responseTimeoutInSeconds: 10 })
    expect(second.status).toBe(201)
    expect(seen).toHaveLength(2)

    await client.close()
    const error = (await invoke(deviceId, { methodName: 'reboot', payload: {}, connectTimeoutInSeconds: 0, responseTimeoutInSeconds: 5 }).then(
      () => Promise.reject(new Error('the call succeeded; 404103 was expected')),
      (e: unknown) => e as { responseBody?: string },
    )) as { responseBody?: string }
    // IoT Hub's REST error: the error JSON is the text of `Message`.
    const outer = JSON.parse(error.responseBody ?? '{}') as { Message?: string }
    expect(JSON.parse(outer.Message ?? '{}')).toMatchObject({ errorCode: 404103 })
    expect(seen).toHaveLength(2)
  }, 30_000)
})

describe('raw AMQP twin requests on the embedded hub', () => {
  it('a twin operation the hub does not serve is answered with status 400 and a JSON body naming it', async () => {
    const deviceId = 'amqp-twin-raw'
    await createDevice(deviceId)
    const container = rhea.create_container({ id: `raw-${randomUUID()}` })
    const token = buildSasToken({ resource: `${HUB}/devices/${deviceId}`, key: KEY, expiresAt: Math.floor(Date.now() / 1000) + 600 })
    // SASL PLAIN with {deviceId}@sas.{hub} authorizes the device's links (docs/protocol.md §12.1).
    const connection: Connection = container.connect({
      host: '127.0.0.1',
      port: server.endpoints.ports.amqp,
      transport: 'tls',
      ca: server.caPem,
      servername: HUB,
      hostname: HUB,
      reconnect: false,
      username: `${deviceId}@sas.${HUB.split('.')[0]}`,
      password: token,
    } as never)
    closers.push(async () => {
      if (connection.is_open()) connection.close()
    })
    expect((await nextEvent(connection as never, ['connection_open', 'connection_error', 'disconnected'])).name).toBe('connection_open')
    const address = `/devices/${deviceId}/twin`
    const channel = { 'com.microsoft:channel-correlation-id': `twin:${randomUUID()}` }
    const sender = connection.open_sender({ target: { address }, properties: channel } as never)
    const receiver = connection.open_receiver({ source: { address }, properties: channel } as never)
    await Promise.all([nextEvent(sender as never, ['sendable']), nextEvent(receiver as never, ['receiver_open'])])
    const ask = (annotations: Record<string, string>) => {
      const correlationId = randomUUID()
      const answer = new Promise<RheaMessage>((resolve) => {
        const listener = (ctx: EventContext) => {
          if (ctx.message?.correlation_id !== correlationId) return
          receiver.removeListener('message', listener)
          resolve(ctx.message)
        }
        receiver.on('message', listener)
      })
      sender.send({ correlation_id: correlationId, message_annotations: annotations, body: rhea.message.data_section(Buffer.from(' ')) })
      return within(answer, `answer to ${JSON.stringify(annotations)}`)
    }
    const refused = await ask({ operation: 'PATCH', resource: '/properties/desired' })
    expect(refused.message_annotations).toMatchObject({ status: 400 })
    const body = JSON.parse(Buffer.from((refused.body as { content: Buffer }).content).toString()) as { errorCode: number; message: string }
    expect(body.errorCode).toBe(400001)
    expect(body.message).toMatch(/PATCH \/properties\/desired.*is not GET/)

    const got = await ask({ operation: 'GET' })
    expect(got.message_annotations).toMatchObject({ status: 200 })
    expect(JSON.parse(Buffer.from((got.body as { content: Buffer }).content).toString())).toMatchObject({ desired: { $version: expect.any(Number) }, reported: { $version: expect.any(Number) } })

    // Disabling the identity detaches its links on this connection, with the reason.
    const receiverClosed = nextEvent(receiver as never, ['receiver_error'])
    const senderClosed = nextEvent(sender as never, ['sender_error'])
    const device = (await registry.get(deviceId)).responseBody
    await registry.update({ ...device, status: 'disabled' } as never)
    const [r, s] = await Promise.all([receiverClosed, senderClosed])
    for (const error of [r.context.receiver?.error, s.context.sender?.error] as ({ condition?: string; description?: string } | undefined)[]) {
      expect(error?.condition).toBe('amqp:unauthorized-access')
      expect(error?.description).toBe(`device ${deviceId} was disabled on hub ${HUB}`)
    }
    connection.close()
  }, 30_000)
})
