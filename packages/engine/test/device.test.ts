import { setImmediate as tick } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import { MemoryStore, createEngine, type HubDeviceSpec, type RegistrationFailedEvent } from '../src/index.js'
import { deriveKey, deviceToken, key, ManualClock, RecordingHubGateway, SeededRandom } from './helpers/fakes.js'
import { HUB_A, HUB_B, ID_SCOPE, instanceConfig, setup, testEngine } from './helpers/setup.js'

const API = '2021-10-01'

async function rejection(p: Promise<unknown>): Promise<ProvisioError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(ProvisioError)
  return error as ProvisioError
}

/** A gateway whose createOrUpdateDevice waits until released (an assignment in flight). */
class BlockingGateway extends RecordingHubGateway {
  #release: (() => void) | undefined
  #gate: Promise<void> | undefined
  block(): void {
    this.#gate = new Promise((resolve) => (this.#release = resolve))
  }
  release(): void {
    this.#release?.()
    this.#gate = undefined
  }
  override async createOrUpdateDevice(spec: HubDeviceSpec): Promise<void> {
    if (this.#gate) await this.#gate
    return super.createOrUpdateDevice(spec)
  }
}

async function enrollIndividual(engine: ReturnType<typeof setup>['engine'], id: string, extra: Record<string, unknown> = {}) {
  const primaryKey = key(32, id.length)
  await engine.createOrUpdateEnrollment(ID_SCOPE, {
    registrationId: id,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey: key(32, 200) } },
    ...extra,
  })
  return primaryKey
}

