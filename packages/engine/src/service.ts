/**
 * Service API operations (docs/protocol.md §7): individual enrollments and enrollment groups with
 * ETags, attestation mechanisms, query with paging, bulk operations, registration states.
 *
 * Rules applied here (beyond the model validators of @provisio/protocol):
 * - PUT is create-or-replace; `If-Match` that does not match the stored etag (or names a missing
 *   resource) is 412 PRECONDITION_FAILED (RFC 9110 §13.1.1, D-trouble). Every write mints a new
 *   etag; `createdDateTimeUtc` survives replacement, `lastUpdatedDateTimeUtc` moves.
 * - Symmetric keys omitted on PUT are generated (64 random bytes, §7 / D-sym); GET hides keys and
 *   `attestationmechanism` returns them (docs/protocol.md §7).
 * - `iotHubs` and `iotHubHostName` must name linked hubs; `custom` needs a webhook definition.
 */
import { ProvisioError, isProvisioError, normalizeRegistrationId, validateRegistrationId } from '@provisio/protocol'
import type {
  AttestationMechanism,
  ConditionalOptions,
  BulkEnrollmentGroupOperation,
  BulkEnrollmentGroupOperationResult,
  BulkEnrollmentOperation,
  BulkEnrollmentOperationResult,
  DeviceRegistrationState,
  EnrollmentCommon,
  EnrollmentGroup,
  GroupAttestationMechanism,
  IndividualEnrollment,
  QuerySpecification,
  X509Attestation,
} from '@provisio/protocol'
import type { EngineContext } from './context.js'
import { newEtag, newSymmetricKey } from './ids.js'
import type { InstanceConfig } from './instances.js'
import {
  assertQuerySpecification,
  decodeContinuation,
  encodeContinuation,
  resolvePageSize,
  type QueryOptions,
  type QueryPage,
} from './query.js'
import type { RegistrationRecord, WriteCondition, WriteResult } from './store.js'
import { formatDpsTimestamp } from '@provisio/protocol'
import { decodeCertificateText, parseCertificate } from '@provisio/x509'

/** Options of writes that honour `If-Match` (the codecs' contract, @provisio/protocol api.ts). */
export type { ConditionalOptions }

/** Bulk operations accept at most this many items (SPEC-svc, docs/protocol.md §9). */
export const BULK_MAX_ITEMS = 10

type Kind = 'individual' | 'group'

function kindName(kind: Kind): string {
  return kind === 'individual' ? 'individual enrollment' : 'enrollment group'
}

/** Returns a copy whose symmetric keys are omitted (GET never shows them). */
export function hideKeys<T extends { attestation: AttestationMechanism }>(value: T): T {
  if (value.attestation.type !== 'symmetricKey') return value
  return { ...value, attestation: { type: 'symmetricKey', symmetricKey: {} } }
}

/** The service view of a registration record (DeviceRegistrationState: no attestation sub-objects). */
export function registrationStateView(record: RegistrationRecord): DeviceRegistrationState {
  const { tpm: _tpm, x509: _x509, symmetricKey: _sk, issuedCertificateChain: _chain, ...state } = record.state
  return state
}

/** Maps a failed conditional write to the error the client sees. */
export function writeFailure(result: Exclude<WriteResult, { ok: true }>, what: string, notFound: ProvisioError['code']): ProvisioError {
  switch (result.reason) {
    case 'etagMismatch':
      return new ProvisioError('PRECONDITION_FAILED', `${what}: If-Match does not match the current etag ${result.currentEtag ?? ''}`.trim())
    case 'exists':
      return new ProvisioError('CONFLICT', `${what} already exists`)
    case 'notFound':
      return new ProvisioError(notFound, `${what} does not exist`)
  }
}

/**
 * Certificates of an X.509 attestation are parsed when the enrollment is written, in any
 * encoding DPS accepts (PEM, base64 of DER, base64 of PEM: docs/protocol.md §13.2), so one
 * that does not parse is a 400 naming the member and the reason, never a stored enrollment whose
 * every device is refused later.
 * @throws ProvisioError VALIDATION_FAILED
 */
