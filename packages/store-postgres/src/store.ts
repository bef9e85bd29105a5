/**
 * The engine's Store on PostgreSQL (docs/architecture.md §8: several `provisio serve`
 * instances on one database).
 *
 * Same semantics as the memory and SQLite stores (the shared conformance suite checks them);
 * what differs is how atomicity is reached with many processes writing at once:
 *
 * - Operation hand-overs are single statements. `beginOperation` and `commitOperation` are
 *   `INSERT … ON CONFLICT DO UPDATE … WHERE <the current operation is not held>`: PostgreSQL
 *   locks the conflicting row and evaluates the condition on its latest committed version, so
 *   two instances registering the same device at once cannot both win. `finishOperation` is a
 *   compare-and-set `UPDATE` on (operation, status, lease owner) whose registration upsert runs
 *   in the same statement (a data-modifying CTE) only when the update matched.
 * - Conditional writes of enrollments, groups and CA certificates lock the row
 *   (`SELECT … FOR UPDATE`) inside a transaction, then compare etags as RFC 9110 §13.1.1 says
 *   (quotes and `W/` tolerated, `*` matches any) — a comparison SQL equality cannot express.
 * - Records are JSON text in a `body` column (TEXT, not JSONB: JSONB refuses `\u0000` inside
 *   strings, which a device payload may legally contain).
 * - Hot statements are prepared once per connection (named queries).
 */
import { createHash } from 'node:crypto'
import pg from 'pg'
import type {
  BeginOperationResult,
  CaCertificateRecord,
  EnrollmentForAttestation,
  OperationRecord,
  PageRequest,
  RegistrationRecord,
  Store,
  TpmChallengeRecord,
  WriteCondition,
  WriteResult,
} from '@provisio/engine'
import { checkWriteCondition, tpmChallengeBody, tpmChallengeFromRow } from '@provisio/engine'
import type { HubDeviceRecord, HubStore, HubWriteCondition } from '@provisio/hub'
import type { EnrollmentGroup, IndividualEnrollment } from '@provisio/protocol'
import { openNoticeChannel, type NoticeChannel, type NoticeChannelOptions } from './channel.js'
import { PostgresStoreError } from './errors.js'
import { checkSchemaName, migrate, quoteIdent } from './schema.js'

/** Options of {@link createPostgresStore}. */
export interface PostgresStoreOptions {
  /**
   * PostgreSQL schema holding the tables (created when missing). Default: the `schema` query
   * parameter of the URL, else `provisio`.
   */
  readonly schema?: string
  /** Connections in the pool (default: the URL's `pool_max`, else 10). Every instance holds its own pool. */
  readonly maxConnections?: number
  /** How long to wait for a connection, ms (default 5000); also bounds the first connect. */
  readonly connectionTimeoutMs?: number
  /** Idle connections are closed after this many ms (default 30,000). */
  readonly idleTimeoutMs?: number
  /** Server-side `statement_timeout`, ms (default 30,000; 0 disables). */
  readonly statementTimeoutMs?: number
  /** `application_name` shown in `pg_stat_activity` (default `provisio`). */
  readonly applicationName?: string
  /** Called with errors of idle pooled connections (e.g. the server restarted); default: ignored, the pool reconnects. */
  readonly onIdleError?: (error: Error) => void
}

const OK: WriteResult = { ok: true }

/** Registration ids, group ids and CA names are ASCII (docs/protocol.md §0): ASCII lower-casing is the key. */
function keyOf(id: string): string {
  return id.toLowerCase()
}

/** The engine's one conditional-write check (its `etagMatches` strips quotes before looking for `*`). */
function check(current: string | undefined, condition: WriteCondition | undefined): WriteResult {
  return checkWriteCondition(current, condition)
}

type Queryable = pg.Pool | pg.PoolClient

/**
 * Named (prepared) queries: PostgreSQL parses and plans each once per connection. The name is a
 * hash of the SQL text (schema included), so stores sharing one pool — even on different
 * schemas — never give one name to two texts (node-postgres refuses that).
 */
class Statements {
  readonly #names = new Map<string, string>()
  run<R extends pg.QueryResultRow>(db: Queryable, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    let name = this.#names.get(text)
    if (name === undefined) {
      name = `provisio_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`
      this.#names.set(text, name)
    }
    return db.query<R>({ name, text, values })
  }
}

