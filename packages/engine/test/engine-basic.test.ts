import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import { deriveKey, deviceToken, key } from './helpers/fakes.js'
import { HUB_A, HUB_B, ID_SCOPE, setup } from './helpers/setup.js'

describe('register with symmetric keys', () => {
  it('assigns an individual enrollment at once within the budget', async () => {
    const { engine, hubs, nowSeconds } = setup()
    const primary = key(32, 1)
    await engine.createOrUpdateEnrollment(ID_SCOPE, {
      registrationId: 'dev-1',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: primary, secondaryKey: key(32, 2) } },
      initialTwin: { tags: { site: 'north' }, properties: { desired: { interval: 5 } } },
    })
    const reply = await engine.register({
      idScope: ID_SCOPE,
      registrationId: 'dev-1',
      evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-1', primary, nowSeconds() + 3600) },
      apiVersion: '2021-10-01',
    })
    expect(reply.status).toBe(200)
    expect(reply.body.status).toBe('assigned')
    expect(reply.body.operationId).toMatch(/^[1-9]\.[0-9a-f]{16}\.[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    const state = reply.body.registrationState!
    expect([HUB_A, HUB_B]).toContain(state.assignedHub)
    expect(state.deviceId).toBe('dev-1')
    expect(state.substatus).toBe('initialAssignment')
    expect(state.createdDateTimeUtc).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/)
    const device = hubs.device(state.assignedHub!, 'dev-1')!
    expect(device.auth).toEqual({ type: 'sas', primaryKey: primary, secondaryKey: key(32, 2) })
    expect(device.twin.tags).toEqual({ site: 'north' })
    expect(device.twin.properties?.desired).toEqual({ interval: 5 })
  })

  it('admits a group device whose key is derived from the group secondary key', async () => {
    const { engine, hubs, nowSeconds } = setup()
    const groupSecondary = key(64, 5)
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, {
      enrollmentGroupId: 'fleet',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(64, 4), secondaryKey: groupSecondary } },
    })
    const deviceKey = deriveKey(groupSecondary, 'Sensor-7')
    const reply = await engine.register({
      idScope: ID_SCOPE,
      registrationId: 'Sensor-7',
      evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'Sensor-7', deviceKey, nowSeconds() + 60) },
      apiVersion: '2019-03-31',
    })
    expect(reply.body.status).toBe('assigned')
    expect(reply.body.registrationState?.symmetricKey).toEqual({ enrollmentGroupId: 'fleet' })
    const device = hubs.device(reply.body.registrationState!.assignedHub!, 'Sensor-7')!
    expect(device.auth).toEqual({ type: 'sas', primaryKey: deriveKey(key(64, 4), 'Sensor-7'), secondaryKey: deviceKey })
    const states = await engine.queryRegistrationStates(ID_SCOPE, 'FLEET')
    expect(states.items.map((s) => s.registrationId)).toEqual(['Sensor-7'])
  })

  it('refuses a bad signature with 401002 and a reason naming the enrollment', async () => {
    const { engine, nowSeconds } = setup()
    await engine.createOrUpdateEnrollment(ID_SCOPE, {
      registrationId: 'dev-2',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(32, 1), secondaryKey: key(32, 2) } },
    })
    const failures: string[] = []
    engine.on('registrationFailed', (e) => failures.push(e.reason))
    const error = await engine
      .register({ idScope: ID_SCOPE, registrationId: 'dev-2', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-2', key(32, 9), nowSeconds() + 60) }, apiVersion: '2021-10-01' })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ProvisioError)
    expect((error as ProvisioError).errorCode).toBe(401002)
    expect((error as ProvisioError).reason).toContain("individual enrollment 'dev-2'")
    expect(failures[0]).toContain('neither the primary nor the secondary key')
  })
})
