/**
 * Device API operations (docs/protocol.md §1.1, §10 items 1, 3, 8): register, operation status,
 * registration status lookup.
 *
 * - register answers 202 `assigning` with an operationId and Retry-After, or — when the
 *   assignment finishes within `assignmentBudgetMs` — 200 with the final state at once (§1.1:
 *   "200 allowed by spec"; §11: Node ends the flow on a first `assigned`).
 * - A register repeated while the device's operation is in flight returns that same operation
 *   (clients re-send after 429/5xx, §10 item 3).
 * - Operations carry a lease; a poll that finds an expired lease takes the assignment over
 *   (docs/architecture.md §8).
 */
import { ProvisioError, isProvisioError, normalizeRegistrationId, validateRegistrationId } from '@provisio/protocol'
import type {
  DeviceRegistrationResult,
  DeviceResponse,
  OperationStatusRequest,
  RegisterRequest,
  RegistrationOperationStatus,
  RegistrationStatusRequest,
  TpmChallengeResponse,
} from '@provisio/protocol'
import { runAssignment } from './assignment.js'
import { checkCsr } from './certificates.js'
import type { AttestationContext, AttestationOutcome, Evidence, MatchedEnrollment } from './attestation.js'
import { verifierKindOf, type VerifierKind } from './attestation.js'
import type { EngineContext } from './context.js'
import type { EvidenceType } from './events.js'
import { REGISTER_RANDOM_BYTES, etagFromBytes, hex, operationIdFromBytes } from './ids.js'
import type { InstanceConfig } from './instances.js'
import type { OperationRecord, RegistrationRecord } from './store.js'
import { formatDpsTimestamp } from '@provisio/protocol'

/**
 * Device API shapes come from the contract the codecs call (@provisio/protocol api.ts):
 * RegisterRequest, OperationStatusRequest, RegistrationStatusRequest, DeviceResponse and
 * TpmChallengeResponse (the TPM first leg, §5.2: HTTP 401 with `authenticationKey` and `keyName`).
 */
export type { RegisterRequest, OperationStatusRequest, RegistrationStatusRequest, DeviceResponse, TpmChallengeResponse }

const TIMED_OUT: unique symbol = Symbol('timed out')

function evidenceType(evidence: Evidence): EvidenceType {
  return evidence.type
}

/** Device operations of one engine. */
export class DeviceOperations {
  /** Assignments running in this process, by operation id. */
  readonly #inflight = new Map<string, Promise<OperationRecord | undefined>>()
  /** Inline registrations running in this process: device key → operation id. */
  readonly #inflightByDevice = new Map<string, string>()
  /** The same, by operation id (not in the store until committed): for polls that race the commit. */
  readonly #inlineOps = new Map<string, { op: OperationRecord; running: Promise<OperationRecord | undefined> }>()

  constructor(private readonly ctx: EngineContext) {}