function checkCertificates(attestation: AttestationMechanism | undefined, what: string): void {
  if (attestation?.type !== 'x509') return
  const x = attestation.x509 as X509Attestation | undefined
  for (const member of ['clientCertificates', 'signingCertificates'] as const) {
    const slots = x?.[member]
    if (slots === undefined || slots === null) continue
    for (const slot of ['primary', 'secondary'] as const) {
      const text = slots[slot]?.certificate
      if (text === undefined) continue
      const path = `attestation.x509.${member}.${slot}.certificate`
      try {
        for (const der of decodeCertificateText(text)) parseCertificate(der)
      } catch (error) {
        // The client's message says why too: it is about text the client sent, no secret.
        const why = `${path} does not parse: ${error instanceof Error ? error.message : String(error)}`
        throw new ProvisioError('VALIDATION_FAILED', `${what}: ${why}`, { cause: error, deviceMessage: why })
      }
    }
  }
}

/**
 * Outcome of one enrollment of {@link ServiceOperations.createEnrollments}: written, skipped
 * because an enrollment with its id already exists (so a re-run of an interrupted import skips
 * what it wrote), or refused with the reason.
 */
export type EnrollmentCreateResult =
  | { readonly status: 'created'; readonly registrationId: string }
  | { readonly status: 'exists'; readonly registrationId: string }
  | { readonly status: 'invalid'; readonly registrationId: string; readonly error: ProvisioError }

/** Service operations of one engine; see Engine for the public face. */
export class ServiceOperations {
  constructor(private readonly ctx: EngineContext) {}

  // ---------------------------------------------------------------------------------------------
  // Individual enrollments
  // ---------------------------------------------------------------------------------------------

  async createOrUpdateEnrollment(idScope: string, input: IndividualEnrollment, options: ConditionalOptions = {}): Promise<IndividualEnrollment> {
    const instance = this.ctx.instance(idScope)
    const idError = validateRegistrationId(input?.registrationId)
    if (idError) throw new ProvisioError('VALIDATION_FAILED', `enrollment.registrationId: ${idError.reason}`, { deviceMessage: idError.reason })
    const what = `individual enrollment '${input.registrationId}' in ID scope ${idScope}`
    this.checkCommon(instance, input, what)
    checkCertificates(input.attestation, what)
    const existing = await this.ctx.store.getEnrollment(idScope, input.registrationId)
    const condition = this.condition(existing?.etag, options, what)
    const now = this.ctx.clock.now()
    const stamp = formatDpsTimestamp(now)
    const { registrationState: _readOnly, ...rest } = input
    const stored: IndividualEnrollment = {
      ...rest,
      ...this.defaults(input),
      attestation: this.fillKeys(input.attestation),
      etag: newEtag(this.ctx.random),
      createdDateTimeUtc: existing?.createdDateTimeUtc ?? stamp,
      lastUpdatedDateTimeUtc: stamp,
    }
    const result = await this.ctx.store.putEnrollment(idScope, stored, condition)
    if (!result.ok) throw writeFailure(result, what, 'ENROLLMENT_RECORD_NOT_FOUND')
    this.ctx.emit('enrollmentChanged', {
      idScope, kind: 'individual', id: stored.registrationId, change: existing ? 'updated' : 'created', etag: stored.etag, atMs: now,
    })
    return stored
  }

