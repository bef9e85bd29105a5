// Cloud-to-device queues on SQLite: the conformance suite of @provisio/hub, plus a second
// connection on the same file standing in for another worker process and for a restart.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { C2dStore } from '@provisio/hub'
import { SqliteC2dStore } from '../src/index.js'
import { c2dConformance } from '../../hub/test/c2d-conformance.js'

const open = new Map<C2dStore, { dir: string; dbs: Database.Database[] }>()

function connect(file: string): Database.Database {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('busy_timeout = 5000')
  return db
}

c2dConformance('the SQLite store', {
  create: () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-c2d-'))
    const db = connect(join(dir, 'c2d.db'))
    const store = new SqliteC2dStore(db)
    open.set(store, { dir, dbs: [db] })
    return Promise.resolve(store)
  },
  reopen: (store) => {
    const entry = open.get(store)!
    const db = connect(join(entry.dir, 'c2d.db'))
    entry.dbs.push(db)
    return Promise.resolve(new SqliteC2dStore(db))
  },
  close: (store) => {
    const entry = open.get(store)!
    open.delete(store)
    for (const db of entry.dbs) db.close()
    rmSync(entry.dir, { recursive: true, force: true })
    return Promise.resolve()
  },
})