describe('register and poll (DPS-style 202)', () => {
  it('answers 202 assigning with operationId and Retry-After, then 200 on poll', async () => {
    const { engine, nowSeconds } = setup({ assignmentBudgetMs: 0 })
    const k = await enrollIndividual(engine, 'dev-a')
    const evidence = { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-a', k, nowSeconds() + 3600) } as const
    const first = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-a', evidence, apiVersion: API })
    expect(first.status).toBe(202)
    expect(first.retryAfterSeconds).toBe(3)
    expect(first.body).toEqual({ operationId: expect.any(String), status: 'assigning' })
    await tick()
    const poll = await engine.operationStatus({ idScope: ID_SCOPE, registrationId: 'DEV-A', operationId: first.body.operationId, evidence })
    expect(poll.status).toBe(200)
    expect(poll.body.status).toBe('assigned')
    expect(poll.body.operationId).toBe(first.body.operationId)
    expect(poll.body.registrationState?.registrationId).toBe('dev-a')
  })

  it('returns the in-flight operation to a repeated register (idempotent), case-insensitively', async () => {
    const hubs = new BlockingGateway()
    const { engine, nowSeconds } = setup({ assignmentBudgetMs: 0, hubGateway: hubs })
    const k = await enrollIndividual(engine, 'Dev-B')
    hubs.block()
    const token = (id: string) => ({ type: 'sas', token: deviceToken(ID_SCOPE, id, k, nowSeconds() + 60) }) as const
    const a = await engine.register({ idScope: ID_SCOPE, registrationId: 'Dev-B', evidence: token('Dev-B'), apiVersion: API })
    const b = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-b', evidence: token('dev-b'), apiVersion: API })
    expect(b.status).toBe(202)
    expect(b.body.operationId).toBe(a.body.operationId)
    const inFlight = await engine.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-b', operationId: a.body.operationId })
    expect(inFlight.status).toBe(202)
    expect(inFlight.body).toEqual({ operationId: a.body.operationId, status: 'assigning', registrationState: { registrationId: 'Dev-B', status: 'assigning' } })
    hubs.release()
    await tick()
    const done = await engine.operationStatus({ idScope: ID_SCOPE, registrationId: 'DEV-B', operationId: a.body.operationId })
    expect(done.body.status).toBe('assigned')
    expect(hubs.calls.filter((c) => c.op === 'createOrUpdateDevice')).toHaveLength(1)
    // Once final, a new register is a new operation.
    const c = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-b', evidence: token('dev-b'), apiVersion: API })
    expect(c.body.operationId).not.toBe(a.body.operationId)
  })

  it('answers repeats of an inline registration (budget, no Timers) with the same operation, pollable before the commit', async () => {
    const hubs = new BlockingGateway()
    const { engine, store, nowSeconds } = setup({ assignmentBudgetMs: 1000, hubGateway: hubs })
    const k = await enrollIndividual(engine, 'dev-i')
    const evidence = { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-i', k, nowSeconds() + 60) } as const
    hubs.block()
    const first = engine.register({ idScope: ID_SCOPE, registrationId: 'dev-i', evidence, apiVersion: API })
    await tick()
    const repeat = await engine.register({ idScope: ID_SCOPE, registrationId: 'DEV-I', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'DEV-I', k, nowSeconds() + 60) }, apiVersion: API })
    expect(repeat.status).toBe(202)
    expect(await store.getDeviceOperation(ID_SCOPE, 'dev-i')).toBeUndefined() // nothing written yet
    const poll = engine.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-i', operationId: repeat.body.operationId })
    hubs.release()
    const [done, polled] = await Promise.all([first, poll])
    expect(done.status).toBe(200)
    expect(done.body.operationId).toBe(repeat.body.operationId)
    expect(polled.body).toEqual(done.body)
    expect((await store.getDeviceOperation(ID_SCOPE, 'dev-i'))?.status).toBe('assigned')
    expect(hubs.calls.filter((c) => c.op === 'createOrUpdateDevice')).toHaveLength(1)
  })

  it('lets another engine on the same store take over an operation whose lease expired', async () => {
    const store = new MemoryStore()
    const clock = new ManualClock()
    const stuck = new BlockingGateway()
    stuck.block() // engine 1 "crashes": its assignment never finishes
    const one = testEngine(createEngine({ store, clock, random: new SeededRandom(1), hubGateway: stuck, instances: [instanceConfig()], operationLeaseMs: 10_000 }))
    const hubs2 = new RecordingHubGateway()
    const two = testEngine(createEngine({ store, clock, random: new SeededRandom(2), hubGateway: hubs2, instances: [instanceConfig()], assignmentBudgetMs: 1000 }))
    const k = key(32, 1)
    await one.createOrUpdateEnrollment(ID_SCOPE, { registrationId: 'dev-c', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: k, secondaryKey: key(32, 2) } } })
    const evidence = { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-c', k, Math.floor(clock.ms / 1000) + 3600) } as const
    const started = await one.register({ idScope: ID_SCOPE, registrationId: 'dev-c', evidence, apiVersion: API })
    const early = await two.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-c', operationId: started.body.operationId, evidence })
    expect(early.status).toBe(202) // lease still held by engine one
    clock.advance(10_001)
    const taken = await two.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-c', operationId: started.body.operationId, evidence })
    expect(taken.status).toBe(200)
    expect(taken.body.status).toBe('assigned')
    expect(hubs2.calls.filter((c) => c.op === 'createOrUpdateDevice')).toHaveLength(1)
    // Engine one wakes up late: its finish is refused (lease lost), the record stays engine two's.
    stuck.release()
    await tick()
    await tick()
    const op = await store.getOperation(ID_SCOPE, started.body.operationId)
    expect(op?.status).toBe('assigned')
    expect(op?.result?.etag).toBe(taken.body.registrationState?.etag)
    expect((await store.getRegistration(ID_SCOPE, 'dev-c'))?.state.etag).toBe(taken.body.registrationState?.etag)
  })

  it('hands the running assignment to Timers.delay, so the budget timer can be dropped when it settles', async () => {
    let until: Promise<unknown> | undefined
    let settled = false
    const { engine, nowSeconds } = setup({
      assignmentBudgetMs: 5000,
      timers: {
        delay: (_ms, u) => {
          until = u
          void u?.then(() => (settled = true))
          return new Promise<void>(() => {})
        },
      },
    })
    const k = await enrollIndividual(engine, 'dev-u')
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-u', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-u', k, nowSeconds() + 60) }, apiVersion: API })
    expect(r.status).toBe(200)
    expect(until).toBeInstanceOf(Promise)
    await until
    expect(settled).toBe(true)
  })

  it('answers 202 when the Timers budget runs out before the assignment', async () => {
    const hubs = new BlockingGateway()
    const { engine, nowSeconds } = setup({ assignmentBudgetMs: 50, hubGateway: hubs, timers: { delay: () => Promise.resolve() } })
    const k = await enrollIndividual(engine, 'dev-t')
    hubs.block()
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-t', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-t', k, nowSeconds() + 60) }, apiVersion: API })
    expect(r.status).toBe(202)
    hubs.release()
  })

  it('refuses a poll of another device operation and a poll with a wrong key', async () => {
    const { engine, nowSeconds } = setup()
    const k = await enrollIndividual(engine, 'dev-p')
    const evidence = { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-p', k, nowSeconds() + 60) } as const
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-p', evidence, apiVersion: API })
    expect((await rejection(engine.operationStatus({ idScope: ID_SCOPE, registrationId: 'other', operationId: r.body.operationId }))).errorCode).toBe(404202)
    const bad = await rejection(engine.operationStatus({
      idScope: ID_SCOPE, registrationId: 'dev-p', operationId: r.body.operationId,
      evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-p', key(32, 77), nowSeconds() + 60) },
    }))
    expect(bad.errorCode).toBe(401002)
  })
})

