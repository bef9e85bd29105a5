/**
 * The DPS MQTT dialect's strings (docs/protocol.md §3), both ends of each: the CONNECT username,
 * the request topics a device publishes to, and the response topics the service publishes on.
 * The server's codec (@provisio/codec-mqtt) and the device SDK (@provisio/device) both use these.
 *
 * | string | shape |
 * |---|---|
 * | username | `{idScope}/registrations/{registrationId}/api-version={V}[&ClientVersion={urlenc(UA)}]` |
 * | subscription | `$dps/registrations/res/#` (the only filter DPS serves) |
 * | register | `$dps/registrations/PUT/iotdps-register/?$rid={rid}` |
 * | poll | `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={opId}` |
 * | response | `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]` — `$rid` first (§3, §10 item 2) |
 */
import { percentDecode } from './percent.js'

/** The one topic filter a DPS device may subscribe to (§3 flow step 1). */
export const DPS_RESPONSE_FILTER = '$dps/registrations/res/#'

const REGISTER_PREFIX = '$dps/registrations/PUT/iotdps-register/'
const POLL_PREFIX = '$dps/registrations/GET/iotdps-get-operationstatus/'
const RESPONSE_PREFIX = '$dps/registrations/res/'

/** Longest username accepted: scope (11) + id (128) + api-version + a client version string. */
export const MAX_USERNAME_LENGTH = 1024
/** Longest `$rid` echoed back (UUIDs are 36; C and .NET send integers). */
export const MAX_RID_LENGTH = 128

/** The CONNECT username of a DPS device (the device side of {@link parseDpsUsername}). */
export function formatDpsUsername(idScope: string, registrationId: string, apiVersion: string, clientVersion: string): string {
  return `${idScope}/registrations/${registrationId}/api-version=${apiVersion}&ClientVersion=${encodeURIComponent(clientVersion)}`
}

/** What a DPS CONNECT username says. */
export interface DpsUsername {
  readonly idScope: string
  readonly registrationId: string
  /** The `api-version` value; undefined when absent (the caller applies the default). */
  readonly apiVersion?: string
  /** `ClientVersion`, percent-decoded (the SDK's user agent), for logs. */
  readonly clientVersion?: string
}

/** A username that does not follow the DPS shape; `reason` names the broken rule. */
export interface DpsUsernameError {
  readonly error: string
}

/**
 * Parses a CONNECT username. Lenient where SDKs differ: a `?` before the parameters (seen in
 * hub usernames) is accepted, parameter names are matched case-insensitively, unknown
 * parameters are ignored.
 */
export function parseDpsUsername(username: string): DpsUsername | DpsUsernameError {
  if (username.length > MAX_USERNAME_LENGTH) return { error: `username is ${username.length} characters, over the limit of ${MAX_USERNAME_LENGTH}` }
  const first = username.indexOf('/')
  const second = first < 0 ? -1 : username.indexOf('/', first + 1)
  const third = second < 0 ? -1 : username.indexOf('/', second + 1)
  if (first <= 0 || second < 0 || username.slice(first + 1, second).toLowerCase() !== 'registrations') {
    return { error: 'username must start with {idScope}/registrations/{registrationId} (docs/protocol.md §3)' }
  }
  const idScope = username.slice(0, first)
  const registrationId = username.slice(second + 1, third < 0 ? undefined : third)
  if (registrationId === '') return { error: 'username names no registrationId after "registrations/"' }
  let apiVersion: string | undefined
  let clientVersion: string | undefined
  if (third >= 0) {
    let tail = username.slice(third + 1)
    if (tail.startsWith('?')) tail = tail.slice(1)
    const params = usernameParams(tail)
    if ('error' in params) return params
    apiVersion = params.get('api-version')
    clientVersion = params.get('clientversion')
  }
  return {
    idScope,
    registrationId,
    ...(apiVersion === undefined ? {} : { apiVersion }),
    ...(clientVersion === undefined ? {} : { clientVersion }),
  }
}

/**
 * The `name=value&…` parameters of a CONNECT username: names lower-cased, values percent-decoded,
 * the last occurrence kept; a broken percent-encoding is an error naming the parameter.
 */
export function usernameParams(text: string): Map<string, string> | { readonly error: string } {
  const out = new Map<string, string>()
  for (const part of text.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const name = (eq < 0 ? part : part.slice(0, eq)).toLowerCase()
    const value = percentDecode(eq < 0 ? '' : part.slice(eq + 1))
    if (value === undefined) return { error: `username parameter ${JSON.stringify(name.slice(0, 40))} has a broken percent-encoding` }
    out.set(name, value)
  }
  return out
}

/** A request a device publishes. */
export type DpsRequestTopic =
  | { readonly kind: 'register'; readonly rid: string }
  | { readonly kind: 'operationStatus'; readonly rid: string; readonly operationId: string }

