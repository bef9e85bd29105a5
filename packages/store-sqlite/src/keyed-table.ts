/**
 * A keyed JSON table (enrollments, enrollment groups, registrations, CA certificates): the record
 * as JSON in `body`, keyed by scope and the lower-cased id, with conditional upsert/delete on the
 * etag and key-ordered paging.
 */
import type Database from 'better-sqlite3'
import type { PageRequest, WriteCondition, WriteResult } from '@provisio/engine'
import { checkWriteCondition } from '@provisio/engine'

const OK: WriteResult = { ok: true }

/** Registration ids and group ids are ASCII (docs/protocol.md §0), so ASCII lower-casing is the key. */
export function keyOf(id: string): string {
  return id.toLowerCase()
}

function check(current: { etag: string } | undefined, condition: WriteCondition | undefined): WriteResult {
  return checkWriteCondition(current?.etag, condition)
}

type Row = { etag: string; body: string }

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
  readonly #get: Database.Statement<[string, string], Row>
  readonly #upsert: Database.Statement
  readonly #delete: Database.Statement<[string, string]>
  readonly #page: Database.Statement<[string, string, number], Row>
  readonly #pageFirst: Database.Statement<[string, number], Row>
  readonly #put: (idScope: string, id: string, etag: string, value: V, extra: unknown[], condition?: WriteCondition) => WriteResult
  readonly #remove: (idScope: string, id: string, condition?: WriteCondition) => WriteResult
  readonly #putMany: (idScope: string, items: readonly BatchItem<V>[]) => WriteResult[]

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
    this.#putMany = db.transaction((idScope: string, items: readonly BatchItem<V>[]) => {
      const results: WriteResult[] = []
      let changed = false
      for (const item of items) {
        const k = keyOf(item.id)
        if (item.condition !== undefined) {
          const verdict = check(this.#get.get(idScope, k), item.condition)
          if (!verdict.ok) {
            results.push(verdict)
            continue
          }
        }
        this.#upsert.run(idScope, k, item.etag, ...item.extra, JSON.stringify(item.value))
        changed = true
        results.push(OK)
      }
      if (changed) onChange?.(idScope)
      return results
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
  /** Many puts in one transaction; each item's condition sees the earlier items' writes. */
  putMany(idScope: string, items: readonly BatchItem<V>[]): WriteResult[] {
    return items.length === 0 ? [] : this.#putMany(idScope, items)
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
