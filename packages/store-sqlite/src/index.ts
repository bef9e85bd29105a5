/**
 * @provisio/store-sqlite — the engine's Store on SQLite (better-sqlite3), the embedded default
 * of `provisio serve` (docs/architecture.md §8).
 *
 * - WAL journal, `synchronous=NORMAL` by default (durable across process crashes; an OS crash may
 *   lose the last transactions, the usual WAL trade-off), busy timeout for several processes
 *   (with {@link GroupCommit}, as `provisio serve` runs, writes never wait inside SQLite and hold
 *   the write lock only while their statements run, see there).
 * - Schema versions recorded in `schema_migrations`; migrations run once, in order, in a transaction.
 * - Every statement is prepared once. Conditional writes and operation hand-overs run in
 *   `BEGIN IMMEDIATE` transactions so two processes on one file never interleave them.
 * - Records are JSON in a `body` column; the columns the engine filters or compares on (keys,
 *   etags, group, status, lease) are real columns. The SQL sticks to what PostgreSQL also runs
 *   (`INSERT … ON CONFLICT … DO UPDATE`, `BIGINT`, `TEXT`); ordering relies on binary collation
 *   (PostgreSQL: `COLLATE "C"`). Tables keep their rowid: measured with bench/suites/engine.mjs,
 *   `WITHOUT ROWID` halved register throughput, as SQLite's documentation predicts for rows of a
 *   kilobyte or more (the JSON bodies), which crowd the primary-key b-tree.
 */
import Database from 'better-sqlite3'
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
import type { EnrollmentGroup, IndividualEnrollment } from '@provisio/protocol'

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

/** Largest accepted `minIntervalMs` (a longer pause only adds latency). */
export const MAX_COMMIT_INTERVAL_MS = 1000

/**
 * Group commit: the writes issued during one event-loop turn run in one SQLite transaction, and
 * each caller's promise settles only after that COMMIT, so nothing is reported done before it is
 * durable. The writes are collected during the turn and run together on `setImmediate`:
 * `BEGIN IMMEDIATE`, each write in issue order, `COMMIT`. A write that fails inside the group is
 * undone alone (better-sqlite3 runs a nested `db.transaction` as a savepoint; a single statement
 * is atomic by itself); a failed COMMIT rejects every caller of the group. A read issued while
 * writes are pending runs after their COMMIT, so it sees them.
 *
 * The write lock is held only while the group's statements run (one synchronous stretch, well
 * under a millisecond for a turn's worth of registrations), not while the process serves other
 * connections. With `otherWriters` (several processes on one database file: `provisio serve
 * --workers`) it is also taken without waiting inside SQLite: when another process holds it, the
 * group stays pending (later writes join it) and the lock is tried again every millisecond from
 * a timer, so the event loop keeps serving meanwhile — SQLite's own busy handler (`busy_timeout`)
 * would sleep inside the call and stall the whole process. After `maxWaitMs` (default: the
 * connection's busy timeout) the pending writes fail with `SQLITE_BUSY`. Without it, `BEGIN
 * IMMEDIATE` waits as SQLite does (a lone writer almost never finds the lock taken, and the
 * non-waiting attempt costs two busy-timeout pragmas per group).
 *
 * Measured with bench/suites/e2e.mjs: one register writes three times (operation begun, hub
 * identity, operation finished + registration); with 32 devices in flight the commits, each a
 * WAL append and lock round, were a quarter of the server's CPU time.
 *
 * `minIntervalMs` paces the commits: a group runs on the next `setImmediate` when the last COMMIT
 * is at least that long ago, else when it will be. A write after a quiet spell is not delayed;
 * under load the writes of several turns share a transaction, so the fixed cost of one (BEGIN,
 * the lock calls, the WAL frames of the pages they share, COMMIT) is paid once for all of them,
 * for at most `minIntervalMs` of added latency. Measured (MQTT registrations from the native load client,
 * 32 in flight, one process, runs interleaved): 0.9 commits per registration without pacing, 0.5
 * with 2 ms, and 12 % less server CPU per registration (17 % more registrations per second).
 */