/** A keyed JSON table with conditional upsert/delete and key-ordered paging. */
class KeyedTable<V> {
  readonly #s: Statements
  readonly #pool: pg.Pool
  readonly #onChange: ((db: pg.PoolClient, idScope: string) => Promise<void>) | undefined
  readonly #sql: { get: string; lock: string; upsert: string; insert: string; del: string; page: string; pageFirst: string }

  constructor(
    s: Statements,
    pool: pg.Pool,
    table: string,
    key: string,
    extra: readonly string[],
    onChange?: (db: pg.PoolClient, idScope: string) => Promise<void>,
  ) {
    this.#s = s
    this.#pool = pool
    this.#onChange = onChange
    const cols = ['id_scope', key, 'etag', ...extra, 'body']
    const updates = ['etag', ...extra, 'body'].map((c) => `${c} = excluded.${c}`).join(', ')
    this.#sql = {
      get: `SELECT etag, body FROM ${table} WHERE id_scope = $1 AND ${key} = $2`,
      lock: `SELECT etag FROM ${table} WHERE id_scope = $1 AND ${key} = $2 FOR UPDATE`,
      upsert: `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
               ON CONFLICT (id_scope, ${key}) DO UPDATE SET ${updates}`,
      insert: `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
               ON CONFLICT (id_scope, ${key}) DO NOTHING`,
      del: `DELETE FROM ${table} WHERE id_scope = $1 AND ${key} = $2`,
      page: `SELECT body FROM ${table} WHERE id_scope = $1 AND ${key} > $2 ORDER BY ${key} LIMIT $3`,
      pageFirst: `SELECT body FROM ${table} WHERE id_scope = $1 ORDER BY ${key} LIMIT $2`,
    }
  }

  async get(idScope: string, id: string): Promise<V | undefined> {
    const { rows } = await this.#s.run<{ body: string }>(this.#pool, this.#sql.get, [idScope, keyOf(id)])
    return rows.length === 0 ? undefined : (JSON.parse(rows[0]!.body) as V)
  }

  async put(idScope: string, id: string, etag: string, value: V, extra: unknown[], condition?: WriteCondition): Promise<WriteResult> {
    const values = [idScope, keyOf(id), etag, ...extra, JSON.stringify(value)]
    if (condition === undefined && this.#onChange === undefined) {
      await this.#s.run(this.#pool, this.#sql.upsert, values)
      return OK
    }
    return transaction(this.#pool, async (db) => {
      if (condition?.ifNoneExists === true && condition.ifMatch === undefined) {
        // A create: the primary key settles two creates racing (a missing row cannot be locked).
        const inserted = await this.#s.run(db, this.#sql.insert, values)
        if ((inserted.rowCount ?? 0) === 0) return { ok: false, reason: 'exists', currentEtag: await this.#lockedEtag(db, idScope, id) } as WriteResult
        await this.#onChange?.(db, idScope)
        return OK
      }
      if (condition !== undefined) {
        const verdict = check(await this.#lockedEtag(db, idScope, id), condition)
        if (!verdict.ok) return verdict
      }
      await this.#s.run(db, this.#sql.upsert, values)
      await this.#onChange?.(db, idScope)
      return OK
    })
  }

  async delete(idScope: string, id: string, condition?: WriteCondition): Promise<WriteResult> {
    return transaction(this.#pool, async (db) => {
      const current = await this.#lockedEtag(db, idScope, id)
      if (current === undefined) return { ok: false, reason: 'notFound' } as WriteResult
      const verdict = check(current, condition)
      if (!verdict.ok) return verdict
      await this.#s.run(db, this.#sql.del, [idScope, keyOf(id)])
      await this.#onChange?.(db, idScope)
      return OK
    })
  }

  async page(idScope: string, page: PageRequest): Promise<V[]> {
    const limit = clampLimit(page.limit)
    const { rows } = page.after === undefined
      ? await this.#s.run<{ body: string }>(this.#pool, this.#sql.pageFirst, [idScope, limit])
      : await this.#s.run<{ body: string }>(this.#pool, this.#sql.page, [idScope, page.after, limit])
    return rows.map((r) => JSON.parse(r.body) as V)
  }

  /** The row's etag, locked until the transaction ends. */
  async #lockedEtag(db: pg.PoolClient, idScope: string, id: string): Promise<string | undefined> {
    const { rows } = await this.#s.run<{ etag: string }>(db, this.#sql.lock, [idScope, keyOf(id)])
    return rows[0]?.etag
  }
}

