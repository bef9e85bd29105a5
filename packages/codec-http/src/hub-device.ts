/**
 * The embedded hubs' HTTPS device API, telemetry part (docs/protocol.md §12):
 * `POST /devices/{id}/messages/events`, as azure-iot-device's Http transport sends it.
 *
 * - One message: the body is the payload; application properties come as `iothub-app-{name}`
 *   headers, system properties as `iothub-messageid`, `iothub-correlationid`, `iothub-userid`,
 *   `iothub-to`, `iothub-expiry`, `iothub-ack`, `iothub-contenttype`, `iothub-contentencoding`,
 *   `iothub-interface-id`, `iothub-creation-time-utc` and `dt-subject`.
 * - A batch: `Content-Type: application/vnd.microsoft.iothub.json` and a JSON array of
 *   `{"body":"<base64>","properties":{"iothub-app-k":"v", …}}`, the property names as above.
 *
 * Stored messages keep the system properties under the names the MQTT path stores them with
 * (`$.mid`, `$.cid`, `$.uid`, `$.to`, `$.exp`, `$.ct`, `$.ce`, `$.ifid`, `$.sub`; `iothub-*` as
 * sent), so a reader sees one shape whatever the transport. The device authenticates on every
 * request: a device SAS token (`sr={hub}/devices/{id}`) in `Authorization`, or its TLS client
 * certificate (the hub is then the request's `Host`). Answers 204; refusals use IoT Hub's error
 * shape (hub-registry.ts). Sans-IO like the rest of the codec.
 */
import { base64Decode } from '@provisio/crypto'
import { ProvisioError, acceptApiVersion, parseSasToken } from '@provisio/protocol'
import type { HubDeviceApi } from '@provisio/protocol'
import { header, type HttpRequest, type ParsedTarget } from './message.js'
import { emptyResponse } from './response.js'

type Reply = { status: number; headers: Record<string, string>; body: string }

/** IoT Hub's device-to-cloud limit: one message's payload, and a batch's payloads together. */
export const MAX_TELEMETRY_BYTES = 256 * 1024
/** Properties (application and system) one message may carry, as on the MQTT path. */
const MAX_PROPERTIES = 64
/** A batch's messages at most. */
const MAX_BATCH_MESSAGES = 500
const BATCH_MEDIA = /^application\/vnd\.microsoft\.iothub\.json\s*(?:;|$)/i
const APP_PREFIX = 'iothub-app-'

/** The header (or batch property) names of system properties, and the names they are stored under. */
const SYSTEM_NAMES: ReadonlyMap<string, string> = new Map([
  ['iothub-messageid', '$.mid'],
  ['iothub-correlationid', '$.cid'],
  ['iothub-userid', '$.uid'],
  ['iothub-to', '$.to'],
  ['iothub-expiry', '$.exp'],
  ['iothub-contenttype', '$.ct'],
  ['iothub-contentencoding', '$.ce'],
  ['iothub-interface-id', '$.ifid'],
  ['dt-subject', '$.sub'],
  ['iothub-ack', 'iothub-ack'],
  ['iothub-creation-time-utc', 'iothub-creation-time-utc'],
])

/** What happened, for metrics and logs (the caller counts and logs; the codec keeps no state). */
export type HubDeviceHttpEvent =
  | { readonly type: 'telemetry'; readonly route: 'telemetry'; readonly hostName: string; readonly deviceId: string; readonly messages: number; readonly bytes: number }
  | { readonly type: 'refused'; readonly route: 'telemetry'; readonly code: string; readonly reason: string }

/** `POST /devices/{id}/messages/events` (the GET on that path is the registry's telemetry read). */
export function isDeviceTelemetryRoute(method: string, segments: readonly string[]): boolean {
  return method === 'POST' && segments.length === 4 && segments[0]!.toLowerCase() === 'devices' && segments[2] === 'messages' && segments[3] === 'events'
}

/** `/devices/{id}/messages/events`, whatever the method: the body the adapter may read for it. */
export function isTelemetryPath(segments: readonly string[]): boolean {
  return segments.length === 4 && segments[0]!.toLowerCase() === 'devices' && segments[2] === 'messages' && segments[3] === 'events'
}

function refuse(code: 'BAD_REQUEST' | 'PAYLOAD_TOO_LARGE' | 'UNSUPPORTED_MEDIA_TYPE' | 'CREDENTIALS_MISSING', reason: string): ProvisioError {
  return new ProvisioError(code, reason, { deviceMessage: reason })
}

/** The hub a request is for: the SAS token's `sr` host, else the `Host` header without its port. */
function hubOf(request: HttpRequest, token: string | undefined): string {
  if (token !== undefined) return parseSasToken(token).resourceDecoded.split('/')[0]!
  const host = header(request, 'host')
  if (host === undefined || host === '') throw refuse('CREDENTIALS_MISSING', 'the request carries neither an Authorization header nor a Host header naming the hub')
  return host.replace(/:\d+$/, '')
}

interface D2cMessage {
  body: Uint8Array
  properties: Record<string, string>
  systemProperties: Record<string, string>
}