export class GroupCommit {
  readonly #db: Database.Database
  readonly #begin: Database.Statement
  readonly #commit: Database.Statement
  readonly #rollback: Database.Statement
  /** The connection's busy timeout, restored after each non-waiting BEGIN (read at the first). */
  #busyTimeoutMs: number | undefined
  #maxWaitMs: number | undefined
  readonly #otherWriters: boolean
  readonly #minIntervalMs: number
  /** performance.now() at the end of the last COMMIT. */
  #lastCommitAt = -Infinity
  readonly #runNow = (): void => this.#run()
  /** Writes of the pending group, and reads waiting for its COMMIT, in issue order. */
  #pending: { write: boolean; fn: () => unknown; resolve: (value: unknown) => void; reject: (error: unknown) => void }[] = []
  #writes = 0
  #scheduled = false
  /** When the pending group first found the lock taken (0: it has not). */
  #waitingSinceMs = 0
  readonly #stats = { commits: 0, lockWaits: 0, lockWaitMs: 0 }

  /**
   * @param options.otherWriters other processes write to this database file: take the write lock
   *   without waiting inside SQLite (default false)
   * @param options.maxWaitMs with `otherWriters`, how long a group may wait for the lock before
   *   its writes fail (default: the connection's busy timeout)
   * @param options.minIntervalMs least time between two COMMITs, ms (default 0: every turn's
   *   writes commit on the next `setImmediate`)
   */
  constructor(db: Database.Database, options: { readonly otherWriters?: boolean; readonly maxWaitMs?: number; readonly minIntervalMs?: number } = {}) {
    const interval = options.minIntervalMs ?? 0
    if (!Number.isFinite(interval) || interval < 0 || interval > MAX_COMMIT_INTERVAL_MS) {
      throw new RangeError(`GroupCommit: minIntervalMs must be 0 to ${MAX_COMMIT_INTERVAL_MS} ms, got ${String(options.minIntervalMs)}`)
    }
    this.#minIntervalMs = interval
    this.#db = db
    this.#otherWriters = options.otherWriters === true
    this.#begin = db.prepare('BEGIN IMMEDIATE')
    this.#commit = db.prepare('COMMIT')
    this.#rollback = db.prepare('ROLLBACK')
    this.#maxWaitMs = options.maxWaitMs
  }

