/**
 * `provisio serve --workers 2` on its default SQLite store: two processes on one database file,
 * sharing the listening ports (node:cluster). A fleet of symmetric-key group devices registers
 * over every transport (device i uses HTTPS, MQTT, MQTT-WS, AMQP or AMQP-WS by i mod 5) while
 * one worker is SIGKILLed mid-run; the primary restarts it and the devices retry through it, as
 * the crash tests' devices do. Operations the killed worker left `assigning` are taken over by
 * the other once their lease expires.
 *
 * Then: both workers served registrations (the per-worker series of /metrics), the primary
 * logged the restart, SIGTERM drains every worker and the primary exits 0, and the database holds
 * every device assigned exactly once (one registration record, one operation, one hub identity
 * with the right key each). Also: the primary exits 1 when its workers cannot listen.
 *
 * Device count: PROVISIO_SCALE_DEVICES (default 400). Needs the built CLI.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { call, CLI, createGroup, deviceCount, fleetProblems, provisionDevice, runPool, ServeProcess, sleep, TRANSPORTS, transportSummary, type FleetRows } from './harness.js'

const DEVICES = deviceCount(400)
const root = mkdtempSync(join(tmpdir(), 'provisio-scale-workers-'))
let server: ServeProcess | undefined

afterAll(async () => {
  await server?.kill()
  rmSync(root, { recursive: true, force: true })
})

/** Register calls per worker, summed over transports, from one /metrics scrape. */
async function attemptsByWorker(s: ServeProcess): Promise<Map<string, number>> {
  const answer = await call(s, 'GET', '/metrics', {})
  expect(answer.status).toBe(200)
  const byWorker = new Map<string, number>()
  for (const m of answer.body.matchAll(/^provisio_registration_attempts_total\{[^}]*worker="(\d+)"\} (\d+)$/gm)) {
    byWorker.set(m[1]!, (byWorker.get(m[1]!) ?? 0) + Number(m[2]))
  }
  return byWorker
}

describe('provisio serve --workers 2 on SQLite', () => {
  it(`provisions ${DEVICES} devices over every transport while a worker is SIGKILLed and restarted`, async () => {
    const s = new ServeProcess('workers', join(root, 'data'), ['--workers', '2', '--retry-after', '1', '--operation-lease-ms', '3000'])
    server = s
    await s.start()
    const idScope = s.endpoints!.idScope
    const groupKey = Buffer.alloc(32, 46).toString('base64')
    await createGroup(s, 'fleet', groupKey)
    const ids = Array.from({ length: DEVICES }, (_, i) => `workers-dev-${String(i).padStart(5, '0')}`)
    const [first, second] = s.workerPids()
    expect(s.workerPids()).toHaveLength(2)

    let before: Map<string, number> | undefined
    let killed: number | undefined
    let crash: Promise<void> | undefined
    const outcomes = await runPool(DEVICES, 64, (i) => provisionDevice([s], idScope, groupKey, ids[i]!, i, undefined, TRANSPORTS[i % TRANSPORTS.length]), (done) => {
      if (done === Math.floor(DEVICES / 3) && crash === undefined) {
        crash = (async () => {
          before = await attemptsByWorker(s)
          killed = first
          process.kill(first!, 'SIGKILL')
          // The primary forks a replacement (after 250 ms); the devices keep going meanwhile.
          while (!s.workerPids().some((pid) => pid !== second && pid !== first)) await sleep(50)
          expect(s.output.join('\n')).toMatch(new RegExp(`"msg":"worker exited unexpectedly; restarting it","worker":\\d,"pid":${first},"how":"signal SIGKILL"`))
        })()
      }
    })
    await crash
    // Both workers had served devices before the kill, and the replacement serves too.
    expect(before?.get('1') ?? 0).toBeGreaterThan(0)
    expect(before?.get('2') ?? 0).toBeGreaterThan(0)
    const pids = s.workerPids()
    expect(pids).toHaveLength(2)
    expect(pids).not.toContain(killed)
    const after = await attemptsByWorker(s)
    expect([...after.keys()].sort()).toEqual(['1', '2'])

    // SIGTERM: every worker drains, the primary exits 0.
    expect(await s.stop()).toBe(0)

    const db = new Database(join(root, 'data', 'provisio.db'), { readonly: true })
    const bodies = (sql: string) => (db.prepare(sql).all() as { body: string }[]).map((r) => JSON.parse(r.body) as never)
    const rows: FleetRows = {
      registrations: bodies('SELECT body FROM registrations'),
      operations: bodies('SELECT body FROM operations'),
      hubDevices: bodies("SELECT record AS body FROM hub_devices WHERE hub = 'localhost'"),
    }
    db.close()
    expect(rows.registrations.length).toBe(DEVICES)
    expect(fleetProblems(ids, outcomes, rows, 'localhost', groupKey)).toEqual([])
    const retried = outcomes.filter((o) => o.connectionErrors > 0).length
    console.info(
      `scale/workers: ${DEVICES} devices (${transportSummary(outcomes)}; ${retried} retried through the worker restart); ` +
        `register calls by worker before the kill ${JSON.stringify(Object.fromEntries(before ?? []))}, after the restart ${JSON.stringify(Object.fromEntries(after))}`,
    )
    for (const t of TRANSPORTS) expect(outcomes.filter((o) => o.transport === t).length).toBeGreaterThan(0)
  }, 300_000)

  it('exits 1 with the reason when the workers cannot listen', async () => {
    // A port already taken: every worker's listen fails.
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as { port: number }).port
    const child = spawn(process.execPath, [CLI, 'serve', '--data-dir', join(root, 'taken'), '--workers', '2', '--https-port', String(port), '--mqtt-port', '0', '--amqp-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    taken.close()
    expect(code).toBe(1)
    expect(stderr).toMatch(new RegExp(`provisio: worker \\d could not start: cannot listen for HTTPS on 127.0.0.1:${port}: port ${port} is in use; choose another with --https-port`))
  })
})
