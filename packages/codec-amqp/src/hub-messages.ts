/**
 * Hub messages as AMQP messages (docs/protocol.md §12): what a `$cbs` put-token request carries
 * and how it is answered, which hub link an address names, and a device-to-cloud message read
 * into the telemetry shape the MQTT path stores (body bytes, application properties, and the
 * system properties under the same `$.` names). Delivery and settlement stay with the session
 * (hub-session.ts).
 */
import message from 'rhea/lib/message.js'
import { AmqpCodecError, reasonOf } from './errors.js'
import { checkEncoding, toRheaBytes } from './wire.js'

const DATA_SECTION = 0x75
const utf8 = new TextEncoder()

/** Largest device-to-cloud message body IoT Hub accepts (docs/protocol.md §12.4). */
export const MAX_HUB_MESSAGE_BODY_BYTES = 256 * 1024

/** What a hub link address names (case-insensitive, relative or `amqps://host/...`). */
export type HubAddress =
  | { readonly kind: 'cbs' }
  | { readonly kind: 'deviceEvents'; readonly deviceId: string }
  | { readonly kind: 'deviceTwin'; readonly deviceId: string }
  | { readonly kind: 'deviceMethods'; readonly deviceId: string }
  | { readonly kind: 'c2dSend' }
  | { readonly kind: 'service'; readonly path: string }
  | { readonly kind: 'unknown'; readonly text: string }

/** Service-side addresses this hub knows but does not serve on AMQP yet (docs/protocol.md §12.3). */
const SERVICE_PATHS = ['/messages/servicebound/feedback', '/messages/servicebound/filenotifications']

/** Reads a link address. */
export function parseHubAddress(address: unknown): HubAddress {
  if (typeof address !== 'string' || address.length > 512) return { kind: 'unknown', text: String(address).slice(0, 80) }
  let path = address
  const scheme = /^amqps?:\/\/[^/]*/i.exec(path)
  if (scheme) path = path.slice(scheme[0].length)
  if (path.toLowerCase() === '$cbs' || path.toLowerCase() === '/$cbs') return { kind: 'cbs' }
  const device = /^\/?devices\/([^/]+)\/(messages\/events|twin|methods\/devicebound)$/i.exec(path)
  if (device) {
    const deviceId = decodeSegment(device[1]!)
    const rest = device[2]!.toLowerCase()
    const kind = rest === 'twin' ? 'deviceTwin' : rest === 'methods/devicebound' ? 'deviceMethods' : 'deviceEvents'
    if (deviceId !== undefined) return { kind, deviceId }
  }
  const lower = (path.startsWith('/') ? path : `/${path}`).toLowerCase()
  if (lower === '/messages/devicebound') return { kind: 'c2dSend' }
  if (SERVICE_PATHS.includes(lower)) return { kind: 'service', path: lower }
  return { kind: 'unknown', text: address.slice(0, 80) }
}

function decodeSegment(segment: string): string | undefined {
  try {
    const id = decodeURIComponent(segment)
    return id.length > 0 && id.length <= 128 ? id : undefined
  } catch {
    return undefined
  }
}

/** Decodes the sections of a received message after checking their encoding. */
export function decodeMessage(bytes: Uint8Array): ReturnType<typeof message.decode> {
  checkEncoding(bytes, 0, bytes.length)
  try {
    return message.decode(toRheaBytes(bytes))
  } catch (error) {
    throw new AmqpCodecError('DECODE_ERROR', `message sections do not decode: ${reasonOf(error)}`)
  }
}

/** What a token applies to: the hub itself (a policy token) or one device. */
export type TokenAudience = { readonly kind: 'hub' } | { readonly kind: 'device'; readonly deviceId: string }

/** A put-token request, or why it is malformed (answered 400). */
export type PutTokenRequest =
  | { readonly ok: true; readonly messageId: unknown; readonly token: string; readonly audience: string }
  | { readonly ok: false; readonly messageId: unknown; readonly reason: string }

/** Reads a `$cbs` request (docs/protocol.md §12.2): operation put-token, `name` = audience, body = token. */
export function readPutToken(msg: ReturnType<typeof message.decode>): PutTokenRequest {
  const messageId = msg.message_id
  const props = msg.application_properties ?? {}
  if (props['operation'] !== 'put-token') return { ok: false, messageId, reason: `operation ${JSON.stringify(String(props['operation']).slice(0, 40))} is not put-token` }
  const audience = props['name']
  if (typeof audience !== 'string' || audience.length === 0 || audience.length > 1024) return { ok: false, messageId, reason: 'put-token without a name (the audience) of at most 1024 characters' }
  const token = typeof msg.body === 'string' ? msg.body : undefined
  if (token === undefined || token.length === 0 || token.length > 4096) return { ok: false, messageId, reason: 'put-token body is not a token string (amqp-value) of at most 4096 characters' }
  return { ok: true, messageId, token, audience }
}