  /**
   * Creates many individual enrollments under the rules of {@link createOrUpdateEnrollment} (same
   * checks, defaults, generated keys and timestamps), never replacing one: an id already stored —
   * or met earlier in `inputs` — answers `exists`. Writes go through the store's batch put
   * (`Store.putEnrollments`, one transaction) when it has one. Each input is either a validated
   * enrollment or the error that refused it (so callers keep their item order and numbering).
   */
  async createEnrollments(idScope: string, inputs: readonly (IndividualEnrollment | ProvisioError)[]): Promise<EnrollmentCreateResult[]> {
    const instance = this.ctx.instance(idScope)
    const now = this.ctx.clock.now()
    const stamp = formatDpsTimestamp(now)
    const results: EnrollmentCreateResult[] = new Array(inputs.length)
    const puts: IndividualEnrollment[] = []
    const at: number[] = []
    for (const [i, input] of inputs.entries()) {
      if (input instanceof ProvisioError) {
        results[i] = { status: 'invalid', registrationId: '', error: input }
        continue
      }
      const id = typeof input?.registrationId === 'string' ? input.registrationId : ''
      try {
        const idError = validateRegistrationId(input?.registrationId)
        if (idError) throw new ProvisioError('VALIDATION_FAILED', `enrollment.registrationId: ${idError.reason}`, { deviceMessage: idError.reason })
        const what = `individual enrollment '${id}' in ID scope ${idScope}`
        this.checkCommon(instance, input, what)
        checkCertificates(input.attestation, what)
      } catch (error) {
        results[i] = { status: 'invalid', registrationId: id, error: asProvisio(error) }
        continue
      }
      const { registrationState: _readOnly, ...rest } = input
      puts.push({
        ...rest,
        ...this.defaults(input),
        attestation: this.fillKeys(input.attestation),
        etag: newEtag(this.ctx.random),
        createdDateTimeUtc: stamp,
        lastUpdatedDateTimeUtc: stamp,
      })
      at.push(i)
    }
    if (puts.length > 0) {
      const store = this.ctx.store
      const written = store.putEnrollments !== undefined
        ? await store.putEnrollments(idScope, puts.map((enrollment) => ({ enrollment, condition: CREATE_ONLY })))
        : await sequentialPuts(puts, (e) => store.putEnrollment(idScope, e, CREATE_ONLY))
      for (const [j, result] of written.entries()) {
        const stored = puts[j]!
        const i = at[j]!
        if (result.ok) {
          results[i] = { status: 'created', registrationId: stored.registrationId }
          this.ctx.emit('enrollmentChanged', { idScope, kind: 'individual', id: stored.registrationId, change: 'created', etag: stored.etag, atMs: now })
        } else if (result.reason === 'exists') {
          results[i] = { status: 'exists', registrationId: stored.registrationId }
        } else {
          const what = `individual enrollment '${stored.registrationId}' in ID scope ${idScope}`
          results[i] = { status: 'invalid', registrationId: stored.registrationId, error: writeFailure(result, what, 'ENROLLMENT_RECORD_NOT_FOUND') }
        }
      }
    }
    return results
  }

  async getEnrollment(idScope: string, registrationId: string): Promise<IndividualEnrollment> {
    this.ctx.instance(idScope)
    const e = await this.ctx.store.getEnrollment(idScope, registrationId)
    if (!e) throw new ProvisioError('ENROLLMENT_RECORD_NOT_FOUND', `individual enrollment '${registrationId}' does not exist in ID scope ${idScope}`)
    const record = await this.ctx.store.getRegistration(idScope, registrationId)
    const view = hideKeys(e)
    return record ? { ...view, registrationState: registrationStateView(record) } : view
  }

  async deleteEnrollment(idScope: string, registrationId: string, options: ConditionalOptions = {}): Promise<void> {
    this.ctx.instance(idScope)
    const what = `individual enrollment '${registrationId}' in ID scope ${idScope}`
    const result = await this.ctx.store.deleteEnrollment(idScope, registrationId, this.deleteCondition(options))
    if (!result.ok) throw writeFailure(result, what, 'ENROLLMENT_RECORD_NOT_FOUND')
    // Like DPS, the enrollment's registration record goes with it (docs/protocol.md §13.3): an
    // enrollment created again under this id starts afresh and applies its own initial twin. A
    // record a group wrote for this id is the group's, and stays.
    const record = await this.ctx.store.getRegistration(idScope, registrationId)
    if (record !== undefined && record.enrollmentGroupId === undefined) {
      await this.ctx.store.deleteRegistration(idScope, registrationId, { ifMatch: record.state.etag })
    }
    this.ctx.emit('enrollmentChanged', { idScope, kind: 'individual', id: registrationId, change: 'deleted', atMs: this.ctx.clock.now() })
  }

  async getEnrollmentAttestationMechanism(idScope: string, registrationId: string): Promise<AttestationMechanism> {
    this.ctx.instance(idScope)
    const e = await this.ctx.store.getEnrollment(idScope, registrationId)
    if (!e) throw new ProvisioError('ENROLLMENT_RECORD_NOT_FOUND', `individual enrollment '${registrationId}' does not exist in ID scope ${idScope}`)
    return e.attestation
  }

