/**
 * The `operations` table on PostgreSQL: one row per device holding its latest registration
 * operation. Every hand-over is a single statement: begin and commit are `INSERT … ON CONFLICT
 * DO UPDATE … WHERE <the current operation is not held>` (PostgreSQL locks the conflicting row and
 * evaluates the condition on its latest committed version), finish is a compare-and-set `UPDATE`
 * whose registration upsert runs in the same statement (a data-modifying CTE) only when it
 * matched, and a lease moves only from the body that was read.
 */
import type pg from 'pg'
import type { BeginOperationResult, OperationRecord, RegistrationRecord } from '@provisio/engine'
import { keyOf, type Statements } from './sql.js'

export class OperationQueries {
  readonly #statements: Statements
  readonly #pool: pg.Pool
  readonly #sql: Record<'byId' | 'byDevice' | 'active' | 'begin' | 'finish' | 'commit' | 'lease', string>

  /** @param s the quoted schema name */
  constructor(statements: Statements, pool: pg.Pool, s: string) {
    this.#statements = statements
    this.#pool = pool
    const ops = `${s}.operations`
    const opCols = 'id_scope, device_key, operation_id, status, lease_owner, assigning_until, body'
    const opSet = `operation_id = excluded.operation_id, status = excluded.status, lease_owner = excluded.lease_owner,
                   assigning_until = excluded.assigning_until, body = excluded.body`
    // The registration upsert of finish/commit, run only when the operation write matched
    // (`ok` CTE) and a record was given ($8 true).
    const regUpsert = `reg AS (
        INSERT INTO ${s}.registrations (id_scope, id_key, etag, group_key, body)
        SELECT $1, $9, $10, $11, $12 WHERE $8::boolean AND EXISTS (SELECT 1 FROM ok)
        ON CONFLICT (id_scope, id_key) DO UPDATE SET etag = excluded.etag, group_key = excluded.group_key, body = excluded.body
        RETURNING 1)`
    this.#sql = {
      byId: `SELECT body FROM ${ops} WHERE id_scope = $1 AND operation_id = $2`,
      byDevice: `SELECT body, status, assigning_until FROM ${ops} WHERE id_scope = $1 AND device_key = $2`,
      active: `SELECT operation_id FROM ${ops} WHERE id_scope = $1 AND device_key = $2 AND status = 'assigning' AND assigning_until > $3`,
      // Replace the device's operation unless the current one is held under an unexpired lease; the
      // device's registration record comes back in the same round trip (the assignment reads it next).
      begin: `WITH b AS (
                   INSERT INTO ${ops} AS o (${opCols}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (id_scope, device_key) DO UPDATE SET ${opSet}
                   WHERE NOT (o.status = 'assigning' AND o.assigning_until > $8)
                   RETURNING 1)
                 SELECT (SELECT count(*) FROM b)::int AS n,
                        (SELECT body FROM ${s}.registrations WHERE id_scope = $1 AND id_key = $2) AS registration`,
      // $1 scope, $2 operation id, $3 status, $4 owner, $5 until, $6 body, $7 expected owner.
      finish: `WITH ok AS (
                   UPDATE ${ops} SET status = $3, lease_owner = $4, assigning_until = $5, body = $6
                   WHERE id_scope = $1 AND operation_id = $2 AND status = 'assigning' AND lease_owner = $7
                   RETURNING 1),
                 ${regUpsert}
                 SELECT (SELECT count(*) FROM ok)::int AS n`,
      // $1 scope, $2 device key, $3 op id, $4 status, $5 owner, $6 until, $7 body / $13 now.
      commit: `WITH ok AS (
                   INSERT INTO ${ops} AS o (${opCols}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (id_scope, device_key) DO UPDATE SET ${opSet}
                   WHERE NOT (o.operation_id <> excluded.operation_id AND o.status = 'assigning' AND o.assigning_until > $13)
                   RETURNING 1),
                 ${regUpsert}
                 SELECT (SELECT count(*) FROM ok)::int AS n`,
      // Compare-and-set on the whole previous body too: the lease moves only from what was read.
      lease: `UPDATE ${ops} SET lease_owner = $3, assigning_until = $4, body = $5
                WHERE id_scope = $1 AND operation_id = $2 AND status = 'assigning' AND lease_owner = $6 AND body = $7`,
    }
  }

  async get(idScope: string, operationId: string): Promise<OperationRecord | undefined> {
    const { rows } = await this.#statements.run<{ body: string }>(this.#pool, this.#sql.byId, [idScope, operationId])
    return rows.length === 0 ? undefined : (JSON.parse(rows[0]!.body) as OperationRecord)
  }
  async getForDevice(idScope: string, registrationId: string): Promise<OperationRecord | undefined> {
    const { rows } = await this.#statements.run<{ body: string }>(this.#pool, this.#sql.byDevice, [idScope, keyOf(registrationId)])
    return rows.length === 0 ? undefined : (JSON.parse(rows[0]!.body) as OperationRecord)
  }
  async activeId(idScope: string, registrationId: string, nowMs: number): Promise<string | undefined> {
    const { rows } = await this.#statements.run<{ operation_id: string }>(this.#pool, this.#sql.active, [idScope, keyOf(registrationId), nowMs])
    return rows[0]?.operation_id
  }

  async begin(idScope: string, operation: OperationRecord, nowMs: number): Promise<BeginOperationResult> {
    const key = keyOf(operation.registrationId)
    const values = [idScope, key, ...operationColumns(operation), nowMs]
    // Bounded retries: the refusing row may be replaced between our upsert and our read (its
    // lease expired or it became final), in which case the upsert is tried again.
    for (let attempt = 0; attempt < 5; attempt++) {
      const { rows: begun } = await this.#statements.run<{ n: number; registration: string | null }>(this.#pool, this.#sql.begin, values)
      if (begun[0]!.n === 1) {
        const body = begun[0]!.registration
        return { created: true, prefetched: { registration: body === null ? undefined : (JSON.parse(body) as RegistrationRecord) } }
      }
      const { rows } = await this.#statements.run<{ body: string; status: string; assigning_until: string }>(this.#pool, this.#sql.byDevice, [idScope, key])
      const row = rows[0]
      if (row !== undefined && row.status === 'assigning' && Number(row.assigning_until) > nowMs) {
        return { created: false, existing: JSON.parse(row.body) as OperationRecord }
      }
    }
    throw new Error(`beginOperation for device '${operation.registrationId}' in ID scope ${idScope} kept racing other writers; giving up after 5 attempts`)
  }

  async finish(idScope: string, final: OperationRecord, leaseOwner: string, registration?: RegistrationRecord): Promise<boolean> {
    const { rows } = await this.#statements.run<{ n: number }>(this.#pool, this.#sql.finish, [
      idScope,
      final.operationId,
      final.status,
      final.leaseOwner,
      final.assigningUntilMs,
      JSON.stringify(final),
      leaseOwner,
      ...registrationColumns(registration),
    ])
    return rows[0]!.n === 1
  }

  async commit(idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number): Promise<boolean> {
    const { rows } = await this.#statements.run<{ n: number }>(this.#pool, this.#sql.commit, [
      idScope,
      keyOf(final.registrationId),
      ...operationColumns(final),
      ...registrationColumns(registration),
      nowMs,
    ])
    return rows[0]!.n === 1
  }

  async lease(idScope: string, operationId: string, expectedOwner: string, newOwner: string, assigningUntilMs: number, nowMs: number): Promise<OperationRecord | undefined> {
    const { rows } = await this.#statements.run<{ body: string }>(this.#pool, this.#sql.byId, [idScope, operationId])
    if (rows.length === 0) return undefined
    const previous = rows[0]!.body
    const current = JSON.parse(previous) as OperationRecord
    if (current.status !== 'assigning' || current.leaseOwner !== expectedOwner) return undefined
    const updated: OperationRecord = { ...current, leaseOwner: newOwner, assigningUntilMs, updatedAtMs: nowMs }
    const changed = await this.#statements.run(this.#pool, this.#sql.lease, [
      idScope,
      operationId,
      newOwner,
      assigningUntilMs,
      JSON.stringify(updated),
      expectedOwner,
      previous,
    ])
    return changed.rowCount === 1 ? updated : undefined
  }
}

/** The group_key column of a registration. */
export function groupKey(record: RegistrationRecord): string | null {
  return record.enrollmentGroupId === undefined ? null : keyOf(record.enrollmentGroupId)
}

/** operation_id, status, lease_owner, assigning_until, body. */
function operationColumns(op: OperationRecord): unknown[] {
  return [op.operationId, op.status, op.leaseOwner, op.assigningUntilMs, JSON.stringify(op)]
}

/** $8 has-record flag, $9 key, $10 etag, $11 group key, $12 body. */
function registrationColumns(record: RegistrationRecord | undefined): unknown[] {
  if (record === undefined) return [false, null, null, null, null]
  return [true, keyOf(record.state.registrationId), record.state.etag, groupKey(record), JSON.stringify(record)]
}