  /**
   * Counters since creation: groups committed, times a group had to wait for another
   * connection's write lock, and the milliseconds groups waited in all.
   */
  get stats(): { readonly commits: number; readonly lockWaits: number; readonly lockWaitMs: number } {
    return { ...this.#stats }
  }

  /** Queues `fn` (synchronous statements) in the pending group; resolves with its result once committed. */
  write<T>(fn: () => T): Promise<T> {
    // Someone else's explicit transaction is running (e.g. a migration): no group around it.
    if (this.#db.inTransaction) return settle(fn)
    return this.#queue(true, fn)
  }

  /** Runs a read now; while writes are pending it runs after their COMMIT (and sees them). */
  read<T>(fn: () => T): Promise<T> {
    return this.#writes === 0 ? settle(fn) : this.#queue(false, fn)
  }

  #queue<T>(write: boolean, fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ write, fn, resolve: resolve as (value: unknown) => void, reject })
      if (write) this.#writes++
      if (!this.#scheduled) {
        this.#scheduled = true
        const wait = this.#lastCommitAt + this.#minIntervalMs - performance.now()
        if (wait > 0) setTimeout(this.#runNow, Math.ceil(wait))
        else setImmediate(this.#runNow)
      }
    })
  }

  /** Runs the pending group if the write lock can be had now; else tries again in a millisecond. */
  #run(): void {
    this.#scheduled = false
    if (this.#pending.length === 0) return
    let began: boolean
    try {
      began = !this.#db.inTransaction && this.#tryBegin()
    } catch (error) {
      this.#fail(error)
      return
    }
    if (!began) {
      const now = Date.now()
      if (this.#waitingSinceMs === 0) {
        this.#waitingSinceMs = now
        this.#stats.lockWaits++
      }
      const limit = this.#maxWaitMs ?? 5000
      if (now - this.#waitingSinceMs >= limit) {
        const error = Object.assign(new Error(`database is locked: another process held the SQLite write lock for ${now - this.#waitingSinceMs} ms (limit ${limit} ms)`), { code: 'SQLITE_BUSY' })
        this.#stats.lockWaitMs += now - this.#waitingSinceMs
        this.#waitingSinceMs = 0
        this.#fail(error)
        return
      }
      this.#scheduled = true
      setTimeout(this.#runNow, 1)
      return
    }
    if (this.#waitingSinceMs !== 0) {
      this.#stats.lockWaitMs += Date.now() - this.#waitingSinceMs
      this.#waitingSinceMs = 0
    }
    this.#runGroup()
  }

  /** `BEGIN IMMEDIATE`; with other writers without waiting: false when another connection holds the write lock. */
  #tryBegin(): boolean {
    if (!this.#otherWriters) {
      this.#begin.run()
      return true
    }
    // The connection's busy timeout (set by the store) applies again right after the BEGIN. A
    // busy_timeout pragma takes effect when prepared, so it cannot be a reused statement.
    if (this.#busyTimeoutMs === undefined) {
      this.#busyTimeoutMs = Math.max(0, Math.floor(Number(this.#db.pragma('busy_timeout', { simple: true }))))
      this.#maxWaitMs ??= this.#busyTimeoutMs
    }
    if (this.#busyTimeoutMs > 0) this.#db.pragma('busy_timeout = 0')
    try {
      this.#begin.run()
    } catch (error) {
      if (String((error as { code?: unknown }).code).startsWith('SQLITE_BUSY')) return false
      throw error
    } finally {
      if (this.#busyTimeoutMs > 0) this.#db.pragma(`busy_timeout = ${this.#busyTimeoutMs}`)
    }
    return true
  }

  /** Inside the open transaction: the writes in order, COMMIT, then the reads that waited for it. */
  #runGroup(): void {
    const group = this.#pending
    this.#pending = []
    this.#writes = 0
    const done: { ok: boolean; value: unknown }[] = []
    for (const entry of group) {
      if (!entry.write) continue
      try {
        done.push({ ok: true, value: entry.fn() })
      } catch (error) {
        done.push({ ok: false, value: error })
      }
    }
    try {
      this.#commit.run()
    } catch (error) {
      try {
        if (this.#db.inTransaction) this.#rollback.run()
      } catch {
        // The connection already ended the transaction; the callers hear about the COMMIT failure.
      }
      for (const entry of group) if (entry.write) entry.reject(error)
      this.#settleReads(group)
      return
    }
    this.#stats.commits++
    this.#lastCommitAt = performance.now()
    let i = 0
    for (const entry of group) {
      if (!entry.write) continue
      const result = done[i++]!
      if (result.ok) entry.resolve(result.value)
      else entry.reject(result.value)
    }
    this.#settleReads(group)
  }

  #settleReads(group: readonly { write: boolean; fn: () => unknown; resolve: (value: unknown) => void; reject: (error: unknown) => void }[]): void {
    for (const entry of group) if (!entry.write) settle(entry.fn).then(entry.resolve, entry.reject)
  }

  #fail(error: unknown): void {
    const group = this.#pending
    this.#pending = []
    this.#writes = 0
    for (const entry of group) if (entry.write) entry.reject(error)
    this.#settleReads(group)
  }

  /**
   * Runs the pending group now (also run on `setImmediate`); call before closing the database.
   * Waits for another connection's write lock with SQLite's busy timeout (blocking, as at close).
   */
  flush(): void {
    if (this.#writes === 0) {
      const reads = this.#pending
      this.#pending = []
      this.#settleReads(reads)
      return
    }
    try {
      this.#begin.run()
    } catch (error) {
      this.#fail(error)
      return
    }
    this.#runGroup()
  }
}

function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn())
  } catch (error) {
    return Promise.reject(error)
  }
}

/** One schema migration. Versions are dense and never edited once released. */
interface Migration {
  readonly version: number
  readonly name: string
  readonly sql: string
}