  async queryEnrollments(idScope: string, spec?: QuerySpecification, options: QueryOptions = {}): Promise<QueryPage<IndividualEnrollment>> {
    this.ctx.instance(idScope)
    assertQuerySpecification(spec, 'enrollments')
    const limit = resolvePageSize(options.pageSize, this.ctx.options.defaultPageSize, this.ctx.options.maxPageSize)
    const after = options.continuationToken === undefined ? undefined : decodeContinuation(options.continuationToken)
    const rows = await this.ctx.store.listEnrollments(idScope, { after, limit: limit + 1 })
    const more = rows.length > limit
    const items = (more ? rows.slice(0, limit) : rows).map(hideKeys)
    return {
      items,
      itemType: 'Enrollment',
      ...(more ? { continuationToken: encodeContinuation(normalizeRegistrationId(items[items.length - 1]!.registrationId)) } : {}),
    }
  }

  async runBulkEnrollmentOperation(idScope: string, operation: BulkEnrollmentOperation): Promise<BulkEnrollmentOperationResult> {
    this.ctx.instance(idScope)
    const items = this.bulkItems(operation?.enrollments, 'enrollments')
    const mode = this.bulkMode(operation.mode)
    const errors: BulkEnrollmentOperationResult['errors'] = []
    if (mode === 'create') {
      // Creates share the import's batch path: one store transaction for the whole call.
      const inputs = items.map((item, i) =>
        typeof item?.registrationId === 'string' && item.registrationId !== ''
          ? (item as IndividualEnrollment)
          : new ProvisioError('VALIDATION_FAILED', `enrollments[${i}].registrationId is required`))
      for (const [i, r] of (await this.createEnrollments(idScope, inputs)).entries()) {
        if (r.status === 'created') continue
        const id = typeof items[i]?.registrationId === 'string' ? items[i]!.registrationId : ''
        const e = r.status === 'exists' ? new ProvisioError('CONFLICT', `${kindName('individual')} '${id}' already exists (bulk mode create)`) : r.error
        errors.push({ registrationId: id, errorCode: e.errorCode, errorStatus: e.reason })
      }
      return errors.length === 0 ? { isSuccessful: true, errors: [] } : { isSuccessful: false, errors }
    }
    for (const [i, item] of items.entries()) {
      const id = typeof item?.registrationId === 'string' ? item.registrationId : ''
      try {
        if (id === '') throw new ProvisioError('VALIDATION_FAILED', `enrollments[${i}].registrationId is required`)
        await this.bulkOne(mode, 'individual', id, item.etag, () =>
          this.createOrUpdateEnrollment(idScope, item as IndividualEnrollment, this.bulkWriteCondition(mode, item.etag, i)),
        () => this.deleteEnrollment(idScope, id, item.etag === undefined ? {} : { ifMatch: item.etag }), idScope)
      } catch (error) {
        const e = asProvisio(error)
        errors.push({ registrationId: id, errorCode: e.errorCode, errorStatus: e.reason })
      }
    }
    return errors.length === 0 ? { isSuccessful: true, errors: [] } : { isSuccessful: false, errors }
  }

  // ---------------------------------------------------------------------------------------------
  // Enrollment groups
  // ---------------------------------------------------------------------------------------------

  async createOrUpdateEnrollmentGroup(idScope: string, input: EnrollmentGroup, options: ConditionalOptions = {}): Promise<EnrollmentGroup> {
    const instance = this.ctx.instance(idScope)
    const idError = validateRegistrationId(input?.enrollmentGroupId)
    if (idError) throw new ProvisioError('VALIDATION_FAILED', `enrollmentGroup.enrollmentGroupId: ${idError.reason.replace('registrationId', 'enrollmentGroupId')}`)
    const what = `enrollment group '${input.enrollmentGroupId}' in ID scope ${idScope}`
    const type = (input.attestation as AttestationMechanism | undefined)?.type
    if (type !== 'symmetricKey' && type !== 'x509') {
      // D-terms: groups support only X.509 and symmetric keys.
      throw new ProvisioError('VALIDATION_FAILED', `${what}: attestation.type must be symmetricKey or x509 for a group, got ${String(type)}`)
    }
    this.checkCommon(instance, input, what)
    checkCertificates(input.attestation, what)
    const existing = await this.ctx.store.getGroup(idScope, input.enrollmentGroupId)
    const condition = this.condition(existing?.etag, options, what)
    const now = this.ctx.clock.now()
    const stamp = formatDpsTimestamp(now)
    const stored: EnrollmentGroup = {
      ...input,
      ...this.defaults(input),
      attestation: this.fillKeys(input.attestation) as GroupAttestationMechanism,
      etag: newEtag(this.ctx.random),
      createdDateTimeUtc: existing?.createdDateTimeUtc ?? stamp,
      lastUpdatedDateTimeUtc: stamp,
    }
    const result = await this.ctx.store.putGroup(idScope, stored, condition)
    if (!result.ok) throw writeFailure(result, what, 'ENROLLMENT_GROUP_NOT_FOUND')
    this.ctx.emit('enrollmentChanged', {
      idScope, kind: 'group', id: stored.enrollmentGroupId, change: existing ? 'updated' : 'created', etag: stored.etag, atMs: now,
    })
    return stored
  }