/** Why a topic is not a DPS request; `rid` is set when one could be read (the error can then be answered). */
export interface DpsTopicError {
  readonly error: string
  readonly rid?: string
}

/** The topic a device publishes a request on (the device side of {@link parseDpsRequestTopic}). */
export function formatDpsRequestTopic(request: DpsRequestTopic): string {
  if (request.kind === 'register') return `${REGISTER_PREFIX}?$rid=${request.rid}`
  return `${POLL_PREFIX}?$rid=${request.rid}&operationId=${encodeURIComponent(request.operationId)}`
}

/**
 * Parses a request topic. `$rid` is opaque and echoed verbatim, so it is not decoded (§3: UUID,
 * integer or constant depending on the SDK); `operationId` is percent-decoded.
 */
export function parseDpsRequestTopic(topic: string): DpsRequestTopic | DpsTopicError {
  let kind: 'register' | 'operationStatus'
  let rest: string
  if (topic.startsWith(REGISTER_PREFIX)) {
    kind = 'register'
    rest = topic.slice(REGISTER_PREFIX.length)
  } else if (topic.startsWith(POLL_PREFIX)) {
    kind = 'operationStatus'
    rest = topic.slice(POLL_PREFIX.length)
  } else {
    return { error: `topic ${JSON.stringify(topic.slice(0, 80))} is neither the register nor the operation-status topic (docs/protocol.md §3)` }
  }
  if (!rest.startsWith('?')) return { error: `${kind} topic has no "?" before its parameters` }
  const params = topicParams(rest.slice(1))
  const rid = params.get('$rid')
  const operationIdText = params.get('operationid')
  const operationId = operationIdText === undefined ? undefined : (percentDecode(operationIdText) ?? '')
  if (rid === undefined || rid === '') return { error: `${kind} topic carries no $rid` }
  if (!isPrintableRid(rid)) return { error: `$rid must be 1-${MAX_RID_LENGTH} printable characters without "&", "/", "#" or "+"` }
  if (kind === 'register') return { kind, rid }
  if (operationId === undefined || operationId === '') return { error: 'operation-status topic carries no operationId', rid }
  return { kind, rid, operationId }
}

/** `$rid` goes back into a topic name: keep out wildcards, separators and control characters. */
export function isPrintableRid(rid: string): boolean {
  if (rid.length > MAX_RID_LENGTH) return false
  for (let i = 0; i < rid.length; i++) {
    const c = rid.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f || c === 0x26 /* & */ || c === 0x2f /* / */ || c === 0x23 /* # */ || c === 0x2b /* + */) return false
  }
  return true
}

/**
 * The response topic. `$rid` comes first after `?` because .NET matches
 * `^\$dps/registrations/res/(.*?)/\?\$rid=(.*?)$` and Python splits on `$` (§3); `retry-after`
 * is integer seconds, at least 1 (§1.4).
 */
export function formatDpsResponseTopic(status: number, rid: string, retryAfterSeconds?: number): string {
  const base = `$dps/registrations/res/${status}/?$rid=${rid}`
  if (retryAfterSeconds === undefined) return base
  return `${base}&retry-after=${Math.max(1, Math.ceil(retryAfterSeconds))}`
}

/** A response topic as a device reads it; `retryAfter` is the raw parameter (integer seconds). */
export interface DpsResponseTopic {
  readonly status: number
  readonly rid: string
  readonly retryAfter?: string
}

/** Parses a response topic (the device side of {@link formatDpsResponseTopic}); undefined when it is not one. */
export function parseDpsResponseTopic(topic: string): DpsResponseTopic | undefined {
  if (!topic.startsWith(RESPONSE_PREFIX)) return undefined
  const parsed = parseStatusTopic(topic.slice(RESPONSE_PREFIX.length))
  if (parsed === undefined) return undefined
  const rid = parsed.params.get('$rid')
  if (rid === undefined) return undefined
  const retryAfter = parsed.params.get('retry-after')
  return { status: parsed.status, rid, ...(retryAfter === undefined ? {} : { retryAfter }) }
}

/**
 * `{status}/?{name=value&…}` after a response prefix (DPS and hub twin responses): the status
 * (three digits) and the parameters, names lower-cased unless they start with `$`, first
 * occurrence kept, values left encoded.
 */
export function parseStatusTopic(rest: string): { status: number; params: Map<string, string> } | undefined {
  const slash = rest.indexOf('/')
  if (slash !== 3 || !/^\d{3}$/.test(rest.slice(0, 3)) || rest[4] !== '?') return undefined
  return { status: Number(rest.slice(0, 3)), params: topicParams(rest.slice(5)) }
}

/** `&`-separated `name=value` parameters: first occurrence wins; `$`-names kept as sent, others lower-cased; values stay encoded. */
export function topicParams(text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of text.split('&')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const raw = part.slice(0, eq)
    const name = raw.startsWith('$') ? raw : raw.toLowerCase()
    if (!out.has(name)) out.set(name, part.slice(eq + 1))
  }
  return out
}
