/**
 * Opening the PostgreSQL store: options, the store URL (`schema` and `pool_max` parameters), the
 * pool, the first connect with a clear error, and the schema migration before the store is used.
 */
import pg from 'pg'
import { PostgresStoreError } from './errors.js'
import { checkSchemaName, migrate } from './schema.js'
import { PostgresStore } from './store.js'

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