/**
 * The audience a put-token names, relative to `hostName`: the hub, one of its devices, or a
 * reason it is neither (wrong audience, answered 401).
 */
export function readAudience(audience: string, hostName: string): TokenAudience | { readonly refusal: string } {
  let text = audience
  try {
    text = decodeURIComponent(audience)
  } catch {
    return { refusal: `audience ${JSON.stringify(audience.slice(0, 100))} is not URL-encoded text` }
  }
  text = text.replace(/^amqps?:\/\//i, '').replace(/\/$/, '')
  const slash = text.indexOf('/')
  const host = slash < 0 ? text : text.slice(0, slash)
  if (host.toLowerCase() !== hostName.toLowerCase()) return { refusal: `audience ${JSON.stringify(text.slice(0, 100))} is not hub ${hostName}` }
  if (slash < 0) return { kind: 'hub' }
  const device = /^devices\/([^/]+)$/i.exec(text.slice(slash + 1))
  if (device === null) return { refusal: `audience ${JSON.stringify(text.slice(0, 100))} is neither the hub nor {host}/devices/{deviceId}` }
  return { kind: 'device', deviceId: device[1]! }
}

/** The answer to a put-token: correlation-id = request message-id, `status-code` an int, `status-description`. */
export function encodeCbsAnswer(messageId: unknown, status: number, description: string): Uint8Array {
  return message.encode({
    ...(messageId === undefined ? {} : { correlation_id: messageId }),
    application_properties: { 'status-code': status, 'status-description': description.slice(0, 400) },
  })
}

/** One device-to-cloud message in the telemetry shape, or why it is refused with which condition. */
export type TelemetryRead =
  | { readonly ok: true; readonly body: Uint8Array; readonly properties: Record<string, string>; readonly systemProperties: Record<string, string> }
  | { readonly ok: false; readonly condition: string; readonly description: string }

/** Reads a device-to-cloud message: one or more data sections (or an amqp-value string), properties kept. */
export function readTelemetry(msg: ReturnType<typeof message.decode>): TelemetryRead {
  const body = bodyBytes(msg.body)
  if (body === undefined) return { ok: false, condition: 'amqp:decode-error', description: 'message body is neither data sections nor an amqp-value string or binary' }
  if (body.length > MAX_HUB_MESSAGE_BODY_BYTES) {
    return { ok: false, condition: 'amqp:link:message-size-exceeded', description: `message body of ${body.length} bytes exceeds the hub's limit of ${MAX_HUB_MESSAGE_BODY_BYTES} bytes` }
  }
  const properties: Record<string, string> = {}
  for (const [name, value] of Object.entries(msg.application_properties ?? {})) {
    const text = propertyText(value)
    if (text !== undefined) properties[name] = text
  }
  const systemProperties: Record<string, string> = {}
  const m = msg as Record<string, unknown>
  const system: [string, string][] = [
    ['message_id', '$.mid'],
    ['correlation_id', '$.cid'],
    ['user_id', '$.uid'],
    ['to', '$.to'],
    ['content_type', '$.ct'],
    ['content_encoding', '$.ce'],
    ['absolute_expiry_time', '$.exp'],
  ]
  for (const [field, name] of system) {
    const text = propertyText(m[field])
    if (text !== undefined) systemProperties[name] = text
  }
  return { ok: true, body, properties, systemProperties }
}

/** A property value as text: strings, numbers, booleans, timestamps, uuids (16 bytes) and binary ids. */
function propertyText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value)
  // Timestamps: rhea decodes them to dates.
  const stamp = value as { toISOString?: unknown }
  if (typeof stamp.toISOString === 'function') return (stamp.toISOString as () => string).call(value)
  if (value instanceof Uint8Array) {
    const hex = [...value].map((b) => b.toString(16).padStart(2, '0')).join('')
    return value.length === 16 ? `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}` : hex
  }
  return undefined
}

