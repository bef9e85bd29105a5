/**
 * The PostgreSQL the suites use: PROVISIO_TEST_POSTGRES_URL, else the CI machine's server
 * (127.0.0.1:5432, trust auth, database `test`; .ci/run starts it). A suite that needs it skips
 * on a machine without it, but under CI=true an unreachable database fails the run instead.
 */
import pg from 'pg'

export const POSTGRES_URL = process.env.PROVISIO_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Whether the test database answers; throws under CI=true when it does not. */
export async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.end()
    return true
  } catch (error) {
    if (process.env.CI) throw new Error(`PostgreSQL at ${POSTGRES_URL} is unreachable under CI=true (.ci/run starts it): ${String(error)}`)
    return false
  }
}

/** Drops a schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema.replaceAll('"', '""')}" CASCADE`)
  } finally {
    await client.end()
  }
}
