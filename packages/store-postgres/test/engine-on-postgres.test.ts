/**
 * The engine over PostgreSQL: two engines (two instances' worth of pools) sharing one schema —
 * a repeat register on the other instance returns the same operation, and once the first
 * instance's lease expires the other takes the operation over and assigns it.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { createEngine, type HubDeviceSpec } from '@provisio/engine'
import { EmbeddedHub, HubDirectory, createLocalHubGateway } from '@provisio/hub'
import { deriveKey, deviceToken, key, ManualClock, RecordingHubGateway, SeededRandom } from '../../engine/test/helpers/fakes.js'
import { HUB_A, HUB_B, ID_SCOPE, instanceConfig, testEngine } from '../../engine/test/helpers/setup.js'
import { createPostgresStore } from '../src/index.js'
import { POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from './postgres-env.js'

const available = await postgresReachable()
const schema = uniqueSchema('provisio_test_engine')
afterAll(async () => {
  if (available) await dropSchema(schema)
})

describe.skipIf(!available)('engine on PostgreSQL', () => {
  it('lets a second instance answer polls and take over an operation after its lease expires', async () => {
    const clock = new ManualClock()
    const stuckHubs = new (class extends RecordingHubGateway {
      override createOrUpdateDevice(_spec: HubDeviceSpec): Promise<void> {
        return new Promise(() => {}) // this instance "crashes" mid-assignment
      }
    })()
    const storeOne = await createPostgresStore(POSTGRES_URL, { schema })
    const storeTwo = await createPostgresStore(POSTGRES_URL, { schema })
    const one = testEngine(createEngine({ store: storeOne, clock, random: new SeededRandom(1), hubGateway: stuckHubs, instances: [instanceConfig()], operationLeaseMs: 5000 }))
    const hubs = new RecordingHubGateway()
    const two = testEngine(createEngine({ store: storeTwo, clock, random: new SeededRandom(2), hubGateway: hubs, instances: [instanceConfig()], assignmentBudgetMs: 1000 }))
    const k = key(32, 9)
    await one.createOrUpdateEnrollment(ID_SCOPE, { registrationId: 'dev-t', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: k, secondaryKey: key(32, 10) } } })
    const evidence = { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-t', k, Math.floor(clock.ms / 1000) + 600) } as const
    const started = await one.register({ idScope: ID_SCOPE, registrationId: 'dev-t', evidence, apiVersion: '2021-10-01' })
    expect(started.status).toBe(202)
    const repeat = await two.register({ idScope: ID_SCOPE, registrationId: 'DEV-T', evidence, apiVersion: '2021-10-01' })
    expect(repeat.body.operationId).toBe(started.body.operationId)
    const early = await two.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-t', operationId: started.body.operationId, evidence })
    expect(early.status).toBe(202)
    clock.advance(5001)
    const taken = await two.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-t', operationId: started.body.operationId, evidence })
    expect(taken.status).toBe(200)
    expect(taken.body.registrationState?.status).toBe('assigned')
    expect((await storeOne.getRegistration(ID_SCOPE, 'dev-t'))?.state.status).toBe('assigned')
    expect(hubs.device(taken.body.registrationState!.assignedHub!, 'dev-t')).toBeDefined()
    await storeOne.close()
    await storeTwo.close()
  })

  it('registers a new group device in four statements with the hub embedded in the same database, and a known one in five', async () => {
    const clock = new ManualClock()
    const store = await createPostgresStore(POSTGRES_URL, { schema })
    const random = new SeededRandom(3)
    const hubs = new HubDirectory([HUB_A, HUB_B].map((h) => new EmbeddedHub(h, { store: store.hubStore, clock: { now: () => clock.ms }, random })))
    // As `provisio serve` wires it: a Timers port, so register begins the operation and finishes it.
    const timers = { delay: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref()) }
    const engine = testEngine(
      createEngine({ store, clock, random, hubGateway: createLocalHubGateway(hubs), instances: [instanceConfig()], assignmentBudgetMs: 5000, timers }),
    )
    const groupKey = key(64, 31)
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'counted', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64, 32) } } })
    const register = (id: string) =>
      engine.register({ idScope: ID_SCOPE, registrationId: id, evidence: { type: 'sas', token: deviceToken(ID_SCOPE, id, deriveKey(groupKey, id), Math.floor(clock.ms / 1000) + 600) }, apiVersion: '2021-10-01' })
    const statements: string[] = []
    const query = store.pool.query.bind(store.pool) as (...args: unknown[]) => unknown
    ;(store.pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const config = args[0] as string | { text: string }
      statements.push((typeof config === 'string' ? config : config.text).replace(/\s+/g, ' ').slice(0, 60))
      return query(...args)
    }
    // The first registration of the scope also reads the groups once (the group cache).
    expect((await register('counted-0')).status).toBe(200)
    statements.length = 0
    // Attestation (enrollment + groups revision), begin + registration record, hub identity create, finish + record.
    const first = await register('counted-1')
    expect(first.status).toBe(200)
    expect(first.body.registrationState?.status).toBe('assigned')
    expect(statements).toHaveLength(4)
    const hub = hubs.get(first.body.registrationState!.assignedHub!, 'HUB_UNAUTHORIZED')
    expect((await hub.getDevice('counted-1'))?.authentication.type).toBe('sas')
    // Registering again: the identity exists, so the hub reads it before updating it.
    statements.length = 0
    const again = await register('counted-1')
    expect(again.status).toBe(200)
    expect(again.body.registrationState?.deviceId).toBe('counted-1')
    expect(statements).toHaveLength(5)
    await store.close()
  })
})
