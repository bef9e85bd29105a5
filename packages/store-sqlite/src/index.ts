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
export { createSqliteStore, SqliteStore, type SqliteStoreOptions } from './store.js'
export { GroupCommit, MAX_COMMIT_INTERVAL_MS } from './group-commit.js'
export { MIGRATIONS } from './schema.js'
export { startWalCheckpointer, type CheckpointResult, type WalCheckpointer, type WalCheckpointerOptions } from './checkpointer.js'
export { SqliteHubStore } from './hub-store.js'
export { SqliteC2dStore } from './c2d-store.js'
export { SqliteTelemetryStore, type SqliteTelemetryStoreOptions } from './telemetry-store.js'
