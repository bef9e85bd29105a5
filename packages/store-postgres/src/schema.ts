/**
 * Schema of the PostgreSQL store, as migrations, and the migration runner.
 *
 * Every table lives in one PostgreSQL schema (option `schema`, default `provisio`), so several
 * deployments or test runs can share a database without colliding. Migrations run in a single
 * transaction holding a transaction-scoped advisory lock keyed by the schema name: when several
 * `provisio serve` instances start at once, one migrates and the others wait, then find every
 * version recorded and do nothing (PostgreSQL runs DDL transactionally, so a failed migration
 * leaves nothing half-applied).
 *
 * Key columns use `COLLATE "C"` (byte order) so paging (`key > $after ORDER BY key`) matches
 * the memory and SQLite stores, whatever the database's default collation.
 */
import type pg from 'pg'
import { PostgresStoreError } from './errors.js'

/** One schema migration. Versions are dense and never edited once released. */
export interface Migration {
  readonly version: number
  readonly name: string
  /** SQL with `${s}` standing for the quoted schema name (substituted by {@link migrate}). */
  readonly sql: (s: string) => string
}

/** The schema, as migrations. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'engine tables: enrollments, groups, registrations, operations, CA certificates; hub registry; settings',
    sql: (s) => `
      CREATE TABLE ${s}.enrollments (
        id_scope TEXT COLLATE "C" NOT NULL,
        id_key   TEXT COLLATE "C" NOT NULL,
        etag     TEXT NOT NULL,
        body     TEXT NOT NULL,
        PRIMARY KEY (id_scope, id_key)
      );
      CREATE TABLE ${s}.enrollment_groups (
        id_scope TEXT COLLATE "C" NOT NULL,
        id_key   TEXT COLLATE "C" NOT NULL,
        etag     TEXT NOT NULL,
        attestation_type TEXT NOT NULL,
        body     TEXT NOT NULL,
        PRIMARY KEY (id_scope, id_key)
      );
      CREATE TABLE ${s}.scope_state (
        id_scope        TEXT COLLATE "C" PRIMARY KEY,
        groups_revision BIGINT NOT NULL
      );
      CREATE TABLE ${s}.registrations (
        id_scope  TEXT COLLATE "C" NOT NULL,
        id_key    TEXT COLLATE "C" NOT NULL,
        etag      TEXT NOT NULL,
        group_key TEXT COLLATE "C",
        body      TEXT NOT NULL,
        PRIMARY KEY (id_scope, id_key)
      );
      CREATE INDEX registrations_by_group ON ${s}.registrations (id_scope, group_key, id_key);
      CREATE TABLE ${s}.operations (
        id_scope         TEXT COLLATE "C" NOT NULL,
        device_key       TEXT COLLATE "C" NOT NULL,
        operation_id     TEXT COLLATE "C" NOT NULL,
        status           TEXT NOT NULL,
        lease_owner      TEXT NOT NULL,
        assigning_until  BIGINT NOT NULL,
        body             TEXT NOT NULL,
        PRIMARY KEY (id_scope, device_key)
      );
      CREATE UNIQUE INDEX operations_by_id ON ${s}.operations (id_scope, operation_id);
      CREATE TABLE ${s}.ca_certificates (
        id_scope TEXT COLLATE "C" NOT NULL,
        name_key TEXT COLLATE "C" NOT NULL,
        etag     TEXT NOT NULL,
        body     TEXT NOT NULL,
        PRIMARY KEY (id_scope, name_key)
      );
      CREATE TABLE ${s}.hub_devices (
        hub        TEXT COLLATE "C" NOT NULL,
        device_key TEXT COLLATE "C" NOT NULL,
        record     TEXT NOT NULL,
        PRIMARY KEY (hub, device_key)
      );
      CREATE TABLE ${s}.settings (
        name  TEXT COLLATE "C" PRIMARY KEY,
        value TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'TPM challenges shared by every instance on the database',
    sql: (s) => `
      CREATE TABLE ${s}.tpm_challenges (
        id_scope       TEXT COLLATE "C" NOT NULL,
        challenge_id   TEXT COLLATE "C" NOT NULL,
        device_key     TEXT COLLATE "C" NOT NULL,
        issued_at      BIGINT NOT NULL,
        keep_until     BIGINT NOT NULL,
        answered_at    BIGINT,
        answered_token TEXT,
        body           TEXT NOT NULL,
        PRIMARY KEY (id_scope, challenge_id)
      );
      CREATE INDEX tpm_challenges_by_device ON ${s}.tpm_challenges (id_scope, device_key, issued_at);
      CREATE INDEX tpm_challenges_by_expiry ON ${s}.tpm_challenges (keep_until);
    `,
  },
  {
    version: 3,
    name: 'notices: messages between instances too large for a NOTIFY payload',
    sql: (s) => `
      CREATE TABLE ${s}.notices (
        id         BIGSERIAL PRIMARY KEY,
        body       TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 4,
    name: 'cloud-to-device queues and feedback of the embedded hubs',
    sql: (s) => `
      CREATE TABLE ${s}.c2d_sequences (
        hub  TEXT COLLATE "C" PRIMARY KEY,
        last BIGINT NOT NULL
      );
      CREATE TABLE ${s}.c2d_messages (
        hub            TEXT COLLATE "C" NOT NULL,
        seq            BIGINT NOT NULL,
        device_key     TEXT COLLATE "C" NOT NULL,
        message        TEXT NOT NULL,
        body           BYTEA NOT NULL,
        expiry         BIGINT NOT NULL,
        ack            TEXT NOT NULL,
        delivery_count INTEGER NOT NULL,
        lock_token     TEXT,
        locked_until   BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (hub, seq)
      );
      CREATE INDEX c2d_messages_by_device ON ${s}.c2d_messages (hub, device_key, seq);
      CREATE TABLE ${s}.c2d_feedback_pending (
        id         BIGSERIAL PRIMARY KEY,
        hub        TEXT COLLATE "C" NOT NULL,
        device_key TEXT COLLATE "C" NOT NULL,
        record     TEXT NOT NULL,
        created    BIGINT NOT NULL
      );
      CREATE INDEX c2d_feedback_pending_by_hub ON ${s}.c2d_feedback_pending (hub, id);
      CREATE TABLE ${s}.c2d_feedback_batches (
        id             BIGSERIAL PRIMARY KEY,
        hub            TEXT COLLATE "C" NOT NULL,
        records        TEXT NOT NULL,
        enqueued       BIGINT NOT NULL,
        delivery_count INTEGER NOT NULL,
        lock_token     TEXT,
        locked_until   BIGINT NOT NULL DEFAULT 0
      );
      CREATE INDEX c2d_feedback_batches_by_hub ON ${s}.c2d_feedback_batches (hub, id);
    `,
  },
]

/** A PostgreSQL identifier, quoted (names come from configuration, never from devices). */
export function quoteIdent(name: string): string {
  return '"' + name.replaceAll('"', '""') + '"'
}

