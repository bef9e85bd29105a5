import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import type { DeviceApi, HubRegistryApi, ServiceApi } from '@provisio/protocol'
import { bodyLimitFor, createDpsHttpHandler, DEFAULT_HTTP_LIMITS, type HttpRequest } from '../src/index.js'

const device = { deviceId: 'd1', etag: 'e1' }
function handlerWith(hub: Partial<HubRegistryApi>) {
  const api: HubRegistryApi = {
    authorizeHub: (token) => {
      if (token !== 'hub-token') throw new ProvisioError('SAS_BAD_SIGNATURE', 'test')
      return 'hub.example'
    },
    createDevice: async () => device as never,
    updateDevice: async () => device as never,
    getDevice: async (_h, id) => {
      throw new ProvisioError('NOT_FOUND', `test: ${id} missing`, { deviceMessage: `Device ${id} not found.` })
    },
    deleteDevice: async () => {},
    listDevices: async () => [],
    bulkDevices: async (_h, operations) =>
      operations.map((op) => (op.spec.deviceId === 'taken' ? { deviceId: op.spec.deviceId, error: new ProvisioError('CONFLICT', 'test: exists') } : { deviceId: op.spec.deviceId })),
    getTwin: async () => ({ deviceId: 'd1', etag: 't1' }) as never,
    updateTwin: async () => ({ deviceId: 'd1', etag: 't2' }) as never,
    readTelemetry: async (_h, deviceId, options) => ({ deviceId, messages: [], dropped: 0, lastSequenceNumber: options.after }),
    invokeMethod: async (_h, _id, call) => ({ status: 200, payload: call.payload }),
    createModule: async (_h, spec) => ({ ...spec, etag: 'm1' }) as never,
    updateModule: async (_h, spec) => ({ ...spec, etag: 'm2' }) as never,
    getModule: async (_h, deviceId, moduleId) => {
      throw new ProvisioError('NOT_FOUND', `test: ${deviceId}/${moduleId} missing`, { info: { notFound: 'module' } })
    },
    listModules: async () => [],
    deleteModule: async () => {},
    getModuleTwin: async (_h, deviceId, moduleId) => ({ deviceId, moduleId, etag: 'mt1' }) as never,
    updateModuleTwin: async (_h, deviceId, moduleId) => ({ deviceId, moduleId, etag: 'mt2' }) as never,
    ...hub,
  }
  return createDpsHttpHandler({ device: {} as DeviceApi, service: {} as ServiceApi, hub: api, clock: { now: () => 0 }, trackingId: () => 'trk' })
}
const req = (method: string, target: string, body = '', headers: Record<string, string> = { authorization: 'hub-token' }): HttpRequest => ({
  method,
  target,
  headers: { 'content-type': 'application/json', ...headers },
  body: new TextEncoder().encode(body),
})

describe('bodyLimitFor', () => {
  it('gives the direct method routes the larger limit and every other target the common one', () => {
    expect(bodyLimitFor('/twins/dev-1/methods?api-version=2021-04-12')).toBe(DEFAULT_HTTP_LIMITS.maxMethodBodyBytes)
    expect(bodyLimitFor('/twins/dev-1/modules/m1/methods')).toBe(DEFAULT_HTTP_LIMITS.maxMethodBodyBytes)
    expect(DEFAULT_HTTP_LIMITS.maxMethodBodyBytes).toBeGreaterThan(DEFAULT_HTTP_LIMITS.maxBodyBytes)
    for (const target of ['/0ne0001/registrations/dev-1/register?api-version=2021-06-01', '/twins/dev-1', '/devices/methods', '*', '/%zz/methods', '']) {
      expect(bodyLimitFor(target)).toBe(DEFAULT_HTTP_LIMITS.maxBodyBytes)
    }
    expect(bodyLimitFor('/twins/d/methods', { ...DEFAULT_HTTP_LIMITS, maxMethodBodyBytes: 7 })).toBe(7)
  })
})

