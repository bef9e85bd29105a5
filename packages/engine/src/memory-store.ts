/**
 * In-memory `Store` for library use, tests and the benchmark. Single-threaded JavaScript makes
 * every method trivially atomic. Records are kept by reference (the engine never mutates them,
 * see store.ts).
 */
import type { EnrollmentGroup, IndividualEnrollment } from '@provisio/protocol'
import { checkWriteCondition } from './store.js'
import type {
  BeginOperationResult,
  CaCertificateRecord,
  EnrollmentForAttestation,
  EnrollmentPut,
  OperationRecord,
  PageRequest,
  RegistrationRecord,
  Store,
  TpmChallengeRecord,
  WriteCondition,
  WriteResult,
} from './store.js'

const OK: WriteResult = { ok: true }

/** A case-insensitive table with etag conditions and key-ordered paging. */
class Table<V> {
  readonly #rows = new Map<string, V>()
  #sorted: string[] | undefined
  constructor(private readonly etagOf: (value: V) => string | undefined) {}

  get(id: string): V | undefined {
    return this.#rows.get(id.toLowerCase())
  }

  check(key: string, condition: WriteCondition | undefined): WriteResult {
    const current = this.#rows.get(key)
    return checkWriteCondition(current === undefined ? undefined : this.etagOf(current), condition, current !== undefined)
  }

