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
  const events = /^\/?devices\/([^/]+)\/messages\/events$/i.exec(path)
  if (events) {
    const deviceId = decodeSegment(events[1]!)
    if (deviceId !== undefined) return { kind: 'deviceEvents', deviceId }
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