  async getEnrollmentGroup(idScope: string, enrollmentGroupId: string): Promise<EnrollmentGroup> {
    this.ctx.instance(idScope)
    const g = await this.ctx.store.getGroup(idScope, enrollmentGroupId)
    if (!g) throw new ProvisioError('ENROLLMENT_GROUP_NOT_FOUND', `enrollment group '${enrollmentGroupId}' does not exist in ID scope ${idScope}`)
    return hideKeys(g)
  }

  async deleteEnrollmentGroup(idScope: string, enrollmentGroupId: string, options: ConditionalOptions = {}): Promise<void> {
    this.ctx.instance(idScope)
    const what = `enrollment group '${enrollmentGroupId}' in ID scope ${idScope}`
    const result = await this.ctx.store.deleteGroup(idScope, enrollmentGroupId, this.deleteCondition(options))
    if (!result.ok) throw writeFailure(result, what, 'ENROLLMENT_GROUP_NOT_FOUND')
    this.ctx.emit('enrollmentChanged', { idScope, kind: 'group', id: enrollmentGroupId, change: 'deleted', atMs: this.ctx.clock.now() })
  }

  async getEnrollmentGroupAttestationMechanism(idScope: string, enrollmentGroupId: string): Promise<AttestationMechanism> {
    this.ctx.instance(idScope)
    const g = await this.ctx.store.getGroup(idScope, enrollmentGroupId)
    if (!g) throw new ProvisioError('ENROLLMENT_GROUP_NOT_FOUND', `enrollment group '${enrollmentGroupId}' does not exist in ID scope ${idScope}`)
    return g.attestation
  }

  async queryEnrollmentGroups(idScope: string, spec?: QuerySpecification, options: QueryOptions = {}): Promise<QueryPage<EnrollmentGroup>> {
    this.ctx.instance(idScope)
    assertQuerySpecification(spec, 'enrollment groups')
    const limit = resolvePageSize(options.pageSize, this.ctx.options.defaultPageSize, this.ctx.options.maxPageSize)
    const after = options.continuationToken === undefined ? undefined : decodeContinuation(options.continuationToken)
    const rows = await this.ctx.store.listGroups(idScope, { after, limit: limit + 1 })
    const more = rows.length > limit
    const items = (more ? rows.slice(0, limit) : rows).map(hideKeys)
    return {
      items,
      itemType: 'EnrollmentGroup',
      ...(more ? { continuationToken: encodeContinuation(normalizeRegistrationId(items[items.length - 1]!.enrollmentGroupId)) } : {}),
    }
  }

  async runBulkEnrollmentGroupOperation(idScope: string, operation: BulkEnrollmentGroupOperation): Promise<BulkEnrollmentGroupOperationResult> {
    this.ctx.instance(idScope)
    const items = this.bulkItems(operation?.enrollmentGroups, 'enrollmentGroups')
    const mode = this.bulkMode(operation.mode)
    const errors: BulkEnrollmentGroupOperationResult['errors'] = []
    for (const [i, item] of items.entries()) {
      const id = typeof item?.enrollmentGroupId === 'string' ? item.enrollmentGroupId : ''
      try {
        if (id === '') throw new ProvisioError('VALIDATION_FAILED', `enrollmentGroups[${i}].enrollmentGroupId is required`)
        await this.bulkOne(mode, 'group', id, item.etag, () =>
          this.createOrUpdateEnrollmentGroup(idScope, item as EnrollmentGroup, this.bulkWriteCondition(mode, item.etag, i)),
        () => this.deleteEnrollmentGroup(idScope, id, item.etag === undefined ? {} : { ifMatch: item.etag }), idScope)
      } catch (error) {
        const e = asProvisio(error)
        errors.push({ enrollmentGroupId: id, errorCode: e.errorCode, errorStatus: e.reason })
      }
    }
    return errors.length === 0 ? { isSuccessful: true, errors: [] } : { isSuccessful: false, errors }
  }

