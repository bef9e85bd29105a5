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
 *
 * This file is the Store itself (enrollments, groups, registrations, CA certificates through
 * keyed-table.ts; settings; the group revision). Beside it: sql.ts (named statements,
 * transactions), operations.ts, tpm-challenges.ts, hub-store.ts (the hub registry) and
 * connect.ts (createPostgresStore: pool, URL, first connect, migrations).
 */
import type pg from 'pg'
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
} from '@provisio/engine'
import type { C2dStore, HubStore } from '@provisio/hub'
import type { EnrollmentGroup, IndividualEnrollment } from '@provisio/protocol'
import { openNoticeChannel, type NoticeChannel, type NoticeChannelOptions } from './channel.js'
import { createPostgresC2dStore } from './c2d-store.js'
import { createPostgresHubStore } from './hub-store.js'
import { KeyedTable } from './keyed-table.js'
import { OperationQueries, groupKey } from './operations.js'
import { checkSchemaName, quoteIdent } from './schema.js'
import { Statements, clampLimit, keyOf } from './sql.js'
import { TpmChallengeQueries } from './tpm-challenges.js'

/** The engine's Store (and the embedded hub's registry) on PostgreSQL. */
export class PostgresStore implements Store {
  /** The connection pool (shared by the store, its hub registry and its settings). */
  readonly pool: pg.Pool
  /** The PostgreSQL schema holding the tables. */
  readonly schema: string
  /** The hub registry (HubStore of @provisio/hub) in the same database. */
  readonly hubStore: HubStore
  /** The hubs' cloud-to-device queues and feedback (C2dStore of @provisio/hub) in the same database. */
  readonly c2dStore: C2dStore
  readonly #owned: boolean
  readonly #statements = new Statements()
  readonly #enrollments: KeyedTable<IndividualEnrollment>
  readonly #groups: KeyedTable<EnrollmentGroup>
  readonly #registrations: KeyedTable<RegistrationRecord>
  readonly #cas: KeyedTable<CaCertificateRecord>
  readonly #sql: Record<
    'revision' | 'enrollmentForAttestation' | 'bumpRevision' | 'byGroupFirst' | 'byGroup' | 'claimSetting' | 'getSetting' | 'putSetting' | 'versions',
    string
  >
  readonly #operations: OperationQueries
  readonly #tpmChallenges: TpmChallengeQueries

