/**
 * createEngine: the transport-free provisioning service (layer 3, docs/architecture.md §1). Codecs and servers
 * call its device and service methods; it reaches the world only through its ports.
 */
import {
  ProvisioError,
  isProvisioError,
  validateEnrollmentGroup,
  validateIndividualEnrollment,
  validateBulkEnrollmentOperation,
  validateBulkEnrollmentGroupOperation,
} from '@provisio/protocol'
import type {
  AttestationMechanism,
  BulkEnrollmentGroupOperation,
  BulkEnrollmentGroupOperationResult,
  BulkEnrollmentOperation,
  BulkEnrollmentOperationResult,
  DeviceRegistrationResult,
  DeviceRegistrationState,
  EnrollmentGroup,
  IndividualEnrollment,
  JsonObject,
  QuerySpecification,
  RegistrationOperationStatus,
  DeviceApi,
  ServiceApi,
  ServiceAuthorization,
  TpmChallengeResponse,
} from '@provisio/protocol'
import type { Allocator } from './allocation-port.js'
import type { AttestationVerifier } from './attestation.js'
import { EngineContext } from './context.js'
import { defaultAllocator, explainDefaultAllocation } from './default-allocator.js'
import type { AllocationExplanation } from '@provisio/allocation'
import type { MatchedEnrollment } from './attestation.js'
import {
  DeviceOperations,
  type DeviceResponse,
  type OperationStatusRequest,
  type RegisterRequest,
  type RegistrationStatusRequest,
} from './device.js'
import type { EngineEventMap, Listener } from './events.js'
import type { FaultProfile } from './faults.js'
import { hex } from './ids.js'
import { normaliseInstance, type InstanceConfig, type ServiceAccessPolicy, type ServicePermission } from './instances.js'
import type { CertificateAuthorities, Clock, Fetch, HubGateway, Random, Timers } from './ports.js'
import type { QueryOptions, QueryPage } from './query.js'
import { DPS_DEFAULT_RATE_LIMITS, TokenBuckets, type RateLimitOptions } from './rate-limit.js'
import { authorizeServiceToken } from './internal/sas.js'
import { hideKeys, ServiceOperations, type ConditionalOptions, type EnrollmentCreateResult } from './service.js'
import type { RegistrationRecord, Store } from './store.js'
import { createSymmetricKeyVerifier } from './symmetric-key.js'

/** Options of {@link createEngine}. */
export interface EngineOptions {
  readonly store: Store
  readonly clock: Clock
  readonly random: Random
  readonly hubGateway: HubGateway
  /** Needed for custom allocation webhooks. */
  readonly fetch?: Fetch
  /** Bounds the wait of `assignmentBudgetMs`; see Timers. */
  readonly timers?: Timers
  readonly instances?: readonly InstanceConfig[]
  /** Extra or replacement verifiers (by kind). The symmetric-key verifier is built in. */
  readonly verifiers?: readonly AttestationVerifier[]
  /** Replaces the default allocator over @provisio/allocation. */
  readonly allocator?: Allocator
  /** DPS defaults when omitted (1,000 registrations/min/scope, 5 polls/10 s/device; §9). */
  readonly rateLimits?: RateLimitOptions
  /**
   * How long `register` may wait for the assignment before answering 202 `assigning`. 0 (default)
   * always answers 202 like DPS; with no Timers port any positive value waits for completion.
   */
  readonly assignmentBudgetMs?: number
  /** Retry-After of 202 answers, seconds (default 3, as real DPS sends; §1.4). */
  readonly retryAfterSeconds?: number
  /** Lease of an `assigning` operation before another instance may take it over (default 30 s). */
  readonly operationLeaseMs?: number
  /** Clock skew tolerated on SAS expiry, seconds (default 300). */
  readonly clockSkewSeconds?: number
  /** Query page size when the client sends none (default 100) and the cap (default 1000). */
  readonly defaultPageSize?: number
  readonly maxPageSize?: number
  /** Custom allocation webhook timeout when the instance sets none (default 10 s). */
  readonly webhookTimeoutMs?: number
  /** Issuing CAs of the instances that answer a register call's `csr` with a certificate (§1.7). */
  readonly certificateAuthorities?: CertificateAuthorities
}

/**
 * The provisioning engine: the DeviceApi and ServiceApi the codecs call (@provisio/protocol
 * api.ts) plus instance management and events. Methods throw ProvisioError for refusals (stable
 * `code`, DPS `errorCode`, detailed `reason`).
 */
