import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import type { DeviceApi, HubDeviceApi, HubRegistryApi, ServiceApi } from '@provisio/protocol'
import { bodyLimitFor, createDpsHttpHandler, DEFAULT_HTTP_LIMITS, MAX_TELEMETRY_BYTES, type HttpRequest, type HubDeviceHttpEvent } from '../src/index.js'

interface Stored {
  hostName: string
  deviceId: string
  body: string
  properties: Record<string, string>
  systemProperties: Record<string, string>
}

/** A handler whose hub device side admits `token-d1` for device d1 of hub.example, or d1's certificate. */
function setup() {
  const stored: Stored[] = []
  const events: HubDeviceHttpEvent[] = []
  const hubDevice: HubDeviceApi = {
    authenticate: async (request) => {
      if (request.hostName !== 'hub.example') throw new ProvisioError('SAS_WRONG_RESOURCE', `test: no hub ${request.hostName}`)
      if (request.sasToken !== undefined && request.sasToken.includes(`sig=${good}`) && request.deviceId === 'd1') return { hostName: 'hub.example', deviceId: 'd1' }
      if (request.clientCertificates?.[0]?.[0] === 0x30 && request.deviceId === 'd1') return { hostName: 'hub.example', deviceId: 'd1' }
      throw new ProvisioError('SAS_BAD_SIGNATURE', 'test: refused')
    },
    getTwin: async () => ({ desired: {}, reported: {} }),
    patchReported: async () => 1,
    telemetry: (hostName, deviceId, message) =>
      void stored.push({ hostName, deviceId, body: new TextDecoder().decode(message.body), properties: message.properties, systemProperties: message.systemProperties }),
  }
  const handler = createDpsHttpHandler({
    device: {} as DeviceApi,
    service: {} as ServiceApi,
    hub: { authorizeHub: () => 'hub.example', readTelemetry: async (_h: string, deviceId: string) => ({ deviceId, messages: [], dropped: 0, lastSequenceNumber: 0 }) } as unknown as HubRegistryApi,
    hubDevice,
    onHubDeviceEvent: (event) => void events.push(event),
    clock: { now: () => 0 },
    trackingId: () => 'trk',
  })
  return { handler, stored, events }
}

const good = encodeURIComponent(Buffer.alloc(32, 1).toString('base64'))
const bad = encodeURIComponent(Buffer.alloc(32, 2).toString('base64'))
const token = `SharedAccessSignature sr=hub.example%2Fdevices%2Fd1&sig=${good}&se=9999999999`
const post = (body: string | Uint8Array, headers: Record<string, string> = {}, target = '/devices/d1/messages/events?api-version=2021-04-12'): HttpRequest => ({
  method: 'POST',
  target,
  headers: { authorization: token, ...headers },
  body: typeof body === 'string' ? new TextEncoder().encode(body) : body,
})

