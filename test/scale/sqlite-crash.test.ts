/**
 * Crash safety on SQLite: one `provisio serve` on its default SQLite store, killed with
 * SIGKILL mid-run and restarted on the same data directory (same database, state and CA),
 * while a fleet of symmetric-key devices registers over MIXED transports (device i uses HTTPS,
 * MQTT, MQTT-WS, AMQP or AMQP-WS by i mod 5) and keeps retrying through the outage. Operations the killed process left `assigning` are taken over by the restarted one
 * once their lease expires; a cohort whose allocation webhook (§8) holds the killed process's
 * calls makes that certain rather than left to timing.
 *
 * With the server stopped, the database must hold every device assigned exactly once: one
 * registration record and one operation each (the one the device saw finish) and exactly the
 * fleet's hub identities with the right keys. WAL + synchronous=NORMAL keeps every committed
 * transaction across a process crash, so nothing a device was told may be missing.
 *
 * Device count: PROVISIO_SCALE_DEVICES (default 2,000). Needs the built CLI.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { createGroup, deviceCount, TRANSPORTS, transportSummary, fleetProblems, HoldingWebhook, provisionDevice, runPool, ServeProcess, sleep, startRegistrations, sqliteFleetRows, type FleetRows } from './harness.js'

const DEVICES = deviceCount(2000)
const LEASE_MS = 3000
const SLOW = 20
const isSlow = (id: string) => id.startsWith('scale-slow-')
const root = mkdtempSync(join(tmpdir(), 'provisio-scale-sqlite-'))
let server: ServeProcess | undefined

afterAll(async () => {
  await server?.kill()
  rmSync(root, { recursive: true, force: true })
})

describe('one provisio serve on SQLite', () => {
  it(`provisions ${DEVICES} devices while the process is SIGKILLed and restarted on its data directory`, async () => {
    const s = new ServeProcess('sqlite instance', join(root, 'data'), ['--retry-after', '1', '--operation-lease-ms', String(LEASE_MS)])
    server = s
    await s.start()
    const idScope = s.endpoints!.idScope
    const groupKey = Buffer.alloc(32, 44).toString('base64')
    await createGroup(s, 'fleet', groupKey)
    const webhook = new HoldingWebhook('localhost')
    await webhook.start()
    const slowKey = Buffer.alloc(32, 45).toString('base64')
    await createGroup(s, 'slow', slowKey, webhook.groupSettings())
    const ids = Array.from({ length: DEVICES }, (_, i) => `scale-dev-${String(i).padStart(5, '0')}`)
    const slowIds = Array.from({ length: SLOW }, (_, i) => `scale-slow-${String(i).padStart(3, '0')}`)
    let slowStarted: string[] = []

    let crash: Promise<void> | undefined
    const outcomes = await runPool(DEVICES, 100, (i) => provisionDevice([s], idScope, groupKey, ids[i]!, i, undefined, TRANSPORTS[i % TRANSPORTS.length]), (done) => {
      if (done === Math.floor(DEVICES / 3) && crash === undefined) {
        crash = (async () => {
          slowStarted = await startRegistrations(s, idScope, slowKey, slowIds)
          await webhook.waitForHeld(SLOW)
          await s.kill()
          await sleep(500)
          await s.start()
        })()
      }
    })
    await crash
    expect(s.starts).toBe(2)
    expect(s.endpoints!.idScope).toBe(idScope)
    const slowOutcomes = await runPool(SLOW, SLOW, (i) => provisionDevice([s], idScope, slowKey, slowIds[i]!, i, { operationId: slowStarted[i]!, registeredOn: 0 }))
    expect(slowOutcomes.map((o) => o.operationId)).toEqual(slowStarted)
    webhook.close()
    await s.stop()

    const db = new Database(join(root, 'data', 'provisio.db'), { readonly: true })
    const rows = sqliteFleetRows(db, 'localhost')
    const otherHubs = (db.prepare("SELECT count(*) AS n FROM hub_devices WHERE hub <> 'localhost'").get() as { n: number }).n
    db.close()
    expect(otherHubs).toBe(0)
    const part = (keep: (id: string) => boolean): FleetRows => ({
      registrations: rows.registrations.filter((r) => keep(r.state.registrationId)),
      operations: rows.operations.filter((o) => keep(o.registrationId)),
      hubDevices: rows.hubDevices.filter((d) => keep(d.device.deviceId)),
    })
    expect(rows.registrations.length).toBe(DEVICES + SLOW)
    expect(fleetProblems(ids, outcomes, part((id) => !isSlow(id)), 'localhost', groupKey)).toEqual([])
    expect(fleetProblems(slowIds, slowOutcomes, part(isSlow), 'localhost', slowKey)).toEqual([])
    const slowOps = rows.operations.filter((o) => isSlow(o.registrationId)) as unknown as { createdAtMs: number; updatedAtMs: number }[]
    for (const op of slowOps) expect(op.updatedAtMs - op.createdAtMs).toBeGreaterThanOrEqual(LEASE_MS)
    const retried = outcomes.filter((o) => o.connectionErrors > 0).length
    console.info(`scale/sqlite: ${DEVICES} devices (${transportSummary(outcomes)}; ${retried} retried through the restart) + ${SLOW} taken over after the lease`)
    for (const t of TRANSPORTS) expect(outcomes.filter((o) => o.transport === t).length).toBeGreaterThan(0)
  }, 300_000)
})