/** Schema names accepted from configuration: plain identifiers, at most 63 bytes (PostgreSQL's NAMEDATALEN - 1). */
export function checkSchemaName(name: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) {
    throw new PostgresStoreError('POSTGRES_CONFIG_INVALID', `schema name ${JSON.stringify(name)} must be a plain identifier: a letter or _ then letters, digits or _, at most 63 characters`)
  }
}

/**
 * Applies pending migrations in order, in one transaction under an advisory lock, recording each
 * version. Returns the versions applied now (empty when the schema was already current).
 */
export async function migrate(client: pg.PoolClient, schema: string): Promise<number[]> {
  const s = quoteIdent(schema)
  const latest = MIGRATIONS[MIGRATIONS.length - 1]!.version
  await client.query('BEGIN')
  try {
    // hashtext() gives a stable 32-bit key per schema; the two-key form keeps us apart from
    // other applications' single-key advisory locks.
    await client.query("SELECT pg_advisory_xact_lock(hashtext('provisio-migrations'), hashtext($1))", [schema])
    // Create the schema only when missing: CREATE SCHEMA needs the database's CREATE privilege
    // even with IF NOT EXISTS, which a least-privileged role on a DBA-made schema lacks.
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${s}`)
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`)
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${s}.schema_migrations`)
    const applied = new Set(rows.map((r) => r.version))
    for (const v of applied) {
      if (v > latest) {
        throw new PostgresStoreError('POSTGRES_SCHEMA_TOO_NEW', `schema ${schema} is at version ${v}, newer than this @provisio/store-postgres (latest ${latest}); upgrade the package`)
      }
    }
    const done: number[] = []
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue
      await client.query(m.sql(s))
      await client.query(`INSERT INTO ${s}.schema_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name])
      done.push(m.version)
    }
    await client.query('COMMIT')
    return done
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}
