/**
 * The IoT Hub device dialect's strings, as azure-iot-device-mqtt (and the C, Python and .NET
 * SDKs) write them, both ends of each (the server's codec and the device SDK use these):
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
 * | method request | `$iothub/methods/POST/{methodName}/?$rid={rid}` |
 * | method response | `$iothub/methods/res/{status}/?$rid={rid}` |
 * | subscriptions | `$iothub/twin/res/#`, `$iothub/twin/PATCH/properties/desired/#`, `$iothub/methods/POST/#`, `devices/{deviceId}/messages/devicebound/#` (Embedded C: `devices/+/messages/devicebound/#`); any filter is matched as MQTT defines it |
 */
import { percentDecode } from './percent.js'
import { MAX_RID_LENGTH, MAX_USERNAME_LENGTH, isPrintableRid, parseStatusTopic, topicParams, usernameParams } from './mqtt-dps-topics.js'
import { topicFilterCovers, topicFilterError } from './mqtt-topic-filter.js'

export const TWIN_RESPONSE_FILTER = '$iothub/twin/res/#'
export const TWIN_DESIRED_FILTER = '$iothub/twin/PATCH/properties/desired/#'
export const METHODS_FILTER = '$iothub/methods/POST/#'

/** The CONNECT username of a hub device (the device side of {@link parseHubUsername}). */
export function formatHubUsername(hostName: string, deviceId: string, apiVersion: string, clientType: string): string {
  return `${hostName}/${deviceId}/?api-version=${apiVersion}&DeviceClientType=${encodeURIComponent(clientType)}`
}

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
  const parsed = usernameParams(params.startsWith('?') ? params.slice(1) : params)
  if ('error' in parsed) return parsed
  const apiVersion = parsed.get('api-version')
  const clientType = parsed.get('deviceclienttype')
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
    const params = topicParams(rest.slice(1))
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
    const rid = topicParams(rest.slice(slash + 1).replace(/^\?/, '')).get('$rid')
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

/** The topic families the hub publishes to a device on. */
export type HubSubscriptionKind = 'twinResponse' | 'twinDesired' | 'methods' | 'cloudToDevice'

/** Each family's topic levels: fixed strings, `undefined` where the value varies. */
function hubTopicFamilies(deviceId: string): readonly (readonly [HubSubscriptionKind, readonly (string | undefined)[]])[] {
  return [
    ['twinResponse', ['$iothub', 'twin', 'res', undefined, undefined]],
    ['twinDesired', ['$iothub', 'twin', 'PATCH', 'properties', 'desired', undefined]],
    ['methods', ['$iothub', 'methods', 'POST', undefined, undefined]],
    ['cloudToDevice', ['devices', deviceId, 'messages', 'devicebound', undefined]],
  ]
}

/**
 * Which of the hub's topic families a SUBSCRIBE filter of `deviceId` receives, matched as MQTT
 * defines it: the SDKs' exact filters (`$iothub/twin/res/#`, `devices/{id}/messages/devicebound/#`,
 * …), the Embedded C SDK's `devices/+/messages/devicebound/#`, and any other valid filter inside
 * the hub's trees. Empty (the SUBACK says 0x80) for an invalid filter, one that starts with a
 * wildcard (IoT Hub serves its own trees, not `#`), or one no topic of the device matches.
 */
export function hubSubscriptionKinds(filter: string, deviceId: string): HubSubscriptionKind[] {
  if (topicFilterError(filter) !== undefined || filter.startsWith('+') || filter.startsWith('#')) return []
  return hubTopicFamilies(deviceId)
    .filter(([, pattern]) => topicFilterCovers(filter, pattern))
    .map(([kind]) => kind)
}

/** `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]` — `$rid` first, as every SDK parses it. */
export function formatTwinResponseTopic(status: number, rid: string, version?: number): string {
  return `$iothub/twin/res/${status}/?$rid=${rid}${version === undefined ? '' : `&$version=${version}`}`
}

