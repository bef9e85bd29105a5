/**
 * How the PostgreSQL store talks to the database: named (prepared) statements, transactions that
 * discard a broken connection, and the key and limit conventions every table shares.
 */
import { createHash } from 'node:crypto'
import type pg from 'pg'
import type { WriteCondition, WriteResult } from '@provisio/engine'
import { checkWriteCondition } from '@provisio/engine'

export const OK: WriteResult = { ok: true }

/** Registration ids, group ids and CA names are ASCII (docs/protocol.md §0): ASCII lower-casing is the key. */
export function keyOf(id: string): string {
  return id.toLowerCase()
}

/** The engine's one conditional-write check (its `etagMatches` strips quotes before looking for `*`). */
export function check(current: string | undefined, condition: WriteCondition | undefined): WriteResult {
  return checkWriteCondition(current, condition)
}

export type Queryable = pg.Pool | pg.PoolClient

/**
 * Named (prepared) queries: PostgreSQL parses and plans each once per connection. The name is a
 * hash of the SQL text (schema included), so stores sharing one pool — even on different
 * schemas — never give one name to two texts (node-postgres refuses that).
 */
export class Statements {
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

export function clampLimit(limit: number): number {
  return Number.isFinite(limit) ? Math.max(0, Math.min(Math.floor(limit), 1_000_000)) : 0
}

export async function transaction<T>(pool: pg.Pool, fn: (db: pg.PoolClient) => Promise<T>): Promise<T> {
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