describe('direct method routes', () => {
  it('takes a method body past the DPS body limit on /twins/{id}/methods only, and answers the device status and payload', async () => {
    const handler = handlerWith({})
    const payload = 'p'.repeat(120 * 1024)
    const body = JSON.stringify({ methodName: 'upload', payload })
    const res = await handler(req('POST', '/twins/d1/methods?api-version=2021-04-12', body))
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toEqual({ status: 200, payload })
    expect((await handler(req('PUT', '/devices/d1', body))).status).toBe(413)
    expect((await handler(req('GET', '/twins/d1/methods'))).status).toBe(405)
  })

  it('answers 404103 and 504101 in IoT Hub newer envelope, the JSON error inside Message', async () => {
    for (const [code, status, errorCode, symbol] of [['DEVICE_NOT_ONLINE', 404, 404103, 'DeviceNotOnline'], ['GATEWAY_TIMEOUT', 504, 504101, 'GatewayTimeout']] as const) {
      const handler = handlerWith({ invokeMethod: () => Promise.reject(new ProvisioError(code, 'test')) })
      const res = await handler(req('POST', '/twins/d1/methods', '{"methodName":"m"}'))
      expect(res.status).toBe(status)
      expect(res.headers['iothub-errorcode']).toBe(symbol)
      const outer = JSON.parse(res.body) as { Message: string; ExceptionMessage: string }
      expect(JSON.parse(outer.Message)).toMatchObject({ errorCode, trackingId: 'trk', info: {} })
    }
  })
})

describe('hub registry routes', () => {
  it('answers errors in IoT Hub shape so azure-iot-http-base maps them (DeviceNotFound on 404)', async () => {
    const res = await handlerWith({})(req('GET', '/devices/ghost?api-version=2021-04-12'))
    expect(res.status).toBe(404)
    expect(res.headers['iothub-errorcode']).toBe('DeviceNotFound')
    expect(JSON.parse(res.body)).toEqual({ Message: 'ErrorCode:DeviceNotFound;Device ghost not found.', ExceptionMessage: expect.stringMatching(/^Tracking ID:trk-TimeStamp:1970-01-01T/) })
  })

  it('creates without If-Match, updates with it, and validates the body with the field named', async () => {
    const calls: string[] = []
    const handler = handlerWith({
      createDevice: async (_h, spec) => (calls.push(`create ${spec.deviceId}`), device as never),
      updateDevice: async (_h, spec, ifMatch) => (calls.push(`update ${spec.deviceId} ${ifMatch}`), device as never),
    })
    expect((await handler(req('PUT', '/devices/d1', '{"deviceId":"d1"}'))).headers.etag).toBe('"e1"')
    await handler(req('PUT', '/devices/d1', '{"deviceId":"d1"}', { authorization: 'hub-token', 'if-match': '"*"' }))
    expect(calls).toEqual(['create d1', 'update d1 "*"'])
    const bad = await handler(req('PUT', '/devices/d1', '{"authentication":{"type":"sas","symmetricKey":{"primaryKey":"short"}}}'))
    expect(bad.status).toBe(400)
    expect(JSON.parse(bad.body).Message).toBe('ErrorCode:ArgumentInvalid;authentication.symmetricKey.primaryKey: must be base64 of 16 to 64 bytes')
  })

  it('refuses writes to reported properties, bad tokens, and unknown methods', async () => {
    const handler = handlerWith({})
    expect((await handler(req('PATCH', '/twins/d1', '{"properties":{"reported":{"x":1}}}'))).status).toBe(400)
    const denied = await handler(req('GET', '/twins/d1', '', { authorization: 'forged' }))
    expect(denied.status).toBe(401)
    expect(denied.headers['iothub-errorcode']).toBe('IotHubUnauthorizedAccess')
    expect((await handler(req('POST', '/twins/d1', '{}'))).status).toBe(405)
  })

  it('reads telemetry with after/limit, validating both and needing a hub token', async () => {
    const seen: unknown[] = []
    const handler = handlerWith({
      readTelemetry: async (hub, deviceId, options) => (seen.push([hub, deviceId, options]), { deviceId, messages: [], dropped: 2, lastSequenceNumber: 9 }),
    })
    const ok = await handler(req('GET', '/devices/d1/messages/events?api-version=2021-04-12&after=3&limit=10'))
    expect(ok.status).toBe(200)
    expect(JSON.parse(ok.body)).toEqual({ deviceId: 'd1', messages: [], dropped: 2, lastSequenceNumber: 9 })
    await handler(req('GET', '/devices/d1/messages/events?api-version=2021-04-12'))
    expect(seen).toEqual([
      ['hub.example', 'd1', { after: 3, limit: 10 }],
      ['hub.example', 'd1', { after: 0, limit: 1000 }],
    ])
    const bad = await handler(req('GET', '/devices/d1/messages/events?api-version=2021-04-12&limit=0'))
    expect(bad.status).toBe(400)
    expect(JSON.parse(bad.body).Message).toMatch(/limit must be an integer from 1 to 1000/)
    expect((await handler(req('GET', '/devices/d1/messages/events?api-version=2021-04-12&after=-1'))).status).toBe(400)
    expect((await handler(req('GET', '/devices/d1/messages/events?api-version=2021-04-12', '', { authorization: 'forged' }))).status).toBe(401)
    expect((await handler(req('POST', '/devices/d1/messages/events?api-version=2021-04-12', '{}'))).status).toBe(405)
  })
})

