import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import type { IndividualEnrollment } from '@provisio/protocol'
import { deviceToken, key, serviceToken } from './helpers/fakes.js'
import { HUB_A, HUB_C, ID_SCOPE, OWNER_KEY, SERVICE_HOST, setup } from './helpers/setup.js'

async function rejection(p: Promise<unknown>): Promise<ProvisioError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(ProvisioError)
  return error as ProvisioError
}

function symmetric(id: string, extra: Record<string, unknown> = {}) {
  return { registrationId: id, attestation: { type: 'symmetricKey', symmetricKey: {} }, ...extra }
}

describe('individual enrollments', () => {
  it('generates 64-byte keys when omitted, hides them on get and returns them from attestationmechanism', async () => {
    const { engine } = setup()
    const created = await engine.createOrUpdateEnrollment(ID_SCOPE, symmetric('dev-1'))
    const att = created.attestation
    expect(att.type).toBe('symmetricKey')
    if (att.type !== 'symmetricKey') return
    expect(Buffer.from(att.symmetricKey.primaryKey!, 'base64').length).toBe(64)
    expect(Buffer.from(att.symmetricKey.secondaryKey!, 'base64').length).toBe(64)
    expect(att.symmetricKey.primaryKey).not.toBe(att.symmetricKey.secondaryKey)
    const got = await engine.getEnrollment(ID_SCOPE, 'DEV-1')
    expect(got.attestation).toEqual({ type: 'symmetricKey', symmetricKey: {} })
    expect(got.provisioningStatus).toBe('enabled')
    expect(got.reprovisionPolicy).toEqual({ updateHubAssignment: true, migrateDeviceData: true })
    expect(await engine.getEnrollmentAttestationMechanism(ID_SCOPE, 'dev-1')).toEqual(att)
  })

  it('keeps supplied keys, moves the etag on every write and keeps createdDateTimeUtc', async () => {
    const { engine, clock } = setup()
    const primaryKey = key(32, 1)
    const first = await engine.createOrUpdateEnrollment(ID_SCOPE, symmetric('dev-2', { attestation: { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey: key(32, 2) } } }))
    clock.advance(1234.5678)
    const second = await engine.createOrUpdateEnrollment(ID_SCOPE, { ...first, provisioningStatus: 'disabled' })
    expect(second.etag).not.toBe(first.etag)
    expect(second.createdDateTimeUtc).toBe(first.createdDateTimeUtc)
    expect(second.lastUpdatedDateTimeUtc).not.toBe(first.lastUpdatedDateTimeUtc)
    expect(second.lastUpdatedDateTimeUtc).toBe(new Date(clock.ms - 0.5678).toISOString().replace('Z', '') + '5678Z')
    expect((await engine.getEnrollmentAttestationMechanism(ID_SCOPE, 'dev-2')).type).toBe('symmetricKey')
    expect(await engine.getEnrollmentAttestationMechanism(ID_SCOPE, 'dev-2')).toEqual(second.attestation)
  })

  it('answers 412 when If-Match does not match, and when it names a missing enrollment', async () => {
    const { engine } = setup()
    const e = await engine.createOrUpdateEnrollment(ID_SCOPE, symmetric('dev-3'))
    const stale = await rejection(engine.createOrUpdateEnrollment(ID_SCOPE, symmetric('dev-3'), { ifMatch: '"not-it"' }))
    expect(stale.httpStatus).toBe(412)
    expect(stale.reason).toContain("individual enrollment 'dev-3'")
    const updated = await engine.createOrUpdateEnrollment(ID_SCOPE, symmetric('dev-3'), { ifMatch: e.etag! })
    expect(updated.etag).not.toBe(e.etag)
    expect((await rejection(engine.createOrUpdateEnrollment(ID_SCOPE, symmetric('nobody'), { ifMatch: '*' }))).httpStatus).toBe(412)
    expect((await rejection(engine.deleteEnrollment(ID_SCOPE, 'dev-3', { ifMatch: e.etag! }))).httpStatus).toBe(412)
    await engine.deleteEnrollment(ID_SCOPE, 'DEV-3', { ifMatch: updated.etag! })
    const gone = await rejection(engine.getEnrollment(ID_SCOPE, 'dev-3'))
    expect(gone.code).toBe('ENROLLMENT_RECORD_NOT_FOUND')
    expect(gone.httpStatus).toBe(404)
  })

  it('rejects hubs that are not linked, custom without webhook, and invalid models with the field named', async () => {
    const { engine } = setup()
    expect((await rejection(engine.createOrUpdateEnrollment(ID_SCOPE, symmetric('d', { iotHubs: [HUB_A, HUB_C] })))).reason).toContain('iotHubs[1]')
    expect((await rejection(engine.createOrUpdateEnrollment(ID_SCOPE, symmetric('d', { allocationPolicy: 'static', iotHubs: [HUB_C] })))).code).toBe('VALIDATION_FAILED')
    const bad = await rejection(engine.createOrUpdateEnrollment(ID_SCOPE, { registrationId: 'bad id!', attestation: { type: 'symmetricKey' } }))
    expect(bad.code).toBe('VALIDATION_FAILED')
    expect(bad.reason).toContain('registrationId')
    const unknownScope = await rejection(engine.createOrUpdateEnrollment('0neFFFFFFFF', symmetric('d')))
    expect(unknownScope.code).toBe('ID_SCOPE_UNKNOWN')
  })

  it('pages a query with an opaque continuation token and the Enrollment item type', async () => {
    const { engine } = setup()
    const ids = Array.from({ length: 7 }, (_, i) => `dev-${String.fromCharCode(103 - i)}`)
    for (const id of ids) await engine.createOrUpdateEnrollment(ID_SCOPE, symmetric(id))
    const seen: string[] = []
    let token: string | undefined
    let pages = 0
    do {
      const page = await engine.queryEnrollments(ID_SCOPE, { query: '*' }, { pageSize: 3, ...(token ? { continuationToken: token } : {}) })
      expect(page.itemType).toBe('Enrollment')
      expect(page.items.length).toBeLessThanOrEqual(3)
      for (const item of page.items) {
        expect(item.attestation).toEqual({ type: 'symmetricKey', symmetricKey: {} })
        seen.push(item.registrationId)
      }
      token = page.continuationToken
      pages++
    } while (token)
    expect(pages).toBe(3)
    expect(seen).toEqual([...ids].sort())
    expect((await rejection(engine.queryEnrollments(ID_SCOPE, { query: 'SELECT * FROM enrollments WHERE x = 1' }))).code).toBe('BAD_REQUEST')
    expect((await rejection(engine.queryEnrollments(ID_SCOPE, { query: '*' }, { continuationToken: 'garbage' }))).reason).toContain('continuation token')
    expect((await rejection(engine.queryEnrollments(ID_SCOPE, { query: '*' }, { pageSize: 0 }))).httpStatus).toBe(400)
    const all = await engine.queryEnrollments(ID_SCOPE, { query: 'select * from enrollments' })
    expect(all.items.length).toBe(7)
    expect(all.continuationToken).toBeUndefined()
  })
})

