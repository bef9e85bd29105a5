/**
 * The engine over PostgreSQL: two engines (two instances' worth of pools) sharing one schema —
 * a repeat register on the other instance returns the same operation, and once the first
 * instance's lease expires the other takes the operation over and assigns it.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { createEngine, type HubDeviceSpec } from '@provisio/engine'
import { deviceToken, key, ManualClock, RecordingHubGateway, SeededRandom } from '../../engine/test/helpers/fakes.js'
import { ID_SCOPE, instanceConfig, testEngine } from '../../engine/test/helpers/setup.js'
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
})
