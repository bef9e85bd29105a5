/**
 * A keyed JSON table (enrollments, enrollment groups, registrations, CA certificates): the record
 * as JSON text in `body`, keyed by scope and the lower-cased id. Conditional writes lock the row
 * (`SELECT … FOR UPDATE`) inside a transaction and compare etags; creates rely on the primary key.
 */
import type pg from 'pg'
import type { PageRequest, WriteCondition, WriteResult } from '@provisio/engine'
import { OK, check, clampLimit, keyOf, transaction, type Statements } from './sql.js'

/** One row of {@link KeyedTable.putMany}. */
export interface BatchItem<V> {
  readonly id: string
  readonly etag: string
  readonly value: V
  readonly extra: readonly unknown[]
  readonly condition?: WriteCondition
}

/** A keyed JSON table with conditional upsert/delete and key-ordered paging. */
export class KeyedTable<V> {
  readonly #statements: Statements
  readonly #pool: pg.Pool
  readonly #onChange: ((db: pg.PoolClient, idScope: string) => Promise<void>) | undefined
  readonly #sql: { get: string; lock: string; upsert: string; insert: string; insertMany: string; del: string; page: string; pageFirst: string }
  readonly #extra: readonly string[]

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
    this.#extra = extra
    const cols = ['id_scope', key, 'etag', ...extra, 'body']
    const updates = ['etag', ...extra, 'body'].map((c) => `${c} = excluded.${c}`).join(', ')
    this.#sql = {
      get: `SELECT etag, body FROM ${table} WHERE id_scope = $1 AND ${key} = $2`,
      lock: `SELECT etag FROM ${table} WHERE id_scope = $1 AND ${key} = $2 FOR UPDATE`,
      upsert: `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
               ON CONFLICT (id_scope, ${key}) DO UPDATE SET ${updates}`,
      insert: `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
               ON CONFLICT (id_scope, ${key}) DO NOTHING`,
      // Used only by tables without extra columns (enrollments).
      insertMany: `INSERT INTO ${table} (id_scope, ${key}, etag, body)
                   SELECT $1, k, e, b FROM unnest($2::text[], $3::text[], $4::text[]) AS t (k, e, b)
                   ON CONFLICT (id_scope, ${key}) DO NOTHING RETURNING ${key} AS k`,
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

  /**
   * Many puts in one transaction; each item's condition sees the earlier items' writes. A batch
   * of plain creates (every condition `ifNoneExists`, the import path) is one statement over
   * arrays; any other batch runs item by item inside the transaction.
   */
  async putMany(idScope: string, items: readonly BatchItem<V>[]): Promise<WriteResult[]> {
    if (items.length === 0) return []
    const createsOnly = this.#onChange === undefined && this.#extra.length === 0 &&
      items.every((i) => i.condition?.ifNoneExists === true && i.condition.ifMatch === undefined)
    return transaction(this.#pool, async (db) => {
      if (createsOnly) return this.#insertMany(db, idScope, items)
      const results: WriteResult[] = []
      let changed = false
      for (const item of items) {
        const values = [idScope, keyOf(item.id), item.etag, ...item.extra, JSON.stringify(item.value)]
        if (item.condition !== undefined) {
          const verdict = check(await this.#lockedEtag(db, idScope, item.id), item.condition)
          if (!verdict.ok) {
            results.push(verdict)
            continue
          }
        }
        await this.#statements.run(db, this.#sql.upsert, values)
        changed = true
        results.push(OK)
      }
      if (changed) await this.#onChange?.(db, idScope)
      return results
    })
  }

  /** Plain creates in one statement: rows whose key exists (or repeats an earlier item) are skipped. */
  async #insertMany(db: pg.PoolClient, idScope: string, items: readonly BatchItem<V>[]): Promise<WriteResult[]> {
    const keys: string[] = []
    const etags: string[] = []
    const bodies: string[] = []
    const first = new Map<string, number>()
    for (const [i, item] of items.entries()) {
      const k = keyOf(item.id)
      if (first.has(k)) continue
      first.set(k, i)
      keys.push(k)
      etags.push(item.etag)
      bodies.push(JSON.stringify(item.value))
    }
    const { rows } = await this.#statements.run<{ k: string }>(db, this.#sql.insertMany, [idScope, keys, etags, bodies])
    const inserted = new Set(rows.map((r) => r.k))
    return items.map((item, i) => {
      const k = keyOf(item.id)
      return first.get(k) === i && inserted.has(k) ? OK : ({ ok: false, reason: 'exists' } as WriteResult)
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
