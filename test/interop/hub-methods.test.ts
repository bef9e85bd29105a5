// Direct methods through the embedded hub with Microsoft's clients over real TLS on loopback:
// azure-iothub's `Client.invokeDeviceMethod` (HTTPS REST, POST /twins/{id}/methods) against
// azure-iot-device over `Mqtt` and `MqttWs` answering with `client.onDeviceMethod(name, (req, res) =>
// res.send(status, payload))`. Round trips with JSON object, string and null payloads and the
// device's own status; IoT Hub's 404103 after the connect timeout for a device that is not
// connected (and at once when it disconnects with the call in flight), 504101 when the device does
// not answer; refusals of unknown devices, bad names, oversized payloads, malformed bodies and module
// routes, each with IoT Hub's error and a reason; a call dropped when its caller goes away and
// answered 503 when the server stops; the calls counted on /metrics.
import { request } from 'node:https'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { Client } from 'azure-iot-device'
import { Mqtt as DeviceMqtt, MqttWs as DeviceMqttWs } from 'azure-iot-device-mqtt'
import { NoRetry } from 'azure-iot-common'
import { buildSasToken } from '@provisio/protocol'
import type { Client as ServiceClient } from 'azure-iothub'
import { httpsRequest } from '../lib/https-client.js'
import { hubServiceToken } from '../lib/mqtt.js'
import { registryOn, serviceClientOn } from '../lib/registry.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { loopbackHttpsAgent, redirectMqtts } from '../lib/tls-plumbing.js'

const HUB = 'hub-methods.example'

let server: TestServer & { logs: string[] }
let undoRedirect: () => void
let service: ServiceClient
const clients: Client[] = []

interface MethodFailure extends Error {
  response?: { statusCode: number; headers: Record<string, string> }
  responseBody?: string
}

function connectionString(): string {
  return server.endpoints.hubs.find((h) => h.hostName === HUB)!.connectionString
}

async function createDevice(deviceId: string): Promise<string> {
  const key = Buffer.alloc(32, deviceId.length + 7).toString('base64')
  await registryOn(server, connectionString()).create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } } } as never)
  return key
}

/** A device of the hub connected over `transport`, answering the methods in `handlers`. */
async function connectedDevice(
  deviceId: string,
  transport: 'Mqtt' | 'MqttWs',
  handlers: Record<string, (request: { payload: unknown; methodName: string }, response: { send(status: number, payload?: unknown): Promise<void> }) => void>,
): Promise<Client> {
  const key = await createDevice(deviceId)
  const client = Client.fromConnectionString(`HostName=${HUB};DeviceId=${deviceId};SharedAccessKey=${key}`, transport === 'Mqtt' ? DeviceMqtt : DeviceMqttWs)
  clients.push(client)
  client.setRetryPolicy(new NoRetry())
  await client.setOptions(transport === 'Mqtt' ? { ca: server.caPem } : ({ ca: server.caPem, mqtt: { webSocketAgent: loopbackHttpsAgent(server) } } as never))
  await client.open()
  for (const [name, handler] of Object.entries(handlers)) client.onDeviceMethod(name, handler as never)
  return client
}

async function invoke(deviceId: string, params: { methodName: string; payload?: unknown; responseTimeoutInSeconds?: number; connectTimeoutInSeconds?: number }) {
  return (await service.invokeDeviceMethod(deviceId, params as never)).result as unknown as { status: number; payload: unknown }
}

/** The refusal a call ends with (a call that succeeds fails the test). */
function failure(promise: Promise<unknown>): Promise<MethodFailure> {
  return promise.then(
    () => Promise.reject(new Error('the call succeeded; a refusal was expected')),
    (error: unknown) => error as MethodFailure,
  )
}

function methodRequest(deviceId: string, body: string, path = `/twins/${deviceId}/methods?api-version=2021-04-12`) {
  return httpsRequest(server.port, server.caPem, 'POST', path, { headers: { authorization: hubServiceToken(server, HUB), 'content-type': 'application/json' }, body })
}

beforeAll(async () => {
  server = (await startTestServer({ hubs: [{ hostName: HUB }] })) as typeof server
  undoRedirect = redirectMqtts(server)
  service = serviceClientOn(server, connectionString())
  // The SDK retries transient failures for minutes; every outcome here is final.
  service.setRetryPolicy(new NoRetry())
})

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
  undoRedirect?.()
  await server?.stop()
})

