/**
 * The one Store conformance suite (docs/architecture.md §8): every Store implementation runs it —
 * MemoryStore here, @provisio/store-sqlite in its package, PostgreSQL later.
 *
 * Usage: `runStoreConformance('sqlite', async () => ({ store, close }))`.
 */
import { describe, expect, it } from 'vitest'
import type { EnrollmentGroup, IndividualEnrollment } from '@provisio/protocol'
import type { BeginOperationResult, CaCertificateRecord, OperationRecord, RegistrationRecord, Store, TpmChallengeRecord } from '../src/index.js'

/** A fresh, empty store per test, and how to dispose of it. */
export type StoreFactory = () => Promise<{ store: Store; close?: () => Promise<void> | void }>

const S1 = '0ne00000001'
const S2 = '0ne00000002'

function enrollment(id: string, etag: string, extra: Partial<IndividualEnrollment> = {}): IndividualEnrollment {
  return {
    registrationId: id,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: 'cHJpbWFyeWtleXByaW1hcnk=', secondaryKey: 'c2Vjb25kYXJ5a2V5c2Vjb25k' } },
    capabilities: { iotEdge: false },
    provisioningStatus: 'enabled',
    reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: true },
    etag,
    ...extra,
  }
}

function group(id: string, etag: string, type: 'symmetricKey' | 'x509' = 'symmetricKey'): EnrollmentGroup {
  return {
    enrollmentGroupId: id,
    attestation: type === 'symmetricKey'
      ? { type: 'symmetricKey', symmetricKey: { primaryKey: 'a2V5a2V5a2V5a2V5a2V5a2V5', secondaryKey: 'a2V5a2V5a2V5a2V5a2V5a2V6' } }
      : { type: 'x509', x509: { caReferences: { primary: 'root-ca' } } },
    capabilities: { iotEdge: true },
    provisioningStatus: 'enabled',
    reprovisionPolicy: { updateHubAssignment: false, migrateDeviceData: false },
    etag,
  }
}

function registration(id: string, etag: string, groupId?: string): RegistrationRecord {
  return {
    state: { registrationId: id, status: 'assigned', assignedHub: 'hub.example', deviceId: id, substatus: 'initialAssignment', etag, payload: { n: 1, s: 'ü' } },
    ...(groupId !== undefined ? { enrollmentGroupId: groupId } : {}),
    initialHub: 'hub.example',
    lastAssignment: { hub: 'hub.example', deviceId: id },
  }
}

function operation(id: string, registrationId: string, owner: string, until: number, status: OperationRecord['status'] = 'assigning'): OperationRecord {
  return {
    operationId: id,
    registrationId,
    status,
    createdAtMs: 1000,
    updatedAtMs: 1000,
    leaseOwner: owner,
    assigningUntilMs: until,
    request: {
      enrollment: { kind: 'group', id: 'g1' },
      auth: { type: 'sas', primaryKey: 'cA==', secondaryKey: 'cw==' },
      attestation: { symmetricKey: { enrollmentGroupId: 'g1' } },
      payload: { model: 'dtmi:x;1' },
      forceRegistration: false,
      apiVersion: '2021-10-01',
    },
  }
}

function tpmChallenge(id: string, registrationId: string, issuedAtMs: number, ttlMs = 1000): TpmChallengeRecord {
  return {
    challengeId: id,
    registrationId,
    key: 'a2V5LW9mLWNoYWxsZW5nZQ==',
    endorsementKey: 'AToAAQALAAMAsgAg',
    storageRootKey: 'ARoAAQALAAMAcgAA',
    issuedAtMs,
    expiresAtMs: issuedAtMs + ttlMs,
    keepUntilMs: issuedAtMs + ttlMs,
  }
}

/**
 * A begin that created the operation; when the store read the registration record with it
 * (`prefetched`), that record is what getRegistration answers.
 */
async function expectBegun(store: Store, result: BeginOperationResult, registrationId: string): Promise<void> {
  expect(result.created).toBe(true)
  if (result.created && result.prefetched !== undefined) expect(result.prefetched.registration).toEqual(await store.getRegistration(S1, registrationId))
}