  put(id: string, value: V, condition?: WriteCondition): WriteResult {
    const key = id.toLowerCase()
    const verdict = this.check(key, condition)
    if (!verdict.ok) return verdict
    if (!this.#rows.has(key)) this.#sorted = undefined
    this.#rows.set(key, value)
    return OK
  }

  delete(id: string, condition?: WriteCondition): WriteResult {
    const key = id.toLowerCase()
    if (!this.#rows.has(key)) return { ok: false, reason: 'notFound' }
    const verdict = this.check(key, condition)
    if (!verdict.ok) return verdict
    this.#rows.delete(key)
    this.#sorted = undefined
    return OK
  }

  page(page: PageRequest, filter?: (value: V) => boolean): V[] {
    const keys = (this.#sorted ??= [...this.#rows.keys()].sort(compareKeys))
    let start = 0
    if (page.after !== undefined) {
      // first key strictly greater than `after` (binary search)
      let lo = 0
      let hi = keys.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (compareKeys(keys[mid]!, page.after) <= 0) lo = mid + 1
        else hi = mid
      }
      start = lo
    }
    const out: V[] = []
    for (let i = start; i < keys.length && out.length < page.limit; i++) {
      const value = this.#rows.get(keys[i]!)!
      if (!filter || filter(value)) out.push(value)
    }
    return out
  }

  values(): IterableIterator<V> {
    return this.#rows.values()
  }
}

/** Binary (code unit) order, the same as SQL `COLLATE BINARY` / PostgreSQL `COLLATE "C"`. */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

interface Scope {
  enrollments: Table<IndividualEnrollment>
  groups: Table<EnrollmentGroup>
  groupsRevision: number
  registrations: Table<RegistrationRecord>
  operationsByDevice: Map<string, OperationRecord>
  operationsById: Map<string, OperationRecord>
  caCertificates: Table<CaCertificateRecord>
  /** TPM challenges by lower-cased registration id, oldest issued first; and the device of each challenge id. */
  tpmByDevice: Map<string, TpmChallengeRecord[]>
  tpmDeviceOf: Map<string, string>
}

/** Issue order of TPM challenges (the SQL stores order by the same pair). */
function issuedBefore(a: TpmChallengeRecord, b: TpmChallengeRecord): number {
  return a.issuedAtMs - b.issuedAtMs || compareKeys(a.challengeId, b.challengeId)
}

/** In-memory implementation of the engine's Store port. */
export class MemoryStore implements Store {
  readonly #scopes = new Map<string, Scope>()
  /** TPM challenges kept, and how many there were after the last sweep of lapsed ones. */
  #tpmCount = 0
  #tpmAfterSweep = 0

  #scope(idScope: string): Scope {
    let scope = this.#scopes.get(idScope)
    if (!scope) {
      scope = {
        enrollments: new Table((e) => e.etag),
        groups: new Table((g) => g.etag),
        groupsRevision: 0,
        registrations: new Table((r) => r.state.etag),
        operationsByDevice: new Map(),
        operationsById: new Map(),
        caCertificates: new Table((c) => c.etag),
        tpmByDevice: new Map(),
        tpmDeviceOf: new Map(),
      }
      this.#scopes.set(idScope, scope)
    }
    return scope
  }

  async getEnrollment(idScope: string, registrationId: string): Promise<IndividualEnrollment | undefined> {
    return this.#scope(idScope).enrollments.get(registrationId)
  }
  async putEnrollment(idScope: string, enrollment: IndividualEnrollment, condition?: WriteCondition): Promise<WriteResult> {
    return this.#scope(idScope).enrollments.put(enrollment.registrationId, enrollment, condition)
  }
  async putEnrollments(idScope: string, items: readonly EnrollmentPut[]): Promise<WriteResult[]> {
    // Synchronous: no other call interleaves, so the batch is one transaction.
    const table = this.#scope(idScope).enrollments
    return items.map((item) => table.put(item.enrollment.registrationId, item.enrollment, item.condition))
  }
  async deleteEnrollment(idScope: string, registrationId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#scope(idScope).enrollments.delete(registrationId, condition)
  }
  async listEnrollments(idScope: string, page: PageRequest): Promise<IndividualEnrollment[]> {
    return this.#scope(idScope).enrollments.page(page)
  }

  async getGroup(idScope: string, enrollmentGroupId: string): Promise<EnrollmentGroup | undefined> {
    return this.#scope(idScope).groups.get(enrollmentGroupId)
  }
  async putGroup(idScope: string, group: EnrollmentGroup, condition?: WriteCondition): Promise<WriteResult> {
    const scope = this.#scope(idScope)
    const result = scope.groups.put(group.enrollmentGroupId, group, condition)
    if (result.ok) scope.groupsRevision++
    return result
  }
  async deleteGroup(idScope: string, enrollmentGroupId: string, condition?: WriteCondition): Promise<WriteResult> {
    const scope = this.#scope(idScope)
    const result = scope.groups.delete(enrollmentGroupId, condition)
    if (result.ok) scope.groupsRevision++
    return result
  }
  async listGroups(idScope: string, page: PageRequest): Promise<EnrollmentGroup[]> {
    return this.#scope(idScope).groups.page(page)
  }
  async groupsRevision(idScope: string): Promise<number> {
    return this.#scope(idScope).groupsRevision
  }
  async getEnrollmentForAttestation(idScope: string, registrationId: string): Promise<EnrollmentForAttestation> {
    const scope = this.#scope(idScope)
    return { enrollment: scope.enrollments.get(registrationId), groupsRevision: scope.groupsRevision }
  }

  async getRegistration(idScope: string, registrationId: string): Promise<RegistrationRecord | undefined> {
    return this.#scope(idScope).registrations.get(registrationId)
  }
  async putRegistration(idScope: string, record: RegistrationRecord, condition?: WriteCondition): Promise<WriteResult> {
    return this.#scope(idScope).registrations.put(record.state.registrationId, record, condition)
  }
  async deleteRegistration(idScope: string, registrationId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#scope(idScope).registrations.delete(registrationId, condition)
  }
  async listRegistrationsByGroup(idScope: string, enrollmentGroupId: string, page: PageRequest): Promise<RegistrationRecord[]> {
    const wanted = enrollmentGroupId.toLowerCase()
    // Filtering while paging: `limit` counts matching rows, so walk pages until full.
    const table = this.#scope(idScope).registrations
    const out: RegistrationRecord[] = []
    let after = page.after
    for (;;) {
      const chunk = table.page({ after, limit: Math.max(page.limit, 64) })
      for (const r of chunk) {
        if (r.enrollmentGroupId?.toLowerCase() === wanted) {
          out.push(r)
          if (out.length === page.limit) return out
        }
      }
      if (chunk.length === 0) return out
      after = chunk[chunk.length - 1]!.state.registrationId.toLowerCase()
    }
  }
  async listRegistrations(idScope: string, page: PageRequest): Promise<RegistrationRecord[]> {
    return this.#scope(idScope).registrations.page(page)
  }

  async getOperation(idScope: string, operationId: string): Promise<OperationRecord | undefined> {
    return this.#scope(idScope).operationsById.get(operationId)
  }
  async getDeviceOperation(idScope: string, registrationId: string): Promise<OperationRecord | undefined> {
    return this.#scope(idScope).operationsByDevice.get(registrationId.toLowerCase())
  }
  async getActiveOperationId(idScope: string, registrationId: string, nowMs: number): Promise<string | undefined> {
    const op = this.#scope(idScope).operationsByDevice.get(registrationId.toLowerCase())
    return op !== undefined && op.status === 'assigning' && op.assigningUntilMs > nowMs ? op.operationId : undefined
  }
  async beginOperation(idScope: string, operation: OperationRecord, nowMs: number): Promise<BeginOperationResult> {
    const scope = this.#scope(idScope)
    const key = operation.registrationId.toLowerCase()
    const current = scope.operationsByDevice.get(key)
    if (current && current.status === 'assigning' && current.assigningUntilMs > nowMs) return { created: false, existing: current }
    if (current) scope.operationsById.delete(current.operationId)
    scope.operationsByDevice.set(key, operation)
    scope.operationsById.set(operation.operationId, operation)
    return { created: true }
  }
  async finishOperation(idScope: string, final: OperationRecord, leaseOwner: string, registration?: RegistrationRecord): Promise<boolean> {
    const scope = this.#scope(idScope)
    const current = scope.operationsById.get(final.operationId)
    if (!current || current.status !== 'assigning' || current.leaseOwner !== leaseOwner) return false
    scope.operationsById.set(final.operationId, final)
    scope.operationsByDevice.set(final.registrationId.toLowerCase(), final)
    if (registration) scope.registrations.put(registration.state.registrationId, registration)
    return true
  }
  async commitOperation(idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number): Promise<boolean> {
    const scope = this.#scope(idScope)
    const key = final.registrationId.toLowerCase()
    const current = scope.operationsByDevice.get(key)
    if (current && current.operationId !== final.operationId && current.status === 'assigning' && current.assigningUntilMs > nowMs) return false
    if (current) scope.operationsById.delete(current.operationId)
    scope.operationsByDevice.set(key, final)
    scope.operationsById.set(final.operationId, final)
    if (registration) scope.registrations.put(registration.state.registrationId, registration)
    return true
  }
  async leaseOperation(
    idScope: string,
    operationId: string,
    expectedOwner: string,
    newOwner: string,
    assigningUntilMs: number,
    nowMs: number,
  ): Promise<OperationRecord | undefined> {
    const scope = this.#scope(idScope)
    const current = scope.operationsById.get(operationId)
    if (!current || current.status !== 'assigning' || current.leaseOwner !== expectedOwner) return undefined
    const next: OperationRecord = { ...current, leaseOwner: newOwner, assigningUntilMs, updatedAtMs: nowMs }
    scope.operationsById.set(operationId, next)
    scope.operationsByDevice.set(current.registrationId.toLowerCase(), next)
    return next
  }

  async addTpmChallenge(idScope: string, challenge: TpmChallengeRecord, perDevice: number, nowMs: number): Promise<void> {
    const scope = this.#scope(idScope)
    const device = challenge.registrationId.toLowerCase()
    const kept = [...(scope.tpmByDevice.get(device) ?? []), challenge].sort(issuedBefore)
    const keep = kept.filter((c) => c.keepUntilMs > nowMs).slice(-Math.max(1, perDevice))
    this.#tpmCount += keep.length - (kept.length - 1)
    for (const c of kept) if (!keep.includes(c)) scope.tpmDeviceOf.delete(c.challengeId)
    for (const c of keep) scope.tpmDeviceOf.set(c.challengeId, device)
    scope.tpmByDevice.set(device, keep)
    // Lapsed challenges of other devices go in amortised sweeps (whenever the count doubled).
    if (this.#tpmCount > 2 * this.#tpmAfterSweep + 64) this.#sweepTpm(nowMs)
  }
  async listTpmChallenges(idScope: string, registrationId: string, nowMs: number): Promise<TpmChallengeRecord[]> {
    return (this.#scope(idScope).tpmByDevice.get(registrationId.toLowerCase()) ?? []).filter((c) => c.keepUntilMs > nowMs)
  }
  async answerTpmChallenge(idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number): Promise<TpmChallengeRecord | undefined> {
    const scope = this.#scope(idScope)
    const device = scope.tpmDeviceOf.get(challengeId)
    const list = device === undefined ? undefined : scope.tpmByDevice.get(device)
    const i = list?.findIndex((c) => c.challengeId === challengeId) ?? -1
    if (list === undefined || i < 0 || list[i]!.keepUntilMs <= nowMs) return undefined
    const current = list[i]!
    if (current.answeredToken !== undefined) return current
    const answered: TpmChallengeRecord = { ...current, answeredAtMs: nowMs, answeredToken: token, keepUntilMs }
    list[i] = answered
    return answered
  }
  #sweepTpm(nowMs: number): void {
    let count = 0
    for (const scope of this.#scopes.values()) {
      for (const [device, list] of scope.tpmByDevice) {
        const keep = list.filter((c) => c.keepUntilMs > nowMs)
        for (const c of list) if (!keep.includes(c)) scope.tpmDeviceOf.delete(c.challengeId)
        if (keep.length === 0) scope.tpmByDevice.delete(device)
        else scope.tpmByDevice.set(device, keep)
        count += keep.length
      }
    }
    this.#tpmCount = count
    this.#tpmAfterSweep = count
  }

  async getCaCertificate(idScope: string, name: string): Promise<CaCertificateRecord | undefined> {
    return this.#scope(idScope).caCertificates.get(name)
  }
  async putCaCertificate(idScope: string, record: CaCertificateRecord, condition?: WriteCondition): Promise<WriteResult> {
    return this.#scope(idScope).caCertificates.put(record.name, record, condition)
  }
  async deleteCaCertificate(idScope: string, name: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#scope(idScope).caCertificates.delete(name, condition)
  }
  async listCaCertificates(idScope: string): Promise<CaCertificateRecord[]> {
    return this.#scope(idScope).caCertificates.page({ limit: Number.MAX_SAFE_INTEGER })
  }
}