describe('registration status lookup', () => {
  it('answers unassigned before and the bare DeviceRegistrationResult after registration', async () => {
    const { engine, nowSeconds } = setup()
    const k = await enrollIndividual(engine, 'dev-l')
    const evidence = { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-l', k, nowSeconds() + 60) } as const
    expect((await engine.registrationStatus({ idScope: ID_SCOPE, registrationId: 'dev-l', evidence })).body).toEqual({ registrationId: 'dev-l', status: 'unassigned' })
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-l', evidence, apiVersion: API })
    const lookup = await engine.registrationStatus({ idScope: ID_SCOPE, registrationId: 'dev-l', evidence })
    expect(lookup.status).toBe(200)
    expect(lookup.body).toEqual(r.body.registrationState)
    expect((await rejection(engine.registrationStatus({ idScope: ID_SCOPE, registrationId: 'dev-l', evidence: { type: 'sas', token: 'nope' } }))).code).toBe('SAS_MALFORMED')
  })
})

describe('authenticate (the MQTT CONNECT / AMQP SASL check)', () => {
  it('resolves for good evidence without reading the registration, and refuses bad evidence with a registrationFailed event', async () => {
    const store = new MemoryStore()
    let registrationReads = 0
    const getRegistration = store.getRegistration.bind(store)
    store.getRegistration = (idScope, registrationId) => {
      registrationReads++
      return getRegistration(idScope, registrationId)
    }
    const { engine, nowSeconds } = setup({ store })
    const k = await enrollIndividual(engine, 'dev-a')
    const events: RegistrationFailedEvent[] = []
    engine.on('registrationFailed', (e) => events.push(e))
    const good = { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-a', k, nowSeconds() + 60) } as const
    await expect(engine.authenticate({ idScope: ID_SCOPE, registrationId: 'dev-a', evidence: good })).resolves.toBeUndefined()
    expect(registrationReads).toBe(0)
    await engine.registrationStatus({ idScope: ID_SCOPE, registrationId: 'dev-a', evidence: good })
    expect(registrationReads).toBe(1)
    const bad = { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-a', key(32, 99), nowSeconds() + 60) } as const
    const refusal = await rejection(engine.authenticate({ idScope: ID_SCOPE, registrationId: 'dev-a', evidence: bad }))
    expect(refusal.errorCode).toBe(401002)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({ registrationId: 'dev-a', stage: 'attestation', errorCode: 401002 })
    expect(await engine.getRegistrationState(ID_SCOPE, 'dev-a').catch((e: unknown) => (e as { code: string }).code)).toBe('REGISTRATION_NOT_FOUND')
  })
})

describe('store reads of an attestation', () => {
  /** A MemoryStore that counts the reads attestation may make, with or without the one-read call. */
  function counting(withCombined: boolean) {
    const store = new MemoryStore()
    const reads = { getEnrollment: 0, groupsRevision: 0, combined: 0 }
    const getEnrollment = store.getEnrollment.bind(store)
    const groupsRevision = store.groupsRevision.bind(store)
    const combined = store.getEnrollmentForAttestation.bind(store)
    store.getEnrollment = (s, id) => (reads.getEnrollment++, getEnrollment(s, id))
    store.groupsRevision = (s) => (reads.groupsRevision++, groupsRevision(s))
    ;(store as { getEnrollmentForAttestation?: unknown }).getEnrollmentForAttestation = withCombined ? (s: string, id: string) => (reads.combined++, combined(s, id)) : undefined
    return { store, reads }
  }

  for (const withCombined of [true, false]) {
    it(`admits a group device with ${withCombined ? 'one read (getEnrollmentForAttestation)' : 'getEnrollment, then groupsRevision'}, and sees a group written meanwhile`, async () => {
      const { store, reads } = counting(withCombined)
      const { engine, nowSeconds } = setup({ store })
      const groupKey = key(64, 21)
      await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'fleet', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64, 22) } } })
      const evidence = (id: string, k: string) => ({ type: 'sas', token: deviceToken(ID_SCOPE, id, deriveKey(k, id), nowSeconds() + 60) }) as const
      Object.assign(reads, { getEnrollment: 0, groupsRevision: 0, combined: 0 })
      await engine.authenticate({ idScope: ID_SCOPE, registrationId: 'dev-g1', evidence: evidence('dev-g1', groupKey) })
      expect(reads).toEqual(withCombined ? { getEnrollment: 0, groupsRevision: 0, combined: 1 } : { getEnrollment: 1, groupsRevision: 1, combined: 0 })
      // The group's keys rolled: the revision moved, and the next attestation uses the new keys.
      const rolled = key(64, 23)
      await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'fleet', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: rolled, secondaryKey: key(64, 22) } } })
      expect((await rejection(engine.authenticate({ idScope: ID_SCOPE, registrationId: 'dev-g2', evidence: evidence('dev-g2', groupKey) }))).errorCode).toBe(401002)
      await expect(engine.authenticate({ idScope: ID_SCOPE, registrationId: 'dev-g2', evidence: evidence('dev-g2', rolled) })).resolves.toBeUndefined()
    })
  }
})

