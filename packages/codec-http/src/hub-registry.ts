/**
 * The IoT Hub registry REST API of embedded hubs (api-version 2021-04-12), the part azure-iothub's
 * Registry and twin calls use, authorized by a hub service token (`sr={hub}`, `skn={policy}`):
 *
 * | route | methods | permission |
 * |---|---|---|
 * | `/devices/{id}` | PUT (create; with `If-Match` update) / GET / DELETE | RegistryWrite / RegistryRead / RegistryWrite |
 * | `/devices?top=N` | GET | RegistryRead |
 * | `/devices` | POST: bulk create/update/delete of 1-100 devices (`importMode` per device) | RegistryWrite |
 * | `/twins/{id}` | GET / PATCH (merge) / PUT (replace) | RegistryRead / RegistryWrite |
 * | `/devices/{id}/messages/events?after=S&limit=N` | GET: telemetry the embedded hub kept (ours, not IoT Hub's) | ServiceConnect |
 * | `/devices/{id}/commands` | DELETE: purge the device's cloud-to-device queue, `{"deviceId","moduleId":null,"totalMessagesPurged"}` | ServiceConnect |
 * | `/twins/{id}/methods` | POST: direct method call, answered `{"status","payload"}` from the device | ServiceConnect |
 * | `/devices/{id}/modules` | GET: the device's modules | RegistryRead |
 * | `/devices/{id}/modules/{mid}` | PUT (create; with `If-Match` update) / GET / DELETE | RegistryWrite / RegistryRead / RegistryWrite |
 * | `/twins/{id}/modules/{mid}` | GET / PATCH (merge) / PUT (replace) | RegistryRead / RegistryWrite |
 * | `/twins/{id}/modules/{mid}/methods` | POST: 404, direct methods to modules are not served yet | ServiceConnect |
 *
 * Errors use IoT Hub's shape, which azure-iot-http-base parses: a body
 * `{"Message":"ErrorCode:<code>;<text>","ExceptionMessage":"Tracking ID:…"}` and the
 * `iothub-errorcode` header; `DeviceNotFound` on 404 becomes the SDK's DeviceNotFoundError. The
 * direct-method outcomes IoT Hub reports with a numeric code (404103 DeviceNotOnline, 504101
 * GatewayTimeout) come in its newer envelope instead: `Message` holds the JSON text
 * `{"errorCode","trackingId","message","info","timestampUtc"}`, as IoT Hub sends them.
 */
import { ProvisioError, acceptApiVersion, formatDpsTimestamp, parseJsonBody, toErrorBody, validateBulkDevices, validateDeviceSpec, validateDirectMethodCall, validateModuleSpec, validateTwinPatch, wrapUnknown } from '@provisio/protocol'
import type { HubPermission, HubRegistryApi } from '@provisio/protocol'
import { assertJsonContent, header, type HttpLimits, type HttpRequest, type ParsedTarget } from './message.js'
import { emptyResponse, jsonResponse } from './response.js'

type Reply = { status: number; headers: Record<string, string>; body: string }

/** First path segments served by the hub registry API. */
export const HUB_ROOTS: ReadonlySet<string> = new Set(['devices', 'twins'])

const MAX_LIST = 1000

function authorize(api: HubRegistryApi, request: HttpRequest, permission: HubPermission): string {
  const token = header(request, 'authorization')
  if (token === undefined) throw new ProvisioError('CREDENTIALS_MISSING', 'hub registry request carries no Authorization header')
  return api.authorizeHub(token, permission)
}

function readJson(request: HttpRequest, limits: HttpLimits, maxBytes = limits.maxBodyBytes): unknown {
  assertJsonContent(request)
  return parseJsonBody(request.body, { maxBytes })
}

/** `/twins/{id}/methods` or `/twins/{id}/modules/{mid}/methods`: the direct method routes (their body may be larger). */
export function isMethodRoute(segments: readonly string[]): boolean {
  return segments[0]?.toLowerCase() === 'twins' && (segments.length === 3 || (segments.length === 5 && segments[2] === 'modules')) && segments[segments.length - 1] === 'methods'
}

function tagged(status: number, body: { etag: string }): Reply {
  return jsonResponse(status, body, { etag: `"${body.etag}"` })
}

/**
 * Serves a registry request. Returns undefined for an unknown route and 'method' for a known
 * route with a method it does not serve.
 */