export interface Engine extends DeviceApi, ServiceApi {
  // Instances
  addInstance(config: InstanceConfig): void
  /** Replaces an instance's configuration (linked hubs, policies, faults). */
  updateInstance(config: InstanceConfig): void
  removeInstance(idScope: string): void
  getInstance(idScope: string): InstanceConfig | undefined
  listInstances(): InstanceConfig[]
  /** Sets or clears the fault-injection profile of an ID scope. */
  setFaultProfile(idScope: string, profile: FaultProfile | undefined): void
  /**
   * Checks a service SAS token (`sr` = the instance's serviceHostName, §2.3) and that its policy
   * grants `permission`. Resolves the instance from `sr` unless `idScope` is given.
   */
  authorizeService(token: string, permission: ServicePermission, idScope?: string): ServiceAuthorization

  // Service API (§7). Inputs are validated with @provisio/protocol's model validators.
  createOrUpdateEnrollment(idScope: string, enrollment: IndividualEnrollment | unknown, options?: ConditionalOptions): Promise<IndividualEnrollment>
  /**
   * Creates many individual enrollments at once (the import path): each item is validated as
   * `createOrUpdateEnrollment` validates one, none replaces an existing enrollment (`exists`), and
   * the valid ones are written in one store transaction when the store has a batch put. Results
   * are in item order; a refused item never stops the others.
   */
  importEnrollments(idScope: string, items: readonly unknown[]): Promise<EnrollmentCreateResult[]>
  getEnrollment(idScope: string, registrationId: string): Promise<IndividualEnrollment>
  deleteEnrollment(idScope: string, registrationId: string, options?: ConditionalOptions): Promise<void>
  getEnrollmentAttestationMechanism(idScope: string, registrationId: string): Promise<AttestationMechanism>
  queryEnrollments(idScope: string, spec?: QuerySpecification, options?: QueryOptions): Promise<QueryPage<IndividualEnrollment>>
  runBulkEnrollmentOperation(idScope: string, operation: BulkEnrollmentOperation | unknown): Promise<BulkEnrollmentOperationResult>
  createOrUpdateEnrollmentGroup(idScope: string, group: EnrollmentGroup | unknown, options?: ConditionalOptions): Promise<EnrollmentGroup>
  getEnrollmentGroup(idScope: string, enrollmentGroupId: string): Promise<EnrollmentGroup>
  deleteEnrollmentGroup(idScope: string, enrollmentGroupId: string, options?: ConditionalOptions): Promise<void>
  getEnrollmentGroupAttestationMechanism(idScope: string, enrollmentGroupId: string): Promise<AttestationMechanism>
  queryEnrollmentGroups(idScope: string, spec?: QuerySpecification, options?: QueryOptions): Promise<QueryPage<EnrollmentGroup>>
  runBulkEnrollmentGroupOperation(idScope: string, operation: BulkEnrollmentGroupOperation | unknown): Promise<BulkEnrollmentGroupOperationResult>
  getRegistrationState(idScope: string, registrationId: string): Promise<DeviceRegistrationState>
  deleteRegistrationState(idScope: string, registrationId: string, options?: ConditionalOptions): Promise<void>
  queryRegistrationStates(idScope: string, enrollmentGroupId: string, options?: QueryOptions): Promise<QueryPage<DeviceRegistrationState>>
  /**
   * Dry run: where the device would be assigned now, why, and with which initial twin
   * (@provisio/allocation explainAllocation over this instance's hubs and the device's enrollment:
   * its individual enrollment, or the group named). Custom allocation calls the webhook. Shows the
   * default allocator's decision even when the engine was given another one.
   */
  explainAllocation(
    idScope: string,
    device: { readonly registrationId: string; readonly enrollmentGroupId?: string; readonly payload?: JsonObject },
  ): Promise<AllocationExplanation>
  /** The full internal record (last refusal, initial hub, where the identity lives). */
  getRegistrationRecord(idScope: string, registrationId: string): Promise<RegistrationRecord | undefined>

  // Device API (§1)
  /** 200/202 as DPS answers; 401 with the challenge on a TPM first leg (only with a TPM verifier plugged in). */
  register(request: RegisterRequest): Promise<DeviceResponse<RegistrationOperationStatus> | TpmChallengeResponse>
  operationStatus(request: OperationStatusRequest): Promise<DeviceResponse<RegistrationOperationStatus>>
  registrationStatus(request: RegistrationStatusRequest): Promise<DeviceResponse<DeviceRegistrationResult>>
  /** Attestation alone (MQTT CONNECT, AMQP SASL): resolves, or throws the refusal; reads no registration. */
  authenticate(request: RegistrationStatusRequest): Promise<void>