describe('bulk operations', () => {
  it('creates, reports per-item errors, updates with case-insensitive updateIfMatchEtag and deletes', async () => {
    const { engine } = setup()
    const created = await engine.runBulkEnrollmentOperation(ID_SCOPE, { mode: 'create', enrollments: [symmetric('b1'), symmetric('b2')] })
    expect(created).toEqual({ isSuccessful: true, errors: [] })
    const again = await engine.runBulkEnrollmentOperation(ID_SCOPE, { mode: 'create', enrollments: [symmetric('b2'), symmetric('b3')] })
    expect(again.isSuccessful).toBe(false)
    expect(again.errors).toEqual([{ registrationId: 'b2', errorCode: 409001, errorStatus: expect.stringContaining("'b2' already exists") }])
    expect((await engine.getEnrollment(ID_SCOPE, 'b3')).registrationId).toBe('b3')

    const b1 = await engine.getEnrollment(ID_SCOPE, 'b1')
    const upd = await engine.runBulkEnrollmentOperation(ID_SCOPE, {
      mode: 'updateIfMatchEtag',
      enrollments: [
        { ...symmetric('b1'), etag: b1.etag, provisioningStatus: 'disabled' },
        { ...symmetric('b2'), etag: '"stale"' },
      ],
    })
    expect(upd.isSuccessful).toBe(false)
    expect(upd.errors).toHaveLength(1)
    expect(upd.errors![0]).toMatchObject({ registrationId: 'b2', errorCode: 412001 })
    expect((await engine.getEnrollment(ID_SCOPE, 'b1')).provisioningStatus).toBe('disabled')

    const plain = await engine.runBulkEnrollmentOperation(ID_SCOPE, { mode: 'UPDATE', enrollments: [symmetric('b2'), symmetric('b9')] })
    expect(plain.isSuccessful).toBe(true)
    const del = await engine.runBulkEnrollmentOperation(ID_SCOPE, { mode: 'delete', enrollments: [{ registrationId: 'b9' }, { registrationId: 'missing' }] })
    expect(del.errors).toEqual([{ registrationId: 'missing', errorCode: 404203, errorStatus: expect.stringContaining('does not exist') }])
  })

  it('refuses more than 10 items as a whole', async () => {
    const { engine } = setup()
    const items = Array.from({ length: 11 }, (_, i) => symmetric(`x${i}`))
    const error = await rejection(engine.runBulkEnrollmentOperation(ID_SCOPE, { mode: 'create', enrollments: items }))
    expect(error.code).toBe('VALIDATION_FAILED')
    expect((await engine.queryEnrollments(ID_SCOPE)).items).toHaveLength(0)
  })

  it('runs group bulk operations with enrollmentGroupId in errors', async () => {
    const { engine } = setup()
    const group = (id: string) => ({ enrollmentGroupId: id, attestation: { type: 'symmetricKey', symmetricKey: {} } })
    expect(await engine.runBulkEnrollmentGroupOperation(ID_SCOPE, { mode: 'create', enrollmentGroups: [group('g1')] })).toEqual({ isSuccessful: true, errors: [] })
    const r = await engine.runBulkEnrollmentGroupOperation(ID_SCOPE, { mode: 'create', enrollmentGroups: [group('G1'), group('g2')] })
    expect(r.errors).toEqual([{ enrollmentGroupId: 'G1', errorCode: 409001, errorStatus: expect.any(String) }])
    const page = await engine.queryEnrollmentGroups(ID_SCOPE, { query: '*' })
    expect(page.itemType).toBe('EnrollmentGroup')
    expect(page.items.map((g) => g.enrollmentGroupId)).toEqual(['g1', 'g2'])
    expect(page.items[0]!.attestation).toEqual({ type: 'symmetricKey', symmetricKey: {} })
  })
})