describe('direct methods with azure-iothub Client.invokeDeviceMethod and azure-iot-device', () => {
  it.each(['Mqtt', 'MqttWs'] as const)('round trips JSON object, string and null payloads over %s, with the device status passed through', async (transport) => {
    const deviceId = `methods-${transport.toLowerCase()}`
    await connectedDevice(deviceId, transport, {
      echo: (req, res) => void res.send(200, { echoed: req.payload, by: req.methodName }),
      refuse: (_req, res) => void res.send(409, 'busy'),
      nothing: (_req, res) => void res.send(204, null),
    })
    // The device subscribes after it connected: the connect timeout covers that.
    const object = await invoke(deviceId, { methodName: 'echo', payload: { speed: 3, tags: ['a', 'b'] }, connectTimeoutInSeconds: 10 })
    expect(object).toEqual({ status: 200, payload: { echoed: { speed: 3, tags: ['a', 'b'] }, by: 'echo' } })
    expect(await invoke(deviceId, { methodName: 'echo', payload: 'hello' })).toEqual({ status: 200, payload: { echoed: 'hello', by: 'echo' } })
    expect(await invoke(deviceId, { methodName: 'refuse', payload: null })).toEqual({ status: 409, payload: 'busy' })
    expect(await invoke(deviceId, { methodName: 'nothing' })).toEqual({ status: 204, payload: null })
  })

  it('answers 404103 after the connect timeout when the device is not connected, and at once with a timeout of 0', async () => {
    const deviceId = 'methods-offline'
    await createDevice(deviceId)
    const started = Date.now()
    const waited = await failure(invoke(deviceId, { methodName: 'reboot', connectTimeoutInSeconds: 2 }))
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900)
    expect(waited.response?.statusCode).toBe(404)
    expect(waited.response?.headers['iothub-errorcode']).toBe('DeviceNotOnline')
    const inner = JSON.parse((JSON.parse(waited.responseBody!) as { Message: string }).Message) as { errorCode: number; message: string; trackingId: string }
    expect(inner).toMatchObject({ errorCode: 404103, message: 'Timed out waiting for device to connect.' })
    expect(inner.trackingId).not.toBe('')
    const atOnce = await failure(invoke(deviceId, { methodName: 'reboot' }))
    expect(atOnce.response?.statusCode).toBe(404)
    expect(atOnce.responseBody).toContain('404103')
  })

  it('answers 504101 when the device does not answer within the response timeout', async () => {
    const deviceId = 'methods-silent'
    let heard = false
    await connectedDevice(deviceId, 'Mqtt', { hang: () => void (heard = true) })
    const started = Date.now()
    const error = await failure(invoke(deviceId, { methodName: 'hang', responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 10 }))
    expect(heard).toBe(true)
    expect(Date.now() - started).toBeGreaterThanOrEqual(4900)
    expect(error.name).toBe('GatewayTimeoutError')
    expect(error.response?.statusCode).toBe(504)
    expect(JSON.parse((JSON.parse(error.responseBody!) as { Message: string }).Message)).toMatchObject({ errorCode: 504101 })
    expect(server.logs.some((l) => l.includes('hub method failed') && l.includes('timed_out') && l.includes(deviceId))).toBe(true)
  })

  it('answers 404103 at once when the device disconnects with the call in flight', async () => {
    const deviceId = 'methods-leaves'
    const client: { current?: Client } = {}
    client.current = await connectedDevice(deviceId, 'Mqtt', { leave: () => void client.current!.close() })
    const started = Date.now()
    const error = await failure(invoke(deviceId, { methodName: 'leave', responseTimeoutInSeconds: 60, connectTimeoutInSeconds: 10 }))
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(error.response?.statusCode).toBe(404)
    expect(JSON.parse((JSON.parse(error.responseBody!) as { Message: string }).Message)).toMatchObject({ errorCode: 404103, message: 'The device disconnected before it answered.' })
  })

  it('refuses unknown devices, bad method names, oversized payloads, bad timeouts, malformed bodies and module routes with IoT Hub errors and reasons', async () => {
    const unknown = await failure(invoke('methods-nobody', { methodName: 'x' }))
    expect(unknown.name).toBe('DeviceNotFoundError')

    const deviceId = 'methods-bad-input'
    await createDevice(deviceId)
    const badName = await failure(invoke(deviceId, { methodName: 'turn on' }))
    expect(badName.name).toBe('ArgumentError')
    expect(badName.message).toContain('methodName')

    const big = await failure(invoke(deviceId, { methodName: 'upload', payload: 'x'.repeat(128 * 1024) }))
    expect(big.response?.statusCode).toBe(413)
    expect(big.message).toContain('over IoT Hub')

    const fast = await failure(invoke(deviceId, { methodName: 'x', responseTimeoutInSeconds: 1 }))
    expect(fast.name).toBe('ArgumentError')
    expect(fast.message).toContain('responseTimeoutInSeconds must be an integer from 5 to 300')

    const malformed = await methodRequest(deviceId, '{"methodName": ')
    expect(malformed.status).toBe(400)
    expect(malformed.headers['iothub-errorcode']).toBe('ArgumentInvalid')
    const notObject = await methodRequest(deviceId, '[1]')
    expect(notObject.status).toBe(400)
    expect(notObject.body).toContain('methodName')

    const module = await methodRequest(deviceId, '{"methodName":"x"}', `/twins/${deviceId}/modules/m1/methods?api-version=2021-04-12`)
    expect(module.status).toBe(404)
    expect(module.body).toContain('direct methods to modules are not served')

    const anonymous = await httpsRequest(server.port, server.caPem, 'POST', `/twins/${deviceId}/methods?api-version=2021-04-12`, { headers: { 'content-type': 'application/json' }, body: '{"methodName":"x"}' })
    expect(anonymous.status).toBe(401)
  })

  it('needs ServiceConnect: the service policy may invoke, registryRead may not', async () => {
    const deviceId = 'methods-rights'
    await createDevice(deviceId)
    const policies = server.state.hubs.find((h) => h.hostName === HUB)!.policies
    const tokenOf = (name: string) => {
      const policy = policies.find((p) => p.name === name)!
      return buildSasToken({ resource: HUB, key: policy.primaryKey, keyName: policy.name, expiresAt: Math.floor(Date.now() / 1000) + 600 })
    }
    const as = (name: string) =>
      httpsRequest(server.port, server.caPem, 'POST', `/twins/${deviceId}/methods?api-version=2021-04-12`, { headers: { authorization: tokenOf(name), 'content-type': 'application/json' }, body: '{"methodName":"x"}' })
    // The device is offline: a caller with the right gets IoT Hub's 404103, one without it 401.
    expect((await as('service')).status).toBe(404)
    expect((await as('registryRead')).status).toBe(401)
    expect(server.logs.some((l) => l.includes('service request refused') && l.includes('ServiceConnect'))).toBe(true)
  })

  it('drops a call whose caller went away', async () => {
    const deviceId = 'methods-caller-leaves'
    await createDevice(deviceId)
    const req = request({ host: 'localhost', port: server.port, method: 'POST', path: `/twins/${deviceId}/methods?api-version=2021-04-12`, ca: server.caPem, agent: false, headers: { authorization: hubServiceToken(server, HUB), 'content-type': 'application/json' } })
    req.on('error', () => undefined)
    req.end(JSON.stringify({ methodName: 'wait', connectTimeoutInSeconds: 120 }))
    await vi.waitFor(() => expect(server.logs.some((l) => l.includes('hub method invoked') && l.includes(deviceId))).toBe(true), { timeout: 10_000 })
    req.destroy()
    await vi.waitFor(() => expect(server.logs.some((l) => l.includes('hub method failed') && l.includes('cancelled') && l.includes(deviceId))).toBe(true), { timeout: 10_000 })
  })

  it('answers calls still waiting with 503 when the server stops', async () => {
    const other = (await startTestServer({ hubs: [{ hostName: HUB }] })) as TestServer & { logs: string[] }
    const cs = other.endpoints.hubs[0]!.connectionString
    await registryOn(other, cs).create({ deviceId: 'methods-stop', status: 'enabled', authentication: { symmetricKey: { primaryKey: '', secondaryKey: '' } } } as never)
    const call = httpsRequest(other.port, other.caPem, 'POST', '/twins/methods-stop/methods?api-version=2021-04-12', {
      headers: { authorization: hubServiceToken(other, HUB), 'content-type': 'application/json' },
      body: JSON.stringify({ methodName: 'wait', connectTimeoutInSeconds: 120 }),
    })
    await vi.waitFor(() => expect(other.logs.some((l) => l.includes('hub method invoked'))).toBe(true), { timeout: 10_000 })
    const started = Date.now()
    const stopped = other.stop()
    const answer = await call
    await stopped
    expect(answer.status).toBe(503)
    expect(answer.headers['iothub-errorcode']).toBe('ServerError')
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('counts the calls by outcome on /metrics', async () => {
    const metrics = await httpsRequest(server.port, server.caPem, 'GET', '/metrics')
    for (const outcome of ['invoked', 'answered', 'not_online', 'timed_out', 'disconnected', 'cancelled']) {
      expect(metrics.body).toMatch(new RegExp(`provisio_hub_method_calls_total\\{hub="${HUB}",outcome="${outcome}"\\} [1-9]`))
    }
  })
})
