/**
 * A keyed JSON table (enrollments, enrollment groups, registrations, CA certificates): the record
 * as JSON text in `body`, keyed by scope and the lower-cased id. Conditional writes lock the row
 * (`SELECT … FOR UPDATE`) inside a transaction and compare etags; creates rely on the primary key.
 */
import type pg from 'pg'
import type { PageRequest, WriteCondition, WriteResult } from '@provisio/engine'
import { OK, check, clampLimit, keyOf, transaction, type Statements } from './sql.js'

/** A keyed JSON table with conditional upsert/delete and key-ordered paging. */
export class KeyedTable<V> {
  readonly #statements: Statements
  readonly #pool: pg.Pool
  readonly #onChange: ((db: pg.PoolClient, idScope: string) => Promise<void>) | undefined
  readonly #sql: { get: string; lock: string; upsert: string; insert: string; del: string; page: string; pageFirst: string }

  constructor(
    statements: Statements,
    pool: pg.Pool,
    table: string,
    key: string,
    extra: readonly string[],
    onChange?: (db: pg.PoolClient, idScope: string) => Promise<void>,
  ) {
    this.#statements = statements
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
    const { rows } = await this.#statements.run<{ body: string }>(this.#pool, this.#sql.get, [idScope, keyOf(id)])
    return rows.length === 0 ? undefined : (JSON.parse(rows[0]!.body) as V)
  }

  async put(idScope: string, id: string, etag: string, value: V, extra: unknown[], condition?: WriteCondition): Promise<WriteResult> {
    const values = [idScope, keyOf(id), etag, ...extra, JSON.stringify(value)]
    if (condition === undefined && this.#onChange === undefined) {
      await this.#statements.run(this.#pool, this.#sql.upsert, values)
      return OK
    }
    return transaction(this.#pool, async (db) => {
      if (condition?.ifNoneExists === true && condition.ifMatch === undefined) {
        // A create: the primary key settles two creates racing (a missing row cannot be locked).
        const inserted = await this.#statements.run(db, this.#sql.insert, values)
        if ((inserted.rowCount ?? 0) === 0) return { ok: false, reason: 'exists', currentEtag: await this.#lockedEtag(db, idScope, id) } as WriteResult
        await this.#onChange?.(db, idScope)
        return OK
      }
      if (condition !== undefined) {
        const verdict = check(await this.#lockedEtag(db, idScope, id), condition)
        if (!verdict.ok) return verdict
      }
      await this.#statements.run(db, this.#sql.upsert, values)
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
      await this.#statements.run(db, this.#sql.del, [idScope, keyOf(id)])
      await this.#onChange?.(db, idScope)
      return OK
    })
  }

  async page(idScope: string, page: PageRequest): Promise<V[]> {
    const limit = clampLimit(page.limit)
    const { rows } = page.after === undefined
      ? await this.#statements.run<{ body: string }>(this.#pool, this.#sql.pageFirst, [idScope, limit])
      : await this.#statements.run<{ body: string }>(this.#pool, this.#sql.page, [idScope, page.after, limit])
    return rows.map((r) => JSON.parse(r.body) as V)
  }

  /** The row's etag, locked until the transaction ends. */
  async #lockedEtag(db: pg.PoolClient, idScope: string, id: string): Promise<string | undefined> {
    const { rows } = await this.#statements.run<{ etag: string }>(db, this.#sql.lock, [idScope, keyOf(id)])
    return rows[0]?.etag
  }
}
