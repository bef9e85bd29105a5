import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { runStoreConformance } from '../../engine/test/store-conformance.js'
import { GroupCommit, MAX_COMMIT_INTERVAL_MS, MIGRATIONS, createSqliteStore } from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'provisio-sqlite-'))
let counter = 0
afterAll(() => rmSync(dir, { recursive: true, force: true }))

runStoreConformance('SqliteStore (temp file)', async () => {
  const store = createSqliteStore(join(dir, `conf-${++counter}.db`))
  return { store, close: () => store.close() }
})

runStoreConformance('SqliteStore with group commit', async () => {
  const db = new Database(join(dir, `conf-group-${++counter}.db`))
  const store = createSqliteStore(db, { groupCommit: new GroupCommit(db) })
  return {
    store,
    close: () => {
      store.close()
      db.close()
    },
  }
})

describe('GroupCommit', () => {
  const open = (name: string) => {
    const path = join(dir, name)
    const db = new Database(path)
    db.exec('CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT NOT NULL)')
    return { path, db, group: new GroupCommit(db) }
  }

  it('runs the writes of one turn in one transaction and settles each only after the COMMIT', async () => {
    const { path, db, group } = open('group-one-turn.db')
    const other = new Database(path)
    const insert = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
    const seen: string[] = []
    const writes = ['a', 'b', 'c'].map((k) => group.write(() => insert.run(k, k).changes).then(() => seen.push(k)))
    // Same turn: collected, not yet run (no lock taken), invisible to another connection, nothing settled.
    expect(db.inTransaction).toBe(false)
    expect(other.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 0 })
    await Promise.resolve()
    expect(seen).toEqual([])
    await Promise.all(writes)
    expect(seen).toEqual(['a', 'b', 'c'])
    expect(group.stats.commits).toBe(1)
    expect(db.inTransaction).toBe(false)
    expect(other.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 3 })
    other.close()
    db.close()
  })

  it('undoes a failing write alone; the rest of its group commits', async () => {
    const { db, group } = open('group-failure.db')
    const insert = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
    const twoRows = db.transaction((k: string) => {
      insert.run(`${k}-1`, 'x')
      insert.run(`${k}-1`, 'duplicate') // primary key violation: the savepoint rolls back both
    })
    const ok = group.write(() => insert.run('kept', 'x'))
    const failed = group.write(() => twoRows('gone'))
    await expect(failed).rejects.toThrow(/UNIQUE constraint failed/)
    await ok
    expect(db.prepare('SELECT k FROM t ORDER BY k').all()).toEqual([{ k: 'kept' }])
    db.close()
  })

  it('rejects every caller when the COMMIT fails, and nothing of the group stays', async () => {
    const { db, group } = open('group-commit-fails.db')
    db.exec('CREATE TABLE parent (id TEXT PRIMARY KEY); CREATE TABLE child (p TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)')
    db.pragma('foreign_keys = ON')
    const a = group.write(() => db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run('x', 'y'))
    const b = group.write(() => db.prepare('INSERT INTO child (p) VALUES (?)').run('missing')) // checked at COMMIT
    await expect(a).rejects.toThrow(/FOREIGN KEY/)
    await expect(b).rejects.toThrow(/FOREIGN KEY/)
    expect(db.inTransaction).toBe(false)
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 0 })
    db.close()
  })

  it('holds a read made while a group is open until the COMMIT; answers one made outside at once', async () => {
    const { db, group } = open('group-read.db')
    const count = () => (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n
    expect(await group.read(count)).toBe(0)
    const write = group.write(() => db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run('r', 'v'))
    let read = -1
    const pending = group.read(count).then((n) => (read = n))
    await Promise.resolve()
    expect(read).toBe(-1)
    await Promise.all([write, pending])
    expect(read).toBe(1)
    db.close()
  })
})

describe('GroupCommit with minIntervalMs (commit pacing)', () => {
  // Fake setImmediate/setTimeout/performance: the pacing is checked as what ran at which fake
  // instant, never against the wall clock.
  afterEach(() => void vi.useRealTimers())
  const open = (name: string, minIntervalMs: number) => {
    vi.useFakeTimers({ toFake: ['setImmediate', 'setTimeout', 'performance'] })
    const db = new Database(join(dir, name))
    db.exec('CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT NOT NULL)')
    const insert = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
    const group = new GroupCommit(db, { minIntervalMs })
    const settled: string[] = []
    const write = (k: string) => group.write(() => insert.run(k, k)).then(() => void settled.push(k))
    return { db, group, settled, write }
  }

  it('commits a write after a quiet spell on the next turn, and gathers the writes that follow a COMMIT until the interval is over', async () => {
    const { db, group, settled, write } = open('pacing.db', 5)
    const first = write('a')
    await vi.advanceTimersByTimeAsync(0)
    await first
    expect(group.stats.commits).toBe(1)
    // Two more turns' writes within 5 ms of that COMMIT: they wait and then share one.
    const second = write('b')
    await vi.advanceTimersByTimeAsync(1)
    const third = write('c')
    await vi.advanceTimersByTimeAsync(2)
    expect(settled).toEqual(['a'])
    expect(group.stats.commits).toBe(1)
    await vi.advanceTimersByTimeAsync(2)
    await Promise.all([second, third])
    expect(settled).toEqual(['a', 'b', 'c'])
    expect(group.stats.commits).toBe(2)
    // Quiet again for longer than the interval: the next write is not held back.
    await vi.advanceTimersByTimeAsync(20)
    const fourth = write('d')
    await vi.advanceTimersByTimeAsync(0)
    await fourth
    expect(group.stats.commits).toBe(3)
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 4 })
    db.close()
  })

  it('without an interval commits every turn that wrote', async () => {
    const { db, group, settled, write } = open('no-pacing.db', 0)
    const writes = [write('a')]
    await vi.advanceTimersByTimeAsync(0)
    writes.push(write('b'))
    await vi.advanceTimersByTimeAsync(0)
    await Promise.all(writes)
    expect(settled).toEqual(['a', 'b'])
    expect(group.stats.commits).toBe(2)
    db.close()
  })

  it('commits what is waiting at once when flushed (closing)', async () => {
    const { db, group, settled, write } = open('pacing-flush.db', 50)
    const first = write('a')
    await vi.advanceTimersByTimeAsync(0)
    await first
    const waiting = write('b')
    group.flush()
    await waiting
    expect(settled).toContain('b')
    expect(group.stats.commits).toBe(2)
    db.close()
  })

  it('refuses an interval that is negative, not a number or over the limit', () => {
    const db = new Database(join(dir, 'pacing-bad.db'))
    for (const bad of [-1, Number.NaN, MAX_COMMIT_INTERVAL_MS + 1]) {
      expect(() => new GroupCommit(db, { minIntervalMs: bad })).toThrow(/minIntervalMs must be 0 to 1000 ms/)
    }
    db.close()
  })
})