describe('attestation refusals carry reasons', () => {
  async function refused(build: (nowSeconds: number, k: string) => string, id = 'dev-r') {
    const { engine, nowSeconds } = setup()
    const k = await enrollIndividual(engine, 'dev-r')
    const events: RegistrationFailedEvent[] = []
    engine.on('registrationFailed', (e) => events.push(e))
    const error = await rejection(engine.register({ idScope: ID_SCOPE, registrationId: id, evidence: { type: 'sas', token: build(nowSeconds(), k) }, apiVersion: API }))
    expect(error.errorCode).toBe(401002)
    expect(events).toHaveLength(1)
    expect(events[0]!.reason).toBe(error.reason)
    expect(events[0]!.stage).toBe('attestation')
    return error
  }

  it('expired token', async () => {
    const e = await refused((now, k) => deviceToken(ID_SCOPE, 'dev-r', k, now - 3600))
    expect(e.code).toBe('SAS_EXPIRED')
    expect(e.reason).toMatch(/individual enrollment 'dev-r'.*expired/)
  })
  it('token for another resource', async () => {
    const e = await refused((now, k) => deviceToken(ID_SCOPE, 'someone-else', k, now + 60))
    expect(e.code).toBe('SAS_WRONG_RESOURCE')
    expect(e.reason).toContain('someone-else')
  })
  it('wrong skn', async () => {
    const e = await refused((now, k) => deviceToken(ID_SCOPE, 'dev-r', k, now + 60, { skn: 'owner' }))
    expect(e.code).toBe('SAS_WRONG_KEY_NAME')
  })
  it('accepts a token without skn (Embedded C SDK: sr,sig,se), for individual and group devices', async () => {
    const { engine, nowSeconds } = setup()
    const k = await enrollIndividual(engine, 'dev-noskn')
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-noskn', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-noskn', k, nowSeconds() + 60, { skn: null, encodeSr: true }) }, apiVersion: API })
    expect(r.body.status).toBe('assigned')
    const groupKey = key(64, 31)
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'emb-c', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64, 32) } } })
    const g = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-g-noskn', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-g-noskn', deriveKey(groupKey, 'dev-g-noskn'), nowSeconds() + 60, { skn: null }) }, apiVersion: API })
    expect(g.body.status).toBe('assigned')
    const e = await refused((now, k2) => deviceToken(ID_SCOPE, 'dev-r', k2, now + 60, { skn: 'iothubowner' }))
    expect(e.reason).toContain('"iothubowner"')
  })
  it('not a SAS token at all', async () => {
    expect((await refused(() => 'Bearer abc')).code).toBe('SAS_MALFORMED')
  })
  it('unknown device with no groups', async () => {
    const e = await refused((now) => deviceToken(ID_SCOPE, 'ghost', key(32, 3), now + 60), 'ghost')
    expect(e.code).toBe('ENROLLMENT_NOT_FOUND')
    expect(e.reason).toContain("no individual enrollment 'ghost'")
  })
  it('accepts the URL-encoded sr that C, Python and .NET clients sign', async () => {
    const { engine, nowSeconds } = setup()
    const k = await enrollIndividual(engine, 'dev-enc')
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-enc', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-enc', k, nowSeconds() + 60, { encodeSr: true }) }, apiVersion: API })
    expect(r.body.status).toBe('assigned')
  })
  it('an unknown ID scope is 401 ID_SCOPE_UNKNOWN', async () => {
    const { engine } = setup()
    const e = await rejection(engine.register({ idScope: '0ne99999999', registrationId: 'x', evidence: { type: 'sas', token: 'x' }, apiVersion: API }))
    expect(e.code).toBe('ID_SCOPE_UNKNOWN')
  })
  it('has no verifier for x509 unless one is plugged in', async () => {
    const { engine } = setup()
    const e = await rejection(engine.register({ idScope: ID_SCOPE, registrationId: 'x', evidence: { type: 'x509', chain: [] }, apiVersion: API }))
    expect(e.reason).toContain('no x509 verifier')
  })
})

