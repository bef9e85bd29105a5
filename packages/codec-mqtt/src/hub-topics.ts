/**
 * The IoT Hub device dialect's strings, as azure-iot-device-mqtt (and the C, Python and .NET
 * SDKs) write them:
 *
 * | string | shape |
 * |---|---|
 * | username | `{hubHostName}/{deviceId}/?api-version={V}&DeviceClientType={urlenc(UA)}[&model-id=…]` (the Node SDK omits the `?`) |
 * | clientId | `{deviceId}` (`{deviceId}/{moduleId}` for modules, not served here) |
 * | telemetry | `devices/{deviceId}/messages/events/[{urlenc props: k=v&…, system props $.mid, $.cid, $.ct, $.ce, …}]` |
 * | twin GET | `$iothub/twin/GET/?$rid={rid}` |
 * | reported patch | `$iothub/twin/PATCH/properties/reported/?$rid={rid}[&$version={v}]` |
 * | twin response | `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]` |
 * | desired push | `$iothub/twin/PATCH/properties/desired/?$version={v}` |
 * | method response | `$iothub/methods/res/{status}/?$rid={rid}` |
 * | subscriptions | `$iothub/twin/res/#`, `$iothub/twin/PATCH/properties/desired/#`, `$iothub/methods/POST/#`, `devices/{deviceId}/messages/devicebound/#` |
 */
import { percentDecode } from '@provisio/protocol'
import { MAX_RID_LENGTH, MAX_USERNAME_LENGTH } from './dps-topics.js'

export const TWIN_RESPONSE_FILTER = '$iothub/twin/res/#'
export const TWIN_DESIRED_FILTER = '$iothub/twin/PATCH/properties/desired/#'
export const METHODS_FILTER = '$iothub/methods/POST/#'

/** What a hub CONNECT username says. */
export interface HubUsername {
  /** The hub host name the device believes it talks to (the SAS `sr` is signed over it). */
  readonly hostName: string
  readonly deviceId: string
  /** Set for module identities (`{host}/{deviceId}/{moduleId}/…`). */
  readonly moduleId?: string
  readonly apiVersion?: string
  /** `DeviceClientType`, percent-decoded (the SDK's user agent), for logs. */
  readonly clientType?: string
}

/** A username that does not follow the hub shape; `error` names the broken rule. */
export interface HubUsernameError {
  readonly error: string
}

/**
 * Parses a hub CONNECT username. The parameters start after the segment that contains `=` (or
 * begins with `?`); before it come the host name, the device id and, for modules, the module id.
 */
export function parseHubUsername(username: string): HubUsername | HubUsernameError {
  if (username.length > MAX_USERNAME_LENGTH) return { error: `username is ${username.length} characters, over the limit of ${MAX_USERNAME_LENGTH}` }
  const segments = username.split('/')
  const names: string[] = []
  let params = ''
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!
    if (s.startsWith('?') || s.includes('=')) {
      params = segments.slice(i).join('/')
      break
    }
    names.push(s)
  }
  // A trailing "/" before the parameters ("host/dev/?api-version") leaves an empty last name.
  while (names.length > 0 && names[names.length - 1] === '' && names.length > 2) names.pop()
  if (names.length < 2 || names.length > 3 || names[0] === '' || names[1] === '' || names[2] === '') {
    return { error: 'username must be {hubHostName}/{deviceId}/?api-version=… (IoT Hub MQTT)' }
  }
  let apiVersion: string | undefined
  let clientType: string | undefined
  if (params.startsWith('?')) params = params.slice(1)
  for (const part of params.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const name = (eq < 0 ? part : part.slice(0, eq)).toLowerCase()
    const value = percentDecode(eq < 0 ? '' : part.slice(eq + 1))
    if (value === undefined) return { error: `username parameter ${JSON.stringify(name.slice(0, 40))} has a broken percent-encoding` }
    if (name === 'api-version') apiVersion = value
    else if (name === 'deviceclienttype') clientType = value
  }
  return {
    hostName: names[0]!,
    deviceId: names[1]!,
    ...(names[2] === undefined ? {} : { moduleId: names[2] }),
    ...(apiVersion === undefined ? {} : { apiVersion }),
    ...(clientType === undefined ? {} : { clientType }),
  }
}

/** A PUBLISH of a device. */
export type HubRequestTopic =
  | { readonly kind: 'telemetry'; readonly deviceId: string; readonly properties: Record<string, string>; readonly systemProperties: Record<string, string> }
  | { readonly kind: 'twinGet'; readonly rid: string }
  | { readonly kind: 'reportedPatch'; readonly rid: string; readonly version?: number }
  | { readonly kind: 'methodResponse'; readonly rid: string; readonly status: number }

/** Why a topic is not served; `rid` is set when the error can be answered on the twin response topic. */
export interface HubTopicError {
  readonly error: string
  readonly rid?: string
}

const TWIN_GET = '$iothub/twin/GET/'
const REPORTED = '$iothub/twin/PATCH/properties/reported/'
const METHOD_RES = '$iothub/methods/res/'
const MAX_PROPERTIES = 64

