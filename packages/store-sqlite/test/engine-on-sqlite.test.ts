/**
 * The engine over SQLite files: the register flow end to end, and two engines (two processes'
 * worth of connections) sharing one database, one taking over the other's stuck operation.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createEngine, type HubDeviceSpec } from '@provisio/engine'
import { deriveKey, deviceToken, key, ManualClock, RecordingHubGateway, SeededRandom } from '../../engine/test/helpers/fakes.js'
import { HUB_A, HUB_B, ID_SCOPE, instanceConfig, testEngine } from '../../engine/test/helpers/setup.js'
import { createSqliteStore } from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'provisio-engine-sqlite-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('engine on SQLite', () => {
  it('registers, reprovisions with migration and survives reopening the file', async () => {
    const path = join(dir, 'flow.db')
    const clock = new ManualClock()
    const hubs = new RecordingHubGateway()
    let store = createSqliteStore(path)
    let engine = testEngine(createEngine({ store, clock, random: new SeededRandom(5), hubGateway: hubs, instances: [instanceConfig()], assignmentBudgetMs: 1000 }))
    const groupKey = key(64, 1)
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'fleet', iotHubs: [HUB_A], attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64, 2) } } })
    const token = () => ({ type: 'sas', token: deviceToken(ID_SCOPE, 'dev-s', deriveKey(groupKey, 'dev-s'), Math.floor(clock.ms / 1000) + 600) }) as const
    const first = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-s', evidence: token(), apiVersion: '2021-10-01' })
    expect(first.body.registrationState).toMatchObject({ assignedHub: HUB_A, substatus: 'initialAssignment' })
    hubs.device(HUB_A, 'dev-s')!.twin = { tags: { t: 1 }, properties: { desired: { d: 2 } } }
    store.close()

    store = createSqliteStore(path)
    engine = testEngine(createEngine({ store, clock, random: new SeededRandom(6), hubGateway: hubs, instances: [instanceConfig()], assignmentBudgetMs: 1000 }))
    const group = await engine.getEnrollmentGroup(ID_SCOPE, 'fleet')
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { ...group, iotHubs: [HUB_B], attestation: await engine.getEnrollmentGroupAttestationMechanism(ID_SCOPE, 'fleet') }, { ifMatch: group.etag! })
    const second = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-s', evidence: token(), apiVersion: '2021-10-01' })
    expect(second.body.registrationState).toMatchObject({ assignedHub: HUB_B, substatus: 'deviceDataMigrated', deviceId: 'dev-s' })
    expect(hubs.device(HUB_B, 'dev-s')?.twin).toEqual({ tags: { t: 1 }, properties: { desired: { d: 2 } } })
    expect(hubs.device(HUB_A, 'dev-s')).toBeUndefined()
    const page = await engine.queryRegistrationStates(ID_SCOPE, 'FLEET')
    expect(page.items).toEqual([expect.objectContaining({ registrationId: 'dev-s', assignedHub: HUB_B })])
    store.close()
  })

  it('lets a second engine on the same file take over an operation after its lease expires', async () => {
    const path = join(dir, 'shared.db')
    const clock = new ManualClock()
    const stuckHubs = new (class extends RecordingHubGateway {
      override createOrUpdateDevice(_spec: HubDeviceSpec): Promise<void> {
        return new Promise(() => {}) // this instance "crashes" mid-assignment
      }
    })()
    const storeOne = createSqliteStore(path)
    const storeTwo = createSqliteStore(path)
    const one = testEngine(createEngine({ store: storeOne, clock, random: new SeededRandom(1), hubGateway: stuckHubs, instances: [instanceConfig()], operationLeaseMs: 5000 }))
    const hubs = new RecordingHubGateway()
    const two = testEngine(createEngine({ store: storeTwo, clock, random: new SeededRandom(2), hubGateway: hubs, instances: [instanceConfig()], assignmentBudgetMs: 1000 }))
    const k = key(32, 9)
    await one.createOrUpdateEnrollment(ID_SCOPE, { registrationId: 'dev-t', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: k, secondaryKey: key(32, 10) } } })
    const evidence = { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-t', k, Math.floor(clock.ms / 1000) + 600) } as const
    const started = await one.register({ idScope: ID_SCOPE, registrationId: 'dev-t', evidence, apiVersion: '2021-10-01' })
    expect(started.status).toBe(202)
    // a repeat on the other instance returns the same in-flight operation
    const repeat = await two.register({ idScope: ID_SCOPE, registrationId: 'dev-t', evidence, apiVersion: '2021-10-01' })
    expect(repeat.body.operationId).toBe(started.body.operationId)
    clock.advance(5001)
    const taken = await two.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-t', operationId: started.body.operationId, evidence })
    expect(taken.status).toBe(200)
    expect(taken.body.registrationState?.status).toBe('assigned')
    storeOne.close()
    storeTwo.close()
  })
})