describe('individual enrollments override groups', () => {
  async function withGroupAndIndividual(status: 'enabled' | 'disabled', individualKey: 'same' | 'other') {
    const { engine, nowSeconds, store } = setup()
    const groupKey = key(64, 11)
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'fleet', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64, 12) } } })
    const deviceKey = deriveKey(groupKey, 'dev-o')
    await engine.createOrUpdateEnrollment(ID_SCOPE, {
      registrationId: 'dev-o',
      provisioningStatus: status,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(32, 50), secondaryKey: individualKey === 'same' ? deviceKey : key(32, 51) } },
    })
    const result = engine.register({ idScope: ID_SCOPE, registrationId: 'dev-o', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-o', deviceKey, nowSeconds() + 60) }, apiVersion: API })
    return { result, store }
  }

  it('a disabled individual enrollment blocks the device although its group key would admit it', async () => {
    const { result, store } = await withGroupAndIndividual('disabled', 'same')
    const e = await rejection(result)
    expect(e.code).toBe('ENROLLMENT_DISABLED')
    expect(e.errorCode).toBe(401002)
    expect(e.reason).toContain("individual enrollment 'dev-o' is disabled (token verified with its secondary key)")
    const record = await store.getRegistration(ID_SCOPE, 'dev-o')
    expect(record?.state.status).toBe('disabled')
    expect(record?.lastRefusal?.reason).toBe(e.reason)
  })

  it('an enabled individual enrollment decides alone: the group is not consulted', async () => {
    const { result } = await withGroupAndIndividual('enabled', 'other')
    const e = await rejection(result)
    expect(e.code).toBe('SAS_BAD_SIGNATURE')
    expect(e.reason).toContain("individual enrollment 'dev-o'")
  })

  it('a disabled group refuses its devices with the group named', async () => {
    const { engine, nowSeconds } = setup()
    const groupKey = key(64, 13)
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'off', provisioningStatus: 'disabled', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64, 14) } } })
    const e = await rejection(engine.register({ idScope: ID_SCOPE, registrationId: 'd1', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'd1', deriveKey(groupKey, 'd1'), nowSeconds() + 60) }, apiVersion: API }))
    expect(e.reason).toContain("enrollment group 'off' is disabled")
  })

  it('picks the right group among several and sees groups created later', async () => {
    const { engine, nowSeconds } = setup()
    const keys = [key(64, 20), key(64, 21), key(64, 22)]
    for (const [i, k] of keys.slice(0, 2).entries()) {
      await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: `g${i}`, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: k, secondaryKey: key(64, 30 + i) } } })
    }
    const reg = (id: string, k: string) => engine.register({ idScope: ID_SCOPE, registrationId: id, evidence: { type: 'sas', token: deviceToken(ID_SCOPE, id, deriveKey(k, id), nowSeconds() + 60) }, apiVersion: API })
    expect((await reg('x1', keys[1]!)).body.registrationState?.symmetricKey).toEqual({ enrollmentGroupId: 'g1' })
    const miss = await rejection(reg('x2', keys[2]!))
    expect(miss.reason).toContain('2 symmetric-key group(s) (g0, g1)')
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'g2', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: keys[2]!, secondaryKey: key(64, 40) } } })
    expect((await reg('x2', keys[2]!)).body.registrationState?.symmetricKey).toEqual({ enrollmentGroupId: 'g2' })
  })
})