/** Parses a device's PUBLISH topic. */
export function parseHubRequestTopic(topic: string): HubRequestTopic | HubTopicError {
  if (topic.startsWith('devices/')) return parseTelemetry(topic)
  if (topic.startsWith(TWIN_GET) || topic.startsWith(REPORTED)) {
    const isGet = topic.startsWith(TWIN_GET)
    const rest = topic.slice((isGet ? TWIN_GET : REPORTED).length)
    const what = isGet ? 'twin GET' : 'reported-properties PATCH'
    if (!rest.startsWith('?')) return { error: `${what} topic has no "?" before its parameters` }
    const params = queryParams(rest.slice(1))
    const rid = params.get('$rid')
    if (rid === undefined || rid === '') return { error: `${what} topic carries no $rid` }
    if (!isPrintableRid(rid)) return { error: `$rid must be 1-${MAX_RID_LENGTH} printable characters without "&", "/", "#" or "+"` }
    if (isGet) return { kind: 'twinGet', rid }
    const versionText = params.get('$version')
    if (versionText === undefined) return { kind: 'reportedPatch', rid }
    const version = Number(versionText)
    if (!Number.isSafeInteger(version) || version < 0) return { error: `$version ${JSON.stringify(versionText.slice(0, 20))} is not a non-negative integer`, rid }
    return { kind: 'reportedPatch', rid, version }
  }
  if (topic.startsWith(METHOD_RES)) {
    const rest = topic.slice(METHOD_RES.length)
    const slash = rest.indexOf('/')
    const status = Number(rest.slice(0, slash))
    const rid = queryParams(rest.slice(slash + 1).replace(/^\?/, '')).get('$rid')
    if (slash < 0 || !Number.isInteger(status) || rid === undefined || rid === '') return { error: 'method response topic must be $iothub/methods/res/{status}/?$rid={rid}' }
    return { kind: 'methodResponse', rid, status }
  }
  return { error: `topic ${JSON.stringify(topic.slice(0, 80))} is not one a device may publish to (telemetry, twin GET, reported PATCH, method response)` }
}

function parseTelemetry(topic: string): HubRequestTopic | HubTopicError {
  // devices/{deviceId}/messages/events/{properties}
  const second = topic.indexOf('/', 'devices/'.length)
  const deviceId = second < 0 ? '' : topic.slice('devices/'.length, second)
  const tail = second < 0 ? '' : topic.slice(second + 1)
  let props: string
  if (tail.startsWith('messages/events/')) props = tail.slice('messages/events/'.length)
  else if (tail === 'messages/events') props = ''
  else return { error: `topic ${JSON.stringify(topic.slice(0, 80))} is not devices/{deviceId}/messages/events/ (modules and other paths are not served)` }
  if (deviceId === '') return { error: 'telemetry topic names no device' }
  const properties: Record<string, string> = {}
  const systemProperties: Record<string, string> = {}
  let count = 0
  for (const part of props.split('&')) {
    if (part === '') continue
    if (++count > MAX_PROPERTIES) return { error: `telemetry topic carries more than ${MAX_PROPERTIES} properties` }
    const eq = part.indexOf('=')
    const name = percentDecode(eq < 0 ? part : part.slice(0, eq))
    // The Node SDK encodes with querystring ("+" never appears; a space is %20); decode strictly.
    const value = percentDecode(eq < 0 ? '' : part.slice(eq + 1))
    if (name === undefined || value === undefined || name === '') return { error: `telemetry property ${JSON.stringify(part.slice(0, 40))} has a broken percent-encoding or no name` }
    if (name.startsWith('$.') || name.startsWith('iothub-')) systemProperties[name] = value
    else properties[name] = value
  }
  return { kind: 'telemetry', deviceId: percentDecode(deviceId) ?? deviceId, properties, systemProperties }
}

/** `&`-separated parameters; the first occurrence of a name wins; values stay encoded. */
function queryParams(text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of text.split('&')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const name = part.slice(0, eq)
    if (!out.has(name)) out.set(name, part.slice(eq + 1))
  }
  return out
}

function isPrintableRid(rid: string): boolean {
  if (rid.length > MAX_RID_LENGTH) return false
  for (let i = 0; i < rid.length; i++) {
    const c = rid.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f || c === 0x26 || c === 0x2f || c === 0x23 || c === 0x2b) return false
  }
  return true
}

/** Whether a SUBSCRIBE filter is one the hub serves to `deviceId`, and which. */
export function hubSubscriptionOf(filter: string, deviceId: string): 'twinResponse' | 'twinDesired' | 'methods' | 'cloudToDevice' | undefined {
  if (filter === TWIN_RESPONSE_FILTER) return 'twinResponse'
  if (filter === TWIN_DESIRED_FILTER) return 'twinDesired'
  if (filter === METHODS_FILTER) return 'methods'
  const prefix = 'devices/'
  const suffix = '/messages/devicebound/#'
  if (filter.startsWith(prefix) && filter.endsWith(suffix)) {
    const id = filter.slice(prefix.length, filter.length - suffix.length)
    if ((percentDecode(id) ?? id).toLowerCase() === deviceId.toLowerCase()) return 'cloudToDevice'
  }
  return undefined
}

/** `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]` — `$rid` first, as every SDK parses it. */
export function formatTwinResponseTopic(status: number, rid: string, version?: number): string {
  return `$iothub/twin/res/${status}/?$rid=${rid}${version === undefined ? '' : `&$version=${version}`}`
}

/** `$iothub/twin/PATCH/properties/desired/?$version={v}` */
export function formatDesiredTopic(version: number): string {
  return `$iothub/twin/PATCH/properties/desired/?$version=${version}`
}

/**
 * Which dialect a CONNECT speaks, by its username: a host name that names an embedded hub means
 * the hub; else `{idScope}/registrations/…` means DPS; anything else goes to the hub dialect,
 * whose session then refuses it with the reason. No username: DPS (which refuses it).
 */
export function mqttDialectOf(username: string | undefined, isHubHost: (hostName: string) => boolean): 'dps' | 'hub' {
  if (username === undefined) return 'dps'
  const segments = username.split('/', 3)
  if (segments.length >= 2 && isHubHost(segments[0]!)) return 'hub'
  if (segments.length >= 2 && segments[1]!.toLowerCase() === 'registrations') return 'dps'
  return 'hub'
}