/** The schema, as migrations. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'engine tables: enrollments, groups, registrations, operations, CA certificates',
    sql: `
      CREATE TABLE enrollments (
        id_scope TEXT NOT NULL,
        id_key   TEXT NOT NULL,
        etag     TEXT NOT NULL,
        body     TEXT NOT NULL,
        PRIMARY KEY (id_scope, id_key)
      );
      CREATE TABLE enrollment_groups (
        id_scope TEXT NOT NULL,
        id_key   TEXT NOT NULL,
        etag     TEXT NOT NULL,
        attestation_type TEXT NOT NULL,
        body     TEXT NOT NULL,
        PRIMARY KEY (id_scope, id_key)
      );
      CREATE TABLE scope_state (
        id_scope        TEXT PRIMARY KEY,
        groups_revision BIGINT NOT NULL
      );
      CREATE TABLE registrations (
        id_scope  TEXT NOT NULL,
        id_key    TEXT NOT NULL,
        etag      TEXT NOT NULL,
        group_key TEXT,
        body      TEXT NOT NULL,
        PRIMARY KEY (id_scope, id_key)
      );
      CREATE INDEX registrations_by_group ON registrations (id_scope, group_key, id_key);
      CREATE TABLE operations (
        id_scope         TEXT NOT NULL,
        device_key       TEXT NOT NULL,
        operation_id     TEXT NOT NULL,
        status           TEXT NOT NULL,
        lease_owner      TEXT NOT NULL,
        assigning_until  BIGINT NOT NULL,
        body             TEXT NOT NULL,
        PRIMARY KEY (id_scope, device_key)
      );
      CREATE UNIQUE INDEX operations_by_id ON operations (id_scope, operation_id);
      CREATE TABLE ca_certificates (
        id_scope TEXT NOT NULL,
        name_key TEXT NOT NULL,
        etag     TEXT NOT NULL,
        body     TEXT NOT NULL,
        PRIMARY KEY (id_scope, name_key)
      );
    `,
  },
  {
    version: 2,
    name: 'TPM challenges shared by every process on the database',
    sql: `
      CREATE TABLE tpm_challenges (
        id_scope       TEXT NOT NULL,
        challenge_id   TEXT NOT NULL,
        device_key     TEXT NOT NULL,
        issued_at      BIGINT NOT NULL,
        keep_until     BIGINT NOT NULL,
        answered_at    BIGINT,
        answered_token TEXT,
        body           TEXT NOT NULL,
        PRIMARY KEY (id_scope, challenge_id)
      );
      CREATE INDEX tpm_challenges_by_device ON tpm_challenges (id_scope, device_key, issued_at);
      CREATE INDEX tpm_challenges_by_expiry ON tpm_challenges (keep_until);
    `,
  },
]

const OK: WriteResult = { ok: true }

/** Registration ids and group ids are ASCII (docs/protocol.md §0), so ASCII lower-casing is the key. */
function keyOf(id: string): string {
  return id.toLowerCase()
}


function check(current: { etag: string } | undefined, condition: WriteCondition | undefined): WriteResult {
  return checkWriteCondition(current?.etag, condition)
}

type Row = { etag: string; body: string }

/** A tpm_challenges row: what changes when answered is in columns, the rest in the body. */
type TpmRow = { keep_until: number; answered_at: number | null; answered_token: string | null; body: string }



/** A keyed JSON table with conditional upsert/delete and key-ordered paging. */
class KeyedTable<V> {
  readonly #get: Database.Statement<[string, string], Row>
  readonly #upsert: Database.Statement
  readonly #delete: Database.Statement<[string, string]>
  readonly #page: Database.Statement<[string, string, number], Row>
  readonly #pageFirst: Database.Statement<[string, number], Row>
  readonly #put: (idScope: string, id: string, etag: string, value: V, extra: unknown[], condition?: WriteCondition) => WriteResult
  readonly #remove: (idScope: string, id: string, condition?: WriteCondition) => WriteResult

  constructor(
    db: Database.Database,
    table: string,
    keyColumn: string,
    extraColumns: readonly string[],
    onChange?: (idScope: string) => void,
  ) {
    const cols = ['id_scope', keyColumn, 'etag', ...extraColumns, 'body']
    const updates = ['etag', ...extraColumns, 'body'].map((c) => `${c} = excluded.${c}`).join(', ')
    this.#get = db.prepare(`SELECT etag, body FROM ${table} WHERE id_scope = ? AND ${keyColumn} = ?`)
    this.#upsert = db.prepare(
      `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})
       ON CONFLICT (id_scope, ${keyColumn}) DO UPDATE SET ${updates}`,
    )
    this.#delete = db.prepare(`DELETE FROM ${table} WHERE id_scope = ? AND ${keyColumn} = ?`)
    this.#page = db.prepare(`SELECT etag, body FROM ${table} WHERE id_scope = ? AND ${keyColumn} > ? ORDER BY ${keyColumn} LIMIT ?`)
    this.#pageFirst = db.prepare(`SELECT etag, body FROM ${table} WHERE id_scope = ? ORDER BY ${keyColumn} LIMIT ?`)
    this.#put = db.transaction((idScope: string, id: string, etag: string, value: V, extra: unknown[], condition?: WriteCondition) => {
      const k = keyOf(id)
      if (condition !== undefined) {
        const verdict = check(this.#get.get(idScope, k), condition)
        if (!verdict.ok) return verdict
      }
      this.#upsert.run(idScope, k, etag, ...extra, JSON.stringify(value))
      onChange?.(idScope)
      return OK
    }).immediate as never
    this.#remove = db.transaction((idScope: string, id: string, condition?: WriteCondition) => {
      const k = keyOf(id)
      const current = this.#get.get(idScope, k)
      if (current === undefined) return { ok: false, reason: 'notFound' } as WriteResult
      const verdict = check(current, condition)
      if (!verdict.ok) return verdict
      this.#delete.run(idScope, k)
      onChange?.(idScope)
      return OK
    }).immediate as never
  }

  get(idScope: string, id: string): V | undefined {
    const row = this.#get.get(idScope, keyOf(id))
    return row === undefined ? undefined : (JSON.parse(row.body) as V)
  }
  put(idScope: string, id: string, etag: string, value: V, extra: unknown[], condition?: WriteCondition): WriteResult {
    return this.#put(idScope, id, etag, value, extra, condition)
  }
  delete(idScope: string, id: string, condition?: WriteCondition): WriteResult {
    return this.#remove(idScope, id, condition)
  }
  page(idScope: string, page: PageRequest): V[] {
    const limit = Math.max(0, Math.min(page.limit, 1_000_000))
    const rows = page.after === undefined ? this.#pageFirst.all(idScope, limit) : this.#page.all(idScope, page.after, limit)
    return rows.map((r) => JSON.parse(r.body) as V)
  }
}

