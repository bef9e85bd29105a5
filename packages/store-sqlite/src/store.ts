/**
 * The engine's Store on SQLite: opens the database with its pragmas and migrations, and answers
 * each Store call from the table that owns it (keyed-table.ts for enrollments, groups,
 * registrations and CA certificates; operations.ts; tpm-challenges.ts), through the group commit
 * (group-commit.ts) when one is configured.
 */
import Database from 'better-sqlite3'
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
import type { EnrollmentGroup, IndividualEnrollment } from '@provisio/protocol'
import { settle, type GroupCommit } from './group-commit.js'
import { KeyedTable, keyOf } from './keyed-table.js'
import { OperationTable } from './operations.js'
import { migrate } from './schema.js'
import { TpmChallengeTable } from './tpm-challenges.js'

/** Options of {@link createSqliteStore}. */
export interface SqliteStoreOptions {
  /** `NORMAL` (default) or `FULL` (fsync on every commit). */
  readonly synchronous?: 'NORMAL' | 'FULL'
  /** How long a writer waits for another process's lock, ms (default 5000). */
  readonly busyTimeoutMs?: number
  /** Page cache per connection, KiB (default 65,536 = 64 MiB; SQLite's own default is 2 MiB). */
  readonly cacheSizeKiB?: number
  /** Memory-mapped I/O size, bytes (default 256 MiB; 0 disables). */
  readonly mmapSizeBytes?: number
  /**
   * Share one transaction among the writes of an event-loop turn ({@link GroupCommit}); pass the
   * same instance to every store on this database (e.g. the server's hub store). Default: none,
   * every write commits on its own.
   */
  readonly groupCommit?: GroupCommit
}