export async function serveHubRegistry(api: HubRegistryApi, request: HttpRequest, target: ParsedTarget, limits: HttpLimits): Promise<Reply | undefined | 'method'> {
  const s = target.segments
  const root = s[0]!.toLowerCase()
  const method = request.method
  acceptApiVersion(target.query.get('api-version'), 'service')
  if (root === 'devices' && s.length === 1) {
    if (method === 'POST') {
      const hub = authorize(api, request, 'RegistryWrite')
      const operations = validateBulkDevices(readJson(request, limits))
      const outcomes = await api.bulkDevices(hub, operations)
      // IoT Hub's BulkRegistryOperationResult: 200 when every entry succeeded, else 400 with the errors.
      const errors = outcomes.flatMap((o) =>
        o.error === undefined ? [] : [{ deviceId: o.deviceId, errorCode: hubErrorCode(o.error.httpStatus, o.error.code, o.error.info), errorStatus: o.error.deviceMessage ?? o.error.entry.defaultMessage }],
      )
      return jsonResponse(errors.length === 0 ? 200 : 400, { isSuccessful: errors.length === 0, errors, warnings: [] })
    }
    if (method !== 'GET') return 'method'
    const hub = authorize(api, request, 'RegistryRead')
    const topText = target.query.get('top')
    const top = topText === undefined ? MAX_LIST : Number(topText)
    if (!Number.isInteger(top) || top < 1 || top > MAX_LIST) {
      throw new ProvisioError('BAD_REQUEST', `top must be an integer from 1 to ${MAX_LIST}`, { deviceMessage: `top must be an integer from 1 to ${MAX_LIST}` })
    }
    return jsonResponse(200, await api.listDevices(hub, top))
  }
  // Telemetry kept by the embedded hub: GET /devices/{id}/messages/events?after={seq}&limit={n}
  // (our own route; Azure IoT Hub hands telemetry to its Event Hubs-compatible endpoint instead).
  if (root === 'devices' && s.length === 4 && s[2] === 'messages' && s[3] === 'events') {
    if (method !== 'GET') return 'method'
    const hub = authorize(api, request, 'ServiceConnect')
    const after = integerParam(target.query.get('after'), 'after', 0, Number.MAX_SAFE_INTEGER, 0)
    const limit = integerParam(target.query.get('limit'), 'limit', 1, MAX_LIST, MAX_LIST)
    return jsonResponse(200, await api.readTelemetry(hub, s[1]!, { after, limit }))
  }
  // Purge of a device's cloud-to-device queue (docs/protocol.md, "Cloud-to-device messages").
  if (root === 'devices' && s.length === 3 && s[2]!.toLowerCase() === 'commands') {
    if (method !== 'DELETE') return 'method'
    const hub = authorize(api, request, 'ServiceConnect')
    if (api.purgeCloudToDeviceQueue === undefined) throw new ProvisioError('SERVICE_UNAVAILABLE', 'cloud-to-device messages are not served by this server')
    return jsonResponse(200, await api.purgeCloudToDeviceQueue(hub, s[1]!))
  }
  if (root === 'twins' && isMethodRoute(s)) {
    if (method !== 'POST') return 'method'
    // The access-control check point of direct methods: IoT Hub requires ServiceConnect.
    const hub = authorize(api, request, 'ServiceConnect')
    if (s.length === 5) {
      const reason = `direct methods to modules are not served by the embedded hub yet (module ${JSON.stringify(s[3]!.slice(0, 64))} of device ${JSON.stringify(s[1]!.slice(0, 128))})`
      throw new ProvisioError('NOT_FOUND', reason, { deviceMessage: reason })
    }
    const call = validateDirectMethodCall(readJson(request, limits, limits.maxMethodBodyBytes))
    return jsonResponse(200, await api.invokeMethod(hub, s[1]!, call, request.abandoned))
  }
  if ((s.length === 3 || s.length === 4) && s[2] === 'modules') return serveModules(api, request, target, limits)
  if (s.length !== 2) return undefined
  const id = s[1]!
  if (root === 'devices') {
    if (method === 'GET') return tagged(200, await api.getDevice(authorize(api, request, 'RegistryRead'), id))
    if (method === 'PUT') {
      const hub = authorize(api, request, 'RegistryWrite')
      const spec = validateDeviceSpec(readJson(request, limits), id)
      const ifMatch = header(request, 'if-match')
      return tagged(200, ifMatch === undefined ? await api.createDevice(hub, spec) : await api.updateDevice(hub, spec, ifMatch))
    }
    if (method === 'DELETE') {
      const hub = authorize(api, request, 'RegistryWrite')
      const ifMatch = header(request, 'if-match')
      await api.deleteDevice(hub, id, ifMatch)
      return emptyResponse(204)
    }
    return 'method'
  }
  if (method === 'GET') return tagged(200, await api.getTwin(authorize(api, request, 'RegistryRead'), id))
  if (method === 'PATCH' || method === 'PUT') {
    const hub = authorize(api, request, 'RegistryWrite')
    const patch = validateTwinPatch(readJson(request, limits))
    const ifMatch = header(request, 'if-match')
    return tagged(200, await api.updateTwin(hub, id, patch, { replace: method === 'PUT', ...(ifMatch === undefined ? {} : { ifMatch }) }))
  }
  return 'method'
}