function bodyBytes(body: unknown): Uint8Array | undefined {
  if (body === undefined || body === null) return new Uint8Array(0)
  if (typeof body === 'string') return utf8.encode(body)
  if (body instanceof Uint8Array) return body
  const section = body as { typecode?: unknown; content?: unknown; multiple?: unknown }
  if (section.typecode !== DATA_SECTION) return undefined
  const parts = Array.isArray(section.content) ? (section.content as unknown[]) : [section.content]
  const chunks: Uint8Array[] = []
  for (const part of parts) {
    if (part instanceof Uint8Array) chunks.push(part)
    else if (part !== undefined && part !== null) return undefined
  }
  let size = 0
  for (const c of chunks) size += c.length
  const out = new Uint8Array(size)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}

/** A cloud-to-device message as the service sends it on `/messages/devicebound` (docs/protocol.md §12.5). */
export interface C2dSendInput {
  readonly messageId?: string
  readonly correlationId?: string
  readonly to?: string
  readonly userId?: string
  readonly expiryTimeUtc?: number
  readonly ack?: 'none' | 'positive' | 'negative' | 'full'
  readonly contentType?: string
  readonly contentEncoding?: string
  readonly properties: Record<string, string>
  readonly body: Uint8Array
}

const ACKS = ['none', 'positive', 'negative', 'full'] as const

/** Reads a service's cloud-to-device send: the device from `to`, the fields the queue keeps; or why it is refused. */
export function readC2dSend(msg: ReturnType<typeof message.decode>): { readonly ok: true; readonly deviceId: string; readonly input: C2dSendInput } | { readonly ok: false; readonly condition: string; readonly description: string } {
  const m = msg as Record<string, unknown>
  const to = typeof m['to'] === 'string' ? (m['to'] as string) : undefined
  const target = to === undefined ? undefined : /^\/?devices\/([^/]+)\/messages\/devicebound$/i.exec(to)
  const deviceId = target === undefined || target === null ? undefined : decodeSegment(target[1]!)
  if (deviceId === undefined) return { ok: false, condition: 'amqp:invalid-field', description: `message "to" ${JSON.stringify(String(to).slice(0, 100))} is not /devices/{deviceId}/messages/devicebound` }
  const body = bodyBytes(msg.body)
  if (body === undefined) return { ok: false, condition: 'amqp:decode-error', description: 'message body is neither data sections nor an amqp-value string or binary' }
  const properties: Record<string, string> = {}
  let ack: C2dSendInput['ack']
  for (const [name, value] of Object.entries(msg.application_properties ?? {})) {
    const text = propertyText(value)
    if (text === undefined) continue
    if (name.toLowerCase() === 'iothub-ack') {
      const lower = text.toLowerCase()
      if (!(ACKS as readonly string[]).includes(lower)) return { ok: false, condition: 'amqp:invalid-field', description: `iothub-ack ${JSON.stringify(text.slice(0, 20))} is not none, positive, negative or full` }
      ack = lower as C2dSendInput['ack']
    } else properties[name] = text
  }
  const expiry = m['absolute_expiry_time'] as { valueOf(): unknown } | undefined
  const expiryTimeUtc = expiry === undefined || expiry === null ? undefined : Number(expiry.valueOf())
  const text = (field: string) => propertyText(m[field])
  const input: C2dSendInput = {
    ...optional('messageId', text('message_id')),
    ...optional('correlationId', text('correlation_id')),
    to: to!,
    ...optional('userId', text('user_id')),
    ...(expiryTimeUtc === undefined || !Number.isFinite(expiryTimeUtc) ? {} : { expiryTimeUtc }),
    ...(ack === undefined ? {} : { ack }),
    ...optional('contentType', text('content_type')),
    ...optional('contentEncoding', text('content_encoding')),
    properties,
    body,
  }
  return { ok: true, deviceId, input }
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string }
}

// ---------------------------------------------------------------------------------------------
// Twin and direct methods on the device's links (docs/protocol.md §12.6, §12.7)

/** What a device asks on its twin sender link. */
export type TwinOperation = 'get' | 'patchReported' | 'subscribeDesired' | 'unsubscribeDesired'

/** A twin request: its operation, the correlation id to answer with, the body; or why it is refused (answered 400). */
export type TwinRequest =
  | { readonly ok: true; readonly operation: TwinOperation; readonly correlationId: unknown; readonly body: Uint8Array }
  | { readonly ok: false; readonly correlationId: unknown; readonly reason: string }

const DESIRED_NOTIFICATIONS = '/notifications/twin/properties/desired'