/** `$iothub/methods/POST/{methodName}/?$rid={rid}`: a direct method call to a device. */
export function formatMethodRequestTopic(methodName: string, rid: string): string {
  return `$iothub/methods/POST/${methodName}/?$rid=${rid}`
}

const METHOD_POST = '$iothub/methods/POST/'

/** A direct method call as a device reads it (the device side of {@link formatMethodRequestTopic}); undefined when the topic is not one or has no name or `$rid`. */
export function parseMethodRequestTopic(topic: string): { methodName: string; rid: string } | undefined {
  if (!topic.startsWith(METHOD_POST)) return undefined
  const rest = topic.slice(METHOD_POST.length)
  const slash = rest.indexOf('/')
  const methodName = rest.slice(0, slash)
  const rid = slash < 0 || rest[slash + 1] !== '?' ? undefined : topicParams(rest.slice(slash + 2)).get('$rid')
  if (methodName === '' || rid === undefined || rid === '') return undefined
  return { methodName, rid }
}

/** `$iothub/methods/res/{status}/?$rid={rid}`: a device's answer to a direct method call (the device side of {@link parseHubRequestTopic}). */
export function formatMethodResponseTopic(status: number, rid: string): string {
  return `${METHOD_RES}${status}/?$rid=${rid}`
}

/** `$iothub/twin/PATCH/properties/desired/?$version={v}` */
export function formatDesiredTopic(version: number): string {
  return `${DESIRED_PREFIX}?$version=${version}`
}

/** The message that pushes a desired-property change (patch with `$version`) to a device. */
export function desiredPushMessage(patch: Record<string, unknown>, version: number): { readonly topic: string; readonly payload: string } {
  return { topic: formatDesiredTopic(version), payload: JSON.stringify(patch) }
}

const TWIN_RES_PREFIX = '$iothub/twin/res/'
const DESIRED_PREFIX = '$iothub/twin/PATCH/properties/desired/'

/** A twin response as a device reads it (the device side of {@link formatTwinResponseTopic}); undefined when it is not one. */
export function parseTwinResponseTopic(topic: string): { status: number; rid: string; version: number | undefined } | undefined {
  if (!topic.startsWith(TWIN_RES_PREFIX)) return undefined
  const parsed = parseStatusTopic(topic.slice(TWIN_RES_PREFIX.length))
  const rid = parsed?.params.get('$rid')
  if (parsed === undefined || rid === undefined) return undefined
  return { status: parsed.status, rid, version: versionOf(parsed.params.get('$version')) }
}

/** A desired-property push as a device reads it: its `$version` (undefined when absent), or undefined when the topic is not one. */
export function parseDesiredTopic(topic: string): { version: number | undefined } | undefined {
  if (!topic.startsWith(DESIRED_PREFIX)) return undefined
  const rest = topic.slice(DESIRED_PREFIX.length)
  return { version: versionOf(topicParams(rest.startsWith('?') ? rest.slice(1) : rest).get('$version')) }
}

function versionOf(text: string | undefined): number | undefined {
  return text !== undefined && /^\d{1,15}$/.test(text) ? Number(text) : undefined
}

/** The topic a device publishes a twin request on (the device side of {@link parseHubRequestTopic}). */
export function formatTwinRequestTopic(kind: 'twinGet' | 'reportedPatch', rid: string): string {
  return `${kind === 'twinGet' ? TWIN_GET : REPORTED}?$rid=${rid}`
}

/**
 * The telemetry topic of a message (the device side of {@link parseHubRequestTopic}): system
 * properties first, then application properties, each name and value percent-encoded.
 */
export function formatTelemetryTopic(deviceId: string, system: Readonly<Record<string, string | undefined>>, properties: Readonly<Record<string, string>> = {}): string {
  const parts: string[] = []
  for (const [k, v] of Object.entries(system)) if (v !== undefined) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
  for (const [k, v] of Object.entries(properties)) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
  return `devices/${deviceId}/messages/events/${parts.join('&')}`
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