  // ---------------------------------------------------------------------------------------------
  // Registration states
  // ---------------------------------------------------------------------------------------------

  async getRegistrationState(idScope: string, registrationId: string): Promise<DeviceRegistrationState> {
    this.ctx.instance(idScope)
    const record = await this.ctx.store.getRegistration(idScope, registrationId)
    if (!record) throw new ProvisioError('REGISTRATION_NOT_FOUND', `no registration record for '${registrationId}' in ID scope ${idScope}`)
    return registrationStateView(record)
  }

  async deleteRegistrationState(idScope: string, registrationId: string, options: ConditionalOptions = {}): Promise<void> {
    this.ctx.instance(idScope)
    const what = `registration record '${registrationId}' in ID scope ${idScope}`
    const result = await this.ctx.store.deleteRegistration(idScope, registrationId, this.deleteCondition(options))
    if (!result.ok) throw writeFailure(result, what, 'REGISTRATION_NOT_FOUND')
    this.ctx.emit('registrationDeleted', { idScope, registrationId, atMs: this.ctx.clock.now() })
  }

  async queryRegistrationStates(idScope: string, enrollmentGroupId: string, options: QueryOptions = {}): Promise<QueryPage<DeviceRegistrationState>> {
    this.ctx.instance(idScope)
    const limit = resolvePageSize(options.pageSize, this.ctx.options.defaultPageSize, this.ctx.options.maxPageSize)
    const after = options.continuationToken === undefined ? undefined : decodeContinuation(options.continuationToken)
    const rows = await this.ctx.store.listRegistrationsByGroup(idScope, enrollmentGroupId, { after, limit: limit + 1 })
    const more = rows.length > limit
    const page = more ? rows.slice(0, limit) : rows
    return {
      items: page.map(registrationStateView),
      itemType: 'DeviceRegistration',
      ...(more ? { continuationToken: encodeContinuation(normalizeRegistrationId(page[page.length - 1]!.state.registrationId)) } : {}),
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers
  // ---------------------------------------------------------------------------------------------

  /** Write condition for a PUT: If-Match as given, else compare-and-set against what we read. */
  private condition(currentEtag: string | undefined, options: ConditionalOptions, what: string): WriteCondition {
    if (options.ifMatch !== undefined && options.ifMatch !== '') {
      if (currentEtag === undefined) {
        throw new ProvisioError('PRECONDITION_FAILED', `${what}: If-Match ${options.ifMatch} given but the resource does not exist`)
      }
      return { ifMatch: options.ifMatch }
    }
    // No If-Match: create-or-replace; still guard against a concurrent writer between read and write.
    return currentEtag === undefined ? { ifNoneExists: true } : { ifMatch: currentEtag }
  }

  private deleteCondition(options: ConditionalOptions): WriteCondition | undefined {
    return options.ifMatch !== undefined && options.ifMatch !== '' ? { ifMatch: options.ifMatch } : undefined
  }

  private defaults(input: EnrollmentCommon): Pick<EnrollmentCommon, 'capabilities' | 'provisioningStatus' | 'reprovisionPolicy'> {
    return {
      capabilities: input.capabilities ?? { iotEdge: false },
      provisioningStatus: input.provisioningStatus ?? 'enabled',
      reprovisionPolicy: input.reprovisionPolicy ?? { updateHubAssignment: true, migrateDeviceData: true },
    }
  }

  private fillKeys(attestation: AttestationMechanism): AttestationMechanism {
    if (attestation?.type !== 'symmetricKey') return attestation
    const sk = attestation.symmetricKey ?? {}
    if (sk.primaryKey && sk.secondaryKey) return attestation
    return {
      type: 'symmetricKey',
      symmetricKey: {
        primaryKey: sk.primaryKey || newSymmetricKey(this.ctx.random),
        secondaryKey: sk.secondaryKey || newSymmetricKey(this.ctx.random),
      },
    }
  }

  /** Engine-level rules the model validators cannot know: hubs must be linked to this instance. */
  private checkCommon(instance: InstanceConfig, input: EnrollmentCommon, what: string): void {
    const linked = new Set(instance.linkedHubs.map((h) => h.hostName.toLowerCase()))
    if (input.iotHubs !== undefined) {
      if (!Array.isArray(input.iotHubs)) throw new ProvisioError('VALIDATION_FAILED', `${what}: iotHubs must be an array of host names`)
      for (const [i, hub] of input.iotHubs.entries()) {
        if (typeof hub !== 'string' || !linked.has(hub.toLowerCase())) {
          throw new ProvisioError('VALIDATION_FAILED', `${what}: iotHubs[${i}] ${JSON.stringify(hub)} is not a hub linked to ID scope ${instance.idScope}`)
        }
      }
    }
    if (input.iotHubHostName !== undefined && !linked.has(String(input.iotHubHostName).toLowerCase())) {
      throw new ProvisioError('VALIDATION_FAILED', `${what}: iotHubHostName ${JSON.stringify(input.iotHubHostName)} is not a hub linked to ID scope ${instance.idScope}`)
    }
    if (input.allocationPolicy === 'custom' && !input.customAllocationDefinition?.webhookUrl) {
      throw new ProvisioError('VALIDATION_FAILED', `${what}: allocationPolicy custom needs customAllocationDefinition.webhookUrl`)
    }
    if (input.allocationPolicy === 'static') {
      // No hub named is fine (docs/protocol.md §13.4): register decides (allocateStatic).
      const count = input.iotHubs?.length ?? 0
      if (count > 1) {
        throw new ProvisioError('VALIDATION_FAILED', `${what}: allocationPolicy static takes at most one entry in iotHubs, got ${count}`)
      }
    }
  }

  private bulkItems<T>(items: T[] | undefined, member: string): T[] {
    if (!Array.isArray(items)) throw new ProvisioError('VALIDATION_FAILED', `bulk operation: ${member} must be an array`)
    if (items.length === 0) throw new ProvisioError('VALIDATION_FAILED', `bulk operation: ${member} is empty`)
    if (items.length > BULK_MAX_ITEMS) {
      throw new ProvisioError('VALIDATION_FAILED', `bulk operation: ${member} has ${items.length} items; at most ${BULK_MAX_ITEMS} are allowed (SPEC-svc)`)
    }
    return items
  }

  /** Bulk mode, compared case-insensitively (the Node SDK spells `updateIfMatchEtag`, §7). */
  private bulkMode(mode: unknown): BulkEnrollmentOperation['mode'] {
    const m = typeof mode === 'string' ? mode.toLowerCase() : ''
    switch (m) {
      case 'create':
        return 'create'
      case 'update':
        return 'update'
      case 'updateifmatchetag':
        return 'updateIfMatchETag'
      case 'delete':
        return 'delete'
      default:
        throw new ProvisioError('VALIDATION_FAILED', `bulk operation: mode must be create, update, updateIfMatchETag or delete, got ${JSON.stringify(mode)}`)
    }
  }

  private bulkWriteCondition(mode: BulkEnrollmentOperation['mode'], etag: string | undefined, index: number): ConditionalOptions {
    if (mode !== 'updateIfMatchETag') return {}
    if (etag === undefined || etag === '') {
      throw new ProvisioError('PRECONDITION_FAILED', `item ${index}: mode updateIfMatchETag needs the item's etag`)
    }
    return { ifMatch: etag }
  }

  private async bulkOne(
    mode: BulkEnrollmentOperation['mode'],
    kind: Kind,
    id: string,
    _etag: string | undefined,
    write: () => Promise<unknown>,
    remove: () => Promise<void>,
    idScope: string,
  ): Promise<void> {
    if (mode === 'delete') return remove()
    if (mode === 'create') {
      const exists = kind === 'individual' ? await this.ctx.store.getEnrollment(idScope, id) : await this.ctx.store.getGroup(idScope, id)
      if (exists) throw new ProvisioError('CONFLICT', `${kindName(kind)} '${id}' already exists (bulk mode create)`)
    }
    await write()
  }
}

/** Create-only condition of every batch put. */
const CREATE_ONLY: WriteCondition = Object.freeze({ ifNoneExists: true })

/** One write after the other, for stores without a batch put. */
async function sequentialPuts<T>(items: readonly T[], put: (item: T) => Promise<WriteResult>): Promise<WriteResult[]> {
  const out: WriteResult[] = []
  for (const item of items) out.push(await put(item))
  return out
}

function asProvisio(error: unknown): ProvisioError {
  return isProvisioError(error) ? error : new ProvisioError('INTERNAL_ERROR', `unexpected failure: ${String(error)}`, { cause: error })
}