  // Events
  /** Resolves when no assignment started by this engine is still running (graceful shutdown). */
  drain(): Promise<void>
  on<K extends keyof EngineEventMap>(name: K, listener: Listener<EngineEventMap, K>): () => void
  off<K extends keyof EngineEventMap>(name: K, listener: Listener<EngineEventMap, K>): void
}

function positive(value: number | undefined, fallback: number, name: string, allowZero = false): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new RangeError(`engine option ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${String(value)}`)
  }
  return value
}

/**
 * Creates an engine.
 *
 * @example
 * ```ts
 * const engine = createEngine({ store: new MemoryStore(), clock, random, hubGateway, instances: [scope] })
 * const reply = await engine.register({ idScope, registrationId: 'dev1', evidence: { type: 'sas', token }, apiVersion: '2021-10-01' })
 * ```
 */
export function createEngine(options: EngineOptions): Engine {
  const limits = options.rateLimits ?? {}
  const registrations = limits.registrationsPerScope === undefined ? DPS_DEFAULT_RATE_LIMITS.registrationsPerScope : limits.registrationsPerScope
  const polls = limits.pollsPerDevice === undefined ? DPS_DEFAULT_RATE_LIMITS.pollsPerDevice : limits.pollsPerDevice
  const resolved = {
    assignmentBudgetMs: positive(options.assignmentBudgetMs, 0, 'assignmentBudgetMs', true),
    retryAfterSeconds: positive(options.retryAfterSeconds, 3, 'retryAfterSeconds'),
    operationLeaseMs: positive(options.operationLeaseMs, 30_000, 'operationLeaseMs'),
    clockSkewSeconds: positive(options.clockSkewSeconds, 300, 'clockSkewSeconds', true),
    defaultPageSize: positive(options.defaultPageSize, 100, 'defaultPageSize'),
    maxPageSize: positive(options.maxPageSize, 1000, 'maxPageSize'),
    webhookTimeoutMs: positive(options.webhookTimeoutMs, 10_000, 'webhookTimeoutMs'),
  }
  const ctx = new EngineContext(
    options.store,
    options.clock,
    options.random,
    options.hubGateway,
    options.allocator ?? defaultAllocator(resolved.webhookTimeoutMs),
    resolved,
    registrations ? new TokenBuckets(registrations) : undefined,
    polls ? new TokenBuckets(polls) : undefined,
    options.fetch,
    options.timers,
    `${hex(options.random.bytes(6))}:`,
  )
  ctx.certificateAuthorities = options.certificateAuthorities
  const symmetricKey = createSymmetricKeyVerifier()
  ctx.verifiers.set(symmetricKey.kind, symmetricKey)
  for (const v of options.verifiers ?? []) ctx.verifiers.set(v.kind, v)
  for (const instance of options.instances ?? []) {
    if (ctx.instances.has(instance.idScope)) throw new ProvisioError('CONFLICT', `ID scope ${instance.idScope} is configured twice`)
    ctx.instances.set(instance.idScope, normaliseInstance(instance))
  }

  const service = new ServiceOperations(ctx)
  const device = new DeviceOperations(ctx)

  return {
    addInstance(config) {
      if (ctx.instances.has(config.idScope)) throw new ProvisioError('CONFLICT', `ID scope ${config.idScope} already exists in this engine`)
      ctx.instances.set(config.idScope, normaliseInstance(config))
    },
    updateInstance(config) {
      ctx.instance(config.idScope)
      ctx.instances.set(config.idScope, normaliseInstance(config))
      ctx.faultStates.get(config.idScope)?.reset()
    },
    removeInstance(idScope) {
      ctx.instance(idScope)
      ctx.instances.delete(idScope)
      ctx.faultStates.delete(idScope)
    },
    getInstance: (idScope) => ctx.instances.get(idScope),
    listInstances: () => [...ctx.instances.values()],
    setFaultProfile(idScope, profile) {
      const current = ctx.instance(idScope)
      const { faults: _old, ...rest } = current
      ctx.instances.set(idScope, Object.freeze(profile === undefined ? rest : { ...rest, faults: profile }))
      ctx.faultStates.get(idScope)?.reset()
    },
    authorizeService(token, permission, idScope) {
      const candidates = idScope === undefined ? [...ctx.instances.values()] : [ctx.instance(idScope)]
      return authorizeServiceToken(token, permission, candidates, ctx.clock.now(), resolved.clockSkewSeconds)
    },

    createOrUpdateEnrollment: async (idScope, enrollment, opts) =>
      service.createOrUpdateEnrollment(idScope, validateIndividualEnrollment(enrollment), opts),
    importEnrollments: async (idScope, items) =>
      service.createEnrollments(idScope, items.map((item) => {
        try {
          return validateIndividualEnrollment(item)
        } catch (error) {
          return isProvisioError(error) ? error : new ProvisioError('VALIDATION_FAILED', `enrollment: ${String(error)}`, { cause: error })
        }
      })),
    getEnrollment: async (idScope, id) => service.getEnrollment(idScope, id),
    deleteEnrollment: async (idScope, id, opts) => service.deleteEnrollment(idScope, id, opts),
    getEnrollmentAttestationMechanism: async (idScope, id) => service.getEnrollmentAttestationMechanism(idScope, id),
    queryEnrollments: async (idScope, spec, opts) => service.queryEnrollments(idScope, spec, opts),
    runBulkEnrollmentOperation: async (idScope, op) => service.runBulkEnrollmentOperation(idScope, validateBulkEnrollmentOperation(op)),
    createOrUpdateEnrollmentGroup: async (idScope, group, opts) =>
      service.createOrUpdateEnrollmentGroup(idScope, validateEnrollmentGroup(group), opts),
    getEnrollmentGroup: async (idScope, id) => service.getEnrollmentGroup(idScope, id),
    deleteEnrollmentGroup: async (idScope, id, opts) => service.deleteEnrollmentGroup(idScope, id, opts),
    getEnrollmentGroupAttestationMechanism: async (idScope, id) => service.getEnrollmentGroupAttestationMechanism(idScope, id),
    queryEnrollmentGroups: async (idScope, spec, opts) => service.queryEnrollmentGroups(idScope, spec, opts),
    runBulkEnrollmentGroupOperation: async (idScope, op) => service.runBulkEnrollmentGroupOperation(idScope, validateBulkEnrollmentGroupOperation(op)),
    getRegistrationState: async (idScope, id) => service.getRegistrationState(idScope, id),
    deleteRegistrationState: async (idScope, id, opts) => service.deleteRegistrationState(idScope, id, opts),
    queryRegistrationStates: async (idScope, groupId, opts) => service.queryRegistrationStates(idScope, groupId, opts),
    async explainAllocation(idScope, device) {
      const instance = ctx.instance(idScope)
      let enrollment: MatchedEnrollment
      if (device.enrollmentGroupId !== undefined) {
        const g = await ctx.store.getGroup(idScope, device.enrollmentGroupId)
        if (!g) throw new ProvisioError('ENROLLMENT_GROUP_NOT_FOUND', `enrollment group '${device.enrollmentGroupId}' does not exist in ID scope ${idScope}`)
        enrollment = { kind: 'group', value: g }
      } else {
        const e = await ctx.store.getEnrollment(idScope, device.registrationId)
        if (!e) throw new ProvisioError('ENROLLMENT_RECORD_NOT_FOUND', `individual enrollment '${device.registrationId}' does not exist in ID scope ${idScope}; name the group to explain a group device`)
        enrollment = { kind: 'individual', value: e }
      }
      const record = await ctx.store.getRegistration(idScope, device.registrationId)
      const previous = record?.lastAssignment
      return explainDefaultAllocation(
        {
          policy: enrollment.value.allocationPolicy ?? instance.allocationPolicy ?? 'hashed',
          instance,
          linkedHubs: instance.linkedHubs,
          enrollment: enrollment.kind === 'individual' ? { kind: 'individual', value: hideKeys(enrollment.value) } : { kind: 'group', value: hideKeys(enrollment.value) },
          runtime: {
            registrationId: device.registrationId,
            ...(previous ? { currentIotHubHostName: previous.hub, currentDeviceId: previous.deviceId } : {}),
            ...(device.payload !== undefined ? { payload: device.payload } : {}),
          },
          ...(ctx.fetch ? { fetch: ctx.fetch } : {}),
        },
        resolved.webhookTimeoutMs,
      )
    },
    async getRegistrationRecord(idScope, registrationId) {
      ctx.instance(idScope)
      return ctx.store.getRegistration(idScope, registrationId)
    },

    register: async (request) => device.register(request),
    operationStatus: async (request) => device.operationStatus(request),
    registrationStatus: async (request) => device.registrationStatus(request),
    authenticate: async (request) => device.authenticate(request),

    drain: () => device.drain(),
    on: (name, listener) => ctx.emitter.on(name, listener),
    off: (name, listener) => ctx.emitter.off(name, listener),
  }
}

export type { ServiceAccessPolicy, ServiceAuthorization }