function clampLimit(limit: number): number {
  return Number.isFinite(limit) ? Math.max(0, Math.min(Math.floor(limit), 1_000_000)) : 0
}

async function transaction<T>(pool: pg.Pool, fn: (db: pg.PoolClient) => Promise<T>): Promise<T> {
  const db = await pool.connect()
  // A connection that cannot even roll back is broken (server restart, network cut): it is
  // destroyed instead of going back to the pool.
  let broken = false
  try {
    await db.query('BEGIN')
    const result = await fn(db)
    await db.query('COMMIT')
    return result
  } catch (error) {
    await db.query('ROLLBACK').catch(() => {
      broken = true
    })
    throw error
  } finally {
    db.release(broken)
  }
}

/** The engine's Store (and the embedded hub's registry) on PostgreSQL. */
export class PostgresStore implements Store {
  /** The connection pool (shared by the store, its hub registry and its settings). */
  readonly pool: pg.Pool
  /** The PostgreSQL schema holding the tables. */
  readonly schema: string
  /** The hub registry (HubStore of @provisio/hub) in the same database. */
  readonly hubStore: HubStore
  readonly #owned: boolean
  readonly #s = new Statements()
  readonly #enrollments: KeyedTable<IndividualEnrollment>
  readonly #groups: KeyedTable<EnrollmentGroup>
  readonly #registrations: KeyedTable<RegistrationRecord>
  readonly #cas: KeyedTable<CaCertificateRecord>
  readonly #sql: Record<
    | 'revision' | 'enrollmentForAttestation' | 'bumpRevision' | 'byGroupFirst' | 'byGroup' | 'opById' | 'opByDevice' | 'opActive' | 'opBegin'
    | 'opFinish' | 'opCommit' | 'opLease' | 'claimSetting' | 'getSetting' | 'versions'
    | 'tpmInsert' | 'tpmPurge' | 'tpmTrim' | 'tpmList' | 'tpmGet' | 'tpmAnswer',
    string
  >