describe('rate limits', () => {
  it('throttles registrations per ID scope with a typed 429 and Retry-After', async () => {
    const { engine, clock, nowSeconds } = setup({ rateLimits: { registrationsPerScope: { limit: 3, windowMs: 60_000 } } })
    const k = await enrollIndividual(engine, 'dev-rl')
    const reg = () => engine.register({ idScope: ID_SCOPE, registrationId: 'dev-rl', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-rl', k, nowSeconds() + 600) }, apiVersion: API })
    for (let i = 0; i < 3; i++) await reg()
    const e = await rejection(reg())
    expect(e.code).toBe('THROTTLED')
    expect(e.httpStatus).toBe(429)
    expect(e.retryAfterSeconds).toBe(20)
    clock.advance(20_000)
    expect((await reg()).body.status).toBe('assigned')
  })

  it('defaults to 5 polls per 10 s per device', async () => {
    const { engine, clock, nowSeconds } = setup()
    const k = await enrollIndividual(engine, 'dev-pl')
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-pl', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-pl', k, nowSeconds() + 600) }, apiVersion: API })
    const poll = () => engine.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-pl', operationId: r.body.operationId })
    for (let i = 0; i < 5; i++) await poll()
    const e = await rejection(poll())
    expect(e.code).toBe('POLL_THROTTLED')
    expect(e.retryAfterSeconds).toBe(2)
    clock.advance(2000)
    expect((await poll()).status).toBe(200)
  })

  it('can be switched off', async () => {
    const { engine, nowSeconds } = setup({ rateLimits: { registrationsPerScope: false, pollsPerDevice: false } })
    const k = await enrollIndividual(engine, 'dev-nl')
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-nl', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-nl', k, nowSeconds() + 600) }, apiVersion: API })
    // Four times the default 5 polls per 10 s, at one instant: every one is answered, none throttled.
    const statuses: number[] = []
    for (let i = 0; i < 20; i++) statuses.push((await engine.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-nl', operationId: r.body.operationId })).status)
    expect(statuses).toEqual(Array.from({ length: 20 }, () => 200))
  })
})