/** The engine's Store on SQLite. */
export class SqliteStore implements Store {
  readonly db: Database.Database
  readonly #owned: boolean
  readonly #enrollments: KeyedTable<IndividualEnrollment>
  readonly #groups: KeyedTable<EnrollmentGroup>
  readonly #registrations: KeyedTable<RegistrationRecord>
  readonly #cas: KeyedTable<CaCertificateRecord>
  readonly #stmt: {
    revision: Database.Statement<[string], { groups_revision: number }>
    bumpRevision: Database.Statement<[string]>
    byGroupFirst: Database.Statement<[string, string, number], { body: string }>
    byGroup: Database.Statement<[string, string, string, number], { body: string }>
    opById: Database.Statement<[string, string], { body: string }>
    opByDevice: Database.Statement<[string, string], { body: string; status: string; lease_owner: string; assigning_until: number; operation_id: string }>
    opUpsert: Database.Statement
    opActive: Database.Statement<[string, string, number], { operation_id: string }>
    opHead: Database.Statement<[string, string], { status: string; assigning_until: number; operation_id: string }>
    opUpdate: Database.Statement
    tpmInsert: Database.Statement
    tpmPurge: Database.Statement<[number]>
    tpmTrim: Database.Statement<[string, string, string, string, number]>
    tpmList: Database.Statement<[string, string, number], TpmRow>
    tpmGet: Database.Statement<[string, string], TpmRow>
    tpmAnswer: Database.Statement<[number, string, number, string, string, number]>
  }
  readonly #begin: (idScope: string, op: OperationRecord, nowMs: number) => BeginOperationResult
  readonly #finish: (idScope: string, final: OperationRecord, owner: string, registration?: RegistrationRecord) => boolean
  readonly #lease: (idScope: string, id: string, expected: string, next: string, until: number, now: number) => OperationRecord | undefined
  readonly #commit: (idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number) => boolean
  readonly #addTpm: (idScope: string, challenge: TpmChallengeRecord, perDevice: number, nowMs: number) => void
  readonly #answerTpm: (idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number) => TpmChallengeRecord | undefined

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

    const bump = (idScope: string) => this.#stmt.bumpRevision.run(idScope)
    this.#enrollments = new KeyedTable(db, 'enrollments', 'id_key', [])
    this.#groups = new KeyedTable(db, 'enrollment_groups', 'id_key', ['attestation_type'], bump)
    this.#registrations = new KeyedTable(db, 'registrations', 'id_key', ['group_key'])
    this.#cas = new KeyedTable(db, 'ca_certificates', 'name_key', [])
    this.#stmt = {
      revision: db.prepare('SELECT groups_revision FROM scope_state WHERE id_scope = ?'),
      bumpRevision: db.prepare(
        `INSERT INTO scope_state (id_scope, groups_revision) VALUES (?, 1)
         ON CONFLICT (id_scope) DO UPDATE SET groups_revision = scope_state.groups_revision + 1`,
      ),
      byGroupFirst: db.prepare('SELECT body FROM registrations WHERE id_scope = ? AND group_key = ? ORDER BY id_key LIMIT ?'),
      byGroup: db.prepare('SELECT body FROM registrations WHERE id_scope = ? AND group_key = ? AND id_key > ? ORDER BY id_key LIMIT ?'),
      opById: db.prepare('SELECT body FROM operations WHERE id_scope = ? AND operation_id = ?'),
      opByDevice: db.prepare('SELECT body, status, lease_owner, assigning_until, operation_id FROM operations WHERE id_scope = ? AND device_key = ?'),
      opActive: db.prepare(
        "SELECT operation_id FROM operations WHERE id_scope = ? AND device_key = ? AND status = 'assigning' AND assigning_until > ?",
      ),
      opHead: db.prepare('SELECT status, assigning_until, operation_id FROM operations WHERE id_scope = ? AND device_key = ?'),
      opUpsert: db.prepare(
        `INSERT INTO operations (id_scope, device_key, operation_id, status, lease_owner, assigning_until, body)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id_scope, device_key) DO UPDATE SET operation_id = excluded.operation_id, status = excluded.status,
           lease_owner = excluded.lease_owner, assigning_until = excluded.assigning_until, body = excluded.body`,
      ),
      // Compare-and-set on (operation, status, lease owner): the row changes only under the lease.
      opUpdate: db.prepare(
        `UPDATE operations SET status = ?, lease_owner = ?, assigning_until = ?, body = ?
         WHERE id_scope = ? AND operation_id = ? AND status = 'assigning' AND lease_owner = ?`,
      ),
      tpmInsert: db.prepare(
        `INSERT INTO tpm_challenges (id_scope, challenge_id, device_key, issued_at, keep_until, answered_at, answered_token, body)
         VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)`,
      ),
      tpmPurge: db.prepare('DELETE FROM tpm_challenges WHERE keep_until <= ?'),
      // The device's challenges but the newest `perDevice` (issue time, then id: the memory store's order).
      tpmTrim: db.prepare(
        `DELETE FROM tpm_challenges WHERE id_scope = ? AND device_key = ? AND challenge_id NOT IN (
           SELECT challenge_id FROM tpm_challenges WHERE id_scope = ? AND device_key = ?
           ORDER BY issued_at DESC, challenge_id DESC LIMIT ?)`,
      ),
      tpmList: db.prepare(
        `SELECT keep_until, answered_at, answered_token, body FROM tpm_challenges
         WHERE id_scope = ? AND device_key = ? AND keep_until > ? ORDER BY issued_at, challenge_id`,
      ),
      tpmGet: db.prepare('SELECT keep_until, answered_at, answered_token, body FROM tpm_challenges WHERE id_scope = ? AND challenge_id = ?'),
      tpmAnswer: db.prepare(
        `UPDATE tpm_challenges SET answered_at = ?, answered_token = ?, keep_until = ?
         WHERE id_scope = ? AND challenge_id = ? AND answered_token IS NULL AND keep_until > ?`,
      ),
    }
    const upsertOp = (idScope: string, op: OperationRecord) =>
      this.#stmt.opUpsert.run(idScope, keyOf(op.registrationId), op.operationId, op.status, op.leaseOwner, op.assigningUntilMs, JSON.stringify(op))

    this.#begin = db.transaction((idScope: string, op: OperationRecord, nowMs: number): BeginOperationResult => {
      const key = keyOf(op.registrationId)
      const current = this.#stmt.opHead.get(idScope, key)
      if (current && current.status === 'assigning' && current.assigning_until > nowMs) {
        return { created: false, existing: JSON.parse(this.#stmt.opByDevice.get(idScope, key)!.body) as OperationRecord }
      }
      upsertOp(idScope, op)
      return { created: true }
    }).immediate as never
    this.#finish = db.transaction((idScope: string, final: OperationRecord, owner: string, registration?: RegistrationRecord): boolean => {
      const changed = this.#stmt.opUpdate.run(final.status, final.leaseOwner, final.assigningUntilMs, JSON.stringify(final), idScope, final.operationId, owner)
      if (changed.changes !== 1) return false
      if (registration) this.#putRegistration(idScope, registration)
      return true
    }).immediate as never
    this.#commit = db.transaction((idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number): boolean => {
      const current = this.#stmt.opHead.get(idScope, keyOf(final.registrationId))
      if (current && current.operation_id !== final.operationId && current.status === 'assigning' && current.assigning_until > nowMs) return false
      upsertOp(idScope, final)
      if (registration) this.#putRegistration(idScope, registration)
      return true
    }).immediate as never
    this.#lease = db.transaction((idScope: string, id: string, expected: string, next: string, until: number, now: number) => {
      const row = this.#stmt.opById.get(idScope, id)
      if (!row) return undefined
      const current = JSON.parse(row.body) as OperationRecord
      if (current.status !== 'assigning' || current.leaseOwner !== expected) return undefined
      const updated: OperationRecord = { ...current, leaseOwner: next, assigningUntilMs: until, updatedAtMs: now }
      const changed = this.#stmt.opUpdate.run('assigning', next, until, JSON.stringify(updated), idScope, id, expected)
      return changed.changes === 1 ? updated : undefined
    }).immediate as never
    this.#addTpm = db.transaction((idScope: string, c: TpmChallengeRecord, perDevice: number, nowMs: number) => {
      const device = keyOf(c.registrationId)
      this.#stmt.tpmPurge.run(nowMs)
      this.#stmt.tpmInsert.run(idScope, c.challengeId, device, c.issuedAtMs, c.keepUntilMs, JSON.stringify(tpmChallengeBody(c)))
      this.#stmt.tpmTrim.run(idScope, device, idScope, device, Math.max(1, Math.floor(perDevice)))
    }).immediate as never
    this.#answerTpm = db.transaction((idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number) => {
      this.#stmt.tpmAnswer.run(nowMs, token, keepUntilMs, idScope, challengeId, nowMs)
      const row = this.#stmt.tpmGet.get(idScope, challengeId)
      return row === undefined || row.keep_until <= nowMs ? undefined : tpmChallengeFromRow(row)
    }).immediate as never
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
  #w<T>(fn: () => T): Promise<T> {
    return this.#group ? this.#group.write(fn) : settle(fn)
  }
  /** A read (after the open group's COMMIT when group commit is on). */
  #r<T>(fn: () => T): Promise<T> {
    return this.#group ? this.#group.read(fn) : settle(fn)
  }

  /** Applied schema versions (for diagnostics and tests). */
  schemaVersions(): number[] {
    return (this.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version)
  }

  async getEnrollment(idScope: string, registrationId: string): Promise<IndividualEnrollment | undefined> {
    return this.#r(() => this.#enrollments.get(idScope, registrationId))
  }
  async putEnrollment(idScope: string, enrollment: IndividualEnrollment, condition?: WriteCondition): Promise<WriteResult> {
    return this.#w(() => this.#enrollments.put(idScope, enrollment.registrationId, enrollment.etag ?? '', enrollment, [], condition))
  }
  async deleteEnrollment(idScope: string, registrationId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#w(() => this.#enrollments.delete(idScope, registrationId, condition))
  }
  async listEnrollments(idScope: string, page: PageRequest): Promise<IndividualEnrollment[]> {
    return this.#r(() => this.#enrollments.page(idScope, page))
  }

  async getGroup(idScope: string, enrollmentGroupId: string): Promise<EnrollmentGroup | undefined> {
    return this.#r(() => this.#groups.get(idScope, enrollmentGroupId))
  }
  async putGroup(idScope: string, group: EnrollmentGroup, condition?: WriteCondition): Promise<WriteResult> {
    return this.#w(() => this.#groups.put(idScope, group.enrollmentGroupId, group.etag ?? '', group, [group.attestation.type], condition))
  }
  async deleteGroup(idScope: string, enrollmentGroupId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#w(() => this.#groups.delete(idScope, enrollmentGroupId, condition))
  }
  async listGroups(idScope: string, page: PageRequest): Promise<EnrollmentGroup[]> {
    return this.#r(() => this.#groups.page(idScope, page))
  }
  async getEnrollmentForAttestation(idScope: string, registrationId: string): Promise<EnrollmentForAttestation> {
    return this.#r(() => ({
      enrollment: this.#enrollments.get(idScope, registrationId),
      groupsRevision: this.#stmt.revision.get(idScope)?.groups_revision ?? 0,
    }))
  }
  async groupsRevision(idScope: string): Promise<number> {
    return this.#r(() => this.#stmt.revision.get(idScope)?.groups_revision ?? 0)
  }

  async getRegistration(idScope: string, registrationId: string): Promise<RegistrationRecord | undefined> {
    return this.#r(() => this.#registrations.get(idScope, registrationId))
  }
  async putRegistration(idScope: string, record: RegistrationRecord, condition?: WriteCondition): Promise<WriteResult> {
    return this.#w(() => this.#putRegistration(idScope, record, condition))
  }
  async deleteRegistration(idScope: string, registrationId: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#w(() => this.#registrations.delete(idScope, registrationId, condition))
  }
  async listRegistrationsByGroup(idScope: string, enrollmentGroupId: string, page: PageRequest): Promise<RegistrationRecord[]> {
    const group = keyOf(enrollmentGroupId)
    return this.#r(() => {
      const rows = page.after === undefined
        ? this.#stmt.byGroupFirst.all(idScope, group, page.limit)
        : this.#stmt.byGroup.all(idScope, group, page.after, page.limit)
      return rows.map((r) => JSON.parse(r.body) as RegistrationRecord)
    })
  }
  async listRegistrations(idScope: string, page: PageRequest): Promise<RegistrationRecord[]> {
    return this.#r(() => this.#registrations.page(idScope, page))
  }

  async getOperation(idScope: string, operationId: string): Promise<OperationRecord | undefined> {
    return this.#r(() => {
      const row = this.#stmt.opById.get(idScope, operationId)
      return row === undefined ? undefined : (JSON.parse(row.body) as OperationRecord)
    })
  }
  async getDeviceOperation(idScope: string, registrationId: string): Promise<OperationRecord | undefined> {
    return this.#r(() => {
      const row = this.#stmt.opByDevice.get(idScope, keyOf(registrationId))
      return row === undefined ? undefined : (JSON.parse(row.body) as OperationRecord)
    })
  }
  async getActiveOperationId(idScope: string, registrationId: string, nowMs: number): Promise<string | undefined> {
    return this.#r(() => this.#stmt.opActive.get(idScope, keyOf(registrationId), nowMs)?.operation_id)
  }
  async beginOperation(idScope: string, operation: OperationRecord, nowMs: number): Promise<BeginOperationResult> {
    return this.#w(() => this.#begin(idScope, operation, nowMs))
  }
  async finishOperation(idScope: string, final: OperationRecord, leaseOwner: string, registration?: RegistrationRecord): Promise<boolean> {
    return this.#w(() => this.#finish(idScope, final, leaseOwner, registration))
  }
  async commitOperation(idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number): Promise<boolean> {
    return this.#w(() => this.#commit(idScope, final, registration, nowMs))
  }
  async leaseOperation(
    idScope: string,
    operationId: string,
    expectedOwner: string,
    newOwner: string,
    assigningUntilMs: number,
    nowMs: number,
  ): Promise<OperationRecord | undefined> {
    return this.#w(() => this.#lease(idScope, operationId, expectedOwner, newOwner, assigningUntilMs, nowMs))
  }

  async addTpmChallenge(idScope: string, challenge: TpmChallengeRecord, perDevice: number, nowMs: number): Promise<void> {
    return this.#w(() => this.#addTpm(idScope, challenge, perDevice, nowMs))
  }
  async listTpmChallenges(idScope: string, registrationId: string, nowMs: number): Promise<TpmChallengeRecord[]> {
    return this.#r(() => this.#stmt.tpmList.all(idScope, keyOf(registrationId), nowMs).map(tpmChallengeFromRow))
  }
  async answerTpmChallenge(idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number): Promise<TpmChallengeRecord | undefined> {
    return this.#w(() => this.#answerTpm(idScope, challengeId, token, nowMs, keepUntilMs))
  }

  async getCaCertificate(idScope: string, name: string): Promise<CaCertificateRecord | undefined> {
    return this.#r(() => this.#cas.get(idScope, name))
  }
  async putCaCertificate(idScope: string, record: CaCertificateRecord, condition?: WriteCondition): Promise<WriteResult> {
    return this.#w(() => this.#cas.put(idScope, record.name, record.etag, record, [], condition))
  }
  async deleteCaCertificate(idScope: string, name: string, condition?: WriteCondition): Promise<WriteResult> {
    return this.#w(() => this.#cas.delete(idScope, name, condition))
  }
  async listCaCertificates(idScope: string): Promise<CaCertificateRecord[]> {
    return this.#r(() => this.#cas.page(idScope, { limit: 1_000_000 }))
  }
}

/** Applies pending migrations in order, each in its own transaction, recording its version. */
function migrate(db: Database.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`)
  const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version))
  const latest = MIGRATIONS[MIGRATIONS.length - 1]!.version
  for (const v of applied) {
    if (v > latest) throw new Error(`database schema version ${v} is newer than this @provisio/store-sqlite (latest ${latest}); upgrade the package`)
  }
  const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))")
  const isApplied = db.prepare<[number], { version: number }>('SELECT version FROM schema_migrations WHERE version = ?')
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue
    // Checked again under the write lock: another process on this file may have just applied it.
    db.transaction(() => {
      if (isApplied.get(m.version) !== undefined) return
      db.exec(m.sql)
      record.run(m.version, m.name)
    }).immediate()
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

export { startWalCheckpointer, type CheckpointResult, type WalCheckpointer, type WalCheckpointerOptions } from './checkpointer.js'
export { SqliteHubStore } from './hub-store.js'
