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
 * with the right key each). Also: the primary exits 1 when its workers cannot listen, and a
 * desired-property change written through one worker reaches a device connected to the other.
 *
 * Device count: PROVISIO_SCALE_DEVICES (default 400). Needs the built CLI.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:https'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { connectHub, symmetricKey, type HubClient } from '@provisio/device'
import { buildSasToken } from '@provisio/protocol'
import { call, CLI, createGroup, deviceCount, fleetProblems, provisionDevice, runPool, ServeProcess, sleep, TRANSPORTS, transportSummary, sqliteFleetRows } from './harness.js'

const DEVICES = deviceCount(400)
const root = mkdtempSync(join(tmpdir(), 'provisio-scale-workers-'))
const servers: ServeProcess[] = []

afterAll(async () => {
  for (const s of servers) await s.kill()
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
    servers.push(s)
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
          // The log lines (a line cut between two reads of the pipe is not JSON and is skipped).
          const logged = s.output.flatMap((l) => {
            try {
              return [JSON.parse(l) as Record<string, unknown>]
            } catch {
              return []
            }
          })
          expect(logged).toContainEqual(expect.objectContaining({ msg: 'worker exited unexpectedly; restarting it', worker: expect.any(Number), pid: first, how: 'signal SIGKILL' }))
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
    const rows = sqliteFleetRows(db, 'localhost')
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

  it('pushes desired-property changes to devices connected to either worker', async () => {
    // Round-robin scheduling: connections alternate between the workers, so the device connections
    // and the twin writes below certainly land on both (the default lets each worker accept).
    const s = new ServeProcess('workers-hub', join(root, 'hub'), ['--workers', '2', '--retry-after', '1'], { NODE_CLUSTER_SCHED_POLICY: 'rr' })
    servers.push(s)
    await s.start()
    const endpoints = s.endpoints!
    const groupKey = Buffer.alloc(32, 47).toString('base64')
    await createGroup(s, 'hub-fleet', groupKey)
    const ids = ['hub-dev-0', 'hub-dev-1', 'hub-dev-2', 'hub-dev-3']
    for (const [i, id] of ids.entries()) await provisionDevice([s], endpoints.idScope, groupKey, id, i)
    const hub = JSON.parse(readFileSync(join(root, 'hub', 'endpoints.json'), 'utf8')) as { hubs: { connectionString: string }[] }
    const cs = Object.fromEntries(hub.hubs[0]!.connectionString.split(';').map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]))
    const hubToken = buildSasToken({ resource: cs.HostName!, key: cs.SharedAccessKey!, keyName: cs.SharedAccessKeyName!, expiresAt: Math.floor(Date.now() / 1000) + 600 })
    /** PATCH the twin through the registry API on a new connection: the next worker in turn takes it. */
    const patchDesired = (id: string, desired: Record<string, unknown>) =>
      new Promise<number>((resolve, reject) => {
        const body = JSON.stringify({ properties: { desired } })
        const req = request(
          { host: 'localhost', port: endpoints.ports.https, ca: s.ca, agent: false, method: 'PATCH', path: `/twins/${id}?api-version=2021-04-12`, headers: { authorization: hubToken, 'content-type': 'application/json', 'if-match': '*' } },
          (res) => {
            res.resume()
            res.on('end', () => resolve(res.statusCode ?? 0))
          },
        )
        req.on('error', reject)
        req.end(body)
      })
    const clients: HubClient[] = []
    try {
      const seen = new Map<string, number[]>(ids.map((id) => [id, []]))
      for (const id of ids) {
        const c = await connectHub({ hostName: 'localhost', deviceId: id, security: symmetricKey({ registrationId: id, groupKey }), port: endpoints.ports.mqtt, ca: s.ca })
        c.onDesired((patch) => seen.get(id)!.push(patch.step as number))
        clients.push(c)
      }
      // The devices' connections are spread over both workers …
      const metrics = await call(s, 'GET', '/metrics', {})
      const accepted = [...metrics.body.matchAll(/^provisio_hub_connections_total\{transport="mqtts",result="accepted",worker="(\d)"\} (\d+)$/gm)]
      expect(accepted.map((m) => m[1]).sort()).toEqual(['1', '2'])
      // … and two changes per device, on connections taken in turn by the workers, reach it
      // whichever worker wrote them.
      for (const id of ids) {
        for (const step of [1, 2]) expect(await patchDesired(id, { step })).toBe(200)
      }
      for (let i = 0; i < 100 && [...seen.values()].some((steps) => steps.length < 2); i++) await sleep(50)
      expect(Object.fromEntries(seen)).toEqual(Object.fromEntries(ids.map((id) => [id, [1, 2]])))
    } finally {
      await Promise.all(clients.map((c) => c.close()))
    }
    expect(await s.stop()).toBe(0)
  })

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