describe('groups', () => {
  it('accepts only symmetricKey and x509 attestation', async () => {
    const { engine } = setup()
    const error = await rejection(engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'g', attestation: { type: 'tpm', tpm: { endorsementKey: 'AAAA' } } }))
    expect(error.code).toBe('VALIDATION_FAILED')
  })
})

describe('registration states', () => {
  it('gets, deletes with If-Match, and 404s afterwards', async () => {
    const { engine, store } = setup()
    await store.putRegistration(ID_SCOPE, {
      state: { registrationId: 'r1', status: 'assigned', assignedHub: HUB_A, deviceId: 'r1', etag: '"e1"', symmetricKey: {} },
      enrollmentGroupId: 'g',
    })
    const state = await engine.getRegistrationState(ID_SCOPE, 'R1')
    expect(state).toEqual({ registrationId: 'r1', status: 'assigned', assignedHub: HUB_A, deviceId: 'r1', etag: '"e1"' })
    expect((await rejection(engine.deleteRegistrationState(ID_SCOPE, 'r1', { ifMatch: '"e2"' }))).httpStatus).toBe(412)
    const deleted: string[] = []
    engine.on('registrationDeleted', (e) => deleted.push(e.registrationId))
    await engine.deleteRegistrationState(ID_SCOPE, 'r1', { ifMatch: '"e1"' })
    expect(deleted).toEqual(['r1'])
    expect((await rejection(engine.getRegistrationState(ID_SCOPE, 'r1'))).code).toBe('REGISTRATION_NOT_FOUND')
  })
})