/** Registers the conformance tests for one Store implementation. */
export function runStoreConformance(name: string, factory: StoreFactory): void {
  async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
    const { store, close } = await factory()
    try {
      await fn(store)
    } finally {
      await close?.()
    }
  }

  describe(`Store conformance: ${name}`, () => {
    it('round-trips enrollments exactly, keyed case-insensitively, keeping the latest spelling', () =>
      withStore(async (store) => {
        const e = enrollment('Dev-1', '"e1"', { initialTwin: { tags: { a: { b: [1, 2, null] } } }, iotHubs: ['h1'] })
        expect(await store.putEnrollment(S1, e)).toEqual({ ok: true })
        expect(await store.getEnrollment(S1, 'dev-1')).toEqual(e)
        expect(await store.getEnrollment(S1, 'DEV-1')).toEqual(e)
        expect(await store.getEnrollment(S2, 'dev-1')).toBeUndefined()
        const e2 = enrollment('DEV-1', '"e2"')
        expect(await store.putEnrollment(S1, e2)).toEqual({ ok: true })
        expect((await store.getEnrollment(S1, 'dev-1'))?.registrationId).toBe('DEV-1')
      }))

    it('applies write conditions: ifNoneExists, ifMatch (exact, quoted or *), notFound', () =>
      withStore(async (store) => {
        expect(await store.putEnrollment(S1, enrollment('a', '"1"'), { ifMatch: '"1"' })).toEqual({ ok: false, reason: 'notFound' })
        expect(await store.putEnrollment(S1, enrollment('a', '"1"'), { ifNoneExists: true })).toEqual({ ok: true })
        expect(await store.putEnrollment(S1, enrollment('a', '"2"'), { ifNoneExists: true })).toMatchObject({ ok: false, reason: 'exists' })
        expect(await store.putEnrollment(S1, enrollment('a', '"2"'), { ifMatch: '"zzz"' })).toEqual({ ok: false, reason: 'etagMismatch', currentEtag: '"1"' })
        expect((await store.getEnrollment(S1, 'a'))?.etag).toBe('"1"')
        expect(await store.putEnrollment(S1, enrollment('a', '"2"'), { ifMatch: '1' })).toEqual({ ok: true })
        expect(await store.putEnrollment(S1, enrollment('a', '"3"'), { ifMatch: '*' })).toEqual({ ok: true })
        expect((await store.getEnrollment(S1, 'A'))?.etag).toBe('"3"')
      }))

    it('reads If-Match the same way in every store: *, "*", quoted, unquoted and W/ tags', () =>
      withStore(async (store) => {
        // azure-iothub and azure-iot-provisioning-service send the wildcard quoted ("*").
        for (const ifMatch of ['*', '"*"', ' "*" ', 'W/"*"']) {
          expect(await store.putEnrollment(S1, enrollment(`w-${ifMatch.length}`, '"1"'), { ifMatch })).toEqual({ ok: false, reason: 'notFound' })
        }
        await store.putEnrollment(S1, enrollment('m', '"abc"'))
        for (const ifMatch of ['*', '"*"', 'W/"*"', '"abc"', 'abc', 'W/"abc"', ' "abc" ']) {
          expect(await store.putEnrollment(S1, enrollment('m', '"abc"'), { ifMatch }), `If-Match ${ifMatch}`).toEqual({ ok: true })
        }
        for (const ifMatch of ['"ab"', 'abcd', '"*x"', 'W/"abd"', '**']) {
          expect(await store.putEnrollment(S1, enrollment('m', '"zzz"'), { ifMatch }), `If-Match ${ifMatch}`).toEqual({ ok: false, reason: 'etagMismatch', currentEtag: '"abc"' })
        }
        // The same reading for deletes, groups, registrations and CA certificates.
        await store.putGroup(S1, group('g', '"g1"'))
        expect(await store.deleteGroup(S1, 'g', { ifMatch: '"*"' })).toEqual({ ok: true })
        await store.putRegistration(S1, registration('r', '"r1"'))
        expect(await store.deleteRegistration(S1, 'r', { ifMatch: 'W/"r1"' })).toEqual({ ok: true })
        expect(await store.deleteEnrollment(S1, 'm', { ifMatch: '"*"' })).toEqual({ ok: true })
        expect(await store.getEnrollment(S1, 'm')).toBeUndefined()
      }))

    it('deletes conditionally', () =>
      withStore(async (store) => {
        expect(await store.deleteEnrollment(S1, 'x')).toEqual({ ok: false, reason: 'notFound' })
        await store.putEnrollment(S1, enrollment('x', '"1"'))
        expect(await store.deleteEnrollment(S1, 'X', { ifMatch: '"2"' })).toMatchObject({ ok: false, reason: 'etagMismatch' })
        expect(await store.getEnrollment(S1, 'x')).toBeDefined()
        expect(await store.deleteEnrollment(S1, 'X', { ifMatch: '"1"' })).toEqual({ ok: true })
        expect(await store.getEnrollment(S1, 'x')).toBeUndefined()
      }))

    it('puts enrollments in batches: creates skip existing ids and repeats, conditions see earlier items', () =>
      withStore(async (store) => {
        if (store.putEnrollments === undefined) throw new Error(`${name} has no putEnrollments`)
        await store.putEnrollment(S1, enrollment('Old', '"o1"'))
        const create = { ifNoneExists: true } as const
        const results = await store.putEnrollments(S1, [
          { enrollment: enrollment('n-1', '"n1"'), condition: create },
          { enrollment: enrollment('OLD', '"o2"'), condition: create },
          { enrollment: enrollment('N-2', '"n2"', { iotHubs: ['h1'] }), condition: create },
          { enrollment: enrollment('n-2', '"n2b"'), condition: create },
          { enrollment: enrollment('n-3', '"n3"'), condition: create },
        ])
        expect(results.map((r) => (r.ok ? 'ok' : r.reason))).toEqual(['ok', 'exists', 'ok', 'exists', 'ok'])
        expect(await store.getEnrollment(S1, 'old')).toEqual(enrollment('Old', '"o1"'))
        expect(await store.getEnrollment(S1, 'n-2')).toEqual(enrollment('N-2', '"n2"', { iotHubs: ['h1'] }))
        expect(await store.getEnrollment(S2, 'n-1')).toBeUndefined()
        expect((await store.listEnrollments(S1, { limit: 10 })).map((e) => e.registrationId)).toEqual(['n-1', 'N-2', 'n-3', 'Old'])
        // Mixed conditions: an ifMatch item sees the write of an earlier item of the same batch.
        const mixed = await store.putEnrollments(S1, [
          { enrollment: enrollment('m', '"m1"'), condition: create },
          { enrollment: enrollment('m', '"m2"'), condition: { ifMatch: '"m1"' } },
          { enrollment: enrollment('old', '"o3"'), condition: { ifMatch: '"nope"' } },
          { enrollment: enrollment('n-3', '"n3b"') },
          { enrollment: enrollment('gone', '"g"'), condition: { ifMatch: '*' } },
        ])
        expect(mixed).toEqual([{ ok: true }, { ok: true }, { ok: false, reason: 'etagMismatch', currentEtag: '"o1"' }, { ok: true }, { ok: false, reason: 'notFound' }])
        expect((await store.getEnrollment(S1, 'm'))?.etag).toBe('"m2"')
        expect((await store.getEnrollment(S1, 'n-3'))?.etag).toBe('"n3b"')
        expect(await store.getEnrollment(S1, 'gone')).toBeUndefined()
        expect(await store.putEnrollments(S1, [])).toEqual([])
        // A large batch lands whole.
        const many = Array.from({ length: 2000 }, (_, i) => ({ enrollment: enrollment(`bulk-${String(i).padStart(5, '0')}`, `"b${i}"`), condition: create }))
        expect((await store.putEnrollments(S1, many)).every((r) => r.ok)).toBe(true)
        const page = await store.listEnrollments(S1, { after: 'bulk-01998', limit: 5 })
        expect(page.map((e) => e.registrationId)).toEqual(['bulk-01999', 'm', 'n-1', 'N-2', 'n-3'])
      }))

    it('pages enrollments in lower-cased key order, per scope', () =>
      withStore(async (store) => {
        const ids = ['c', 'A', 'b-2', 'B-1', 'd', 'e:1', 'E.0']
        for (const id of ids) await store.putEnrollment(S1, enrollment(id, `"${id}"`))
        await store.putEnrollment(S2, enrollment('zz', '"z"'))
        const all = (await store.listEnrollments(S1, { limit: 100 })).map((e) => e.registrationId)
        expect(all).toEqual(['A', 'B-1', 'b-2', 'c', 'd', 'E.0', 'e:1'])
        const first = await store.listEnrollments(S1, { limit: 3 })
        expect(first.map((e) => e.registrationId)).toEqual(['A', 'B-1', 'b-2'])
        const second = await store.listEnrollments(S1, { after: 'b-2', limit: 3 })
        expect(second.map((e) => e.registrationId)).toEqual(['c', 'd', 'E.0'])
        expect((await store.listEnrollments(S1, { after: 'e:1', limit: 3 })).length).toBe(0)
      }))

    it('keeps groups with a revision that moves only on successful writes and deletes', () =>
      withStore(async (store) => {
        const r0 = await store.groupsRevision(S1)
        await store.putGroup(S1, group('G1', '"1"'))
        const r1 = await store.groupsRevision(S1)
        expect(r1).not.toBe(r0)
        await store.putGroup(S1, group('g1', '"2"'), { ifMatch: '"nope"' })
        expect(await store.groupsRevision(S1)).toBe(r1)
        await store.putGroup(S1, group('g2', '"1"', 'x509'))
        const r2 = await store.groupsRevision(S1)
        expect(r2).not.toBe(r1)
        expect(await store.groupsRevision(S2)).toBe(await store.groupsRevision(S2))
        expect((await store.listGroups(S1, { limit: 10 })).map((g) => g.enrollmentGroupId)).toEqual(['G1', 'g2'])
        expect(await store.getGroup(S1, 'g2')).toEqual(group('g2', '"1"', 'x509'))
        expect(await store.deleteGroup(S1, 'G2')).toEqual({ ok: true })
        expect(await store.groupsRevision(S1)).not.toBe(r2)
        expect(await store.getGroup(S1, 'g2')).toBeUndefined()
      }))

    it('answers getEnrollmentForAttestation as getEnrollment and groupsRevision do', () =>
      withStore(async (store) => {
        // Optional in the Store port; every store of ours has it.
        expect(store.getEnrollmentForAttestation).toBeTypeOf('function')
        const combined = store.getEnrollmentForAttestation!.bind(store)
        const separate = async (id: string) => ({ enrollment: await store.getEnrollment(S1, id), groupsRevision: await store.groupsRevision(S1) })
        // A scope nobody wrote to yet: no enrollment, the revision groupsRevision gives.
        expect(await combined(S1, 'dev-9')).toEqual(await separate('dev-9'))
        await store.putGroup(S1, group('g1', '"1"'))
        const e = enrollment('Dev-9', '"e1"', { initialTwin: { tags: { t: 1 } } })
        await store.putEnrollment(S1, e)
        const after = await combined(S1, 'DEV-9')
        expect(after).toEqual(await separate('dev-9'))
        expect(after.enrollment).toEqual(e)
        await store.putGroup(S1, group('g2', '"1"'))
        const moved = await combined(S1, 'other')
        expect(moved).toEqual({ enrollment: undefined, groupsRevision: await store.groupsRevision(S1) })
        expect(moved.groupsRevision).not.toBe(after.groupsRevision)
        expect((await combined(S2, 'dev-9')).enrollment).toBeUndefined()
      }))

    it('stores registration records and lists them by group, case-insensitively, with paging', () =>
      withStore(async (store) => {
        await store.putRegistration(S1, registration('d3', '"1"', 'Fleet'))
        await store.putRegistration(S1, registration('D1', '"1"', 'fleet'))
        await store.putRegistration(S1, registration('d2', '"1"'))
        await store.putRegistration(S1, registration('d4', '"1"', 'other'))
        await store.putRegistration(S1, registration('d5', '"1"', 'FLEET'))
        expect(await store.getRegistration(S1, 'd1')).toEqual(registration('D1', '"1"', 'fleet'))
        const page1 = await store.listRegistrationsByGroup(S1, 'fleet', { limit: 2 })
        expect(page1.map((r) => r.state.registrationId)).toEqual(['D1', 'd3'])
        const page2 = await store.listRegistrationsByGroup(S1, 'FLEET', { after: 'd3', limit: 2 })
        expect(page2.map((r) => r.state.registrationId)).toEqual(['d5'])
        expect((await store.listRegistrations(S1, { limit: 10 })).length).toBe(5)
        expect(await store.putRegistration(S1, registration('d2', '"2"'), { ifMatch: '"9"' })).toMatchObject({ reason: 'etagMismatch' })
        expect(await store.deleteRegistration(S1, 'D2', { ifMatch: '"1"' })).toEqual({ ok: true })
        expect(await store.getRegistration(S1, 'd2')).toBeUndefined()
      }))

    it('begins operations idempotently while the lease runs, and replaces them after', () =>
      withStore(async (store) => {
        const a = operation('1.aa.op-a', 'Dev', 'owner-a', 5000)
        await expectBegun(store, await store.beginOperation(S1, a, 1000), 'Dev')
        const again = await store.beginOperation(S1, operation('1.bb.op-b', 'dev', 'owner-b', 6000), 2000)
        expect(again).toEqual({ created: false, existing: a })
        expect(await store.getOperation(S1, '1.bb.op-b')).toBeUndefined()
        expect(await store.getDeviceOperation(S1, 'DEV')).toEqual(a)
        expect(await store.getActiveOperationId(S1, 'DEV', 4999)).toBe('1.aa.op-a')
        expect(await store.getActiveOperationId(S1, 'dev', 5000)).toBeUndefined()
        expect(await store.getActiveOperationId(S1, 'nobody', 0)).toBeUndefined()
        // lease expired at 5000: a new register replaces the stale operation
        const c = operation('1.cc.op-c', 'dev', 'owner-c', 9000)
        await expectBegun(store, await store.beginOperation(S1, c, 5000), 'dev')
        expect(await store.getOperation(S1, '1.aa.op-a')).toBeUndefined()
        expect(await store.getOperation(S1, '1.cc.op-c')).toEqual(c)
        expect(await store.getOperation(S2, '1.cc.op-c')).toBeUndefined()
      }))

    it('finishes an operation only under its lease, writing the record atomically', () =>
      withStore(async (store) => {
        const op = operation('2.aa.op', 'dev9', 'owner-a', 5000)
        await store.beginOperation(S1, op, 1000)
        const final: OperationRecord = { ...op, status: 'assigned', updatedAtMs: 1500, result: registration('dev9', '"r1"').state }
        expect(await store.finishOperation(S1, final, 'owner-b', registration('dev9', '"r1"'))).toBe(false)
        expect(await store.getRegistration(S1, 'dev9')).toBeUndefined()
        expect((await store.getOperation(S1, '2.aa.op'))?.status).toBe('assigning')
        expect(await store.finishOperation(S1, final, 'owner-a', registration('dev9', '"r1"'))).toBe(true)
        expect(await store.getOperation(S1, '2.aa.op')).toEqual(final)
        expect(await store.getRegistration(S1, 'DEV9')).toEqual(registration('dev9', '"r1"'))
        // already final: a second finish is refused
        expect(await store.finishOperation(S1, { ...final, status: 'failed' }, 'owner-a')).toBe(false)
        expect(await store.getActiveOperationId(S1, 'dev9', 1600)).toBeUndefined()
        // a final operation does not block a new one; a store that reads the record with the begin returns the one just written
        const begun = await store.beginOperation(S1, operation('2.bb.op', 'DEV9', 'owner-c', 9000), 1600)
        await expectBegun(store, begun, 'DEV9')
        if (begun.created && begun.prefetched !== undefined) expect(begun.prefetched.registration).toEqual(registration('dev9', '"r1"'))
      }))

    it('commits an inline operation in one step unless another operation holds the device', () =>
      withStore(async (store) => {
        const other = operation('4.aa.op', 'dev4', 'owner-a', 5000)
        await store.beginOperation(S1, other, 1000)
        const mine: OperationRecord = { ...operation('4.bb.op', 'DEV4', 'owner-b', 9000), status: 'assigned', result: registration('DEV4', '"r"').state }
        expect(await store.commitOperation(S1, mine, registration('DEV4', '"r"'), 2000)).toBe(false)
        expect(await store.getRegistration(S1, 'dev4')).toBeUndefined()
        expect(await store.getOperation(S1, '4.bb.op')).toBeUndefined()
        // the other lease expired: the commit wins and replaces it
        expect(await store.commitOperation(S1, mine, registration('DEV4', '"r"'), 5000)).toBe(true)
        expect(await store.getOperation(S1, '4.aa.op')).toBeUndefined()
        expect(await store.getDeviceOperation(S1, 'dev4')).toEqual(mine)
        expect(await store.getRegistration(S1, 'dev4')).toEqual(registration('DEV4', '"r"'))
        // a final operation never blocks; a commit without registration writes only the operation
        const next: OperationRecord = { ...mine, operationId: '4.cc.op', status: 'failed' }
        expect(await store.commitOperation(S1, next, undefined, 5001)).toBe(true)
        expect((await store.getDeviceOperation(S1, 'dev4'))?.operationId).toBe('4.cc.op')
        expect((await store.getRegistration(S1, 'dev4'))?.state.etag).toBe('"r"')
      }))

    it('hands leases over with compare-and-set', () =>
      withStore(async (store) => {
        const op = operation('3.aa.op', 'dev3', 'owner-a', 5000)
        await store.beginOperation(S1, op, 1000)
        expect(await store.leaseOperation(S1, '3.aa.op', 'owner-x', 'owner-b', 9000, 6000)).toBeUndefined()
        const leased = await store.leaseOperation(S1, '3.aa.op', 'owner-a', 'owner-b', 9000, 6000)
        expect(leased).toMatchObject({ leaseOwner: 'owner-b', assigningUntilMs: 9000, updatedAtMs: 6000, status: 'assigning' })
        expect(await store.leaseOperation(S1, '3.aa.op', 'owner-a', 'owner-c', 9500, 6001)).toBeUndefined()
        expect(await store.finishOperation(S1, { ...leased!, status: 'failed' }, 'owner-a')).toBe(false)
        expect(await store.finishOperation(S1, { ...leased!, status: 'failed' }, 'owner-b')).toBe(true)
        expect(await store.leaseOperation(S1, '3.aa.op', 'owner-b', 'owner-c', 9500, 6002)).toBeUndefined()
      }))

    it('settles concurrent begins and commits of one device on a single operation', () =>
      withStore(async (store) => {
        // Several instances (or requests) racing on the same device: exactly one begin wins and
        // every loser is handed the winner; commits racing a held operation all lose.
        const begins = await Promise.all(
          Array.from({ length: 8 }, (_, i) => store.beginOperation(S1, operation(`5.${i}.op`, i % 2 === 0 ? 'Race' : 'race', `owner-${i}`, 9000), 1000)),
        )
        expect(begins.filter((b) => b.created).length).toBe(1)
        const winner = await store.getDeviceOperation(S1, 'race')
        for (const b of begins) if (!b.created) expect(b.existing).toEqual(winner)
        const commits = await Promise.all(
          Array.from({ length: 4 }, (_, i) =>
            store.commitOperation(S1, { ...operation(`6.${i}.op`, 'race', `c-${i}`, 9000), status: 'assigned' }, registration('race', `"${i}"`), 2000),
          ),
        )
        expect(commits.every((c) => !c)).toBe(true)
        expect(await store.getRegistration(S1, 'race')).toBeUndefined()
        expect(await store.getDeviceOperation(S1, 'RACE')).toEqual(winner)
      }))

    it('keeps TPM challenges per device, newest few, until they lapse', () =>
      withStore(async (store) => {
        await store.addTpmChallenge(S1, tpmChallenge('c1', 'Tpm-Dev', 1000), 3, 1000)
        await store.addTpmChallenge(S1, tpmChallenge('c2', 'tpm-dev', 1001), 3, 1001)
        await store.addTpmChallenge(S1, tpmChallenge('c3', 'TPM-DEV', 1002), 3, 1002)
        await store.addTpmChallenge(S2, tpmChallenge('c9', 'tpm-dev', 1002), 3, 1002)
        expect((await store.listTpmChallenges(S1, 'tpm-dev', 1003)).map((c) => c.challengeId)).toEqual(['c1', 'c2', 'c3'])
        expect(await store.listTpmChallenges(S1, 'TPM-dev', 1003)).toEqual([
          tpmChallenge('c1', 'Tpm-Dev', 1000),
          tpmChallenge('c2', 'tpm-dev', 1001),
          tpmChallenge('c3', 'TPM-DEV', 1002),
        ])
        // A fourth pushes out the oldest; other scopes and devices are untouched.
        await store.addTpmChallenge(S1, tpmChallenge('c4', 'tpm-dev', 1003), 3, 1003)
        expect((await store.listTpmChallenges(S1, 'tpm-dev', 1004)).map((c) => c.challengeId)).toEqual(['c2', 'c3', 'c4'])
        expect((await store.listTpmChallenges(S2, 'tpm-dev', 1004)).map((c) => c.challengeId)).toEqual(['c9'])
        expect(await store.listTpmChallenges(S1, 'other', 1004)).toEqual([])
        // Lapsed ones are never returned (keepUntilMs 2001 for c2: gone at 2001).
        expect((await store.listTpmChallenges(S1, 'tpm-dev', 2001)).map((c) => c.challengeId)).toEqual(['c3', 'c4'])
        expect(await store.listTpmChallenges(S1, 'tpm-dev', 5000)).toEqual([])
        // Adding after they lapsed keeps only the new one.
        await store.addTpmChallenge(S1, tpmChallenge('c5', 'tpm-dev', 5000), 3, 5000)
        expect((await store.listTpmChallenges(S1, 'tpm-dev', 5001)).map((c) => c.challengeId)).toEqual(['c5'])
      }))

    it('answers a TPM challenge once, with compare-and-set', () =>
      withStore(async (store) => {
        await store.addTpmChallenge(S1, tpmChallenge('c1', 'tpm-dev', 1000), 4, 1000)
        expect(await store.answerTpmChallenge(S1, 'nope', 'token-a', 1500, 9000)).toBeUndefined()
        expect(await store.answerTpmChallenge(S2, 'c1', 'token-a', 1500, 9000)).toBeUndefined()
        const answered = await store.answerTpmChallenge(S1, 'c1', 'token-a', 1500, 9000)
        expect(answered).toEqual({ ...tpmChallenge('c1', 'tpm-dev', 1000), answeredAtMs: 1500, answeredToken: 'token-a', keepUntilMs: 9000 })
        // A second answer changes nothing and sees the first.
        expect(await store.answerTpmChallenge(S1, 'c1', 'token-b', 1600, 9999)).toEqual(answered)
        expect(await store.listTpmChallenges(S1, 'TPM-DEV', 8999)).toEqual([answered])
        expect(await store.listTpmChallenges(S1, 'tpm-dev', 9000)).toEqual([])
        expect(await store.answerTpmChallenge(S1, 'c1', 'token-a', 9000, 20000)).toBeUndefined()
        // An expired challenge cannot be answered.
        await store.addTpmChallenge(S1, tpmChallenge('c2', 'tpm-dev', 10000), 4, 10000)
        expect(await store.answerTpmChallenge(S1, 'c2', 'token-c', 11000, 20000)).toBeUndefined()
        // Racing answers settle on one token.
        await store.addTpmChallenge(S1, tpmChallenge('c3', 'tpm-dev', 12000), 4, 12000)
        const race = await Promise.all(Array.from({ length: 6 }, (_, i) => store.answerTpmChallenge(S1, 'c3', `token-${i}`, 12500, 30000)))
        expect(new Set(race.map((r) => r?.answeredToken)).size).toBe(1)
        expect(race[0]?.answeredToken).toMatch(/^token-[0-5]$/)
      }))

    it('keeps CA certificates per scope', () =>
      withStore(async (store) => {
        const ca: CaCertificateRecord = { name: 'Root-CA', certificate: 'MIIB…', isVerified: true, etag: '"1"', createdAtMs: 1, updatedAtMs: 2 }
        expect(await store.putCaCertificate(S1, ca, { ifNoneExists: true })).toEqual({ ok: true })
        expect(await store.getCaCertificate(S1, 'root-ca')).toEqual(ca)
        expect(await store.listCaCertificates(S1)).toEqual([ca])
        expect(await store.listCaCertificates(S2)).toEqual([])
        expect(await store.deleteCaCertificate(S1, 'ROOT-CA', { ifMatch: '"2"' })).toMatchObject({ reason: 'etagMismatch' })
        expect(await store.deleteCaCertificate(S1, 'ROOT-CA')).toEqual({ ok: true })
        expect(await store.getCaCertificate(S1, 'root-ca')).toBeUndefined()
      }))
  })
}
