/**
 * The DPS MQTT dialect's strings (docs/protocol.md §3): the CONNECT username, the request topics
 * a device publishes to, and the response topics we publish on.
 *
 * | string | shape |
 * |---|---|
 * | username | `{idScope}/registrations/{registrationId}/api-version={V}[&ClientVersion={urlenc(UA)}]` |
 * | subscription | `$dps/registrations/res/#` (the only filter DPS serves) |
 * | register | `$dps/registrations/PUT/iotdps-register/?$rid={rid}` |
 * | poll | `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={opId}` |
 * | response | `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]` — `$rid` first (§3, §10 item 2) |
 */
import { percentDecode } from '@provisio/protocol'

/** The one topic filter a DPS device may subscribe to (§3 flow step 1). */
export const DPS_RESPONSE_FILTER = '$dps/registrations/res/#'

const REGISTER_PREFIX = '$dps/registrations/PUT/iotdps-register/'
const POLL_PREFIX = '$dps/registrations/GET/iotdps-get-operationstatus/'

/** Longest username accepted: scope (11) + id (128) + api-version + a client version string. */
export const MAX_USERNAME_LENGTH = 1024
/** Longest `$rid` echoed back (UUIDs are 36; C and .NET send integers). */
export const MAX_RID_LENGTH = 128

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
    for (const part of tail.split('&')) {
      if (part === '') continue
      const eq = part.indexOf('=')
      const name = (eq < 0 ? part : part.slice(0, eq)).toLowerCase()
      const raw = eq < 0 ? '' : part.slice(eq + 1)
      const value = percentDecode(raw)
      if (value === undefined) return { error: `username parameter ${JSON.stringify(name.slice(0, 40))} has a broken percent-encoding` }
      if (name === 'api-version') apiVersion = value
      else if (name === 'clientversion') clientVersion = value
    }
  }
  return {
    idScope,
    registrationId,
    ...(apiVersion === undefined ? {} : { apiVersion }),
    ...(clientVersion === undefined ? {} : { clientVersion }),
  }
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
  let rid: string | undefined
  let operationId: string | undefined
  for (const part of rest.slice(1).split('&')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const name = part.slice(0, eq)
    const value = part.slice(eq + 1)
    if (name === '$rid' && rid === undefined) rid = value
    else if (name.toLowerCase() === 'operationid' && operationId === undefined) operationId = percentDecode(value) ?? ''
  }
  if (rid === undefined || rid === '') return { error: `${kind} topic carries no $rid` }
  if (rid.length > MAX_RID_LENGTH || !isPrintableRid(rid)) {
    return { error: `$rid must be 1-${MAX_RID_LENGTH} printable characters without "&", "/", "#" or "+"` }
  }
  if (kind === 'register') return { kind, rid }
  if (operationId === undefined || operationId === '') return { error: 'operation-status topic carries no operationId', rid }
  return { kind, rid, operationId }
}

/** `$rid` goes back into a topic name: keep out wildcards, separators and control characters. */
function isPrintableRid(rid: string): boolean {
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
