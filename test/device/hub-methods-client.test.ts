// Direct methods answered by the @provisio/device hub client: azure-iothub's
// `Client.invokeDeviceMethod` (HTTPS, POST /twins/{id}/methods) calls a device connected with our
// `connectHub` over MQTT on real TLS; the device's handlers answer with their status and payload
// (a handler by name, the '*' fallback, an async handler), a throwing handler is answered 500 and
// a method without a handler 501, each with a message saying why.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NoRetry } from 'azure-iot-common'
import type { Client as ServiceClient } from 'azure-iothub'
import { connectHub, symmetricKey, type HubClient, type MethodRequest } from '@provisio/device'
import { registryOn, serviceClientOn } from '../lib/registry.js'
import { startTestServer, type TestServer } from '../lib/server.js'

const HUB = 'hub-device-methods.example'

let server: TestServer
let service: ServiceClient
const open: HubClient[] = []

function connectionString(): string {
  return server.endpoints.hubs.find((h) => h.hostName === HUB)!.connectionString
}

/** A device created in the hub's registry and connected with our hub client over MQTT. */
async function connectedDevice(deviceId: string): Promise<HubClient> {
  const key = Buffer.alloc(32, deviceId.length + 3).toString('base64')
  await registryOn(server, connectionString()).create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } } } as never)
  const hub = await connectHub({ hostName: HUB, gatewayHost: '127.0.0.1', deviceId, security: symmetricKey({ registrationId: deviceId, key }), transport: 'mqtt', port: server.endpoints.ports.mqtt, ca: server.caPem })
  open.push(hub)
  return hub
}

async function invoke(deviceId: string, methodName: string, payload?: unknown): Promise<{ status: number; payload: unknown }> {
  // The connect timeout covers the moment between CONNACK and the SUBACK of the methods filter.
  const answer = await service.invokeDeviceMethod(deviceId, { methodName, payload, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 } as never)
  return answer.result as unknown as { status: number; payload: unknown }
}

beforeAll(async () => {
  server = await startTestServer({ hubs: [{ hostName: HUB }] })
  service = serviceClientOn(server, connectionString())
  service.setRetryPolicy(new NoRetry())
}, 60_000)

afterAll(async () => {
  for (const c of open) await c.close().catch(() => undefined)
  await server?.stop()
})

describe('direct methods to the @provisio/device hub client from azure-iothub Client.invokeDeviceMethod', () => {
  it('answers with the handler of the method, the * fallback and an async handler, carrying status and payload', async () => {
    const hub = await connectedDevice('dm-handlers')
    const seen: MethodRequest[] = []
    hub.onMethod('echo', (request) => {
      seen.push(request)
      return { status: 200, payload: { echoed: request.payload } }
    })
    hub.onMethod('*', async (request) => {
      await Promise.resolve()
      return { status: 202, payload: `fallback for ${request.methodName}` }
    })
    expect(await invoke('dm-handlers', 'echo', { speed: 3, tags: ['a'] })).toEqual({ status: 200, payload: { echoed: { speed: 3, tags: ['a'] } } })
    expect(seen[0]).toMatchObject({ methodName: 'echo', payload: { speed: 3, tags: ['a'] } })
    expect(seen[0]!.rid).not.toBe('')
    expect(await invoke('dm-handlers', 'reboot', 'now')).toEqual({ status: 202, payload: 'fallback for reboot' })
    hub.onMethod('nothing', () => ({ status: 204 }))
    expect(await invoke('dm-handlers', 'nothing')).toEqual({ status: 204, payload: null })
  })

  it('answers 501 for a method without a handler and 500 when the handler throws, with the reason', async () => {
    const hub = await connectedDevice('dm-errors')
    const remove = hub.onMethod('fail', () => {
      throw new Error('the motor is jammed')
    })
    expect(await invoke('dm-errors', 'fail')).toEqual({ status: 500, payload: { message: 'the handler of "fail" failed: the motor is jammed' } })
    remove()
    expect(await invoke('dm-errors', 'fail')).toEqual({ status: 501, payload: { message: 'this device has no handler for method "fail"' } })
    expect(() => hub.onMethod('', () => ({ status: 200 }))).toThrow(/non-empty string/)
  })
})
