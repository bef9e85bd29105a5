// `provisio enrollments import` (the built CLI) killed mid-import and run again: the kill leaves
// only whole batches behind (one transaction each), the second run skips what is there and loads
// the rest, and the database ends with every enrollment of the file exactly once.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { CLI } from '../lib/cli.js'

const ID_SCOPE = '0ne000ABCDE'
const HUB = 'resume-hub.example.net'
const KEY = Buffer.alloc(32, 9).toString('base64')
const TOTAL = 50_000
const BATCH = 500

const dir = mkdtempSync(join(tmpdir(), 'provisio-import-resume-'))
const children: ChildProcess[] = []
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

function run(args: readonly string[]): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })))
  return { child, done }
}

/** Rows and distinct keys of the enrollments table, read beside the writer (WAL). */
function counts(): { rows: number; distinct: number } {
  const db = new Database(join(dir, 'provisio.db'), { readonly: true, fileMustExist: true })
  try {
    const r = db.prepare('SELECT COUNT(*) AS n, COUNT(DISTINCT id_key) AS d FROM enrollments WHERE id_scope = ?').get(ID_SCOPE) as { n: number; d: number }
    return { rows: r.n, distinct: r.d }
  } finally {
    db.close()
  }
}

describe('provisio enrollments import, interrupted and resumed', () => {
  it('keeps whole batches after a kill and completes on the re-run without duplicates', async () => {
    const state = { version: 1, idScope: ID_SCOPE, servicePolicies: [], hubs: [{ hostName: HUB, policies: [{ name: 'iothubowner', primaryKey: KEY, secondaryKey: KEY }] }] }
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state))
    const file = join(dir, 'fleet.jsonl')
    const lines = Array.from({ length: TOTAL }, (_, i) =>
      JSON.stringify({ registrationId: `fleet-${String(i).padStart(6, '0')}`, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } }, iotHubs: [HUB] }))
    writeFileSync(file, lines.join('\n') + '\n')
    const args = ['enrollments', 'import', file, '--data-dir', dir, '--batch', String(BATCH)]

    // First run: killed (SIGKILL, no chance to clean up) once some batches are committed.
    const first = run(args)
    const deadline = Date.now() + 60_000
    let seen = 0
    while (seen < 2 * BATCH) {
      if (Date.now() > deadline) throw new Error(`no batch committed within 60 s: ${JSON.stringify(await Promise.race([first.done, Promise.resolve('running')]))}`)
      if (first.child.exitCode !== null) throw new Error(`the import ended before it could be interrupted: ${JSON.stringify(await first.done)}`)
      try {
        seen = counts().rows
      } catch {
        seen = 0 // the database file or its table is not there yet
      }
      await new Promise((r) => setTimeout(r, 5))
    }
    first.child.kill('SIGKILL')
    const killed = await first.done
    expect(killed.code).toBeNull() // killed, not finished
    const partial = counts()
    expect(partial.rows).toBeGreaterThanOrEqual(2 * BATCH)
    expect(partial.rows).toBeLessThan(TOTAL)
    expect(partial.rows % BATCH, 'only whole batches are committed').toBe(0)
    expect(partial.distinct).toBe(partial.rows)

    // Second run: skips what is there, loads the rest.
    const second = run(args)
    const finished = await Promise.race([
      second.done,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the re-run did not finish within 90 s')), 90_000)),
    ])
    expect(finished.code, finished.stderr).toBe(0)
    expect(finished.stdout).toContain(`${TOTAL} records, ${TOTAL - partial.rows} created, ${partial.rows} already there, 0 failed`)
    expect(counts()).toEqual({ rows: TOTAL, distinct: TOTAL })
  }, 180_000)
})
