/**
 * The SQLite schema of the engine's tables as numbered migrations, and the runner that applies
 * the pending ones in order, each once, in its own transaction (recorded in `schema_migrations`).
 */
import type Database from 'better-sqlite3'

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

/** Applies pending migrations in order, each in its own transaction, recording its version. */
export function migrate(db: Database.Database): void {
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