  /** Use {@link createPostgresStore}, which also migrates the schema. */
  constructor(pool: pg.Pool, schema: string, owned: boolean) {
    checkSchemaName(schema)
    this.pool = pool
    this.schema = schema
    this.#owned = owned
    const s = quoteIdent(schema)
    const bump = async (db: pg.PoolClient, idScope: string) => {
      await this.#s.run(db, this.#sql.bumpRevision, [idScope])
    }
    this.#enrollments = new KeyedTable(this.#s, pool, `${s}.enrollments`, 'id_key', [])
    this.#groups = new KeyedTable(this.#s, pool, `${s}.enrollment_groups`, 'id_key', ['attestation_type'], bump)
    this.#registrations = new KeyedTable(this.#s, pool, `${s}.registrations`, 'id_key', ['group_key'])
    this.#cas = new KeyedTable(this.#s, pool, `${s}.ca_certificates`, 'name_key', [])
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
      revision: `SELECT groups_revision FROM ${s}.scope_state WHERE id_scope = $1`,
      // One round trip for attestation's first read; both subqueries see the same snapshot.
      enrollmentForAttestation: `SELECT (SELECT body FROM ${s}.enrollments WHERE id_scope = $1 AND id_key = $2) AS body,
                                        (SELECT groups_revision FROM ${s}.scope_state WHERE id_scope = $1) AS groups_revision`,
      bumpRevision: `INSERT INTO ${s}.scope_state (id_scope, groups_revision) VALUES ($1, 1)
                     ON CONFLICT (id_scope) DO UPDATE SET groups_revision = ${s}.scope_state.groups_revision + 1`,
      byGroupFirst: `SELECT body FROM ${s}.registrations WHERE id_scope = $1 AND group_key = $2 ORDER BY id_key LIMIT $3`,
      byGroup: `SELECT body FROM ${s}.registrations WHERE id_scope = $1 AND group_key = $2 AND id_key > $3 ORDER BY id_key LIMIT $4`,
      opById: `SELECT body FROM ${ops} WHERE id_scope = $1 AND operation_id = $2`,
      opByDevice: `SELECT body, status, assigning_until FROM ${ops} WHERE id_scope = $1 AND device_key = $2`,
      opActive: `SELECT operation_id FROM ${ops} WHERE id_scope = $1 AND device_key = $2 AND status = 'assigning' AND assigning_until > $3`,
      // Replace the device's operation unless the current one is held under an unexpired lease.
      opBegin: `INSERT INTO ${ops} AS o (${opCols}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (id_scope, device_key) DO UPDATE SET ${opSet}
                WHERE NOT (o.status = 'assigning' AND o.assigning_until > $8)
                RETURNING 1`,
      // $1 scope, $2 operation id, $3 status, $4 owner, $5 until, $6 body, $7 expected owner.
      opFinish: `WITH ok AS (
                   UPDATE ${ops} SET status = $3, lease_owner = $4, assigning_until = $5, body = $6
                   WHERE id_scope = $1 AND operation_id = $2 AND status = 'assigning' AND lease_owner = $7
                   RETURNING 1),
                 ${regUpsert}
                 SELECT (SELECT count(*) FROM ok)::int AS n`,
      // $1 scope, $2 device key, $3 op id, $4 status, $5 owner, $6 until, $7 body / $13 now.
      opCommit: `WITH ok AS (
                   INSERT INTO ${ops} AS o (${opCols}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (id_scope, device_key) DO UPDATE SET ${opSet}
                   WHERE NOT (o.operation_id <> excluded.operation_id AND o.status = 'assigning' AND o.assigning_until > $13)
                   RETURNING 1),
                 ${regUpsert}
                 SELECT (SELECT count(*) FROM ok)::int AS n`,
      // Compare-and-set on the whole previous body too: the lease moves only from what was read.
      opLease: `UPDATE ${ops} SET lease_owner = $3, assigning_until = $4, body = $5
                WHERE id_scope = $1 AND operation_id = $2 AND status = 'assigning' AND lease_owner = $6 AND body = $7`,
      claimSetting: `INSERT INTO ${s}.settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
      getSetting: `SELECT value FROM ${s}.settings WHERE name = $1`,
      versions: `SELECT version FROM ${s}.schema_migrations ORDER BY version`,
      tpmInsert: `INSERT INTO ${s}.tpm_challenges (id_scope, challenge_id, device_key, issued_at, keep_until, answered_at, answered_token, body)
                  VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6)`,
      tpmPurge: `DELETE FROM ${s}.tpm_challenges WHERE keep_until <= $1`,
      // The device's challenges but the newest $3 (issue time, then id: the memory store's order).
      tpmTrim: `DELETE FROM ${s}.tpm_challenges WHERE id_scope = $1 AND device_key = $2 AND challenge_id NOT IN (
                  SELECT challenge_id FROM ${s}.tpm_challenges WHERE id_scope = $1 AND device_key = $2
                  ORDER BY issued_at DESC, challenge_id DESC LIMIT $3)`,
      tpmList: `SELECT keep_until, answered_at, answered_token, body FROM ${s}.tpm_challenges
                WHERE id_scope = $1 AND device_key = $2 AND keep_until > $3 ORDER BY issued_at, challenge_id`,
      tpmGet: `SELECT keep_until, answered_at, answered_token, body FROM ${s}.tpm_challenges WHERE id_scope = $1 AND challenge_id = $2`,
      // Compare-and-set: only an unanswered, unexpired challenge takes an answer.
      tpmAnswer: `UPDATE ${s}.tpm_challenges SET answered_at = $3, answered_token = $4, keep_until = $5
                  WHERE id_scope = $1 AND challenge_id = $2 AND answered_token IS NULL AND keep_until > $3
                  RETURNING keep_until, answered_at, answered_token, body`,
    }
    const hubSql = {
      get: `SELECT record FROM ${s}.hub_devices WHERE hub = $1 AND device_key = $2`,
      put: `INSERT INTO ${s}.hub_devices (hub, device_key, record) VALUES ($1, $2, $3)
            ON CONFLICT (hub, device_key) DO UPDATE SET record = excluded.record`,
      insert: `INSERT INTO ${s}.hub_devices (hub, device_key, record) VALUES ($1, $2, $3) ON CONFLICT (hub, device_key) DO NOTHING`,
      update: `UPDATE ${s}.hub_devices SET record = $3 WHERE hub = $1 AND device_key = $2
               AND (record::jsonb -> 'device' ->> 'etag') = $4 AND (record::jsonb -> 'twin' ->> 'etag') = $5`,
      del: `DELETE FROM ${s}.hub_devices WHERE hub = $1 AND device_key = $2`,
      list: `SELECT record FROM ${s}.hub_devices WHERE hub = $1 AND device_key > $2 ORDER BY device_key LIMIT $3`,
    }
    const st = this.#s
    // The embedded hub's registry: one row per device, the record as JSON; each call is one
    // statement, and a put is an upsert, so writing the same identity twice (two instances
    // finishing the same take-over) is harmless. Conditional puts (read-modify-write of a twin by
    // a device and the service on different instances) compare the stored etags in the statement.
    this.hubStore = {
      async get(hub: string, deviceKey: string): Promise<HubDeviceRecord | undefined> {
        const { rows } = await st.run<{ record: string }>(pool, hubSql.get, [hub.toLowerCase(), deviceKey])
        return rows.length === 0 ? undefined : (JSON.parse(rows[0]!.record) as HubDeviceRecord)
      },
      async put(hub: string, deviceKey: string, record: HubDeviceRecord, condition?: HubWriteCondition): Promise<boolean> {
        const args = [hub.toLowerCase(), deviceKey, JSON.stringify(record)]
        if (condition === undefined) return ((await st.run(pool, hubSql.put, args)).rowCount ?? 0) > 0
        if ('absent' in condition) return ((await st.run(pool, hubSql.insert, args)).rowCount ?? 0) > 0
        return ((await st.run(pool, hubSql.update, [...args, condition.deviceEtag, condition.twinEtag])).rowCount ?? 0) > 0
      },
      async delete(hub: string, deviceKey: string): Promise<boolean> {
        return ((await st.run(pool, hubSql.del, [hub.toLowerCase(), deviceKey])).rowCount ?? 0) > 0
      },
      async list(hub: string, options: { after?: string; limit: number }): Promise<HubDeviceRecord[]> {
        const { rows } = await st.run<{ record: string }>(pool, hubSql.list, [hub.toLowerCase(), options.after ?? '', clampLimit(options.limit)])
        return rows.map((r) => JSON.parse(r.record) as HubDeviceRecord)
      },
    }
  }

  /**
   * Opens a notice channel between the instances on this database (LISTEN/NOTIFY; see
   * {@link openNoticeChannel}); close it before the store.
   */
  openChannel(name: string, onMessage: (message: string) => void, options?: NoticeChannelOptions): Promise<NoticeChannel> {
    return openNoticeChannel(this.pool, this.schema, name, onMessage, options)
  }

  /** Ends the pool if this store created it. */
  async close(): Promise<void> {
    if (this.#owned) await this.pool.end()
  }

  /** Applied schema versions (diagnostics and tests). */
  async schemaVersions(): Promise<number[]> {
    const { rows } = await this.pool.query<{ version: number }>(this.#sql.versions)
    return rows.map((r) => r.version)
  }

  /**
   * Stores `value` under `name` unless a value is there already, and returns the stored one:
   * the first of several instances starting at once decides (used by `provisio serve` for the
   * shared DPS instance state).
   */
  async claimSetting(name: string, value: string): Promise<string> {
    await this.#s.run(this.pool, this.#sql.claimSetting, [name, value])
    const { rows } = await this.#s.run<{ value: string }>(this.pool, this.#sql.getSetting, [name])
    return rows[0]!.value
  }

  /** The value stored under `name`, if any. */
  async getSetting(name: string): Promise<string | undefined> {
    const { rows } = await this.#s.run<{ value: string }>(this.pool, this.#sql.getSetting, [name])
    return rows[0]?.value
  }

  getEnrollment(idScope: string, registrationId: string): Promise<IndividualEnrollment | undefined> {
    return this.#enrollments.get(idScope, registrationId)
  }
  putEnrollment(idScope: string, enrollment: IndividualEnrollment, condition?: WriteCondition): Promise<WriteResult> {
    return this.#enrollments.put(idScope, enrollment.registrationId, enrollment.etag ?? '', enrollment, [], condition)
  }
  deleteEnrollment(idScope: string, registrationId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#enrollments.delete(idScope, registrationId, condition)
  }
  listEnrollments(idScope: string, page: PageRequest): Promise<IndividualEnrollment[]> {
    return this.#enrollments.page(idScope, page)
  }

  getGroup(idScope: string, enrollmentGroupId: string): Promise<EnrollmentGroup | undefined> {
    return this.#groups.get(idScope, enrollmentGroupId)
  }
  putGroup(idScope: string, group: EnrollmentGroup, condition?: WriteCondition): Promise<WriteResult> {
    return this.#groups.put(idScope, group.enrollmentGroupId, group.etag ?? '', group, [group.attestation.type], condition)
  }
  deleteGroup(idScope: string, enrollmentGroupId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#groups.delete(idScope, enrollmentGroupId, condition)
  }
  listGroups(idScope: string, page: PageRequest): Promise<EnrollmentGroup[]> {
    return this.#groups.page(idScope, page)
  }
  async groupsRevision(idScope: string): Promise<number> {
    const { rows } = await this.#s.run<{ groups_revision: string }>(this.pool, this.#sql.revision, [idScope])
    // BIGINT arrives as a string (node-postgres keeps 64-bit integers exact); revisions stay far below 2^53.
    return rows.length === 0 ? 0 : Number(rows[0]!.groups_revision)
  }
  async getEnrollmentForAttestation(idScope: string, registrationId: string): Promise<EnrollmentForAttestation> {
    const { rows } = await this.#s.run<{ body: string | null; groups_revision: string | null }>(this.pool, this.#sql.enrollmentForAttestation, [idScope, keyOf(registrationId)])
    const row = rows[0]!
    return {
      enrollment: row.body === null ? undefined : (JSON.parse(row.body) as IndividualEnrollment),
      groupsRevision: row.groups_revision === null ? 0 : Number(row.groups_revision),
    }
  }

  getRegistration(idScope: string, registrationId: string): Promise<RegistrationRecord | undefined> {
    return this.#registrations.get(idScope, registrationId)
  }
  putRegistration(idScope: string, record: RegistrationRecord, condition?: WriteCondition): Promise<WriteResult> {
    return this.#registrations.put(idScope, record.state.registrationId, record.state.etag, record, [groupKey(record)], condition)
  }
  deleteRegistration(idScope: string, registrationId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#registrations.delete(idScope, registrationId, condition)
  }
  async listRegistrationsByGroup(idScope: string, enrollmentGroupId: string, page: PageRequest): Promise<RegistrationRecord[]> {
    const group = keyOf(enrollmentGroupId)
    const limit = clampLimit(page.limit)
    const { rows } = page.after === undefined
      ? await this.#s.run<{ body: string }>(this.pool, this.#sql.byGroupFirst, [idScope, group, limit])
      : await this.#s.run<{ body: string }>(this.pool, this.#sql.byGroup, [idScope, group, page.after, limit])
    return rows.map((r) => JSON.parse(r.body) as RegistrationRecord)
  }
  listRegistrations(idScope: string, page: PageRequest): Promise<RegistrationRecord[]> {
    return this.#registrations.page(idScope, page)
  }

  async getOperation(idScope: string, operationId: string): Promise<OperationRecord | undefined> {
    const { rows } = await this.#s.run<{ body: string }>(this.pool, this.#sql.opById, [idScope, operationId])
    return rows.length === 0 ? undefined : (JSON.parse(rows[0]!.body) as OperationRecord)
  }
  async getDeviceOperation(idScope: string, registrationId: string): Promise<OperationRecord | undefined> {
    const { rows } = await this.#s.run<{ body: string }>(this.pool, this.#sql.opByDevice, [idScope, keyOf(registrationId)])
    return rows.length === 0 ? undefined : (JSON.parse(rows[0]!.body) as OperationRecord)
  }
  async getActiveOperationId(idScope: string, registrationId: string, nowMs: number): Promise<string | undefined> {
    const { rows } = await this.#s.run<{ operation_id: string }>(this.pool, this.#sql.opActive, [idScope, keyOf(registrationId), nowMs])
    return rows[0]?.operation_id
  }

  async beginOperation(idScope: string, operation: OperationRecord, nowMs: number): Promise<BeginOperationResult> {
    const key = keyOf(operation.registrationId)
    const values = [idScope, key, ...operationColumns(operation), nowMs]
    // Bounded retries: the refusing row may be replaced between our upsert and our read (its
    // lease expired or it became final), in which case the upsert is tried again.
    for (let attempt = 0; attempt < 5; attempt++) {
      const inserted = await this.#s.run(this.pool, this.#sql.opBegin, values)
      if ((inserted.rowCount ?? 0) === 1) return { created: true }
      const { rows } = await this.#s.run<{ body: string; status: string; assigning_until: string }>(this.pool, this.#sql.opByDevice, [idScope, key])
      const row = rows[0]
      if (row !== undefined && row.status === 'assigning' && Number(row.assigning_until) > nowMs) {
        return { created: false, existing: JSON.parse(row.body) as OperationRecord }
      }
    }
    throw new Error(`beginOperation for device '${operation.registrationId}' in ID scope ${idScope} kept racing other writers; giving up after 5 attempts`)
  }

  async finishOperation(idScope: string, final: OperationRecord, leaseOwner: string, registration?: RegistrationRecord): Promise<boolean> {
    const { rows } = await this.#s.run<{ n: number }>(this.pool, this.#sql.opFinish, [
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

  async commitOperation(idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number): Promise<boolean> {
    const { rows } = await this.#s.run<{ n: number }>(this.pool, this.#sql.opCommit, [
      idScope,
      keyOf(final.registrationId),
      ...operationColumns(final),
      ...registrationColumns(registration),
      nowMs,
    ])
    return rows[0]!.n === 1
  }

  async leaseOperation(
    idScope: string,
    operationId: string,
    expectedOwner: string,
    newOwner: string,
    assigningUntilMs: number,
    nowMs: number,
  ): Promise<OperationRecord | undefined> {
    const { rows } = await this.#s.run<{ body: string }>(this.pool, this.#sql.opById, [idScope, operationId])
    if (rows.length === 0) return undefined
    const previous = rows[0]!.body
    const current = JSON.parse(previous) as OperationRecord
    if (current.status !== 'assigning' || current.leaseOwner !== expectedOwner) return undefined
    const updated: OperationRecord = { ...current, leaseOwner: newOwner, assigningUntilMs, updatedAtMs: nowMs }
    const changed = await this.#s.run(this.pool, this.#sql.opLease, [
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

  async addTpmChallenge(idScope: string, challenge: TpmChallengeRecord, perDevice: number, nowMs: number): Promise<void> {
    const device = keyOf(challenge.registrationId)
    await transaction(this.pool, async (db) => {
      await this.#s.run(db, this.#sql.tpmPurge, [nowMs])
      await this.#s.run(db, this.#sql.tpmInsert, [idScope, challenge.challengeId, device, challenge.issuedAtMs, challenge.keepUntilMs, JSON.stringify(tpmChallengeBody(challenge))])
      await this.#s.run(db, this.#sql.tpmTrim, [idScope, device, Math.max(1, Math.floor(perDevice))])
    })
  }

  async listTpmChallenges(idScope: string, registrationId: string, nowMs: number): Promise<TpmChallengeRecord[]> {
    const { rows } = await this.#s.run<TpmRow>(this.pool, this.#sql.tpmList, [idScope, keyOf(registrationId), nowMs])
    return rows.map(tpmChallengeFromRow)
  }

  async answerTpmChallenge(idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number): Promise<TpmChallengeRecord | undefined> {
    const answered = await this.#s.run<TpmRow>(this.pool, this.#sql.tpmAnswer, [idScope, challengeId, nowMs, token, keepUntilMs])
    if (answered.rows.length === 1) return tpmChallengeFromRow(answered.rows[0]!)
    // Not ours to answer: answered before (by this or another token), expired, or unknown.
    const { rows } = await this.#s.run<TpmRow>(this.pool, this.#sql.tpmGet, [idScope, challengeId])
    const row = rows[0]
    return row === undefined || Number(row.keep_until) <= nowMs ? undefined : tpmChallengeFromRow(row)
  }

  getCaCertificate(idScope: string, name: string): Promise<CaCertificateRecord | undefined> {
    return this.#cas.get(idScope, name)
  }
  putCaCertificate(idScope: string, record: CaCertificateRecord, condition?: WriteCondition): Promise<WriteResult> {
    return this.#cas.put(idScope, record.name, record.etag, record, [], condition)
  }
  deleteCaCertificate(idScope: string, name: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#cas.delete(idScope, name, condition)
  }
  listCaCertificates(idScope: string): Promise<CaCertificateRecord[]> {
    return this.#cas.page(idScope, { limit: 1_000_000 })
  }
}


function groupKey(record: RegistrationRecord): string | null {
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

/** `pool_max` query parameter of a store URL (the CLI's way to size the pool), default 10. */
function poolMaxFromUrl(url: URL): number {
  const raw = url.searchParams.get('pool_max')
  if (raw === null) return 10
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1 || n > 1000) {
    throw new PostgresStoreError('POSTGRES_CONFIG_INVALID', `PostgreSQL URL parameter pool_max must be an integer from 1 to 1000, got ${JSON.stringify(raw)}`)
  }
  return n
}

/** Where a URL points, without credentials (for error messages and logs). */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || '/'}`
  } catch {
    return '(unparsable URL)'
  }
}