/** Sorts one message's named values into application and system properties. */
function sortProperties(entries: Iterable<[string, string]>, where: string): Pick<D2cMessage, 'properties' | 'systemProperties'> {
  const properties: Record<string, string> = {}
  const systemProperties: Record<string, string> = {}
  let count = 0
  for (const [rawName, value] of entries) {
    const name = rawName.toLowerCase()
    const system = SYSTEM_NAMES.get(name)
    const app = name.startsWith(APP_PREFIX) ? rawName.slice(APP_PREFIX.length) : undefined
    if (system === undefined && app === undefined) continue
    if (++count > MAX_PROPERTIES) throw refuse('BAD_REQUEST', `${where} carries more than ${MAX_PROPERTIES} properties`)
    if (app === '') throw refuse('BAD_REQUEST', `${where} has a property "${APP_PREFIX}" without a name`)
    if (app !== undefined) properties[app] = value
    else systemProperties[system!] = value
  }
  return { properties, systemProperties }
}

function singleMessage(request: HttpRequest): D2cMessage {
  if (request.body.length > MAX_TELEMETRY_BYTES) {
    throw refuse('PAYLOAD_TOO_LARGE', `the message is ${request.body.length} bytes, over IoT Hub's device-to-cloud limit of ${MAX_TELEMETRY_BYTES}`)
  }
  const entries: [string, string][] = []
  for (const name of Object.keys(request.headers)) {
    const lower = name.toLowerCase()
    if (!lower.startsWith(APP_PREFIX) && !SYSTEM_NAMES.has(lower)) continue
    const value = header(request, name)
    if (value !== undefined) entries.push([name, value])
  }
  return { body: request.body, ...sortProperties(entries, 'the message') }
}

function batchMessages(request: HttpRequest): D2cMessage[] {
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(request.body))
  } catch (error) {
    throw refuse('BAD_REQUEST', `the batch body is not UTF-8 JSON: ${(error as Error).message.slice(0, 120)}`)
  }
  if (!Array.isArray(json) || json.length === 0 || json.length > MAX_BATCH_MESSAGES) {
    throw refuse('BAD_REQUEST', `a batch must be a JSON array of 1 to ${MAX_BATCH_MESSAGES} messages`)
  }
  let total = 0
  return json.map((entry: unknown, i) => {
    const where = `batch message [${i}]`
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw refuse('BAD_REQUEST', `${where} must be a JSON object`)
    const { body, properties } = entry as { body?: unknown; properties?: unknown }
    if (typeof body !== 'string') throw refuse('BAD_REQUEST', `${where}.body must be the payload in base64`)
    let bytes: Uint8Array
    try {
      bytes = base64Decode(body)
    } catch {
      throw refuse('BAD_REQUEST', `${where}.body is not valid base64`)
    }
    total += bytes.length
    if (total > MAX_TELEMETRY_BYTES) throw refuse('PAYLOAD_TOO_LARGE', `the batch's payloads exceed IoT Hub's device-to-cloud limit of ${MAX_TELEMETRY_BYTES} bytes at ${where}`)
    if (properties !== undefined && (typeof properties !== 'object' || properties === null || Array.isArray(properties))) {
      throw refuse('BAD_REQUEST', `${where}.properties must be an object of string values`)
    }
    const entries = Object.entries((properties ?? {}) as Record<string, unknown>).map(([name, value]): [string, string] => {
      if (typeof value !== 'string') throw refuse('BAD_REQUEST', `${where}.properties[${JSON.stringify(name.slice(0, 40))}] must be a string`)
      return [name, value]
    })
    return { body: bytes, ...sortProperties(entries, where) }
  })
}

/**
 * Serves `POST /devices/{id}/messages/events`: authenticates the device, reads the message or the
 * batch, and hands every message to the hub's telemetry sink (all parsed before any is stored: a
 * refused batch stores nothing).
 */
export async function serveHubDeviceTelemetry(
  api: HubDeviceApi,
  request: HttpRequest,
  target: ParsedTarget,
  onEvent?: (event: HubDeviceHttpEvent) => void,
): Promise<Reply> {
  try {
    acceptApiVersion(target.query.get('api-version'), 'device')
    const token = header(request, 'authorization')
    const deviceId = target.segments[1]!
    const who = await api.authenticate({
      hostName: hubOf(request, token),
      deviceId,
      ...(token === undefined ? {} : { sasToken: token }),
      ...(request.clientCertificates === undefined || request.clientCertificates.length === 0 ? {} : { clientCertificates: request.clientCertificates }),
    })
    const contentType = header(request, 'content-type')
    const coding = header(request, 'content-encoding')
    if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') {
      throw refuse('UNSUPPORTED_MEDIA_TYPE', `content-encoding ${JSON.stringify(coding.slice(0, 40))} is not supported; send the message uncompressed`)
    }
    const messages = contentType !== undefined && BATCH_MEDIA.test(contentType.trim()) ? batchMessages(request) : [singleMessage(request)]
    let bytes = 0
    // 204 only once every message is stored (the sink resolves after its commit); a refusal answers
    // the request with its error, and the device sends the batch again.
    await Promise.all(messages.map((message) => api.telemetry(who.hostName, who.deviceId, message)))
    for (const message of messages) bytes += message.body.length
    onEvent?.({ type: 'telemetry', route: 'telemetry', hostName: who.hostName, deviceId: who.deviceId, messages: messages.length, bytes })
    return emptyResponse(204)
  } catch (error) {
    if (error instanceof ProvisioError) onEvent?.({ type: 'refused', route: 'telemetry', code: error.code, reason: error.message })
    throw error
  }
}
