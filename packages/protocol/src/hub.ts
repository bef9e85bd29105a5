/**
 * IoT Hub wire vocabulary that Provisio speaks as a hub and as a client of hubs: the registry
 * REST shapes (api-version 2021-04-12, as azure-iothub sends and reads them), the registry API the
 * HTTP codec calls, and the HubGateway port through which the engine writes device identities to
 * any linked hub (docs/architecture.md §7).
 */
import { ProvisioError } from './errors.js'
import { validateDeviceId } from './registration-id.js'
import type { InitialTwin } from './models/index.js'
import type { DirectMethodCall, DirectMethodResult } from './direct-method.js'

// ---------------------------------------------------------------------------------------------
// Registry shapes

/** How a device authenticates to the hub. */
export type AuthenticationType = 'sas' | 'selfSigned' | 'certificateAuthority' | 'none'

export interface DeviceAuthentication {
  type: AuthenticationType
  symmetricKey?: { primaryKey: string | null; secondaryKey: string | null }
  x509Thumbprint?: { primaryThumbprint: string | null; secondaryThumbprint: string | null }
}

/** A device identity in the registry. */
export interface DeviceIdentity {
  deviceId: string
  generationId: string
  etag: string
  status: 'enabled' | 'disabled'
  statusReason?: string
  statusUpdatedTime: string
  connectionState: 'Connected' | 'Disconnected'
  connectionStateUpdatedTime: string
  lastActivityTime: string
  cloudToDeviceMessageCount: number
  authentication: DeviceAuthentication
  capabilities: { iotEdge: boolean }
  /**
   * IoT Edge: an Edge device's own scope (`ms-azure-iot-edge://{deviceId}-{generationId}`, set by
   * the hub), or for a leaf device the scope of its parent Edge device.
   */
  deviceScope?: string
  /** IoT Edge: the scope of the parent Edge device (at most one), as the hub sets it. */
  parentScopes?: string[]
}

/** A twin property section: user properties plus `$version`. */
export interface TwinProperties {
  [name: string]: unknown
  $version: number
}

/** A device twin. */
export interface DeviceTwin {
  deviceId: string
  etag: string
  version: number
  status: 'enabled' | 'disabled'
  authenticationType: AuthenticationType
  capabilities: { iotEdge: boolean }
  tags: Record<string, unknown>
  properties: { desired: TwinProperties; reported: TwinProperties }
}

/** A module identity of a device (api-version 2021-04-12 `Module`); it authenticates like a device. */
export interface ModuleIdentity {
  deviceId: string
  moduleId: string
  /** Who manages the module (IoT Edge writes `IotEdge`); free text the hub keeps. */
  managedBy?: string
  generationId: string
  etag: string
  connectionState: 'Connected' | 'Disconnected'
  connectionStateUpdatedTime: string
  lastActivityTime: string
  cloudToDeviceMessageCount: number
  authentication: DeviceAuthentication
}

/** A module twin: a device twin's shape plus the module id. */
export interface ModuleTwin extends DeviceTwin {
  moduleId: string
}

/** What a caller may set on a module identity. */
export interface ModuleSpec {
  readonly deviceId: string
  readonly moduleId: string
  readonly managedBy?: string
  readonly authentication: DeviceAuthentication
}

/** What a caller may set on a device identity. */
export interface DeviceSpec {
  readonly deviceId: string
  readonly status?: 'enabled' | 'disabled'
  readonly authentication: DeviceAuthentication
  readonly capabilities?: { readonly iotEdge: boolean }
  /** A leaf device's parent: the parent Edge device's scope, `''` for none (an Edge device's own scope is the hub's to set). */
  readonly deviceScope?: string
  /** An Edge device's parent: the scope of its parent Edge device (at most one). */
  readonly parentScopes?: readonly string[]
}

/**
 * A twin patch: tags and desired properties (what the service side may change). `null` for a
 * whole section clears it, as IoT Hub does (`{"tags": null}`, `{"properties": {"desired": null}}`).
 */
export interface TwinPatch {
  readonly tags?: Record<string, unknown> | null
  readonly properties?: { readonly desired?: Record<string, unknown> | null }
}