/** `/devices/{d}/modules`, `/devices/{d}/modules/{m}` and `/twins/{d}/modules/{m}`. */
async function serveModules(api: HubRegistryApi, request: HttpRequest, target: ParsedTarget, limits: HttpLimits): Promise<Reply | undefined | 'method'> {
  const s = target.segments
  const root = s[0]!.toLowerCase()
  const method = request.method
  const deviceId = s[1]!
  if (s.length === 3) {
    if (root !== 'devices') return undefined
    if (method !== 'GET') return 'method'
    return jsonResponse(200, await api.listModules(authorize(api, request, 'RegistryRead'), deviceId))
  }
  const moduleId = s[3]!
  if (root === 'devices') {
    if (method === 'GET') return tagged(200, await api.getModule(authorize(api, request, 'RegistryRead'), deviceId, moduleId))
    if (method === 'PUT') {
      const hub = authorize(api, request, 'RegistryWrite')
      const spec = validateModuleSpec(readJson(request, limits), deviceId, moduleId)
      const ifMatch = header(request, 'if-match')
      return tagged(200, ifMatch === undefined ? await api.createModule(hub, spec) : await api.updateModule(hub, spec, ifMatch))
    }
    if (method === 'DELETE') {
      const hub = authorize(api, request, 'RegistryWrite')
      await api.deleteModule(hub, deviceId, moduleId, header(request, 'if-match'))
      return emptyResponse(204)
    }
    return 'method'
  }
  if (method === 'GET') return tagged(200, await api.getModuleTwin(authorize(api, request, 'RegistryRead'), deviceId, moduleId))
  if (method === 'PATCH' || method === 'PUT') {
    const hub = authorize(api, request, 'RegistryWrite')
    const patch = validateTwinPatch(readJson(request, limits))
    const ifMatch = header(request, 'if-match')
    return tagged(200, await api.updateModuleTwin(hub, deviceId, moduleId, patch, { replace: method === 'PUT', ...(ifMatch === undefined ? {} : { ifMatch }) }))
  }
  return 'method'
}

function integerParam(text: string | undefined, name: string, min: number, max: number, fallback: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    const message = `${name} must be an integer from ${min} to ${max}`
    throw new ProvisioError('BAD_REQUEST', message, { deviceMessage: message })
  }
  return value
}

/** IoT Hub error codes (the string after `ErrorCode:`) for our catalog's HTTP statuses. */
function hubErrorCode(status: number, code: string, info?: Readonly<Record<string, string>>): string {
  if (code === 'DEVICE_NOT_ONLINE') return 'DeviceNotOnline'
  if (status === 404 && info?.notFound === 'module') return 'ModuleNotFound'
  if (code === 'GATEWAY_TIMEOUT') return 'GatewayTimeout'
  if (code === 'DEVICE_QUEUE_FULL') return 'DeviceMaximumQueueDepthExceeded'
  if (code === 'MESSAGE_LOCK_LOST') return 'DeviceMessageLockLost'
  if (status === 404) return code === 'NOT_FOUND' ? 'DeviceNotFound' : 'NotFound'
  if (status === 409) return 'DeviceAlreadyExists'
  if (status === 412) return 'PreconditionFailed'
  if (status === 401) return 'IotHubUnauthorizedAccess'
  if (status === 413) return 'MessageTooLarge'
  if (status === 429) return 'ThrottleBacklogLimitExceeded'
  if (status === 405) return 'InvalidOperation'
  if (status >= 500) return 'ServerError'
  return 'ArgumentInvalid'
}

/** An error in IoT Hub's shape; the device-safe message, never the internal reason. */
export function hubErrorResponse(error: unknown, trackingId: string, nowMs: number): Reply {
  const err = wrapUnknown(error)
  const code = hubErrorCode(err.httpStatus, err.code, err.info)
  const text = err.deviceMessage ?? err.entry.defaultMessage
  const headers: Record<string, string> = { 'iothub-errorcode': code, 'x-ms-request-id': trackingId }
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(err.retryAfterSeconds)))
  if (err.code === 'DEVICE_NOT_ONLINE' || err.code === 'GATEWAY_TIMEOUT') {
    // IoT Hub's newer envelope: the error object as JSON text in Message.
    const inner = toErrorBody(err, trackingId, formatDpsTimestamp(nowMs))
    return jsonResponse(err.httpStatus, { Message: JSON.stringify({ ...inner, info: inner.info ?? {} }), ExceptionMessage: '' }, headers)
  }
  return jsonResponse(
    err.httpStatus,
    { Message: `ErrorCode:${code};${text}`, ExceptionMessage: `Tracking ID:${trackingId}-TimeStamp:${formatDpsTimestamp(nowMs)}` },
    headers,
  )
}
