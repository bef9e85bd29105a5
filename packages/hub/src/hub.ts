/**
 * The embedded IoT hub's registry: device identities and their twins, with ETags and twin
 * versions as IoT Hub keeps them. Pure: the clock, randomness and store come in as ports.
 *
 * Semantics follow the IoT Hub service REST API (api-version 2021-04-12):
 * - device ids are case-insensitive for lookup and keep the casing they were created with;
 * - every write to an identity mints a new `etag`; `generationId` is fixed at creation;
 * - a twin has its own `etag` and a `version` that counts every twin change; each property
 *   section keeps its own `$version`;
 * - twin updates are JSON merge patches (RFC 7396): `null` removes a property.
 */
import { base64Encode, base64UrlEncode } from '@provisio/crypto'
import { ProvisioError, etagMatches, formatDpsTimestamp, validateDeviceId } from '@provisio/protocol'
import type { AuthenticationType, DeviceAuthentication, DeviceIdentity, DeviceSpec, DeviceTwin, ModuleIdentity, ModuleSpec, ModuleTwin, TwinPatch } from '@provisio/protocol'
import type { HubDeviceRecord, HubModuleRecord, HubStore, HubWriteCondition } from './types.js'

/** Ports of a hub. */
export interface HubPorts {
  readonly store: HubStore
  readonly clock: { now(): number }
  readonly random: { bytes(n: number): Uint8Array }
}

const LIST_LIMIT_MAX = 1000
/**
 * Modules one device may have. Ours: every module lives in its device's record, so the record (and
 * each write of it) stays bounded; IoT Edge deployments, the main user of modules, also stop at 50.
 */
export const MAX_MODULES_PER_DEVICE = 50
/** Conditional writes tried before a contended record is reported as unavailable. */
const MAX_WRITE_ATTEMPTS = 16

/**
 * A change of a device's desired properties, as the hub pushes it to a connected device
 * (`$iothub/twin/PATCH/properties/desired/?$version={version}`): `patch` is the merge patch
 * that was applied (null removes a property), or the whole desired document when the service
 * replaced it; it always carries `$version`.
 */
export interface DesiredChange {
  readonly hostName: string
  readonly deviceId: string
  readonly version: number
  readonly patch: Record<string, unknown>
}

/** A device identity was disabled or deleted: connections it holds should end. */
export interface IdentityRevoked {
  readonly hostName: string
  readonly deviceId: string
  readonly why: 'disabled' | 'deleted'
}

/** One embedded hub. */
export class EmbeddedHub {
  readonly #desiredListeners = new Set<(change: DesiredChange) => void>()
  readonly #revokedListeners = new Set<(event: IdentityRevoked) => void>()
  /** Per record key: the end of the queue of writers waiting for their turn. */
  readonly #turns = new Map<string, Promise<void>>()

  constructor(
    readonly hostName: string,
    private readonly ports: HubPorts,
  ) {}

  /**
   * Subscribes to desired-property changes written through this object (the registry API, the
   * in-process gateway, provisioning). In-process only: with several instances on one database,
   * an instance sees the changes it wrote itself. Returns the unsubscribe function.
   */
  onDesiredChange(listener: (change: DesiredChange) => void): () => void {
    this.#desiredListeners.add(listener)
    return () => void this.#desiredListeners.delete(listener)
  }

  /** Subscribes to identities disabled or deleted through this object (in-process, like desired changes). */
  onIdentityRevoked(listener: (event: IdentityRevoked) => void): () => void {
    this.#revokedListeners.add(listener)
    return () => void this.#revokedListeners.delete(listener)
  }