  /** Use {@link createPostgresStore}, which also migrates the schema. */
  constructor(pool: pg.Pool, schema: string, owned: boolean) {
    checkSchemaName(schema)
    this.pool = pool
    this.schema = schema
    this.#owned = owned
    const s = quoteIdent(schema)
    const bump = async (db: pg.PoolClient, idScope: string) => {
      await this.#statements.run(db, this.#sql.bumpRevision, [idScope])
    }
    this.#enrollments = new KeyedTable(this.#statements, pool, `${s}.enrollments`, 'id_key', [])
    this.#groups = new KeyedTable(this.#statements, pool, `${s}.enrollment_groups`, 'id_key', ['attestation_type'], bump)
    this.#registrations = new KeyedTable(this.#statements, pool, `${s}.registrations`, 'id_key', ['group_key'])
    this.#cas = new KeyedTable(this.#statements, pool, `${s}.ca_certificates`, 'name_key', [])
    this.#sql = {
      revision: `SELECT groups_revision FROM ${s}.scope_state WHERE id_scope = $1`,
      // One round trip for attestation's first read; both subqueries see the same snapshot.
      enrollmentForAttestation: `SELECT (SELECT body FROM ${s}.enrollments WHERE id_scope = $1 AND id_key = $2) AS body,
                                        (SELECT groups_revision FROM ${s}.scope_state WHERE id_scope = $1) AS groups_revision`,
      bumpRevision: `INSERT INTO ${s}.scope_state (id_scope, groups_revision) VALUES ($1, 1)
                     ON CONFLICT (id_scope) DO UPDATE SET groups_revision = ${s}.scope_state.groups_revision + 1`,
      byGroupFirst: `SELECT body FROM ${s}.registrations WHERE id_scope = $1 AND group_key = $2 ORDER BY id_key LIMIT $3`,
      byGroup: `SELECT body FROM ${s}.registrations WHERE id_scope = $1 AND group_key = $2 AND id_key > $3 ORDER BY id_key LIMIT $4`,
      claimSetting: `INSERT INTO ${s}.settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
      getSetting: `SELECT value FROM ${s}.settings WHERE name = $1`,
      putSetting: `INSERT INTO ${s}.settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`,
      versions: `SELECT version FROM ${s}.schema_migrations ORDER BY version`,
    }
    this.#operations = new OperationQueries(this.#statements, pool, s)
    this.#tpmChallenges = new TpmChallengeQueries(this.#statements, pool, s)
    this.hubStore = createPostgresHubStore(this.#statements, pool, s)
    this.c2dStore = createPostgresC2dStore(pool, s)
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
    await this.#statements.run(this.pool, this.#sql.claimSetting, [name, value])
    const { rows } = await this.#statements.run<{ value: string }>(this.pool, this.#sql.getSetting, [name])
    return rows[0]!.value
  }

  /** Stores `value` under `name`, replacing what was there (a changed shared DPS instance state). */
  async putSetting(name: string, value: string): Promise<void> {
    await this.#statements.run(this.pool, this.#sql.putSetting, [name, value])
  }

  /** The value stored under `name`, if any. */
  async getSetting(name: string): Promise<string | undefined> {
    const { rows } = await this.#statements.run<{ value: string }>(this.pool, this.#sql.getSetting, [name])
    return rows[0]?.value
  }

  getEnrollment(idScope: string, registrationId: string): Promise<IndividualEnrollment | undefined> {
    return this.#enrollments.get(idScope, registrationId)
  }
  putEnrollment(idScope: string, enrollment: IndividualEnrollment, condition?: WriteCondition): Promise<WriteResult> {
    return this.#enrollments.put(idScope, enrollment.registrationId, enrollment.etag ?? '', enrollment, [], condition)
  }
  putEnrollments(idScope: string, items: readonly EnrollmentPut[]): Promise<WriteResult[]> {
    return this.#enrollments.putMany(idScope, items.map((item) => ({
      id: item.enrollment.registrationId,
      etag: item.enrollment.etag ?? '',
      value: item.enrollment,
      extra: [],
      ...(item.condition === undefined ? {} : { condition: item.condition }),
    })))
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
    const { rows } = await this.#statements.run<{ groups_revision: string }>(this.pool, this.#sql.revision, [idScope])
    // BIGINT arrives as a string (node-postgres keeps 64-bit integers exact); revisions stay far below 2^53.
    return rows.length === 0 ? 0 : Number(rows[0]!.groups_revision)
  }
  async getEnrollmentForAttestation(idScope: string, registrationId: string): Promise<EnrollmentForAttestation> {
    const { rows } = await this.#statements.run<{ body: string | null; groups_revision: string | null }>(this.pool, this.#sql.enrollmentForAttestation, [idScope, keyOf(registrationId)])
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
      ? await this.#statements.run<{ body: string }>(this.pool, this.#sql.byGroupFirst, [idScope, group, limit])
      : await this.#statements.run<{ body: string }>(this.pool, this.#sql.byGroup, [idScope, group, page.after, limit])
    return rows.map((r) => JSON.parse(r.body) as RegistrationRecord)
  }
  listRegistrations(idScope: string, page: PageRequest): Promise<RegistrationRecord[]> {
    return this.#registrations.page(idScope, page)
  }

  getOperation(idScope: string, operationId: string): Promise<OperationRecord | undefined> {
    return this.#operations.get(idScope, operationId)
  }
  getDeviceOperation(idScope: string, registrationId: string): Promise<OperationRecord | undefined> {
    return this.#operations.getForDevice(idScope, registrationId)
  }
  getActiveOperationId(idScope: string, registrationId: string, nowMs: number): Promise<string | undefined> {
    return this.#operations.activeId(idScope, registrationId, nowMs)
  }
  beginOperation(idScope: string, operation: OperationRecord, nowMs: number): Promise<BeginOperationResult> {
    return this.#operations.begin(idScope, operation, nowMs)
  }
  finishOperation(idScope: string, final: OperationRecord, leaseOwner: string, registration?: RegistrationRecord): Promise<boolean> {
    return this.#operations.finish(idScope, final, leaseOwner, registration)
  }
  commitOperation(idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number): Promise<boolean> {
    return this.#operations.commit(idScope, final, registration, nowMs)
  }
  leaseOperation(
    idScope: string,
    operationId: string,
    expectedOwner: string,
    newOwner: string,
    assigningUntilMs: number,
    nowMs: number,
  ): Promise<OperationRecord | undefined> {
    return this.#operations.lease(idScope, operationId, expectedOwner, newOwner, assigningUntilMs, nowMs)
  }

  addTpmChallenge(idScope: string, challenge: TpmChallengeRecord, perDevice: number, nowMs: number): Promise<void> {
    return this.#tpmChallenges.add(idScope, challenge, perDevice, nowMs)
  }
  listTpmChallenges(idScope: string, registrationId: string, nowMs: number): Promise<TpmChallengeRecord[]> {
    return this.#tpmChallenges.list(idScope, registrationId, nowMs)
  }
  answerTpmChallenge(idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number): Promise<TpmChallengeRecord | undefined> {
    return this.#tpmChallenges.answer(idScope, challengeId, token, nowMs, keepUntilMs)
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