/** The engine's Store on SQLite. */
export class SqliteStore implements Store {
  readonly db: Database.Database
  readonly #owned: boolean
  readonly #enrollments: KeyedTable<IndividualEnrollment>
  readonly #groups: KeyedTable<EnrollmentGroup>
  readonly #registrations: KeyedTable<RegistrationRecord>
  readonly #cas: KeyedTable<CaCertificateRecord>
  readonly #statements: {
    revision: Database.Statement<[string], { groups_revision: number }>
    bumpRevision: Database.Statement<[string]>
    byGroupFirst: Database.Statement<[string, string, number], { body: string }>
    byGroup: Database.Statement<[string, string, string, number], { body: string }>
  }
  readonly #operations: OperationTable
  readonly #tpmChallenges: TpmChallengeTable
  readonly #group: GroupCommit | undefined

  constructor(db: Database.Database, owned: boolean, options: SqliteStoreOptions = {}) {
    this.db = db
    this.#owned = owned
    this.#group = options.groupCommit
    db.pragma('journal_mode = WAL')
    db.pragma(`synchronous = ${options.synchronous === 'FULL' ? 'FULL' : 'NORMAL'}`)
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`)
    // Measured (bench/suites/engine.mjs): with SQLite's 2 MiB default cache every register reads
    // its rows through system calls once the database outgrows it.
    db.pragma(`cache_size = ${-Math.max(1024, Math.floor(options.cacheSizeKiB ?? 65_536))}`)
    db.pragma(`mmap_size = ${Math.max(0, Math.floor(options.mmapSizeBytes ?? 268_435_456))}`)
    migrate(db)

    const bump = (idScope: string) => this.#statements.bumpRevision.run(idScope)
    this.#enrollments = new KeyedTable(db, 'enrollments', 'id_key', [])
    this.#groups = new KeyedTable(db, 'enrollment_groups', 'id_key', ['attestation_type'], bump)
    this.#registrations = new KeyedTable(db, 'registrations', 'id_key', ['group_key'])
    this.#cas = new KeyedTable(db, 'ca_certificates', 'name_key', [])
    this.#statements = {
      revision: db.prepare('SELECT groups_revision FROM scope_state WHERE id_scope = ?'),
      bumpRevision: db.prepare(
        `INSERT INTO scope_state (id_scope, groups_revision) VALUES (?, 1)
         ON CONFLICT (id_scope) DO UPDATE SET groups_revision = scope_state.groups_revision + 1`,
      ),
      byGroupFirst: db.prepare('SELECT body FROM registrations WHERE id_scope = ? AND group_key = ? ORDER BY id_key LIMIT ?'),
      byGroup: db.prepare('SELECT body FROM registrations WHERE id_scope = ? AND group_key = ? AND id_key > ? ORDER BY id_key LIMIT ?'),
    }
    this.#operations = new OperationTable(db, (idScope, record) => this.#putRegistration(idScope, record))
    this.#tpmChallenges = new TpmChallengeTable(db)
  }

  #putRegistration(idScope: string, record: RegistrationRecord, condition?: WriteCondition): WriteResult {
    const group = record.enrollmentGroupId === undefined ? null : keyOf(record.enrollmentGroupId)
    return this.#registrations.put(idScope, record.state.registrationId, record.state.etag, record, [group], condition)
  }

  /** Closes the database if this store opened it (committing an open group first). */
  close(): void {
    this.#group?.flush()
    if (this.#owned) this.db.close()
  }

  /** A write: in the open group when group commit is on, else committed on its own. */
  #write<T>(fn: () => T): Promise<T> {
    return this.#group ? this.#group.write(fn) : settle(fn)
  }
  /** A read (after the open group's COMMIT when group commit is on). */
  #read<T>(fn: () => T): Promise<T> {
    return this.#group ? this.#group.read(fn) : settle(fn)
  }

  /** Applied schema versions (for diagnostics and tests). */
  schemaVersions(): number[] {
    return (this.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version)
  }

  async getEnrollment(idScope: string, registrationId: string): Promise<IndividualEnrollment | undefined> {
    return this.#read(() => this.#enrollments.get(idScope, registrationId))
  }
  async putEnrollment(idScope: string, enrollment: IndividualEnrollment, condition?: WriteCondition): Promise<WriteResult> {
    return this.#write(() => this.#enrollments.put(idScope, enrollment.registrationId, enrollment.etag ?? '', enrollment, [], condition))
  }
  async putEnrollments(idScope: string, items: readonly EnrollmentPut[]): Promise<WriteResult[]> {
    const rows = items.map((item) => ({
      id: item.enrollment.registrationId,
      etag: item.enrollment.etag ?? '',
      value: item.enrollment,
      extra: [],
      ...(item.condition === undefined ? {} : { condition: item.condition }),
    }))
    return this.#write(() => this.#enrollments.putMany(idScope, rows))
  }
  async deleteEnrollment(idScope: string, registrationId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#write(() => this.#enrollments.delete(idScope, registrationId, condition))
  }
  async listEnrollments(idScope: string, page: PageRequest): Promise<IndividualEnrollment[]> {
    return this.#read(() => this.#enrollments.page(idScope, page))
  }

  async getGroup(idScope: string, enrollmentGroupId: string): Promise<EnrollmentGroup | undefined> {
    return this.#read(() => this.#groups.get(idScope, enrollmentGroupId))
  }
  async putGroup(idScope: string, group: EnrollmentGroup, condition?: WriteCondition): Promise<WriteResult> {
    return this.#write(() => this.#groups.put(idScope, group.enrollmentGroupId, group.etag ?? '', group, [group.attestation.type], condition))
  }
  async deleteGroup(idScope: string, enrollmentGroupId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#write(() => this.#groups.delete(idScope, enrollmentGroupId, condition))
  }
  async listGroups(idScope: string, page: PageRequest): Promise<EnrollmentGroup[]> {
    return this.#read(() => this.#groups.page(idScope, page))
  }
  async getEnrollmentForAttestation(idScope: string, registrationId: string): Promise<EnrollmentForAttestation> {
    return this.#read(() => ({
      enrollment: this.#enrollments.get(idScope, registrationId),
      groupsRevision: this.#statements.revision.get(idScope)?.groups_revision ?? 0,
    }))
  }
  async groupsRevision(idScope: string): Promise<number> {
    return this.#read(() => this.#statements.revision.get(idScope)?.groups_revision ?? 0)
  }

  async getRegistration(idScope: string, registrationId: string): Promise<RegistrationRecord | undefined> {
    return this.#read(() => this.#registrations.get(idScope, registrationId))
  }
  async putRegistration(idScope: string, record: RegistrationRecord, condition?: WriteCondition): Promise<WriteResult> {
    return this.#write(() => this.#putRegistration(idScope, record, condition))
  }
  async deleteRegistration(idScope: string, registrationId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#write(() => this.#registrations.delete(idScope, registrationId, condition))
  }
  async listRegistrationsByGroup(idScope: string, enrollmentGroupId: string, page: PageRequest): Promise<RegistrationRecord[]> {
    const group = keyOf(enrollmentGroupId)
    return this.#read(() => {
      const rows = page.after === undefined
        ? this.#statements.byGroupFirst.all(idScope, group, page.limit)
        : this.#statements.byGroup.all(idScope, group, page.after, page.limit)
      return rows.map((r) => JSON.parse(r.body) as RegistrationRecord)
    })
  }
  async listRegistrations(idScope: string, page: PageRequest): Promise<RegistrationRecord[]> {
    return this.#read(() => this.#registrations.page(idScope, page))
  }

  async getOperation(idScope: string, operationId: string): Promise<OperationRecord | undefined> {
    return this.#read(() => this.#operations.get(idScope, operationId))
  }
  async getDeviceOperation(idScope: string, registrationId: string): Promise<OperationRecord | undefined> {
    return this.#read(() => this.#operations.getForDevice(idScope, registrationId))
  }
  async getActiveOperationId(idScope: string, registrationId: string, nowMs: number): Promise<string | undefined> {
    return this.#read(() => this.#operations.activeId(idScope, registrationId, nowMs))
  }
  async beginOperation(idScope: string, operation: OperationRecord, nowMs: number): Promise<BeginOperationResult> {
    return this.#write(() => this.#operations.begin(idScope, operation, nowMs))
  }
  async finishOperation(idScope: string, final: OperationRecord, leaseOwner: string, registration?: RegistrationRecord): Promise<boolean> {
    return this.#write(() => this.#operations.finish(idScope, final, leaseOwner, registration))
  }
  async commitOperation(idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number): Promise<boolean> {
    return this.#write(() => this.#operations.commit(idScope, final, registration, nowMs))
  }
  async leaseOperation(
    idScope: string,
    operationId: string,
    expectedOwner: string,
    newOwner: string,
    assigningUntilMs: number,
    nowMs: number,
  ): Promise<OperationRecord | undefined> {
    return this.#write(() => this.#operations.lease(idScope, operationId, expectedOwner, newOwner, assigningUntilMs, nowMs))
  }

  async addTpmChallenge(idScope: string, challenge: TpmChallengeRecord, perDevice: number, nowMs: number): Promise<void> {
    return this.#write(() => this.#tpmChallenges.add(idScope, challenge, perDevice, nowMs))
  }
  async listTpmChallenges(idScope: string, registrationId: string, nowMs: number): Promise<TpmChallengeRecord[]> {
    return this.#read(() => this.#tpmChallenges.list(idScope, registrationId, nowMs))
  }
  async answerTpmChallenge(idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number): Promise<TpmChallengeRecord | undefined> {
    return this.#write(() => this.#tpmChallenges.answer(idScope, challengeId, token, nowMs, keepUntilMs))
  }

  async getCaCertificate(idScope: string, name: string): Promise<CaCertificateRecord | undefined> {
    return this.#read(() => this.#cas.get(idScope, name))
  }
  async putCaCertificate(idScope: string, record: CaCertificateRecord, condition?: WriteCondition): Promise<WriteResult> {
    return this.#write(() => this.#cas.put(idScope, record.name, record.etag, record, [], condition))
  }
  async deleteCaCertificate(idScope: string, name: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#write(() => this.#cas.delete(idScope, name, condition))
  }
  async listCaCertificates(idScope: string): Promise<CaCertificateRecord[]> {
    return this.#read(() => this.#cas.page(idScope, { limit: 1_000_000 }))
  }
}

/**
 * Opens (or wraps) a SQLite database as the engine's Store.
 *
 * @param target a file path (`:memory:` for a private in-memory database) or an open
 *   better-sqlite3 Database (then `close()` leaves it open)
 * @example
 * ```ts
 * const store = createSqliteStore('./.provisio/provisio.db')
 * const engine = createEngine({ store, clock, random, hubGateway })
 * ```
 */
export function createSqliteStore(target: string | Database.Database, options: SqliteStoreOptions = {}): SqliteStore {
  if (typeof target === 'string') return new SqliteStore(new Database(target), true, options)
  return new SqliteStore(target, false, options)
}
