import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { runStoreConformance } from '../../engine/test/store-conformance.js'
import { MIGRATIONS, createSqliteStore } from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'provisio-sqlite-'))
let counter = 0
afterAll(() => rmSync(dir, { recursive: true, force: true }))

runStoreConformance('SqliteStore (temp file)', async () => {
  const store = createSqliteStore(join(dir, `conf-${++counter}.db`))
  return { store, close: () => store.close() }
})

describe('SqliteStore specifics', () => {
  it('runs in WAL mode and records every migration once', () => {
    const path = join(dir, 'migrations.db')
    const first = createSqliteStore(path)
    expect(first.db.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(first.schemaVersions()).toEqual(MIGRATIONS.map((m) => m.version))
    first.close()
    const again = createSqliteStore(path)
    expect(again.schemaVersions()).toEqual(MIGRATIONS.map((m) => m.version))
    again.close()
  })

  it('refuses a database written by a newer schema', () => {
    const path = join(dir, 'newer.db')
    const db = new Database(path)
    db.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL); INSERT INTO schema_migrations VALUES (999, 'future', 'x')")
    db.close()
    expect(() => createSqliteStore(path)).toThrow(/schema version 999 is newer/)
  })

  it('sees writes of another connection to the same file (two processes sharing a store)', async () => {
    const path = join(dir, 'shared.db')
    const a = createSqliteStore(path)
    const b = createSqliteStore(path)
    await a.putGroup('0ne00000001', {
      enrollmentGroupId: 'g',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: 'a2V5a2V5a2V5a2V5a2V5a2V5', secondaryKey: 'a2V5a2V5a2V5a2V5a2V5a2V6' } },
      capabilities: { iotEdge: false },
      provisioningStatus: 'enabled',
      reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: true },
      etag: '"1"',
    })
    expect(await b.groupsRevision('0ne00000001')).toBe(await a.groupsRevision('0ne00000001'))
    expect((await b.getGroup('0ne00000001', 'G'))?.etag).toBe('"1"')
    a.close()
    b.close()
  })

  it('leaves a database it did not open open', () => {
    const db = new Database(':memory:')
    const store = createSqliteStore(db)
    store.close()
    expect(db.open).toBe(true)
    db.close()
  })
})