/** Reads a twin request: annotations `operation` (GET, PATCH, PUT, DELETE) and `resource`, body in data sections. */
export function readTwinRequest(msg: ReturnType<typeof message.decode>): TwinRequest {
  const correlationId = (msg as Record<string, unknown>)['correlation_id']
  if (correlationId === undefined || correlationId === null) return { ok: false, correlationId: undefined, reason: 'twin request without a correlation-id' }
  const annotations = (msg.message_annotations ?? {}) as Record<string, unknown>
  const operation = typeof annotations['operation'] === 'string' ? (annotations['operation'] as string).toUpperCase() : undefined
  const resource = typeof annotations['resource'] === 'string' ? (annotations['resource'] as string).toLowerCase().replace(/\/$/, '') : undefined
  const body = bodyBytes(msg.body)
  if (body === undefined) return { ok: false, correlationId, reason: 'twin request body is neither data sections nor an amqp-value string or binary' }
  if (operation === 'GET' && (resource === undefined || resource === '' || resource === '/')) return { ok: true, operation: 'get', correlationId, body }
  if (operation === 'PATCH' && resource === '/properties/reported') return { ok: true, operation: 'patchReported', correlationId, body }
  if (operation === 'PUT' && resource === DESIRED_NOTIFICATIONS) return { ok: true, operation: 'subscribeDesired', correlationId, body }
  if (operation === 'DELETE' && resource === DESIRED_NOTIFICATIONS) return { ok: true, operation: 'unsubscribeDesired', correlationId, body }
  const shown = `${String(operation).slice(0, 20)} ${String(resource ?? '(no resource)').slice(0, 80)}`
  return { ok: false, correlationId, reason: `twin operation ${JSON.stringify(shown)} is not GET, PATCH /properties/reported, or PUT/DELETE ${DESIRED_NOTIFICATIONS}` }
}

/** A twin answer: the request's correlation-id, annotation `status` (and `version` after a reported patch), JSON body in a data section. */
export function encodeTwinResponse(correlationId: unknown, status: number, body: string, version?: number): Uint8Array {
  return message.encode({
    correlation_id: correlationId,
    message_annotations: { status, ...(version === undefined ? {} : { version }) },
    body: message.data_section(toRheaBytes(utf8.encode(body))),
  })
}

/** A desired-property change pushed on the twin receiver link: no correlation-id, body = the patch with `$version`. */
export function encodeDesiredPush(patch: Record<string, unknown>): Uint8Array {
  return message.encode({ body: message.data_section(toRheaBytes(utf8.encode(JSON.stringify(patch)))) })
}

/** A direct method request: app property `IoThub-methodname`, correlation-id = the request id, body = the JSON payload. */
export function encodeMethodRequest(methodName: string, rid: string, payload: string): Uint8Array {
  return message.encode({
    correlation_id: rid,
    application_properties: { 'IoThub-methodname': methodName },
    body: message.data_section(toRheaBytes(utf8.encode(payload))),
  })
}

/** A device's method response: the request id, `IoThub-status`, the body; or why it cannot be matched. */
export type MethodResponseRead =
  | { readonly ok: true; readonly rid: string; readonly status: number; readonly payload: Uint8Array }
  | { readonly ok: false; readonly condition: string; readonly description: string }

/** Reads a method response on `/devices/{id}/methods/devicebound` (the id as a string or a uuid). */
export function readMethodResponse(msg: ReturnType<typeof message.decode>, maxPayloadBytes: number): MethodResponseRead {
  const rid = propertyText((msg as Record<string, unknown>)['correlation_id'])
  if (rid === undefined || rid === '') return { ok: false, condition: 'amqp:invalid-field', description: 'method response without a correlation-id (the request id)' }
  let status: unknown
  for (const [name, value] of Object.entries(msg.application_properties ?? {})) if (name.toLowerCase() === 'iothub-status') status = value
  const code = typeof status === 'number' ? status : typeof status === 'string' && /^\d{1,9}$/.test(status) ? Number(status) : undefined
  if (code === undefined || !Number.isInteger(code)) return { ok: false, condition: 'amqp:invalid-field', description: 'method response without an integer IoThub-status application property' }
  const payload = bodyBytes(msg.body)
  if (payload === undefined) return { ok: false, condition: 'amqp:decode-error', description: 'method response body is neither data sections nor an amqp-value string or binary' }
  if (payload.length > maxPayloadBytes) return { ok: false, condition: 'amqp:link:message-size-exceeded', description: `method response of ${payload.length} bytes exceeds the limit of ${maxPayloadBytes} bytes` }
  return { ok: true, rid, status: code, payload }
}