  /**
   * Resolves once no assignment started by this process is running (graceful shutdown waits for
   * it before closing the store). Assignments started while waiting are waited for too.
   */
  async drain(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight.values()])
  }

  async register(request: RegisterRequest): Promise<DeviceResponse<RegistrationOperationStatus> | TpmChallengeResponse> {
    const ctx = this.ctx
    const nowMs = ctx.clock.now()
    const instance = ctx.instance(request.idScope)
    const idScope = instance.idScope
    const idError = validateRegistrationId(request.registrationId)
    if (idError) throw idError
    const registrationId = request.registrationId
    const key = normalizeRegistrationId(registrationId)
    const force = request.forceRegistration === true
    if (ctx.emitter.has('registrationAttempted')) {
      ctx.emit('registrationAttempted', { idScope, registrationId, evidenceType: evidenceType(request.evidence), forceRegistration: force, atMs: nowMs })
    }

    this.#injectFaults(instance, key, registrationId, 'Register', nowMs)
    if (ctx.registrationLimiter) {
      const verdict = ctx.registrationLimiter.take(idScope, nowMs)
      if (!verdict.ok) {
        const error = new ProvisioError(
          'THROTTLED',
          `ID scope ${idScope} exceeded ${ctx.registrationLimiter.limit.limit} registrations per ${ctx.registrationLimiter.limit.windowMs / 1000} s (docs/protocol.md §9)`,
          { retryAfterSeconds: verdict.retryAfterSeconds },
        )
        this.#failed(idScope, registrationId, 'throttle', error, nowMs)
        throw error
      }
    }

    const outcome = await this.#attest(instance, registrationId, key, request.evidence, nowMs)
    if (!outcome.ok) {
      // TPM first leg (§5.2, §10 item 4): not a refusal but the activation challenge.
      if (outcome.challenge !== undefined) return { status: 401, challenge: outcome.challenge }
      await this.#refused(instance, registrationId, outcome, nowMs)
      throw outcome.error
    }
    if (request.csr !== undefined) {
      try {
        checkCsr(ctx.certificateAuthorities, idScope, registrationId, request.csr, request.apiVersion)
      } catch (error) {
        if (isProvisioError(error)) this.#failed(idScope, registrationId, 'attestation', error, nowMs, { kind: outcome.enrollment.kind, id: enrollmentId(outcome.enrollment) })
        throw error
      }
    }

    // One Random call for operation id, lease owner and etag-free bookkeeping (hot path).
    const bytes = ctx.random.bytes(REGISTER_RANDOM_BYTES)
    const operationId = operationIdFromBytes(bytes, 0)
    const leaseOwner = ctx.ownerPrefix + hex(bytes, 25, 33)
    const op: OperationRecord = {
      operationId,
      registrationId,
      status: 'assigning',
      createdAtMs: nowMs,
      updatedAtMs: nowMs,
      leaseOwner,
      assigningUntilMs: nowMs + ctx.options.operationLeaseMs,
      request: {
        enrollment: { kind: outcome.enrollment.kind, id: enrollmentId(outcome.enrollment) },
        auth: outcome.auth,
        attestation: outcome.attestation,
        ...(request.payload !== undefined ? { payload: request.payload } : {}),
        forceRegistration: force,
        apiVersion: request.apiVersion,
        ...(request.csr !== undefined ? { csr: request.csr } : {}),
      },
    }
    if (ctx.options.assignmentBudgetMs > 0 && ctx.timers === undefined) {
      return this.#registerInline(instance, key, op, leaseOwner, outcome.enrollment, nowMs)
    }
    const begun = await ctx.store.beginOperation(idScope, op, nowMs)
    if (!begun.created) {
      // Idempotent re-register: the same operation (§10 item 3).
      return this.#assigningResponse(instance, key, begun.existing.operationId, registrationId, 'Register')
    }
    const running = this.#start(instance, op, leaseOwner, outcome.enrollment, begun.prefetched)
    const final = await this.#within(running)
    if (final === TIMED_OUT || final === undefined || this.#slow(instance, final.operationId, true)) {
      return this.#assigningResponse(instance, key, operationId, registrationId, 'Register')
    }
    return { status: 200, body: finalBody(final) }
  }

  /**
   * The register path when the caller waits for the assignment anyway (a budget and no Timers
   * port): nothing is written before the assignment, and operation and record are committed
   * together at the end, one store transaction per register. Repeats while it runs are answered
   * from memory (same process) or from the store (another instance's operation in flight).
   */
  async #registerInline(
    instance: InstanceConfig,
    key: string,
    op: OperationRecord,
    leaseOwner: string,
    matched: MatchedEnrollment,
    nowMs: number,
  ): Promise<DeviceResponse<RegistrationOperationStatus>> {
    const idScope = instance.idScope
    const deviceKey = idScope + '\u0000' + key
    const local = this.#inflightByDevice.get(deviceKey)
    if (local !== undefined) return this.#assigningResponse(instance, key, local, op.registrationId, 'Register')
    const active = await this.ctx.store.getActiveOperationId(idScope, op.registrationId, nowMs)
    if (active !== undefined) return this.#assigningResponse(instance, key, active, op.registrationId, 'Register')
    this.#inflightByDevice.set(deviceKey, op.operationId)
    const running = runAssignment(this.ctx, instance, op, leaseOwner, matched, 'inline')
    this.#inlineOps.set(op.operationId, { op, running })
    let final: OperationRecord | undefined
    try {
      final = await running
    } finally {
      this.#inflightByDevice.delete(deviceKey)
      this.#inlineOps.delete(op.operationId)
    }
    if (final === undefined) {
      // Another instance began an operation for this device meanwhile: that one stands.
      const winner = await this.ctx.store.getDeviceOperation(idScope, op.registrationId)
      if (winner && winner.status !== 'assigning') return { status: 200, body: finalBody(winner) }
      throw new ProvisioError('CONCURRENT_REGISTRATION', `device '${op.registrationId}' in ID scope ${idScope} is being registered by another instance`)
    }
    if (this.#slow(instance, final.operationId, true)) return this.#assigningResponse(instance, key, final.operationId, op.registrationId, 'Register')
    return { status: 200, body: finalBody(final) }
  }

  async operationStatus(request: OperationStatusRequest): Promise<DeviceResponse<RegistrationOperationStatus>> {
    const ctx = this.ctx
    const nowMs = ctx.clock.now()
    const instance = ctx.instance(request.idScope)
    const idScope = instance.idScope
    const key = normalizeRegistrationId(String(request.registrationId))
    this.#injectFaults(instance, key, request.registrationId, 'Poll', nowMs)
    if (ctx.pollLimiter) {
      const verdict = ctx.pollLimiter.take(idScope + '\u0000' + key, nowMs)
      if (!verdict.ok) {
        throw new ProvisioError(
          'POLL_THROTTLED',
          `device '${request.registrationId}' polled more than ${ctx.pollLimiter.limit.limit} times per ${ctx.pollLimiter.limit.windowMs / 1000} s (docs/protocol.md §9)`,
          { retryAfterSeconds: verdict.retryAfterSeconds },
        )
      }
    }
    let op = await ctx.store.getOperation(idScope, String(request.operationId))
    if (!op) {
      // An inline registration of this process not committed yet: wait for it like register does.
      const inline = this.#inlineOps.get(String(request.operationId))
      if (inline && normalizeRegistrationId(inline.op.registrationId) === key) op = (await inline.running) ?? inline.op
    }
    if (!op || normalizeRegistrationId(op.registrationId) !== key) {
      throw new ProvisioError('OPERATION_NOT_FOUND', `operation ${JSON.stringify(String(request.operationId).slice(0, 100))} is not an operation of device '${request.registrationId}' in ID scope ${idScope}`)
    }
    if (request.evidence !== undefined) {
      const error = await this.#verifyRepeat(instance, request.registrationId, key, request.evidence, op, nowMs)
      if (error) {
        this.#failed(idScope, request.registrationId, 'attestation', error, nowMs)
        throw error
      }
    }
    if (op.status === 'assigning') {
      const local = this.#inflight.get(op.operationId)
      if (local) {
        const done = await this.#within(local)
        if (done !== TIMED_OUT && done !== undefined) op = done
      } else if (op.assigningUntilMs <= nowMs) {
        // The instance that ran it is gone: take the lease over and run it here.
        const newOwner = ctx.ownerPrefix + hex(ctx.random.bytes(8))
        const leased = await ctx.store.leaseOperation(idScope, op.operationId, op.leaseOwner, newOwner, nowMs + ctx.options.operationLeaseMs, nowMs)
        if (leased) {
          const done = await this.#within(this.#start(instance, leased, newOwner))
          if (done !== TIMED_OUT && done !== undefined) op = done
        }
      }
    }
    if (op.status === 'assigning' || this.#slow(instance, op.operationId, false)) {
      return this.#assigningResponse(instance, key, op.operationId, op.registrationId, undefined)
    }
    return { status: 200, body: finalBody(op) }
  }

  async registrationStatus(request: RegistrationStatusRequest): Promise<DeviceResponse<DeviceRegistrationResult>> {
    const instance = await this.#authenticated(request)
    const record = await this.ctx.store.getRegistration(instance.idScope, request.registrationId)
    if (!record) return { status: 200, body: { registrationId: request.registrationId, status: 'unassigned' } }
    return { status: 200, body: record.state }
  }

  /** The credential check of MQTT CONNECT and AMQP SASL: registrationStatus without the record. */
  async authenticate(request: RegistrationStatusRequest): Promise<void> {
    await this.#authenticated(request)
  }

  /** Attests the request's evidence (refusals recorded and thrown); the instance it is for. */
  async #authenticated(request: RegistrationStatusRequest): Promise<InstanceConfig> {
    const nowMs = this.ctx.clock.now()
    const instance = this.ctx.instance(request.idScope)
    const idError = validateRegistrationId(request.registrationId)
    if (idError) throw idError
    const key = normalizeRegistrationId(request.registrationId)
    const outcome = await this.#attest(instance, request.registrationId, key, request.evidence, nowMs)
    if (!outcome.ok) {
      this.#failed(instance.idScope, request.registrationId, 'attestation', outcome.error, nowMs, outcome.enrollment)
      throw outcome.error
    }
    return instance
  }

  // ---------------------------------------------------------------------------------------------

  async #attest(instance: InstanceConfig, registrationId: string, key: string, evidence: Evidence, nowMs: number): Promise<AttestationOutcome> {
    const kind = verifierKindOf(evidence)
    const verifier = this.ctx.verifiers.get(kind)
    if (!verifier) {
      return { ok: false, error: new ProvisioError('ATTESTATION_MISMATCH', `no ${kind} verifier is configured in this engine; the device presented ${evidence.type} evidence`) }
    }
    try {
      return await verifier.attest(this.#attestationContext(instance, registrationId, key, evidence, nowMs))
    } catch (error) {
      // Verifiers must not throw for bad evidence; a throw is a bug or a store failure.
      if (isProvisioError(error)) return { ok: false, error }
      throw error
    }
  }

  #attestationContext(instance: InstanceConfig, registrationId: string, key: string, evidence: Evidence, nowMs: number): AttestationContext {
    return {
      idScope: instance.idScope,
      registrationId,
      registrationKey: key,
      evidence,
      instance,
      store: this.ctx.store,
      nowMs,
      clockSkewSeconds: this.ctx.options.clockSkewSeconds,
    }
  }

  async #verifyRepeat(instance: InstanceConfig, registrationId: string, key: string, evidence: Evidence, op: OperationRecord, nowMs: number): Promise<ProvisioError | undefined> {
    // The verifier that admitted the operation judges the poll, whatever the poll's evidence reads
    // as: a TPM device, for one, polls with its SAS in the Authorization header and no `tpm` body
    // (§5.2 step 3, §11), which on its own would read as symmetric-key evidence.
    const admitted = op.request.attestation
    const kind: VerifierKind =
      admitted.tpm !== undefined ? 'tpm' : admitted.x509 !== undefined ? 'x509' : admitted.symmetricKey !== undefined ? 'symmetricKey' : verifierKindOf(evidence)
    const verifier = this.ctx.verifiers.get(kind)
    if (!verifier) return new ProvisioError('ATTESTATION_MISMATCH', `no ${kind} verifier is configured in this engine`)
    const context = this.#attestationContext(instance, registrationId, key, evidence, nowMs)
    if (verifier.verifyRepeat) return verifier.verifyRepeat(context, op.request)
    const outcome = await verifier.attest(context)
    return outcome.ok ? undefined : outcome.error
  }

  /** Starts an assignment in the background and remembers it for polls of this process. */
  #start(
    instance: InstanceConfig,
    op: OperationRecord,
    leaseOwner: string,
    matched?: MatchedEnrollment,
    prefetched?: { readonly registration: RegistrationRecord | undefined },
  ): Promise<OperationRecord | undefined> {
    const running = runAssignment(this.ctx, instance, op, leaseOwner, matched, 'finish', prefetched).finally(() => this.#inflight.delete(op.operationId))
    this.#inflight.set(op.operationId, running)
    return running
  }

  /** Waits for an assignment up to the configured budget. */
  async #within(running: Promise<OperationRecord | undefined>): Promise<OperationRecord | undefined | typeof TIMED_OUT> {
    const budget = this.ctx.options.assignmentBudgetMs
    if (budget <= 0) return TIMED_OUT
    const timers = this.ctx.timers
    if (!timers) return running
    return Promise.race([running, timers.delay(budget, running).then((): typeof TIMED_OUT => TIMED_OUT)])
  }

  #assigningResponse(
    instance: InstanceConfig,
    key: string,
    operationId: string,
    registrationId: string,
    channel: 'Register' | undefined,
  ): DeviceResponse<RegistrationOperationStatus> {
    const retryAfterSeconds = this.ctx.options.retryAfterSeconds
    const missing = channel !== undefined && instance.faults?.missingOperationId !== undefined &&
      this.ctx.faultState(instance.idScope).hits('missingOperationId', key, instance.faults.missingOperationId)
    if (missing) {
      // Fault injection: a 202 without operationId, which C clients must reject (§1.3).
      return { status: 202, body: { status: 'assigning' } as RegistrationOperationStatus, retryAfterSeconds }
    }
    return {
      status: 202,
      body: channel === 'Register'
        ? { operationId, status: 'assigning' }
        : { operationId, status: 'assigning', registrationState: { registrationId, status: 'assigning' } },
      retryAfterSeconds,
    }
  }

  /** Slow-assigning fault: report `assigning` for N polls after the operation finished. */
  #slow(instance: InstanceConfig, operationId: string, peek: boolean): boolean {
    const polls = instance.faults?.slowAssigningPolls
    if (polls === undefined || polls <= 0) return false
    if (peek) return true
    return this.ctx.faultState(instance.idScope).consume('slowAssigning', operationId, polls)
  }

  #injectFaults(instance: InstanceConfig, key: string, registrationId: string, channel: 'Register' | 'Poll', nowMs: number): void {
    const faults = instance.faults
    if (!faults) return
    const state = this.ctx.faultState(instance.idScope)
    const server = channel === 'Register' ? faults.serverErrorRegister : faults.serverErrorPoll
    if (state.hits('serverError' + channel, key, server)) {
      const status = server?.status ?? 500
      const error = new ProvisioError(
        status === 503 ? 'SERVICE_UNAVAILABLE' : 'INTERNAL_ERROR',
        `fault injection (ID scope ${instance.idScope}): ${status} on ${channel.toLowerCase()}`,
        server?.retryAfterSeconds === undefined ? undefined : { retryAfterSeconds: server.retryAfterSeconds },
      )
      this.#failed(instance.idScope, registrationId, 'fault', error, nowMs)
      throw error
    }
    const throttle = channel === 'Register' ? faults.throttleRegister : faults.throttlePoll
    if (state.hits('throttle' + channel, key, throttle)) {
      const error = new ProvisioError(
        channel === 'Register' ? 'THROTTLED' : 'POLL_THROTTLED',
        `fault injection (ID scope ${instance.idScope}): 429 on ${channel.toLowerCase()}`,
        { retryAfterSeconds: throttle?.retryAfterSeconds ?? 1 },
      )
      this.#failed(instance.idScope, registrationId, 'fault', error, nowMs)
      throw error
    }
  }

  /** A refusal: event with the detailed reason; the record of a known device notes it. */
  async #refused(instance: InstanceConfig, registrationId: string, outcome: Extract<AttestationOutcome, { ok: false }>, nowMs: number): Promise<void> {
    const idScope = instance.idScope
    this.#failed(idScope, registrationId, 'attestation', outcome.error, nowMs, outcome.enrollment)
    if (outcome.enrollment === undefined) return
    // Only devices tied to an enrollment get their record touched, so unauthenticated callers
    // cannot create records. A proven device whose enrollment is disabled becomes `disabled`.
    const record = await this.ctx.store.getRegistration(idScope, registrationId)
    if (!record && !outcome.disabled) return
    const stamp = formatDpsTimestamp(nowMs)
    const lastRefusal = { atMs: nowMs, errorCode: outcome.error.errorCode, reason: outcome.error.reason }
    let next: RegistrationRecord
    if (outcome.disabled) {
      next = {
        ...(record ?? {}),
        state: {
          ...(record?.state ?? { registrationId, createdDateTimeUtc: stamp }),
          registrationId: record?.state.registrationId ?? registrationId,
          status: 'disabled',
          errorCode: outcome.error.errorCode,
          errorMessage: outcome.error.reason,
          lastUpdatedDateTimeUtc: stamp,
          etag: etagFromBytes(this.ctx.random.bytes(16)),
        },
        ...(outcome.enrollment.kind === 'group' ? { enrollmentGroupId: outcome.enrollment.id } : {}),
        lastRefusal,
      }
    } else {
      next = { ...record!, lastRefusal }
    }
    try {
      await this.ctx.store.putRegistration(idScope, next)
    } catch {
      // Bookkeeping only: the refusal itself stands.
    }
  }

  #failed(
    idScope: string,
    registrationId: string,
    stage: 'throttle' | 'fault' | 'attestation' | 'assignment',
    error: ProvisioError,
    atMs: number,
    enrollment?: { kind: 'individual' | 'group'; id: string },
  ): void {
    if (!this.ctx.emitter.has('registrationFailed')) return
    this.ctx.emit('registrationFailed', {
      idScope,
      registrationId,
      stage,
      errorCode: error.errorCode,
      reason: error.reason,
      ...(enrollment ? { enrollment } : {}),
      atMs,
    })
  }
}

function enrollmentId(matched: MatchedEnrollment): string {
  return matched.kind === 'individual' ? matched.value.registrationId : matched.value.enrollmentGroupId
}

function finalBody(op: OperationRecord): RegistrationOperationStatus {
  const state = op.result ?? { registrationId: op.registrationId, status: op.status }
  return { operationId: op.operationId, status: op.status, registrationState: state }
}