/**
 * Opens a pool on a PostgreSQL database, checks it can be reached, migrates the schema (once,
 * whatever the number of instances starting at the same time) and returns the store.
 *
 * @param target a `postgres://` or `postgresql://` URL (query parameters: `schema` picks the
 *   schema, `pool_max` sizes the pool; others go to node-postgres, e.g. `sslmode`), or an
 *   existing pg.Pool (then `close()` leaves it open)
 * @throws PostgresStoreError `POSTGRES_UNREACHABLE` with the host, port, database and cause
 *   when no connection can be made; `POSTGRES_SCHEMA_TOO_NEW`; `POSTGRES_CONFIG_INVALID`
 * @example
 * ```ts
 * const store = await createPostgresStore('postgres://provisio@db.internal/provisio?schema=dps')
 * const engine = createEngine({ store, clock, random, hubGateway })
 * ```
 */
export async function createPostgresStore(target: string | pg.Pool, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  let pool: pg.Pool
  let schema = options.schema
  let where = 'the given pool'
  if (typeof target === 'string') {
    let url: URL
    try {
      url = new URL(target)
    } catch (error) {
      throw new PostgresStoreError('POSTGRES_CONFIG_INVALID', `PostgreSQL URL is not a valid URL (expected postgres://user@host:port/database)`, { cause: error })
    }
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
      throw new PostgresStoreError('POSTGRES_CONFIG_INVALID', `PostgreSQL URL must start with postgres:// or postgresql://, got ${url.protocol}//`)
    }
    schema ??= url.searchParams.get('schema') ?? undefined
    const max = options.maxConnections ?? poolMaxFromUrl(url)
    url.searchParams.delete('schema')
    url.searchParams.delete('pool_max')
    where = describePostgresUrl(target)
    pool = new pg.Pool({
      connectionString: url.toString(),
      max,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? 5000,
      idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
      statement_timeout: options.statementTimeoutMs ?? 30_000,
      application_name: options.applicationName ?? 'provisio',
    })
  } else {
    pool = target
  }
  schema ??= 'provisio'
  try {
    checkSchemaName(schema)
  } catch (error) {
    if (typeof target === 'string') await pool.end()
    throw error
  }
  // An idle client's error (server restart, network cut) is emitted on the pool; unhandled, it
  // would end the process. The pool discards that client and connects afresh on the next query.
  pool.on('error', (error) => options.onIdleError?.(error))

  let client: pg.PoolClient
  try {
    client = await pool.connect()
  } catch (error) {
    if (typeof target === 'string') await pool.end().catch(() => undefined)
    const e = error as { code?: string; message?: string }
    throw new PostgresStoreError(
      'POSTGRES_UNREACHABLE',
      `cannot connect to PostgreSQL at ${where}: ${e.code ? `${e.code} ` : ''}${e.message ?? String(error)} — is the server running and does the URL's user, password and database exist?`,
      { cause: error },
    )
  }
  try {
    await migrate(client, schema)
  } catch (error) {
    client.release()
    if (typeof target === 'string') await pool.end().catch(() => undefined)
    throw error
  }
  client.release()
  return new PostgresStore(pool, schema, typeof target === 'string')
}

/** A tpm_challenges row (BIGINT columns arrive as strings): what an answer changes is in columns, the rest in the body. */
type TpmRow = { keep_until: string; answered_at: string | null; answered_token: string | null; body: string }
