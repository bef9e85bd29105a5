/**
 * The `operations` table: one row per device holding its latest registration operation, with the
 * columns the engine compares on (status, lease owner, assigning deadline). Every hand-over
 * (begin, finish, commit, lease) is a compare-and-set in a `BEGIN IMMEDIATE` transaction, so two
 * processes on one file never interleave them; finish and commit write the registration in the
 * same transaction.
 */
import type Database from 'better-sqlite3'
import type { BeginOperationResult, OperationRecord, RegistrationRecord } from '@provisio/engine'
import { keyOf } from './keyed-table.js'

export class OperationTable {
  readonly #byId: Database.Statement<[string, string], { body: string }>
  readonly #byDevice: Database.Statement<[string, string], { body: string; status: string; lease_owner: string; assigning_until: number; operation_id: string }>
  readonly #upsert: Database.Statement
  readonly #active: Database.Statement<[string, string, number], { operation_id: string }>
  readonly #head: Database.Statement<[string, string], { status: string; assigning_until: number; operation_id: string }>
  readonly #update: Database.Statement
  readonly #begin: (idScope: string, op: OperationRecord, nowMs: number) => BeginOperationResult
  readonly #finish: (idScope: string, final: OperationRecord, owner: string, registration?: RegistrationRecord) => boolean
  readonly #lease: (idScope: string, id: string, expected: string, next: string, until: number, now: number) => OperationRecord | undefined
  readonly #commit: (idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number) => boolean

  /** @param putRegistration writes a registration (inside the operation's transaction) */
  constructor(db: Database.Database, putRegistration: (idScope: string, record: RegistrationRecord) => void) {
    this.#byId = db.prepare('SELECT body FROM operations WHERE id_scope = ? AND operation_id = ?')
    this.#byDevice = db.prepare('SELECT body, status, lease_owner, assigning_until, operation_id FROM operations WHERE id_scope = ? AND device_key = ?')
    this.#active = db.prepare(
      "SELECT operation_id FROM operations WHERE id_scope = ? AND device_key = ? AND status = 'assigning' AND assigning_until > ?",
    )
    this.#head = db.prepare('SELECT status, assigning_until, operation_id FROM operations WHERE id_scope = ? AND device_key = ?')
    this.#upsert = db.prepare(
      `INSERT INTO operations (id_scope, device_key, operation_id, status, lease_owner, assigning_until, body)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id_scope, device_key) DO UPDATE SET operation_id = excluded.operation_id, status = excluded.status,
         lease_owner = excluded.lease_owner, assigning_until = excluded.assigning_until, body = excluded.body`,
    )
    // Compare-and-set on (operation, status, lease owner): the row changes only under the lease.
    this.#update = db.prepare(
      `UPDATE operations SET status = ?, lease_owner = ?, assigning_until = ?, body = ?
       WHERE id_scope = ? AND operation_id = ? AND status = 'assigning' AND lease_owner = ?`,
    )
    const upsertOp = (idScope: string, op: OperationRecord) =>
      this.#upsert.run(idScope, keyOf(op.registrationId), op.operationId, op.status, op.leaseOwner, op.assigningUntilMs, JSON.stringify(op))

    this.#begin = db.transaction((idScope: string, op: OperationRecord, nowMs: number): BeginOperationResult => {
      const key = keyOf(op.registrationId)
      const current = this.#head.get(idScope, key)
      if (current && current.status === 'assigning' && current.assigning_until > nowMs) {
        return { created: false, existing: JSON.parse(this.#byDevice.get(idScope, key)!.body) as OperationRecord }
      }
      upsertOp(idScope, op)
      return { created: true }
    }).immediate as never
    this.#finish = db.transaction((idScope: string, final: OperationRecord, owner: string, registration?: RegistrationRecord): boolean => {
      const changed = this.#update.run(final.status, final.leaseOwner, final.assigningUntilMs, JSON.stringify(final), idScope, final.operationId, owner)
      if (changed.changes !== 1) return false
      if (registration) putRegistration(idScope, registration)
      return true
    }).immediate as never
    this.#commit = db.transaction((idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number): boolean => {
      const current = this.#head.get(idScope, keyOf(final.registrationId))
      if (current && current.operation_id !== final.operationId && current.status === 'assigning' && current.assigning_until > nowMs) return false
      upsertOp(idScope, final)
      if (registration) putRegistration(idScope, registration)
      return true
    }).immediate as never
    this.#lease = db.transaction((idScope: string, id: string, expected: string, next: string, until: number, now: number) => {
      const row = this.#byId.get(idScope, id)
      if (!row) return undefined
      const current = JSON.parse(row.body) as OperationRecord
      if (current.status !== 'assigning' || current.leaseOwner !== expected) return undefined
      const updated: OperationRecord = { ...current, leaseOwner: next, assigningUntilMs: until, updatedAtMs: now }
      const changed = this.#update.run('assigning', next, until, JSON.stringify(updated), idScope, id, expected)
      return changed.changes === 1 ? updated : undefined
    }).immediate as never
  }

  get(idScope: string, operationId: string): OperationRecord | undefined {
    const row = this.#byId.get(idScope, operationId)
    return row === undefined ? undefined : (JSON.parse(row.body) as OperationRecord)
  }
  getForDevice(idScope: string, registrationId: string): OperationRecord | undefined {
    const row = this.#byDevice.get(idScope, keyOf(registrationId))
    return row === undefined ? undefined : (JSON.parse(row.body) as OperationRecord)
  }
  activeId(idScope: string, registrationId: string, nowMs: number): string | undefined {
    return this.#active.get(idScope, keyOf(registrationId), nowMs)?.operation_id
  }
  begin(idScope: string, operation: OperationRecord, nowMs: number): BeginOperationResult {
    return this.#begin(idScope, operation, nowMs)
  }
  finish(idScope: string, final: OperationRecord, leaseOwner: string, registration?: RegistrationRecord): boolean {
    return this.#finish(idScope, final, leaseOwner, registration)
  }
  commit(idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number): boolean {
    return this.#commit(idScope, final, registration, nowMs)
  }
  lease(idScope: string, operationId: string, expectedOwner: string, newOwner: string, assigningUntilMs: number, nowMs: number): OperationRecord | undefined {
    return this.#lease(idScope, operationId, expectedOwner, newOwner, assigningUntilMs, nowMs)
  }
}