describe('fault injection', () => {
  async function faulty(faults: Parameters<ReturnType<typeof setup>['engine']['setFaultProfile']>[1], budget = 1000) {
    const ctx = setup({ assignmentBudgetMs: budget })
    const k = await enrollIndividual(ctx.engine, 'dev-f')
    ctx.engine.setFaultProfile(ID_SCOPE, faults)
    const evidence = { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-f', k, ctx.nowSeconds() + 600) } as const
    const reg = () => ctx.engine.register({ idScope: ID_SCOPE, registrationId: 'dev-f', evidence, apiVersion: API })
    const poll = (operationId: string) => ctx.engine.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-f', operationId, evidence })
    return { ...ctx, reg, poll }
  }

  it('throttles the first N register attempts of each device with the given Retry-After', async () => {
    const { reg } = await faulty({ throttleRegister: { firstAttempts: 2, retryAfterSeconds: 7 } })
    for (let i = 0; i < 2; i++) {
      const e = await rejection(reg())
      expect(e.httpStatus).toBe(429)
      expect(e.retryAfterSeconds).toBe(7)
      expect(e.reason).toContain('fault injection')
    }
    expect((await reg()).body.status).toBe('assigned')
  })

  it('answers 503 on every 2nd register', async () => {
    const { reg } = await faulty({ serverErrorRegister: { everyNth: 2, status: 503 } })
    await reg()
    expect((await rejection(reg())).httpStatus).toBe(503)
    await reg()
  })

  it('throttles and fails polls', async () => {
    const { reg, poll } = await faulty({ throttlePoll: { firstAttempts: 1 }, serverErrorPoll: { everyNth: 3 } })
    const r = await reg()
    expect((await rejection(poll(r.body.operationId))).code).toBe('POLL_THROTTLED')
    expect((await poll(r.body.operationId)).status).toBe(200)
    expect((await rejection(poll(r.body.operationId))).httpStatus).toBe(500)
  })

  it('keeps an operation assigning for N polls', async () => {
    const { reg, poll } = await faulty({ slowAssigningPolls: 2 })
    const r = await reg()
    expect(r.status).toBe(202)
    expect((await poll(r.body.operationId)).status).toBe(202)
    expect((await poll(r.body.operationId)).status).toBe(202)
    const last = await poll(r.body.operationId)
    expect(last.status).toBe(200)
    expect(last.body.status).toBe('assigned')
  })

  it('omits operationId from the 202', async () => {
    const { reg } = await faulty({ missingOperationId: { firstAttempts: 1 } }, 0)
    const r = await reg()
    expect(r.status).toBe(202)
    expect(r.body).toEqual({ status: 'assigning' })
  })

  it('fails custom allocation with 400207 as a webhook failure would', async () => {
    const ctx = setup()
    const k = key(32, 5)
    await ctx.engine.createOrUpdateEnrollment(ID_SCOPE, {
      registrationId: 'dev-w', allocationPolicy: 'custom', customAllocationDefinition: { webhookUrl: 'https://hook.example/api?code=secret', apiVersion: '2021-10-01' },
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: k, secondaryKey: key(32, 6) } },
    })
    ctx.engine.setFaultProfile(ID_SCOPE, { webhookFailureStatus: 500 })
    const failed: RegistrationFailedEvent[] = []
    ctx.engine.on('registrationFailed', (e) => failed.push(e))
    const r = await ctx.engine.register({ idScope: ID_SCOPE, registrationId: 'dev-w', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-w', k, ctx.nowSeconds() + 60) }, apiVersion: API })
    expect(r.status).toBe(200)
    expect(r.body.status).toBe('failed')
    expect(r.body.registrationState).toMatchObject({ status: 'failed', errorCode: 400207, errorMessage: 'Custom allocation failed with status code: 500' })
    expect(failed[0]).toMatchObject({ stage: 'assignment', errorCode: 400207 })
    expect((await ctx.engine.getRegistrationState(ID_SCOPE, 'dev-w')).errorCode).toBe(400207)
  })
})

describe('an enrollment deleted and created again starts afresh (docs/protocol.md §13.3)', () => {
  const twin = (fw: string) => ({ tags: { gen: fw }, properties: { desired: { fw } } })

  it('individual: the delete removes the registration record; the new enrollment\'s initial twin applies', async () => {
    const { engine, hubs, clock, nowSeconds } = setup()
    const k = await enrollIndividual(engine, 'dev-again', { initialTwin: twin('1.0'), iotHubs: [HUB_A] })
    const token = () => deviceToken(ID_SCOPE, 'dev-again', k, nowSeconds() + 60)
    expect((await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-again', evidence: { type: 'sas', token: token() }, apiVersion: API })).body.status).toBe('assigned')
    expect(hubs.device(HUB_A, 'dev-again')?.twin.properties?.desired).toEqual({ fw: '1.0' })
    await engine.deleteEnrollment(ID_SCOPE, 'dev-again')
    expect((await rejection(engine.getRegistrationState(ID_SCOPE, 'dev-again'))).httpStatus).toBe(404)
    clock.ms += 1000
    await enrollIndividual(engine, 'dev-again', { initialTwin: twin('2.0'), iotHubs: [HUB_A] })
    const again = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-again', evidence: { type: 'sas', token: token() }, apiVersion: API })
    expect(again.body.registrationState?.substatus).toBe('initialAssignment')
    expect(hubs.device(HUB_A, 'dev-again')?.twin).toEqual({ tags: { gen: '2.0' }, properties: { desired: { fw: '2.0' } } })
  })

  it('individual: a record that outlived its enrollment (written as the delete ran) is not inherited', async () => {
    const { engine, hubs, clock, store, nowSeconds } = setup()
    const k = await enrollIndividual(engine, 'dev-race', { initialTwin: twin('1.0'), iotHubs: [HUB_A] })
    const token = () => deviceToken(ID_SCOPE, 'dev-race', k, nowSeconds() + 60)
    await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-race', evidence: { type: 'sas', token: token() }, apiVersion: API })
    const kept = (await store.getRegistration(ID_SCOPE, 'dev-race'))!
    await engine.deleteEnrollment(ID_SCOPE, 'dev-race')
    await store.putRegistration(ID_SCOPE, kept)
    clock.ms += 1000
    await enrollIndividual(engine, 'dev-race', { initialTwin: twin('2.0'), iotHubs: [HUB_A] })
    await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-race', evidence: { type: 'sas', token: token() }, apiVersion: API })
    expect(hubs.device(HUB_A, 'dev-race')?.twin.properties?.desired).toEqual({ fw: '2.0' })
  })

  it('group: records stay with the group\'s devices, but a group created again applies its own initial twin', async () => {
    const { engine, hubs, clock, nowSeconds } = setup()
    const groupKey = key(64, 51)
    const writeGroup = (fw: string) =>
      engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'again', iotHubs: [HUB_A], initialTwin: twin(fw), attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64, 52) } } })
    const register = () => engine.register({ idScope: ID_SCOPE, registrationId: 'dev-ga', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-ga', deriveKey(groupKey, 'dev-ga'), nowSeconds() + 60) }, apiVersion: API })
    await writeGroup('1.0')
    await register()
    // An update of the same group is not a new group: the device keeps its twin.
    clock.ms += 1000
    await writeGroup('1.5')
    await register()
    expect(hubs.device(HUB_A, 'dev-ga')?.twin.properties?.desired).toEqual({ fw: '1.0' })
    await engine.deleteEnrollmentGroup(ID_SCOPE, 'again')
    expect((await engine.getRegistrationState(ID_SCOPE, 'dev-ga')).status).toBe('assigned')
    clock.ms += 1000
    await writeGroup('2.0')
    const again = await register()
    expect(again.body.registrationState?.substatus).toBe('initialAssignment')
    expect(hubs.device(HUB_A, 'dev-ga')?.twin.properties?.desired).toEqual({ fw: '2.0' })
  })
})

