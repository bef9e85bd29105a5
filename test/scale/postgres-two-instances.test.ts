/**
 * Scale-out: two `provisio serve` processes on one PostgreSQL database (`--store postgres://…`),
 * each with its own data directory (own dev PKI and port); the DPS instance (ID scope, keys,
 * hub) is shared through the database. A fleet of symmetric-key devices registers across both
 * over MIXED transports — device i uses HTTPS, MQTT, MQTT-WS, AMQP or AMQP-WS by i mod 5;
 * registers spread over the instances, HTTPS polls always on the other instance, the session
 * transports poll on their connection and reconnect elsewhere when it drops — while instance A
 * is killed with SIGKILL mid-run and restarted on its data directory. Operations A
 * left `assigning` are taken over by whichever instance is polled once their lease
 * (--operation-lease-ms) expires.
 *
 * So that the take-over is certain rather than left to timing, a cohort of devices in a
 * custom-allocation group registers on A just before the kill: A's assignments wait on the
 * test's allocation webhook (§8), which holds A's calls until A is dead and answers later calls
 * at once. Those operations must end assigned under the ids A gave, by take-over.
 *
 * Then, with both stopped, the database must hold every device assigned exactly once: one
 * registration record and one operation per device (the one the device saw finish), and exactly
 * the fleet's hub identities, with the right keys.
 *
 * Device count: PROVISIO_SCALE_DEVICES (default 2,000). Needs the built CLI and PostgreSQL
 * (PROVISIO_TEST_POSTGRES_URL, default the CI machine's 127.0.0.1:5432/test); skipped only
 * on a developer machine without PostgreSQL, never under CI=true.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { POSTGRES_URL, dropSchema, postgresReachable } from '../lib/postgres.js'
import { call, createGroup, TRANSPORTS, transportSummary, deviceCount, deviceToken, HoldingWebhook, pollOperation, startRegistrations, fleetProblems, provisionDevice, runPool, ServeProcess, sleep, type FleetRows } from './harness.js'

const DEVICES = deviceCount(2000)
const LEASE_MS = 3000

const isTwin = (id: string) => id.startsWith('scale-twin-')
const isSlow = (id: string) => id.startsWith('scale-slow-')
const SLOW = 20

const available = await postgresReachable()
const schema = `provisio_scale_${process.pid}_${Date.now().toString(36)}`
const root = mkdtempSync(join(tmpdir(), 'provisio-scale-pg-'))
const instances: ServeProcess[] = []

afterAll(async () => {
  for (const i of instances) await i.kill()
  rmSync(root, { recursive: true, force: true })
  if (available) await dropSchema(schema)
})

describe.skipIf(!available)('two provisio serve instances on one PostgreSQL database', () => {
  it(`provisions ${DEVICES} devices across both while one is SIGKILLed and restarted`, async () => {
    const store = `${POSTGRES_URL}?schema=${schema}`
    const args = ['--store', store, '--retry-after', '1', '--operation-lease-ms', String(LEASE_MS)]
    const a = new ServeProcess('instance A', join(root, 'a'), args)
    const b = new ServeProcess('instance B', join(root, 'b'), args)
    instances.push(a, b)
    await Promise.all([a.start(), b.start()])
    // One DPS instance, decided by whichever started first.
    expect(b.endpoints!.idScope).toBe(a.endpoints!.idScope)
    expect(b.endpoints!.serviceConnectionString).toBe(a.endpoints!.serviceConnectionString)
    const idScope = a.endpoints!.idScope

    const groupKey = Buffer.alloc(32, 42).toString('base64')
    await createGroup(b, 'fleet', groupKey)
    const ids = Array.from({ length: DEVICES }, (_, i) => `scale-dev-${String(i).padStart(5, '0')}`)

    // The slow cohort's allocation webhook: holds A's calls, answers the take-over's.
    const webhook = new HoldingWebhook('localhost')
    await webhook.start()
    const slowKey = Buffer.alloc(32, 43).toString('base64')
    await createGroup(b, 'slow', slowKey, webhook.groupSettings())
    const slowIds = Array.from({ length: SLOW }, (_, i) => `scale-slow-${String(i).padStart(3, '0')}`)
    let slowStarted: string[] = []

    let crash: Promise<void> | undefined
    const outcomes = await runPool(DEVICES, 100, (i) => provisionDevice(instances, idScope, groupKey, ids[i]!, i, undefined, TRANSPORTS[i % TRANSPORTS.length]), (done) => {
      if (done === Math.floor(DEVICES / 3) && crash === undefined) {
        crash = (async () => {
          slowStarted = await startRegistrations(a, idScope, slowKey, slowIds)
          await webhook.waitForHeld(SLOW) // every slow assignment is inside A now
          await a.kill()
          await sleep(500)
          await a.start()
        })()
      }
    })
    await crash
    expect(a.starts).toBe(2)
    // The slow cohort: polled on B (then either), taken over after the lease, same operations.
    const slowOutcomes = await runPool(SLOW, SLOW, (i) => provisionDevice(instances, idScope, slowKey, slowIds[i]!, i, { operationId: slowStarted[i]!, registeredOn: 0 }))
    expect(slowOutcomes.map((o) => o.operationId)).toEqual(slowStarted)
    webhook.close()
    // Polls were answered by the instance that did not start the operation.
    expect(outcomes.reduce((n, o) => n + o.crossPolls, 0)).toBeGreaterThan(0)

    // The same device registering on both instances at the same moment. Either the second
    // register joins the first one's operation (same id in both answers), or the first had
    // already finished and the second started a new one; never two live operations, and in
    // the end one registration record, one operation, one hub identity per device.
    const twins = Array.from({ length: 100 }, (_, i) => `scale-twin-${String(i).padStart(3, '0')}`)
    const twinOps = await runPool(twins.length, 25, async (i) => {
      const id = twins[i]!
      const headers = { authorization: deviceToken(idScope, groupKey, id) }
      const path = `/${idScope}/registrations/${id}/register?api-version=2021-10-01`
      const answers = await Promise.all([call(a, 'PUT', path, headers, { registrationId: id }), call(b, 'PUT', path, headers, { registrationId: id })])
      for (const answer of answers) expect([200, 202], answer.body).toContain(answer.status)
      const opIds = [...new Set(answers.map((answer) => (JSON.parse(answer.body) as { operationId: string }).operationId))]
      const ends = []
      for (const opId of opIds) ends.push(await pollOperation(instances, idScope, groupKey, id, opId))
      expect(ends).toContain('assigned')
      return opIds
    })
    const joined = twinOps.filter((ops) => ops.length === 1).length

    await Promise.all([a.stop(), b.stop()])
    const client = new pg.Client({ connectionString: POSTGRES_URL })
    await client.connect()
    const bodies = async (sql: string) => (await client.query<{ body: string }>(sql)).rows.map((r) => JSON.parse(r.body) as never)
    const rows: FleetRows = {
      registrations: await bodies(`SELECT body FROM "${schema}".registrations WHERE id_scope = '${idScope}'`),
      operations: await bodies(`SELECT body FROM "${schema}".operations WHERE id_scope = '${idScope}'`),
      hubDevices: await bodies(`SELECT record AS body FROM "${schema}".hub_devices WHERE hub = 'localhost'`),
    }
    const otherRows = await client.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM "${schema}".registrations WHERE id_scope <> $1)::int + (SELECT count(*) FROM "${schema}".hub_devices WHERE hub <> 'localhost')::int AS n`,
      [idScope],
    )
    await client.end()
    const takenOver = (rows.operations as unknown as { createdAtMs: number; updatedAtMs: number }[]).filter((o) => o.updatedAtMs - o.createdAtMs >= LEASE_MS).length
    const retried = outcomes.filter((o) => o.connectionErrors > 0).length
    console.info(`scale/postgres: ${DEVICES} devices (${transportSummary(outcomes)}) + ${twins.length} twins (${joined} joined one operation); ${retried} devices retried after the kill; ${takenOver} operations finished after their first lease expired (taken over)`)
    // Every transport was in the run, and devices of the session transports lived through the kill.
    for (const t of TRANSPORTS) expect(outcomes.filter((o) => o.transport === t).length).toBeGreaterThan(0)
    expect(otherRows.rows[0]!.n).toBe(0)
    const part = (keep: (id: string) => boolean): FleetRows => ({
      registrations: rows.registrations.filter((r) => keep(r.state.registrationId)),
      operations: rows.operations.filter((o) => keep(o.registrationId)),
      hubDevices: rows.hubDevices.filter((d) => keep(d.device.deviceId)),
    })
    expect(rows.registrations.length).toBe(DEVICES + twins.length + SLOW)
    expect(fleetProblems(ids, outcomes, part((id) => !isTwin(id) && !isSlow(id)), 'localhost', groupKey)).toEqual([])
    expect(fleetProblems(slowIds, slowOutcomes, part(isSlow), 'localhost', slowKey)).toEqual([])
    const slowOps = rows.operations.filter((o) => isSlow(o.registrationId)) as unknown as { createdAtMs: number; updatedAtMs: number }[]
    for (const op of slowOps) expect(op.updatedAtMs - op.createdAtMs).toBeGreaterThanOrEqual(LEASE_MS)
    // Twins: the same checks; their surviving operation is one of those their registers named.
    const twinOutcomes = twins.map((id, i) => {
      const op = rows.operations.find((o) => o.registrationId === id)
      expect(twinOps[i]).toContain(op?.operationId)
      return { registrationId: id, operationId: op?.operationId ?? '', assignedHub: 'localhost', deviceId: id, crossPolls: 0, connectionErrors: 0, transport: 'https' as const }
    })
    expect(fleetProblems(twins, twinOutcomes, part(isTwin), 'localhost', groupKey)).toEqual([])
  }, 300_000)
})