describe('POST /devices/{id}/messages/events', () => {
  it('stores one message with its iothub-app-* and system headers under the MQTT names, and answers 204', async () => {
    const { handler, stored, events } = setup()
    const res = await handler(
      post('{"t":1}', {
        'iothub-app-unit': 'C',
        'iothub-messageid': 'm-1',
        'iothub-correlationid': 'c-1',
        'iothub-contenttype': 'application/json',
        'iothub-contentencoding': 'utf-8',
        'dt-subject': 'sensor',
        'iothub-to': '/devices/d1/messages/events',
        'user-agent': 'not a property',
      }),
    )
    expect(res.status).toBe(204)
    expect(res.body).toBe('')
    expect(stored).toEqual([
      {
        hostName: 'hub.example',
        deviceId: 'd1',
        body: '{"t":1}',
        properties: { unit: 'C' },
        systemProperties: { '$.mid': 'm-1', '$.cid': 'c-1', '$.ct': 'application/json', '$.ce': 'utf-8', '$.sub': 'sensor', '$.to': '/devices/d1/messages/events' },
      },
    ])
    expect(events).toEqual([{ type: 'telemetry', route: 'telemetry', hostName: 'hub.example', deviceId: 'd1', messages: 1, bytes: 7 }])
  })

  it('stores every message of a batch, base64 bodies decoded, properties sorted', async () => {
    const { handler, stored } = setup()
    const batch = [
      { body: Buffer.from('one').toString('base64'), properties: { 'iothub-app-k': 'v', 'iothub-messageid': 'b-1' } },
      { body: Buffer.from('two').toString('base64') },
    ]
    const res = await handler(post(JSON.stringify(batch), { 'content-type': 'application/vnd.microsoft.iothub.json' }))
    expect(res.status).toBe(204)
    expect(stored.map((m) => [m.body, m.properties, m.systemProperties])).toEqual([
      ['one', { k: 'v' }, { '$.mid': 'b-1' }],
      ['two', {}, {}],
    ])
  })

  it('admits a device by its TLS client certificate, the hub named by Host', async () => {
    const { handler, stored } = setup()
    const res = await handler({ method: 'POST', target: '/devices/d1/messages/events', headers: { host: 'hub.example:8443' }, body: new TextEncoder().encode('x'), clientCertificates: [new Uint8Array([0x30, 1])] })
    expect(res.status).toBe(204)
    expect(stored).toHaveLength(1)
  })

  it('refuses with IoT Hub errors and a reason, storing nothing', async () => {
    const { handler, stored, events } = setup()
    const cases: [HttpRequest, number, string][] = [
      [post('x', { authorization: token.replace(good, bad) }), 401, 'SAS_BAD_SIGNATURE'],
      [{ method: 'POST', target: '/devices/d1/messages/events', headers: {}, body: new Uint8Array(1) }, 401, 'CREDENTIALS_MISSING'],
      [post('x', {}, '/devices/d2/messages/events'), 401, 'SAS_BAD_SIGNATURE'],
      [post(new Uint8Array(MAX_TELEMETRY_BYTES + 1)), 413, 'PAYLOAD_TOO_LARGE'],
      [post('not json', { 'content-type': 'application/vnd.microsoft.iothub.json' }), 400, 'BAD_REQUEST'],
      [post('[]', { 'content-type': 'application/vnd.microsoft.iothub.json' }), 400, 'BAD_REQUEST'],
      [post('[{"body":"b25l"},{"body":"!!"}]', { 'content-type': 'application/vnd.microsoft.iothub.json' }), 400, 'BAD_REQUEST'],
      [post('[{"body":"b25l","properties":{"iothub-app-k":1}}]', { 'content-type': 'application/vnd.microsoft.iothub.json' }), 400, 'BAD_REQUEST'],
      [post('x', { 'content-encoding': 'gzip' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [post('x', {}, '/devices/d1/messages/events?api-version=bad'), 400, 'UNSUPPORTED_API_VERSION'],
    ]
    for (const [request, status, code] of cases) {
      const res = await handler(request)
      expect(res.status, code).toBe(status)
      expect(res.headers['iothub-errorcode']).toBeDefined()
      expect(JSON.parse(res.body).Message).toMatch(/^ErrorCode:/)
      expect(events.at(-1)).toMatchObject({ type: 'refused', route: 'telemetry', code })
    }
    // A batch whose payloads together pass 256 KB stores none of them.
    const half = Buffer.alloc(MAX_TELEMETRY_BYTES / 2 + 1).toString('base64')
    const big = await handler(post(JSON.stringify([{ body: half }, { body: half }]), { 'content-type': 'application/vnd.microsoft.iothub.json' }))
    expect(big.status).toBe(413)
    expect(stored).toEqual([])
  })

  it('reads a telemetry body up to the telemetry limit, and leaves GET to the registry', async () => {
    expect(bodyLimitFor('/devices/d1/messages/events?api-version=2021-04-12')).toBe(DEFAULT_HTTP_LIMITS.maxTelemetryBodyBytes)
    expect(DEFAULT_HTTP_LIMITS.maxTelemetryBodyBytes).toBeGreaterThan((MAX_TELEMETRY_BYTES * 4) / 3)
    const { handler } = setup()
    const res = await handler({ method: 'GET', target: '/devices/d1/messages/events', headers: { authorization: 'hub-token' }, body: new Uint8Array() })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toMatchObject({ deviceId: 'd1', messages: [] })
  })
})
