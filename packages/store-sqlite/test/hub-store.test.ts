// The embedded hub's registry on SQLite: conditional writes, and two hub objects on two database
// connections (as two instances would be) patching one twin at once without losing a write.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { EmbeddedHub } from '@provisio/hub'
import { SqliteHubStore } from '../src/index.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function openTwo(): [Database.Database, Database.Database] {
  const dir = mkdtempSync(join(tmpdir(), 'provisio-hubstore-'))
  dirs.push(dir)
  const a = new Database(join(dir, 'hub.db'))
  a.pragma('journal_mode = WAL')
  a.pragma('busy_timeout = 5000')
  const b = new Database(join(dir, 'hub.db'))
  b.pragma('busy_timeout = 5000')
  return [a, b]
}

describe('SqliteHubStore', () => {
  it('inserts only when absent and updates only when both etags still match', async () => {
    const [db] = openTwo()
    const store = new SqliteHubStore(db)
    const v1 = { device: { deviceId: 'd', etag: 'e1' }, twin: { etag: 't1' } } as never
    const v2 = { device: { deviceId: 'd', etag: 'e1' }, twin: { etag: 't2' } } as never
    expect(await store.put('Hub.Local', 'd', v1, { absent: true })).toBe(true)
    expect(await store.put('hub.local', 'd', v2, { absent: true })).toBe(false)
    expect(await store.put('hub.local', 'd', v2, { deviceEtag: 'e1', twinEtag: 't1', modulesEtag: '' })).toBe(true)
    expect(await store.put('hub.local', 'd', v1, { deviceEtag: 'e1', twinEtag: 't1', modulesEtag: '' })).toBe(false)
    expect(await store.get('hub.local', 'd')).toEqual(v2)
    expect(await store.put('hub.local', 'gone', v1, { deviceEtag: 'e1', twinEtag: 't1', modulesEtag: '' })).toBe(false)
    expect(await store.get('hub.local', 'gone')).toBeUndefined()
    expect(await store.put('hub.local', 'd', v1)).toBe(true)
    // A module write changes only modulesEtag: a writer that read the record before it loses.
    const v3 = { device: { deviceId: 'd', etag: 'e1' }, twin: { etag: 't1' }, modulesEtag: 'm1' } as never
    expect(await store.put('hub.local', 'd', v3, { deviceEtag: 'e1', twinEtag: 't1', modulesEtag: '' })).toBe(true)
    expect(await store.put('hub.local', 'd', v1, { deviceEtag: 'e1', twinEtag: 't1', modulesEtag: '' })).toBe(false)
    expect(await store.put('hub.local', 'd', v1, { deviceEtag: 'e1', twinEtag: 't1', modulesEtag: 'm1' })).toBe(true)
    db.close()
  })

  it('two hubs on two connections patching one twin at once lose no write', async () => {
    const [dbA, dbB] = openTwo()
    let r = 9
    const ports = (db: Database.Database) => ({ store: new SqliteHubStore(db), clock: { now: () => 1_700_000_000_000 }, random: { bytes: (n: number) => Uint8Array.from({ length: n }, () => (r = (r * 1103515245 + 12345) & 0xffff) & 0xff) } })
    const a = new EmbeddedHub('hub.local', ports(dbA))
    const b = new EmbeddedHub('hub.local', ports(dbB))
    await a.createOrUpdateDevice({ deviceId: 'd', authentication: { type: 'sas' } })
    await Promise.all(Array.from({ length: 8 }, (_, i) => [a.updateTwin('d', { properties: { desired: { [`s${i}`]: i } } }), b.patchReported('d', { [`r${i}`]: i })]).flat())
    const twin = await b.getTwin('d')
    expect(twin?.properties.desired).toMatchObject(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`s${i}`, i])))
    expect(twin?.properties.reported).toMatchObject(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`r${i}`, i])))
    expect(twin?.version).toBe(17)
    dbA.close()
    dbB.close()
  })
})