describe('bulk POST /devices', () => {
  it('answers BulkRegistryOperationResult: 200 when every entry succeeded, 400 with the per-device IoT Hub error codes otherwise', async () => {
    const ok = await handlerWith({})(req('POST', '/devices?api-version=2021-04-12', JSON.stringify([{ id: 'a', importMode: 'create' }, { id: 'b', importMode: 'Delete' }])))
    expect(ok.status).toBe(200)
    expect(JSON.parse(ok.body)).toEqual({ isSuccessful: true, errors: [], warnings: [] })
    const partly = await handlerWith({})(req('POST', '/devices?api-version=2021-04-12', JSON.stringify([{ id: 'a', importMode: 'create' }, { id: 'taken', importMode: 'create' }])))
    expect(partly.status).toBe(400)
    expect(JSON.parse(partly.body)).toMatchObject({ isSuccessful: false, errors: [{ deviceId: 'taken', errorCode: 'DeviceAlreadyExists' }] })
  })

  it('refuses a body that is not 1-100 devices with an importMode each, naming the rule', async () => {
    for (const body of ['[]', JSON.stringify(Array.from({ length: 101 }, (_, i) => ({ id: `d${i}`, importMode: 'create' }))), '[{"id":"a"}]', '[{"id":"a","importMode":"UpdateIfMatchETag"}]', '[{"id":"a","importMode":"create"},{"id":"A","importMode":"create"}]']) {
      const res = await handlerWith({})(req('POST', '/devices?api-version=2021-04-12', body))
      expect(res.status, body).toBe(400)
      expect(res.headers['iothub-errorcode']).toBe('ArgumentInvalid')
    }
  })
})

describe('module routes', () => {
  it('serves module CRUD and module twins with etags, and says ModuleNotFound for a missing module', async () => {
    const handler = handlerWith({})
    const created = await handler(req('PUT', '/devices/d1/modules/m1?api-version=2021-04-12', '{"deviceId":"d1","moduleId":"m1","authentication":{"type":"sas"}}'))
    expect(created.status).toBe(200)
    expect(created.headers.etag).toBe('"m1"')
    expect(JSON.parse(created.body)).toMatchObject({ deviceId: 'd1', moduleId: 'm1' })
    const updated = await handler(req('PUT', '/devices/d1/modules/m1', '{"moduleId":"m1"}', { authorization: 'hub-token', 'if-match': '*' }))
    expect(updated.headers.etag).toBe('"m2"')
    expect((await handler(req('PUT', '/devices/d1/modules/m1', '{"moduleId":"other"}'))).status).toBe(400)
    expect((await handler(req('GET', '/devices/d1/modules'))).body).toBe('[]')
    const missing = await handler(req('GET', '/devices/d1/modules/m9'))
    expect(missing.status).toBe(404)
    expect(missing.headers['iothub-errorcode']).toBe('ModuleNotFound')
    expect((await handler(req('DELETE', '/devices/d1/modules/m1'))).status).toBe(204)
    expect((await handler(req('GET', '/twins/d1/modules/m1'))).headers.etag).toBe('"mt1"')
    expect((await handler(req('PATCH', '/twins/d1/modules/m1', '{"tags":{"a":1}}'))).headers.etag).toBe('"mt2"')
    expect((await handler(req('PATCH', '/twins/d1/modules/m1', '{"properties":{"reported":{}}}'))).status).toBe(400)
    expect((await handler(req('POST', '/devices/d1/modules'))).status).toBe(405)
    expect((await handler(req('GET', '/devices/d1/modules/m1', '', { authorization: 'wrong' }))).status).toBe(401)
  })
})