  #emitRevoked(event: IdentityRevoked): void {
    for (const listener of this.#revokedListeners) {
      try {
        listener(event)
      } catch {
        // As for desired changes: the write stands, the other listeners still hear of it.
      }
    }
  }

  /** Tells listeners of a desired change: `patch` is what the device is pushed (with `$version`). */
  #emitDesired(twin: DeviceTwin, patch: Record<string, unknown> | undefined): void {
    if (patch === undefined || this.#desiredListeners.size === 0) return
    const change: DesiredChange = { hostName: this.hostName, deviceId: twin.deviceId, version: twin.properties.desired.$version, patch }
    for (const listener of this.#desiredListeners) {
      try {
        listener(change)
      } catch {
        // A listener's failure is its own; the write has happened and other listeners still hear of it.
      }
    }
  }

  /**
   * Creates the identity, or replaces its status, authentication and capabilities (idempotent).
   * `twin` applies tags and desired properties in the same write: merged into a new device's
   * twin, and replacing them on an existing one when `replaceTwin` is set (provisioning: the
   * enrollment's initial twin, or the twin migrated from the previous hub).
   */
  async createOrUpdateDevice(
    spec: DeviceSpec,
    options: {
      ifMatch?: string
      ifNoneMatch?: boolean
      twin?: TwinPatch
      replaceTwin?: boolean
      /** The caller expects no identity yet: the first attempt creates without reading (one store call when right). */
      expectNew?: boolean
    } = {},
  ): Promise<DeviceIdentity> {
    const idError = validateDeviceId(spec.deviceId)
    if (idError) throw idError
    const key = spec.deviceId.toLowerCase()
    // The Edge devices a scope in the spec names, read before the write (the parent must exist).
    const named = new Map<string, DeviceIdentity | undefined>()
    for (const scope of [spec.deviceScope, ...(spec.parentScopes ?? [])]) {
      const parent = scope === undefined || scope === '' ? undefined : parseEdgeScope(scope)
      if (parent !== undefined && parent.deviceId.toLowerCase() !== key) named.set(scope!, await this.getDevice(parent.deviceId))
    }
    return this.#readModifyWrite(key, `device ${spec.deviceId}`, options.expectNew === true && options.ifMatch === undefined, (existing) => {
      const now = this.#now()
      // Registry semantics: create refuses an existing id (409), update needs an existing one (404).
      if (options.ifNoneMatch === true && existing !== undefined) {
        throw new ProvisioError('CONFLICT', `device ${JSON.stringify(spec.deviceId)} already exists on hub ${this.hostName}`)
      }
      if (options.ifMatch !== undefined && existing === undefined) {
        throw new ProvisioError('NOT_FOUND', `device ${JSON.stringify(spec.deviceId)} does not exist on hub ${this.hostName}`)
      }
      checkIfMatch(options.ifMatch, existing?.device.etag, `device ${spec.deviceId}`)
      const status = spec.status ?? existing?.device.status ?? 'enabled'
      const authentication = normaliseAuth(spec.authentication, this.ports.random)
      const iotEdge = spec.capabilities?.iotEdge ?? existing?.device.capabilities.iotEdge ?? false
      const deviceId = existing?.device.deviceId ?? spec.deviceId
      const generationId = existing?.device.generationId ?? this.#generationId()
      const scopes = this.#scopesOf(spec, deviceId, generationId, iotEdge, existing?.device, named)
      const device: DeviceIdentity = {
        deviceId,
        generationId,
        etag: this.#etag(),
        status,
        statusUpdatedTime: existing !== undefined && existing.device.status === status ? existing.device.statusUpdatedTime : now,
        connectionState: existing?.device.connectionState ?? 'Disconnected',
        connectionStateUpdatedTime: existing?.device.connectionStateUpdatedTime ?? '0001-01-01T00:00:00Z',
        lastActivityTime: existing?.device.lastActivityTime ?? '0001-01-01T00:00:00Z',
        cloudToDeviceMessageCount: existing?.device.cloudToDeviceMessageCount ?? 0,
        authentication,
        capabilities: { iotEdge },
        ...scopes,
      }
      const twin: DeviceTwin = existing?.twin ?? {
        deviceId: device.deviceId,
        etag: this.#etag(),
        version: 1,
        status,
        authenticationType: authentication.type,
        capabilities: { iotEdge },
        tags: {},
        properties: { desired: { $version: 1 }, reported: { $version: 1 } },
      }
      twin.status = status
      twin.authenticationType = authentication.type
      twin.capabilities = { iotEdge }
      const replace = existing !== undefined && options.replaceTwin === true
      const applied = options.twin === undefined ? undefined : this.#applyTwinPatch(twin, options.twin, replace)
      const after = () => {
        if (existing !== undefined) this.#emitDesired(twin, applied?.desiredPush)
        if (status !== 'enabled') this.#emitRevoked({ hostName: this.hostName, deviceId: device.deviceId, why: 'disabled' })
      }
      // Modules belong to the device and outlive changes to its identity.
      const modules = existing?.modules === undefined ? {} : { modules: existing.modules, ...(existing.modulesEtag === undefined ? {} : { modulesEtag: existing.modulesEtag }) }
      return { record: { device, twin, ...modules }, result: device, after }
    })
  }

  /**
   * IoT Edge scopes as IoT Hub assigns them: an Edge device's own scope is
   * `ms-azure-iot-edge://{deviceId}-{generationId}` and its parent is named in `parentScopes`; a
   * leaf device's `deviceScope` is its parent Edge device's scope and `parentScopes` repeats it.
   * A parent named in the spec must be an Edge device of this hub; unnamed, the stored one stays.
   */
  #scopesOf(
    spec: DeviceSpec,
    deviceId: string,
    generationId: string,
    iotEdge: boolean,
    existing: DeviceIdentity | undefined,
    named: ReadonlyMap<string, DeviceIdentity | undefined>,
  ): { deviceScope?: string; parentScopes: string[] } {
    const given = iotEdge ? spec.parentScopes?.[0] ?? (spec.parentScopes === undefined ? undefined : '') : spec.deviceScope ?? spec.parentScopes?.[0]
    const kept = iotEdge ? existing?.parentScopes?.[0] : existing?.capabilities.iotEdge === true ? undefined : existing?.deviceScope
    const parent = given === undefined ? kept : given === '' ? undefined : given
    if (given !== undefined && given !== '') {
      const device = named.get(given)
      if (device === undefined || !device.capabilities.iotEdge || device.deviceScope !== given) {
        throw new ProvisioError(
          'VALIDATION_FAILED',
          `${iotEdge ? 'parentScopes' : 'deviceScope'} ${JSON.stringify(given.slice(0, 160))} of device ${JSON.stringify(deviceId)} is not the scope of an IoT Edge device on hub ${this.hostName}`,
          { deviceMessage: `The parent scope ${given.slice(0, 160)} does not name an IoT Edge device of this hub.` },
        )
      }
    }
    const parentScopes = parent === undefined ? [] : [parent]
    if (iotEdge) return { deviceScope: edgeScope(deviceId, generationId), parentScopes }
    return parent === undefined ? { parentScopes } : { deviceScope: parent, parentScopes }
  }

  /**
   * Reads the record, lets `step` decide what to write, and writes it only if nobody wrote the
   * record in between (etag condition); otherwise reads again. `step` must not have side effects
   * beyond its return value (it may run more than once); `after` runs once, after the write.
   */
  async #readModifyWrite<T>(
    key: string,
    what: string,
    guessAbsent: boolean,
    step: (existing: HubDeviceRecord | undefined) => { record?: HubDeviceRecord; result: T; after?: () => void },
  ): Promise<T> {
    // Writers of one record in this process take turns; the etag condition covers other instances.
    const previous = this.#turns.get(key)
    let release!: () => void
    const mine = new Promise<void>((resolve) => (release = resolve))
    const tail = (previous ?? Promise.resolve()).then(() => mine)
    this.#turns.set(key, tail)
    if (previous !== undefined) await previous
    try {
      return await this.#attempts(key, what, guessAbsent, step)
    } finally {
      release()
      if (this.#turns.get(key) === tail) this.#turns.delete(key)
    }
  }

  async #attempts<T>(
    key: string,
    what: string,
    guessAbsent: boolean,
    step: (existing: HubDeviceRecord | undefined) => { record?: HubDeviceRecord; result: T; after?: () => void },
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      // A guessed-absent first attempt skips the read: its write is conditional on no record
      // existing, so a wrong guess only costs this attempt (the next one reads).
      const existing = guessAbsent && attempt === 1 ? undefined : await this.ports.store.get(this.hostName, key)
      const condition: HubWriteCondition = existing === undefined ? { absent: true } : { deviceEtag: existing.device.etag, twinEtag: existing.twin.etag, modulesEtag: existing.modulesEtag ?? '' }
      const out = step(existing)
      if (out.record === undefined) return out.result
      if (await this.ports.store.put(this.hostName, key, out.record, condition)) {
        out.after?.()
        return out.result
      }
      if (attempt >= MAX_WRITE_ATTEMPTS) {
        throw new ProvisioError('SERVICE_UNAVAILABLE', `${what} on hub ${this.hostName} changed under ${MAX_WRITE_ATTEMPTS} attempts in a row to write it`, { retryAfterSeconds: 1 })
      }
    }
  }

  async getDevice(deviceId: string): Promise<DeviceIdentity | undefined> {
    return (await this.ports.store.get(this.hostName, deviceId.toLowerCase()))?.device
  }

  /** Removes the identity and its twin. Returns false when it did not exist. */
  async deleteDevice(deviceId: string, options: { ifMatch?: string } = {}): Promise<boolean> {
    const key = deviceId.toLowerCase()
    if (options.ifMatch !== undefined) {
      const existing = await this.ports.store.get(this.hostName, key)
      // A missing device is "not found" (404), not a failed precondition.
      if (existing === undefined) return false
      checkIfMatch(options.ifMatch, existing.device.etag, `device ${deviceId}`)
    }
    const deleted = await this.ports.store.delete(this.hostName, key)
    if (deleted) this.#emitRevoked({ hostName: this.hostName, deviceId, why: 'deleted' })
    return deleted
  }

  /** Devices in id order, `limit` at a time after the device id `after`. */
  async listDevices(options: { after?: string; limit?: number } = {}): Promise<DeviceIdentity[]> {
    const limit = Math.min(Math.max(1, options.limit ?? LIST_LIMIT_MAX), LIST_LIMIT_MAX)
    const records = await this.ports.store.list(this.hostName, {
      limit,
      ...(options.after === undefined ? {} : { after: options.after.toLowerCase() }),
    })
    return records.map((r) => r.device)
  }

  async getTwin(deviceId: string): Promise<DeviceTwin | undefined> {
    return (await this.ports.store.get(this.hostName, deviceId.toLowerCase()))?.twin
  }

  /**
   * Applies a merge patch to tags and desired properties (PATCH /twins/{id}); `replace` swaps them
   * wholesale instead (PUT /twins/{id}). Bumps the twin version and the desired `$version` when
   * desired properties change.
   */
  async updateTwin(deviceId: string, patch: TwinPatch, options: { ifMatch?: string; replace?: boolean } = {}): Promise<DeviceTwin> {
    const key = deviceId.toLowerCase()
    const replace = options.replace === true
    return this.#readModifyWrite(key, `twin of ${deviceId}`, false, (record) => {
      if (record === undefined) throw new ProvisioError('NOT_FOUND', `device ${JSON.stringify(deviceId)} does not exist on hub ${this.hostName}`)
      checkIfMatch(options.ifMatch, record.twin.etag, `twin of ${deviceId}`)
      const applied = this.#applyTwinPatch(record.twin, patch, replace)
      if (!applied.changed) return { result: record.twin }
      return { record, result: record.twin, after: () => this.#emitDesired(record.twin, applied.desiredPush) }
    })
  }

  /**
   * Applies tags / desired properties to `twin` (a `null` section is cleared); bumps versions and
   * etag. Returns whether anything changed and the desired push for the device: the merge patch
   * applied, the removed properties as `null` when the section was cleared, or the whole desired
   * document after a replace; with `$version`.
   */
  #applyTwinPatch(twin: DeviceTwin, patch: TwinPatch, replace: boolean): { changed: boolean; desiredPush?: Record<string, unknown> } {
    let changed = false
    let desiredPush: Record<string, unknown> | undefined
    if (patch.tags !== undefined) {
      twin.tags = patch.tags === null ? {} : replace ? stripNulls(patch.tags) : mergePatch(twin.tags, patch.tags)
      changed = true
    }
    const desired = patch.properties?.desired
    if (desired !== undefined) {
      const { $version: previous, ...current } = twin.properties.desired
      let next: Record<string, unknown>
      let push: Record<string, unknown>
      if (desired === null) {
        next = {}
        push = Object.fromEntries(Object.keys(current).map((name) => [name, null]))
      } else {
        const { $version: _v, $metadata: _m, ...user } = desired
        next = replace ? stripNulls(user) : mergePatch(current, user)
        push = replace ? next : user
      }
      twin.properties.desired = { ...next, $version: previous + 1 }
      desiredPush = { ...push, $version: previous + 1 }
      changed = true
    }
    if (changed) {
      twin.version += 1
      twin.etag = this.#etag()
    }
    return { changed, ...(desiredPush === undefined ? {} : { desiredPush }) }
  }

  /**
   * Device side (MQTT `$iothub/twin/PATCH/properties/reported`): merge-patch reported
   * properties. Keys starting with `$` are IoT Hub's own and are refused. Returns the new `$version`.
   */
  async patchReported(deviceId: string, patch: Record<string, unknown>): Promise<number> {
    for (const name of Object.keys(patch)) {
      if (name.startsWith('$')) {
        throw new ProvisioError('VALIDATION_FAILED', `reported property ${JSON.stringify(name.slice(0, 64))} starts with "$", which IoT Hub reserves`, {
          deviceMessage: 'Reported property names must not start with "$".',
        })
      }
    }
    const key = deviceId.toLowerCase()
    return this.#readModifyWrite(key, `twin of ${deviceId}`, false, (record) => {
      if (record === undefined) throw new ProvisioError('NOT_FOUND', `device ${JSON.stringify(deviceId)} does not exist on hub ${this.hostName}`)
      const { $version: version, ...current } = record.twin.properties.reported
      const next = version + 1
      record.twin.properties.reported = { ...mergePatch(current, patch), $version: next }
      record.twin.version += 1
      record.twin.etag = this.#etag()
      return { record, result: next }
    })
  }

  // -------------------------------------------------------------------------------------------
  // Modules: identities of their own under a device, each with its own twin (docs/protocol.md §12)

  /**
   * Creates a module of an existing device (`ifNoneMatch`: refuse an existing one, 409) or replaces
   * its authentication and `managedBy` (`ifMatch`: `*` or its etag; 404 when it does not exist).
   */
  async createOrUpdateModule(spec: ModuleSpec, options: { ifMatch?: string; ifNoneMatch?: boolean } = {}): Promise<ModuleIdentity> {
    const idError = validateDeviceId(spec.moduleId, 'moduleId')
    if (idError) throw idError
    const key = spec.deviceId.toLowerCase()
    const moduleKey = spec.moduleId.toLowerCase()
    const what = `module ${JSON.stringify(spec.moduleId)} of device ${JSON.stringify(spec.deviceId)}`
    return this.#readModifyWrite(key, what, false, (record) => {
      if (record === undefined) throw this.#deviceMissing(spec.deviceId)
      const existing = record.modules?.[moduleKey]
      if (options.ifNoneMatch === true && existing !== undefined) throw new ProvisioError('CONFLICT', `${what} already exists on hub ${this.hostName}`)
      if (options.ifMatch !== undefined && existing === undefined) throw new ProvisioError('NOT_FOUND', `${what} does not exist on hub ${this.hostName}`)
      checkIfMatch(options.ifMatch, existing?.module.etag, what)
      const count = Object.keys(record.modules ?? {}).length
      if (existing === undefined && count >= MAX_MODULES_PER_DEVICE) {
        const reason = `device ${JSON.stringify(record.device.deviceId)} already has ${count} modules, the most one device may have here (${MAX_MODULES_PER_DEVICE})`
        throw new ProvisioError('VALIDATION_FAILED', reason, { deviceMessage: reason })
      }
      const authentication = normaliseAuth(spec.authentication, this.ports.random)
      const module: ModuleIdentity = {
        deviceId: record.device.deviceId,
        moduleId: existing?.module.moduleId ?? spec.moduleId,
        ...(spec.managedBy === undefined ? {} : { managedBy: spec.managedBy }),
        generationId: existing?.module.generationId ?? this.#generationId(),
        etag: this.#etag(),
        connectionState: existing?.module.connectionState ?? 'Disconnected',
        connectionStateUpdatedTime: existing?.module.connectionStateUpdatedTime ?? '0001-01-01T00:00:00Z',
        lastActivityTime: existing?.module.lastActivityTime ?? '0001-01-01T00:00:00Z',
        cloudToDeviceMessageCount: existing?.module.cloudToDeviceMessageCount ?? 0,
        authentication,
      }
      const twin: ModuleTwin = existing?.twin ?? {
        deviceId: record.device.deviceId,
        moduleId: module.moduleId,
        etag: this.#etag(),
        version: 1,
        status: 'enabled',
        authenticationType: authentication.type,
        capabilities: { iotEdge: false },
        tags: {},
        properties: { desired: { $version: 1 }, reported: { $version: 1 } },
      }
      twin.authenticationType = authentication.type
      record.modules = { ...record.modules, [moduleKey]: { module, twin } }
      record.modulesEtag = this.#etag()
      return { record, result: module }
    })
  }

  async #moduleRecord(deviceId: string, moduleId: string): Promise<HubModuleRecord | undefined> {
    return (await this.ports.store.get(this.hostName, deviceId.toLowerCase()))?.modules?.[moduleId.toLowerCase()]
  }

  async getModule(deviceId: string, moduleId: string): Promise<ModuleIdentity | undefined> {
    return (await this.#moduleRecord(deviceId, moduleId))?.module
  }

  async getModuleTwin(deviceId: string, moduleId: string): Promise<ModuleTwin | undefined> {
    return (await this.#moduleRecord(deviceId, moduleId))?.twin
  }

  /** The device's modules in module id order, or undefined when the device does not exist. */
  async listModules(deviceId: string): Promise<ModuleIdentity[] | undefined> {
    const record = await this.ports.store.get(this.hostName, deviceId.toLowerCase())
    if (record === undefined) return undefined
    return Object.keys(record.modules ?? {})
      .sort()
      .map((k) => record.modules![k]!.module)
  }

  /** Removes a module and its twin. Returns false when the device or the module did not exist. */
  async deleteModule(deviceId: string, moduleId: string, options: { ifMatch?: string } = {}): Promise<boolean> {
    const what = `module ${JSON.stringify(moduleId)} of device ${JSON.stringify(deviceId)}`
    return this.#readModifyWrite(deviceId.toLowerCase(), what, false, (record) => {
      const existing = record?.modules?.[moduleId.toLowerCase()]
      if (record === undefined || existing === undefined) return { result: false }
      checkIfMatch(options.ifMatch === '*' ? undefined : options.ifMatch, existing.module.etag, what)
      const { [moduleId.toLowerCase()]: _gone, ...rest } = record.modules!
      record.modules = rest
      record.modulesEtag = this.#etag()
      return { record, result: true }
    })
  }

  /** PATCH (merge) or PUT (`replace`) of a module twin's tags and desired properties. */
  async updateModuleTwin(deviceId: string, moduleId: string, patch: TwinPatch, options: { ifMatch?: string; replace?: boolean } = {}): Promise<ModuleTwin> {
    const what = `twin of module ${JSON.stringify(moduleId)} of device ${JSON.stringify(deviceId)}`
    return this.#readModifyWrite(deviceId.toLowerCase(), what, false, (record) => {
      const existing = record?.modules?.[moduleId.toLowerCase()]
      if (record === undefined || existing === undefined) throw new ProvisioError('NOT_FOUND', `module ${JSON.stringify(moduleId)} of device ${JSON.stringify(deviceId)} does not exist on hub ${this.hostName}`)
      checkIfMatch(options.ifMatch, existing.twin.etag, what)
      const applied = this.#applyTwinPatch(existing.twin, patch, options.replace === true)
      if (!applied.changed) return { result: existing.twin }
      record.modulesEtag = this.#etag()
      return { record, result: existing.twin }
    })
  }

  #deviceMissing(deviceId: string): ProvisioError {
    return new ProvisioError('NOT_FOUND', `device ${JSON.stringify(deviceId.slice(0, 130))} does not exist on hub ${this.hostName}`, {
      deviceMessage: `Device ${deviceId.slice(0, 130)} not found.`,
    })
  }

  #now(): string {
    return formatDpsTimestamp(this.ports.clock.now())
  }

  #etag(): string {
    return base64UrlEncode(this.ports.random.bytes(9))
  }

  #generationId(): string {
    // IoT Hub generation ids are 18 decimal digits.
    const b = this.ports.random.bytes(8)
    let s = ''
    for (let i = 0; i < 8; i++) s += String(b[i]! % 100).padStart(2, '0')
    return '63' + s
  }
}

