// The WAL checkpoint thread against real database files: the given connection stops
// checkpointing inside its commits, the thread's checkpoints move the WAL into the database
// file, and when the thread goes away (closed, or killed) the connection checkpoints itself again.
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { startWalCheckpointer } from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'provisio-checkpoint-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function walDb(name: string): Database.Database {
  const db = new Database(join(dir, name))
  db.pragma('journal_mode = WAL')
  db.exec('CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)')
  return db
}

const autocheckpoint = (db: Database.Database) => Number(db.pragma('wal_autocheckpoint', { simple: true }))

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`gave up waiting: ${what}`)
}

describe('startWalCheckpointer', () => {
  it('turns the connection’s automatic checkpoint off and checkpoints from its thread instead', async () => {
    const db = walDb('thread.db')
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)')
    expect(autocheckpoint(db)).toBe(1000)
    // The timer's first checkpoint is a minute away: the test asks for them with checkpoint().
    const checkpointer = await startWalCheckpointer(db, { intervalMs: 60_000 })
    expect(checkpointer.running).toBe(true)
    expect(autocheckpoint(db)).toBe(0)
    // Far more than 1,000 pages: without the thread, the connection would have checkpointed itself.
    const row = 'x'.repeat(3000)
    db.transaction(() => {
      for (let i = 0; i < 2000; i++) insert.run(row)
    })()
    // Our COMMIT left it all in the WAL (the file holds just the schema); the thread's checkpoint carries it over.
    expect(statSync(join(dir, 'thread.db')).size).toBeLessThan(100_000)
    const result = await checkpointer.checkpoint()
    // Under the default restart threshold (4,096 frames): a passive checkpoint, the WAL kept.
    expect(result.log).toBeGreaterThan(1000)
    expect(result.checkpointed).toBe(result.log)
    expect(result.restarted).toBe(false)
    expect(statSync(join(dir, 'thread.db')).size).toBeGreaterThan(2000 * 3000)
    expect(checkpointer.stats).toEqual({ checkpoints: 1, restarts: 0, failures: 0 })
    await checkpointer.close()
    expect(checkpointer.running).toBe(false)
    expect(autocheckpoint(db)).toBe(1000)
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 2000 })
    db.close()
  })

  it('restarts and empties the WAL once it holds more than restartFrames pages, so steady writes cannot grow it for ever', async () => {
    const file = join(dir, 'restart.db')
    const db = walDb('restart.db')
    const checkpointer = await startWalCheckpointer(db, { intervalMs: 60_000, restartFrames: 100 })
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)')
    const row = 'z'.repeat(3000)
    const write = (rows: number) =>
      db.transaction(() => {
        for (let i = 0; i < rows; i++) insert.run(row)
      })()
    write(50)
    const small = await checkpointer.checkpoint()
    expect(small.restarted).toBe(false)
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(0)
    write(500)
    const big = await checkpointer.checkpoint()
    expect(big.restarted).toBe(true)
    expect(statSync(`${file}-wal`).size).toBe(0)
    expect(checkpointer.stats).toEqual({ checkpoints: 2, restarts: 1, failures: 0 })
    // Everything is in the database file, and writing goes on into the emptied WAL.
    write(1)
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 551 })
    await checkpointer.close()
    db.close()
  })

  it('leaves the WAL to the connection when the thread stops: a big write is checkpointed inside its commit again', async () => {
    const file = join(dir, 'handback.db')
    const db = walDb('handback.db')
    const checkpointer = await startWalCheckpointer(db, { intervalMs: 60_000 })
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)')
    const row = 'y'.repeat(3000)
    const big = () =>
      db.transaction(() => {
        for (let i = 0; i < 1500; i++) insert.run(row)
      })()
    const before = statSync(file).size
    big()
    // The thread's first checkpoint is a minute away and the connection's own is off: it all stays in the WAL.
    expect(statSync(file).size).toBe(before)
    await checkpointer.close()
    big()
    // SQLite's default again: the COMMIT that took the WAL past 1,000 pages copied both writes into the file.
    expect(statSync(file).size).toBeGreaterThan(before + 2 * 1500 * 3000)
    db.close()
  })

  it('gives the connection its automatic checkpoint back, and says why, when the thread ends (database file deleted)', async () => {
    const file = join(dir, 'deleted.db')
    const db = walDb('deleted.db')
    const errors: string[] = []
    const checkpointer = await startWalCheckpointer(db, { intervalMs: 20, onError: (e) => void errors.push(e.message) })
    expect(autocheckpoint(db)).toBe(0)
    rmSync(file)
    await until(() => !checkpointer.running, 'the thread to end')
    await expect(checkpointer.checkpoint()).rejects.toThrow(/is not running/)
    expect(autocheckpoint(db)).toBe(1000)
    expect(errors.join('\n')).toMatch(/the database file is gone/)
    expect(errors.join('\n')).toMatch(/WAL checkpoint thread for .*deleted\.db exited with code 1/)
    await checkpointer.close()
    db.close()
  })

  it('rejects, leaving the connection as it was, when the thread cannot open the database', async () => {
    const file = join(dir, 'unopenable.db')
    const db = walDb('unopenable.db')
    rmSync(file)
    await expect(startWalCheckpointer(db)).rejects.toThrow(/WAL checkpoint thread for .*unopenable\.db did not start/)
    expect(autocheckpoint(db)).toBe(1000)
    db.close()
  })

  it("gives back the connection's own wal_autocheckpoint setting, not SQLite's default", async () => {
    const db = walDb('own-setting.db')
    db.pragma('wal_autocheckpoint = 250')
    const checkpointer = await startWalCheckpointer(db, { intervalMs: 60_000 })
    expect(autocheckpoint(db)).toBe(0)
    await checkpointer.close()
    expect(autocheckpoint(db)).toBe(250)
    db.close()
  })

  it('refuses what it cannot serve: an in-memory database, a rollback journal, a bad interval', async () => {
    const memory = new Database(':memory:')
    await expect(startWalCheckpointer(memory)).rejects.toThrow(/in-memory database has no WAL file/)
    memory.close()
    const rollback = new Database(join(dir, 'rollback.db'))
    rollback.pragma('journal_mode = DELETE')
    await expect(startWalCheckpointer(rollback)).rejects.toThrow(/journal mode 'delete', not WAL/)
    rollback.close()
    const db = walDb('interval.db')
    for (const bad of [0, 5, 1.5, 60_001]) await expect(startWalCheckpointer(db, { intervalMs: bad })).rejects.toThrow(/intervalMs must be an integer from 10 to 60000/)
    for (const bad of [0, 99, 1.5]) await expect(startWalCheckpointer(db, { restartFrames: bad })).rejects.toThrow(/restartFrames must be an integer of at least 100/)
    expect(autocheckpoint(db)).toBe(1000)
    db.close()
  })
})