describe('GroupCommit with several connections on one file (processes)', () => {
  const open = (path: string, maxWaitMs?: number) => {
    const db = new Database(path)
    db.pragma('journal_mode = WAL')
    db.pragma('busy_timeout = 5000')
    db.exec('CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT NOT NULL)')
    return { db, group: new GroupCommit(db, { otherWriters: true, ...(maxWaitMs === undefined ? {} : { maxWaitMs }) }), insert: db.prepare('INSERT INTO t (k, v) VALUES (?, ?)') }
  }

  it('queues writes while another connection holds the write lock, without blocking the event loop', async () => {
    const path = join(dir, 'group-two-connections.db')
    const a = open(path)
    const b = open(path)
    // Another process in the middle of its own write transaction.
    a.db.exec('BEGIN IMMEDIATE')
    a.insert.run('a', 'x')
    const order: string[] = []
    const queued = [b.group.write(() => b.insert.run('b1', 'x')), b.group.write(() => b.insert.run('b2', 'x'))].map((p, i) => p.then(() => order.push(`b${i + 1}`)))
    // B's group finds the lock taken and does not wait inside SQLite (that would stall this
    // thread for its busy timeout, and A's COMMIT below could never run): timers still fire.
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(order).toEqual([])
    expect(b.group.stats.lockWaits).toBe(1)
    const late = b.group.write(() => b.insert.run('b3', 'x')).then(() => order.push('b3'))
    a.db.exec('COMMIT')
    await Promise.all([...queued, late])
    // The writes that waited, and the one that joined meanwhile, commit together, in issue order.
    expect(order).toEqual(['b1', 'b2', 'b3'])
    expect(b.group.stats.commits).toBe(1)
    expect(b.group.stats.lockWaitMs).toBeGreaterThan(0)
    expect(a.db.prepare('SELECT k FROM t ORDER BY k').all()).toEqual([{ k: 'a' }, { k: 'b1' }, { k: 'b2' }, { k: 'b3' }])
    // The connection's own busy timeout is back in force after each BEGIN.
    expect(b.db.pragma('busy_timeout', { simple: true })).toBe(5000)
    a.db.close()
    b.db.close()
  })

  it('fails queued writes with SQLITE_BUSY after maxWaitMs, serving timers meanwhile', async () => {
    const path = join(dir, 'group-lock-held.db')
    const a = open(path)
    const b = open(path, 200)
    a.db.exec('BEGIN IMMEDIATE')
    let timerRan = false
    setTimeout(() => (timerRan = true), 0)
    const failed = b.group.write(() => b.insert.run('never', 'x'))
    await expect(failed).rejects.toMatchObject({ code: 'SQLITE_BUSY', message: expect.stringMatching(/another process held the SQLite write lock for \d+ ms \(limit 200 ms\)/) })
    // Waiting inside SQLite would have settled the write before any timer could run.
    expect(timerRan).toBe(true)
    a.db.exec('ROLLBACK')
    // Once the lock is free, writes go through again.
    await b.group.write(() => b.insert.run('later', 'x'))
    expect(b.db.prepare('SELECT k FROM t').all()).toEqual([{ k: 'later' }])
    a.db.close()
    b.db.close()
  })

  it('commits writes still waiting for the lock when flushed (closing)', async () => {
    const path = join(dir, 'group-flush-queued.db')
    const a = open(path)
    const b = open(path)
    a.db.exec('BEGIN IMMEDIATE')
    const pending = b.group.write(() => b.insert.run('queued', 'x'))
    expect(b.db.inTransaction).toBe(false)
    a.db.exec('COMMIT')
    // flush() takes the lock at once (waiting with the connection's busy timeout, as at close).
    b.group.flush()
    expect(b.db.inTransaction).toBe(false)
    await pending
    expect(b.db.prepare('SELECT k FROM t').all()).toEqual([{ k: 'queued' }])
    a.db.close()
    b.db.close()
  })
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