describe('assignment failures', () => {
  it('records a hub gateway failure as failed with a 500 code and an event', async () => {
    const { engine, hubs, nowSeconds } = setup()
    const k = await enrollIndividual(engine, 'dev-g')
    hubs.failNext = new Error('hub said 401')
    const failed: RegistrationFailedEvent[] = []
    engine.on('registrationFailed', (e) => failed.push(e))
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-g', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-g', k, nowSeconds() + 60) }, apiVersion: API })
    expect(r.body.status).toBe('failed')
    expect(r.body.registrationState?.errorCode).toBe(500001)
    expect(failed[0]?.reason).toContain('hub said 401')
    // a retry succeeds and keeps createdDateTimeUtc
    const again = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-g', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-g', k, nowSeconds() + 60) }, apiVersion: API })
    expect(again.body.status).toBe('assigned')
    expect(again.body.registrationState?.substatus).toBe('initialAssignment')
    expect(again.body.registrationState?.createdDateTimeUtc).toBe(r.body.registrationState?.createdDateTimeUtc)
  })

  it('fails with 400208 when no hub is assignable', async () => {
    const { engine, nowSeconds } = setup()
    engine.updateInstance({ ...engine.getInstance(ID_SCOPE)!, linkedHubs: engine.getInstance(ID_SCOPE)!.linkedHubs.map((h) => ({ ...h, applyAllocationPolicy: false })) })
    const k = await enrollIndividual(engine, 'dev-n')
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-n', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-n', k, nowSeconds() + 60) }, apiVersion: API })
    expect(r.body.registrationState?.errorCode).toBe(400208)
  })

  it('static with no hub named: the one linked hub, else 400208 saying why, in the record too', async () => {
    const { engine, nowSeconds } = setup()
    // Accepted on write, for groups and individual enrollments (Azure accepts it: docs/protocol.md §13.4).
    const groupKey = key(64, 41)
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'static-none', allocationPolicy: 'static', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64, 42) } } })
    const k = await enrollIndividual(engine, 'dev-st', { allocationPolicy: 'static' })
    const failed: RegistrationFailedEvent[] = []
    engine.on('registrationFailed', (e) => failed.push(e))
    // Two hubs linked: no single hub the enrollment could mean.
    const two = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-st', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-st', k, nowSeconds() + 60) }, apiVersion: API })
    expect(two.body.status).toBe('failed')
    expect(two.body.registrationState?.errorCode).toBe(400208)
    expect(failed.at(-1)?.reason).toMatch(/static allocation: the enrollment names no hub .* links 2 .*name one in iotHubs/)
    expect((await engine.getRegistrationState(ID_SCOPE, 'dev-st')).errorMessage).toMatch(/names no hub/)
    // One hub linked: that hub, for the individual and the group device.
    const instance = engine.getInstance(ID_SCOPE)!
    engine.updateInstance({ ...instance, linkedHubs: [instance.linkedHubs[1]!] })
    const one = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-st', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-st', k, nowSeconds() + 60) }, apiVersion: API })
    expect(one.body.registrationState?.assignedHub).toBe(instance.linkedHubs[1]!.hostName)
    const g = await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-st-g', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-st-g', deriveKey(groupKey, 'dev-st-g'), nowSeconds() + 60) }, apiVersion: API })
    expect(g.body.registrationState?.assignedHub).toBe(instance.linkedHubs[1]!.hostName)
  })

  it('emits attempted then assigned, naming the enrollment', async () => {
    const { engine, nowSeconds } = setup()
    const k = await enrollIndividual(engine, 'dev-e')
    const seen: string[] = []
    engine.on('registrationAttempted', (e) => seen.push(`attempted:${e.registrationId}:${e.evidenceType}`))
    engine.on('registrationAssigned', (e) => seen.push(`assigned:${e.enrollment.kind}:${e.enrollment.id}:${[HUB_A, HUB_B].includes(e.assignedHub)}`))
    await engine.register({ idScope: ID_SCOPE, registrationId: 'dev-e', evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'dev-e', k, nowSeconds() + 60) }, apiVersion: API })
    expect(seen).toEqual(['attempted:dev-e:sas', 'assigned:individual:dev-e:true'])
  })
})