const SAS_KEY = /^[A-Za-z0-9+/]{22,86}={0,2}$/
const THUMBPRINT = /^(?:[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$/
const MAX_HUB_DEVICE_BODY_KEYS = 64

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function invalid(field: string, rule: string): ProvisioError {
  return new ProvisioError('VALIDATION_FAILED', `${field}: ${rule}`, { deviceMessage: `${field}: ${rule}`, info: { field, rule } })
}

/**
 * Validates a registry PUT body (`PUT /devices/{id}`). Empty key strings mean "generate"
 * (azure-iothub sends `''` for keys it leaves to the hub); thumbprints are SHA-1 or SHA-256 hex.
 * @param urlDeviceId the id in the URL, which the body must match when it names one
 */
export function validateDeviceSpec(json: unknown, urlDeviceId: string): DeviceSpec {
  if (!isObject(json)) throw invalid('(body)', 'must be a JSON object')
  if (Object.keys(json).length > MAX_HUB_DEVICE_BODY_KEYS) throw invalid('(body)', `must have at most ${MAX_HUB_DEVICE_BODY_KEYS} members`)
  const id = json.deviceId
  if (id !== undefined && id !== null && (typeof id !== 'string' || id.toLowerCase() !== urlDeviceId.toLowerCase())) {
    throw invalid('deviceId', 'must equal the device id in the URL')
  }
  const status = json.status ?? undefined
  if (status !== undefined && status !== 'enabled' && status !== 'disabled') throw invalid('status', 'must be "enabled" or "disabled"')
  const auth = json.authentication ?? { type: 'sas' }
  if (!isObject(auth)) throw invalid('authentication', 'must be an object')
  const type = auth.type ?? 'sas'
  if (type !== 'sas' && type !== 'selfSigned' && type !== 'certificateAuthority' && type !== 'none') {
    throw invalid('authentication.type', 'must be sas, selfSigned, certificateAuthority or none')
  }
  const out: DeviceAuthentication = { type }
  if (type === 'sas') {
    const sk = auth.symmetricKey ?? {}
    if (!isObject(sk)) throw invalid('authentication.symmetricKey', 'must be an object')
    const key = (name: 'primaryKey' | 'secondaryKey'): string | null => {
      const v = sk[name]
      if (v === undefined || v === null || v === '') return null
      if (typeof v !== 'string' || !SAS_KEY.test(v)) throw invalid(`authentication.symmetricKey.${name}`, 'must be base64 of 16 to 64 bytes')
      return v
    }
    out.symmetricKey = { primaryKey: key('primaryKey'), secondaryKey: key('secondaryKey') }
  }
  if (type === 'selfSigned') {
    const tp = auth.x509Thumbprint ?? {}
    if (!isObject(tp)) throw invalid('authentication.x509Thumbprint', 'must be an object')
    const thumb = (name: 'primaryThumbprint' | 'secondaryThumbprint'): string | null => {
      const v = tp[name]
      if (v === undefined || v === null || v === '') return null
      if (typeof v !== 'string' || !THUMBPRINT.test(v)) throw invalid(`authentication.x509Thumbprint.${name}`, 'must be a SHA-1 or SHA-256 hex thumbprint')
      return v.toUpperCase()
    }
    const primaryThumbprint = thumb('primaryThumbprint')
    if (primaryThumbprint === null) throw invalid('authentication.x509Thumbprint.primaryThumbprint', 'is required for selfSigned devices')
    out.x509Thumbprint = { primaryThumbprint, secondaryThumbprint: thumb('secondaryThumbprint') }
  }
  const caps = json.capabilities ?? undefined
  if (caps !== undefined && (!isObject(caps) || (caps.iotEdge !== undefined && typeof caps.iotEdge !== 'boolean'))) {
    throw invalid('capabilities.iotEdge', 'must be a boolean')
  }
  const deviceScope = json.deviceScope ?? undefined
  if (deviceScope !== undefined && (typeof deviceScope !== 'string' || deviceScope.length > MAX_SCOPE_LENGTH)) {
    throw invalid('deviceScope', `must be a string of at most ${MAX_SCOPE_LENGTH} characters (the parent Edge device's scope)`)
  }
  const parentScopes = json.parentScopes ?? undefined
  if (parentScopes !== undefined && (!Array.isArray(parentScopes) || parentScopes.length > 1 || parentScopes.some((p) => typeof p !== 'string' || p.length > MAX_SCOPE_LENGTH))) {
    throw invalid('parentScopes', 'must be an array of at most one Edge device scope')
  }
  return {
    deviceId: typeof id === 'string' ? id : urlDeviceId,
    authentication: out,
    ...(status === undefined ? {} : { status }),
    ...(caps === undefined ? {} : { capabilities: { iotEdge: (caps as { iotEdge?: boolean }).iotEdge === true } }),
    ...(deviceScope === undefined ? {} : { deviceScope }),
    ...(parentScopes === undefined ? {} : { parentScopes: (parentScopes as string[]).filter((p) => p !== '') }),
  }
}

const MAX_SCOPE_LENGTH = 256
const MAX_MANAGED_BY_LENGTH = 128

/**
 * Validates a module PUT body (`PUT /devices/{d}/modules/{m}`, azure-iothub `addModule` /
 * `updateModule`): ids, when present, must equal the URL's; authentication as for devices.
 */
export function validateModuleSpec(json: unknown, urlDeviceId: string, urlModuleId: string): ModuleSpec {
  if (!isObject(json)) throw invalid('(body)', 'must be a JSON object')
  if (Object.keys(json).length > MAX_HUB_DEVICE_BODY_KEYS) throw invalid('(body)', `must have at most ${MAX_HUB_DEVICE_BODY_KEYS} members`)
  const idError = validateDeviceId(urlModuleId, 'moduleId')
  if (idError) throw idError
  const moduleId = json.moduleId
  if (moduleId !== undefined && moduleId !== null && (typeof moduleId !== 'string' || moduleId.toLowerCase() !== urlModuleId.toLowerCase())) {
    throw invalid('moduleId', 'must equal the module id in the URL')
  }
  const managedBy = json.managedBy ?? undefined
  if (managedBy !== undefined && (typeof managedBy !== 'string' || managedBy.length > MAX_MANAGED_BY_LENGTH)) {
    throw invalid('managedBy', `must be a string of at most ${MAX_MANAGED_BY_LENGTH} characters`)
  }
  // The device part of the body follows the device rules (its id must match the URL's device).
  const device = validateDeviceSpec({ deviceId: json.deviceId, authentication: json.authentication }, urlDeviceId)
  return {
    deviceId: device.deviceId,
    moduleId: typeof moduleId === 'string' ? moduleId : urlModuleId,
    authentication: device.authentication,
    ...(managedBy === undefined || managedBy === '' ? {} : { managedBy: managedBy as string }),
  }
}

/**
 * Validates a twin PATCH/PUT body: only `tags` and `properties.desired` may be written by the
 * service; `null` for either section clears it.
 */
export function validateTwinPatch(json: unknown): TwinPatch {
  if (!isObject(json)) throw invalid('(body)', 'must be a JSON object')
  const tags = json.tags
  if (tags !== undefined && tags !== null && !isObject(tags)) throw invalid('tags', 'must be an object, or null to remove every tag')
  const props = json.properties ?? undefined
  if (props !== undefined && !isObject(props)) throw invalid('properties', 'must be an object')
  const desired = isObject(props) ? props.desired : undefined
  if (desired !== undefined && desired !== null && !isObject(desired)) throw invalid('properties.desired', 'must be an object, or null to remove every desired property')
  if (isObject(props) && props.reported !== undefined) throw invalid('properties.reported', 'is written by the device, not the service')
  return {
    ...(tags === undefined ? {} : { tags: tags as Record<string, unknown> | null }),
    ...(desired === undefined ? {} : { properties: { desired: desired as Record<string, unknown> | null } }),
  }
}

/** What one entry of a bulk registry request (`POST /devices`) does. */
export type BulkImportMode = 'create' | 'update' | 'updateIfMatchETag' | 'delete' | 'deleteIfMatchETag'

/** One entry of a bulk registry request. */
export interface BulkDeviceOperation {
  readonly mode: BulkImportMode
  readonly spec: DeviceSpec
  /** The etag the IfMatchETag modes compare. */
  readonly eTag?: string
}

/** Most entries in one bulk request (IoT Hub's limit; azure-iothub refuses more itself). */
export const MAX_BULK_DEVICES = 100

const IMPORT_MODES: ReadonlyMap<string, BulkImportMode> = new Map([
  ['create', 'create'],
  ['update', 'update'],
  ['updateifmatchetag', 'updateIfMatchETag'],
  ['delete', 'delete'],
  ['deleteifmatchetag', 'deleteIfMatchETag'],
])

/**
 * Validates a bulk registry body as azure-iothub's Registry.addDevices / updateDevices /
 * removeDevices send it: an array of 1-100 devices, each with `id` and `importMode` (create,
 * Update, UpdateIfMatchETag, Delete, DeleteIfMatchETag; any case) and, for the IfMatchETag modes,
 * `eTag`. A device id appears at most once.
 */
export function validateBulkDevices(json: unknown): BulkDeviceOperation[] {
  if (!Array.isArray(json) || json.length === 0 || json.length > MAX_BULK_DEVICES) {
    throw invalid('(body)', `must be an array of 1 to ${MAX_BULK_DEVICES} devices`)
  }
  const seen = new Set<string>()
  return json.map((entry: unknown, i) => {
    if (!isObject(entry)) throw invalid(`[${i}]`, 'must be a JSON object')
    // `eTag` is IoT Hub's name; a device object as azure-iothub reads it carries `etag`.
    const { id, importMode, eTag: upper, etag: lower, ...device } = entry
    const eTag = upper ?? lower
    if (typeof id !== 'string' || id === '') throw invalid(`[${i}].id`, 'must be the device id')
    if (seen.has(id.toLowerCase())) throw invalid(`[${i}].id`, `device ${JSON.stringify(id.slice(0, 128))} appears more than once`)
    seen.add(id.toLowerCase())
    const mode = typeof importMode === 'string' ? IMPORT_MODES.get(importMode.toLowerCase()) : undefined
    if (mode === undefined) throw invalid(`[${i}].importMode`, 'must be create, Update, UpdateIfMatchETag, Delete or DeleteIfMatchETag')
    if (eTag !== undefined && eTag !== null && typeof eTag !== 'string') throw invalid(`[${i}].eTag`, 'must be a string')
    if (mode.endsWith('IfMatchETag') && (typeof eTag !== 'string' || eTag === '')) throw invalid(`[${i}].eTag`, `is required for importMode ${importMode as string}`)
    const spec = validateDeviceSpec({ ...device, deviceId: id }, id)
    return { mode, spec, ...(typeof eTag === 'string' && eTag !== '' ? { eTag } : {}) }
  })
}

/** The outcome of one bulk entry: `error` when it failed (the others still ran). */
export interface BulkDeviceOutcome {
  readonly deviceId: string
  readonly error?: ProvisioError
}

// ---------------------------------------------------------------------------------------------
// The registry API (what the HTTP codec calls for /devices and /twins)

/** Rights of hub shared access policies (access.ts has the table of the default policies). */
export type HubPermission = 'RegistryRead' | 'RegistryWrite' | 'ServiceConnect' | 'DeviceConnect'

/** One device-to-cloud message the embedded hub kept (GET /devices/{id}/messages/events). */
export interface HubTelemetryMessage {
  /** Per-device sequence number, 1 upwards, in arrival order (gaps show messages dropped). */
  readonly sequenceNumber: number
  /** Arrival time (ISO 8601, UTC). */
  readonly enqueuedTimeUtc: string
  /** Application properties from the topic, percent-decoded. */
  readonly properties: Readonly<Record<string, string>>
  /** System properties from the topic (`$.mid`, `$.cid`, `$.ct`, `$.ce`, …), percent-decoded. */
  readonly systemProperties: Readonly<Record<string, string>>
  /** The payload: UTF-8 text when it decodes as such, else base64 with `bodyEncoding: 'base64'`. */
  readonly body: string
  readonly bodyEncoding: 'utf-8' | 'base64'
  /** Payload size in bytes. */
  readonly size: number
}

/** A read of a device's telemetry: the messages after a sequence number, and the losses so far. */
export interface HubTelemetryPage {
  readonly deviceId: string
  readonly messages: readonly HubTelemetryMessage[]
  /** Messages dropped (oldest first) because the device's buffer was full. */
  readonly dropped: number
  /** Sequence number of the newest message received (0: none yet). */
  readonly lastSequenceNumber: number
}

/** The registry REST API of the hubs this server embeds. Refusals throw ProvisioError. */
export interface HubRegistryApi {
  /** Checks a hub service token (`sr={hub host}`, `skn={policy}`); returns the hub's host name. */
  authorizeHub(token: string, permission: HubPermission): string
  createDevice(hub: string, spec: DeviceSpec): Promise<DeviceIdentity>
  /** Replaces a device (`If-Match` required by the SDK: `*` or its etag). */
  updateDevice(hub: string, spec: DeviceSpec, ifMatch: string): Promise<DeviceIdentity>
  getDevice(hub: string, deviceId: string): Promise<DeviceIdentity>
  deleteDevice(hub: string, deviceId: string, ifMatch?: string): Promise<void>
  listDevices(hub: string, top: number): Promise<DeviceIdentity[]>
  /** Creates, updates or deletes up to 100 devices, one after the other; every entry is tried. */
  bulkDevices(hub: string, operations: readonly BulkDeviceOperation[]): Promise<BulkDeviceOutcome[]>
  getTwin(hub: string, deviceId: string): Promise<DeviceTwin>
  updateTwin(hub: string, deviceId: string, patch: TwinPatch, options: { ifMatch?: string; replace: boolean }): Promise<DeviceTwin>
  /** Creates a module of an existing device (CONFLICT when it exists, NOT_FOUND without the device). */
  createModule(hub: string, spec: ModuleSpec): Promise<ModuleIdentity>
  /** Replaces a module (`If-Match`: `*` or its etag). */
  updateModule(hub: string, spec: ModuleSpec, ifMatch: string): Promise<ModuleIdentity>
  getModule(hub: string, deviceId: string, moduleId: string): Promise<ModuleIdentity>
  /** The modules of a device, in module id order. */
  listModules(hub: string, deviceId: string): Promise<ModuleIdentity[]>
  deleteModule(hub: string, deviceId: string, moduleId: string, ifMatch?: string): Promise<void>
  getModuleTwin(hub: string, deviceId: string, moduleId: string): Promise<ModuleTwin>
  updateModuleTwin(hub: string, deviceId: string, moduleId: string, patch: TwinPatch, options: { ifMatch?: string; replace: boolean }): Promise<ModuleTwin>
  /** Telemetry the device sent, after sequence number `after` (0: from the oldest kept), at most `limit`. */
  readTelemetry(hub: string, deviceId: string, options: { after: number; limit: number }): Promise<HubTelemetryPage>
  /**
   * Invokes a direct method on a device and answers with the device's status and payload
   * (DEVICE_NOT_ONLINE, GATEWAY_TIMEOUT, NOT_FOUND otherwise). The call is dropped when
   * `abandoned` settles first (the caller went away).
   */
  invokeMethod(hub: string, deviceId: string, call: DirectMethodCall, abandoned?: Promise<void>): Promise<DirectMethodResult>
  /**
   * Drops the device's cloud-to-device queue (`DELETE /devices/{id}/commands`); NOT_FOUND for an
   * unknown device. Absent when the server keeps no queues.
   */
  purgeCloudToDeviceQueue?(hub: string, deviceId: string): Promise<{ readonly deviceId: string; readonly moduleId: null; readonly totalMessagesPurged: number }>
}

// ---------------------------------------------------------------------------------------------
// The device side (what the MQTT codec's hub session calls)

/** What the hub answers a device with; ProvisioErrors thrown say why (their HTTP status picks the code). */
export interface HubDeviceApi {
  /**
   * Admits a device to the hub named in its username (or refuses it, throwing). Returns the
   * canonical hub host name and device id, and when its credentials expire (a SAS token's `se`):
   * the session closes the connection then, as IoT Hub does.
   */
  authenticate(request: {
    readonly hostName: string
    readonly deviceId: string
    readonly sasToken?: string
    readonly clientCertificates?: readonly Uint8Array[]
  }): Promise<{ readonly hostName: string; readonly deviceId: string; readonly expiresAtMs?: number }>
  /** The twin's properties as a device reads them: `{ desired, reported }`, each with `$version`. */
  getTwin(hostName: string, deviceId: string): Promise<{ readonly desired: Record<string, unknown>; readonly reported: Record<string, unknown> }>
  /** Merge-patches reported properties; returns the new reported `$version`. */
  patchReported(hostName: string, deviceId: string, patch: Record<string, unknown>): Promise<number>
  /**
   * Stores one telemetry message; a transport acknowledges it (PUBACK, disposition, 204) only
   * once the returned promise resolves (stored durably), never when it rejects.
   */
  telemetry(hostName: string, deviceId: string, message: { readonly body: Uint8Array; readonly properties: Record<string, string>; readonly systemProperties: Record<string, string> }): void | Promise<void>
}

/** A QoS 1 message for a device (a desired-property push, later a C2D message), kept until the device acknowledges it. */
export interface HubQueuedMessage {
  readonly topic: string
  readonly payload: string
}

/**
 * The MQTT session of a hub device (MQTT 3.1.1 §3.1.2.4): what a connection with clean session 0
 * leaves for the next one, as IoT Hub keeps it. The connection that {@link HubSessionStore.open}ed
 * it reads and changes it in place while it is the `owner`.
 */
export interface HubMqttSessionState {
  /** Topic filters the device subscribed to, with the QoS granted. */
  readonly subscriptions: Map<string, 0 | 1>
  /** QoS 1 messages sent and not yet acknowledged, by packet identifier, oldest first: sent again (DUP) on the next connection. */
  readonly unacknowledged: Map<number, HubQueuedMessage>
  /** QoS 1 messages waiting to be sent (no connection, or too many unacknowledged), oldest first. */
  readonly queued: HubQueuedMessage[]
  /** Messages dropped because the queue was full. */
  dropped: number
  /** The connection using the session now; undefined between connections. */
  owner: object | undefined
}

/** Queues a message in a session, dropping (and counting) the oldest beyond `maxQueued`. */
export function enqueueHubMessage(state: HubMqttSessionState, message: HubQueuedMessage, maxQueued: number): void {
  state.queued.push(message)
  while (state.queued.length > maxQueued) {
    state.queued.shift()
    state.dropped++
  }
}

/** A new, empty session. */
export function newHubSessionState(owner: object | undefined): HubMqttSessionState {
  return { subscriptions: new Map(), unacknowledged: new Map(), queued: [], dropped: 0, owner }
}

/** A session handed to a new connection; `present` is CONNACK's session-present flag. */
export interface HubSessionOpened {
  readonly state: HubMqttSessionState
  readonly present: boolean
}

/**
 * Where hub MQTT sessions live between connections. The MQTT codec opens a device's session once
 * its CONNECT is admitted and closes it when the connection ends. May be asynchronous, so that
 * queued messages can come from a database.
 */
export interface HubSessionStore {
  /**
   * The device's session for a new connection, which becomes its owner: the kept one
   * (`present: true`) for clean session 0, else a new empty one (a kept one is discarded).
   */
  open(hostName: string, deviceId: string, clean: boolean, owner: object): HubSessionOpened | Promise<HubSessionOpened>
  /** The owner's connection ended: a clean session is forgotten, a persistent one kept for the next connection. */
  close(hostName: string, deviceId: string, owner: object): void
}

// ---------------------------------------------------------------------------------------------
// The engine's port to hubs

/** A linked IoT hub as the gateway needs it: where it is and how to sign requests to it. */
export interface HubTarget {
  readonly hostName: string
  readonly connectionString: string
}

/** How the hub authenticates the device (the same credentials it proved to DPS, §2.2, §6). */
export type HubDeviceAuth =
  | { readonly type: 'sas'; readonly primaryKey: string; readonly secondaryKey: string }
  | { readonly type: 'selfSigned'; readonly thumbprints: { readonly primary: string; readonly secondary?: string } }
  | { readonly type: 'certificateAuthority' }

/** Device twin, as far as provisioning reads and writes it. */
export interface Twin {
  tags?: Record<string, unknown>
  properties?: { desired?: Record<string, unknown>; reported?: Record<string, unknown> }
}

/** Arguments of HubGateway.createOrUpdateDevice. */
export interface HubDeviceSpec {
  readonly hub: HubTarget
  readonly deviceId: string
  readonly auth: HubDeviceAuth
  readonly iotEdge: boolean
  /** Twin to apply on creation or reset (tags + desired properties), from the enrollment or the webhook. */
  readonly initialTwin?: InitialTwin
  /** Twin carried over from the previous hub on migration (tags + desired properties). */
  readonly migratedTwin?: Twin
  /**
   * The caller knows of no identity for this device on this hub (its registration record names
   * none): a gateway may try the create first and fall back to an update when one exists anyway.
   * A hint for fewer store round trips; the outcome is the same either way.
   */
  readonly expectNew?: boolean
}

/**
 * The engine's only way to touch IoT hubs (docs/architecture.md §7). Every call must be idempotent: an
 * operation taken over after a crash repeats them.
 */
export interface HubGateway {
  /** Creates the device identity or replaces its auth/capabilities; applies the twin if one is given. */
  createOrUpdateDevice(spec: HubDeviceSpec): Promise<void>
  /** The device's twin, or undefined when the device does not exist on that hub. */
  getTwin(args: { readonly hub: HubTarget; readonly deviceId: string }): Promise<Twin | undefined>
  /** Removes the identity; succeeds when it does not exist. */
  deleteDevice(args: { readonly hub: HubTarget; readonly deviceId: string }): Promise<void>
}