describe('instances and service authorization', () => {
  it('hosts several ID scopes with separate data', async () => {
    const { engine } = setup()
    engine.addInstance({ ...engine.getInstance(ID_SCOPE)!, idScope: '0ne0000B0B2', serviceHostName: 'dps2.azure-devices-provisioning.net' })
    await engine.createOrUpdateEnrollment('0ne0000B0B2', symmetric('only-in-b'))
    expect((await rejection(engine.getEnrollment(ID_SCOPE, 'only-in-b'))).httpStatus).toBe(404)
    expect(engine.listInstances().map((i) => i.idScope).sort()).toEqual([ID_SCOPE, '0ne0000B0B2'])
    expect(() => engine.addInstance(engine.getInstance(ID_SCOPE)!)).toThrow(ProvisioError)
  })

  it('validates linked hubs: weight range and duplicates', () => {
    const { engine } = setup()
    const base = engine.getInstance(ID_SCOPE)!
    expect(() => engine.updateInstance({ ...base, linkedHubs: [{ ...base.linkedHubs[0]!, allocationWeight: 1001 }] })).toThrow(/allocationWeight/)
    expect(() => engine.updateInstance({ ...base, linkedHubs: [base.linkedHubs[0]!, base.linkedHubs[0]!] })).toThrow(/linked twice/)
  })

  it('authorizes service tokens by policy and permission', () => {
    const { engine, nowSeconds } = setup()
    const ok = engine.authorizeService(serviceToken(SERVICE_HOST, 'provisioningserviceowner', OWNER_KEY, nowSeconds() + 60), 'EnrollmentWrite')
    expect(ok).toEqual({ idScope: ID_SCOPE, policy: 'provisioningserviceowner', keyIndex: 0 })
    const reader = engine.getInstance(ID_SCOPE)!.accessPolicies.find((p) => p.name === 'reader')!
    expect(engine.authorizeService(serviceToken(SERVICE_HOST, 'reader', reader.secondaryKey, nowSeconds() + 60), 'EnrollmentRead').keyIndex).toBe(1)
    const denied = (() => {
      try {
        engine.authorizeService(serviceToken(SERVICE_HOST, 'reader', reader.primaryKey, nowSeconds() + 60), 'EnrollmentWrite')
      } catch (e) {
        return e as ProvisioError
      }
      return undefined
    })()
    expect(denied?.code).toBe('SAS_PERMISSION_DENIED')
    expect(() => engine.authorizeService(serviceToken(SERVICE_HOST, 'provisioningserviceowner', key(32, 99), nowSeconds() + 60), 'EnrollmentRead')).toThrow(/signature/)
    expect(() => engine.authorizeService(serviceToken(SERVICE_HOST, 'provisioningserviceowner', OWNER_KEY, nowSeconds() - 3600), 'EnrollmentRead')).toThrow(/expired/)
    expect(() => engine.authorizeService(serviceToken('other.example', 'provisioningserviceowner', OWNER_KEY, nowSeconds() + 60), 'EnrollmentRead')).toThrow(/names no DPS instance/)
    expect(() => engine.authorizeService(serviceToken(SERVICE_HOST, 'nobody', OWNER_KEY, nowSeconds() + 60), 'EnrollmentRead')).toThrow(/no access policy/)
  })
})

describe('events', () => {
  it('emits enrollmentChanged for create, update and delete', async () => {
    const { engine } = setup()
    const seen: string[] = []
    engine.on('enrollmentChanged', (e) => seen.push(`${e.kind}:${e.id}:${e.change}`))
    const e = (await engine.createOrUpdateEnrollment(ID_SCOPE, symmetric('ev'))) as IndividualEnrollment
    await engine.createOrUpdateEnrollment(ID_SCOPE, e)
    await engine.deleteEnrollment(ID_SCOPE, 'ev')
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'grp', attestation: { type: 'symmetricKey', symmetricKey: {} } })
    expect(seen).toEqual(['individual:ev:created', 'individual:ev:updated', 'individual:ev:deleted', 'group:grp:created'])
  })

  it('reports a throwing listener as listenerError instead of failing the call', async () => {
    const { engine } = setup()
    const errors: unknown[] = []
    engine.on('listenerError', (e) => errors.push(e.error))
    engine.on('enrollmentChanged', () => {
      throw new Error('listener bug')
    })
    await engine.createOrUpdateEnrollment(ID_SCOPE, symmetric('ev2'))
    expect(errors).toHaveLength(1)
  })
})

describe('allocation dry run', () => {
  it('explains where an enrolled device would go, with the twin, and matches the real assignment', async () => {
    const { engine, nowSeconds } = setup()
    const k = key(32, 4)
    await engine.createOrUpdateEnrollment(ID_SCOPE, {
      registrationId: 'dry-1',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: k, secondaryKey: key(32, 5) } },
      initialTwin: { tags: { a: 1 } },
    })
    const explained = await engine.explainAllocation(ID_SCOPE, { registrationId: 'dry-1' })
    expect(explained.policy).toBe('hashed')
    expect(explained.initialTwin).toEqual({ tags: { a: 1 } })
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dry-1', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dry-1', k, nowSeconds() + 60) }, apiVersion: '2021-10-01' })
    expect(r.body.registrationState?.assignedHub).toBe(explained.hostName)
    expect((await engine.explainAllocation(ID_SCOPE, { registrationId: 'dry-1' })).currentHub).toBe(explained.hostName)
    expect((await rejection(engine.explainAllocation(ID_SCOPE, { registrationId: 'nobody' }))).httpStatus).toBe(404)
  })

  it('explains a group device when the group is named', async () => {
    const { engine } = setup()
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'dg', attestation: { type: 'symmetricKey', symmetricKey: {} }, allocationPolicy: 'static', iotHubHostName: HUB_A })
    expect((await engine.explainAllocation(ID_SCOPE, { registrationId: 'any', enrollmentGroupId: 'dg' })).hostName).toBe(HUB_A)
  })
})