const EDGE_SCOPE_PREFIX = 'ms-azure-iot-edge://'

/** An IoT Edge device's scope, as IoT Hub forms it. */
export function edgeScope(deviceId: string, generationId: string): string {
  return `${EDGE_SCOPE_PREFIX}${deviceId}-${generationId}`
}

/** The device and generation an Edge scope names, or undefined when it is not one. */
export function parseEdgeScope(scope: string): { deviceId: string; generationId: string } | undefined {
  if (!scope.startsWith(EDGE_SCOPE_PREFIX)) return undefined
  const rest = scope.slice(EDGE_SCOPE_PREFIX.length)
  const dash = rest.lastIndexOf('-')
  if (dash <= 0 || !/^\d+$/.test(rest.slice(dash + 1))) return undefined
  return { deviceId: rest.slice(0, dash), generationId: rest.slice(dash + 1) }
}

function checkIfMatch(ifMatch: string | undefined, etag: string | undefined, what: string): void {
  if (ifMatch === undefined) return
  if (!etagMatches(ifMatch, etag)) {
    throw new ProvisioError('PRECONDITION_FAILED', `If-Match ${JSON.stringify(ifMatch.slice(0, 80))} does not match the etag of ${what}`)
  }
}

function normaliseAuth(auth: DeviceAuthentication, random: { bytes(n: number): Uint8Array }): DeviceAuthentication {
  const type: AuthenticationType = auth.type
  switch (type) {
    case 'sas': {
      // Like IoT Hub: keys omitted on create are generated.
      const primaryKey = auth.symmetricKey?.primaryKey ?? base64Encode(random.bytes(32))
      const secondaryKey = auth.symmetricKey?.secondaryKey ?? base64Encode(random.bytes(32))
      return { type, symmetricKey: { primaryKey, secondaryKey }, x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null } }
    }
    case 'selfSigned': {
      const primaryThumbprint = auth.x509Thumbprint?.primaryThumbprint ?? null
      if (primaryThumbprint === null) throw new ProvisioError('VALIDATION_FAILED', 'authentication.x509Thumbprint.primaryThumbprint is required for selfSigned devices')
      return {
        type,
        symmetricKey: { primaryKey: null, secondaryKey: null },
        x509Thumbprint: { primaryThumbprint, secondaryThumbprint: auth.x509Thumbprint?.secondaryThumbprint ?? null },
      }
    }
    case 'certificateAuthority':
    case 'none':
      return { type, symmetricKey: { primaryKey: null, secondaryKey: null }, x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null } }
    default:
      throw new ProvisioError('VALIDATION_FAILED', `authentication.type ${JSON.stringify(String(type).slice(0, 40))} must be sas, selfSigned, certificateAuthority or none`)
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** RFC 7396 JSON merge patch (objects merge, null removes, anything else replaces). */
export function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...target }
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else if (isPlainObject(v)) out[k] = mergePatch(isPlainObject(out[k]) ? out[k] : {}, v)
    else out[k] = v
  }
  return out
}

function stripNulls(value: Record<string, unknown>): Record<string, unknown> {
  return mergePatch({}, value)
}

