import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import type { Evidence } from '@provisio/protocol'
import { base64Decode, base64Encode, hmacSha256 } from '@provisio/crypto'
import { SoftwareTpm, TpmDevice, defaultRegistrationId, parseActivationBlob } from '@provisio/tpm'
import { MemoryStore, createTpmVerifier, type Store } from '../src/index.js'
import { HUB_A, ID_SCOPE, setup } from './helpers/setup.js'

const alice = new TpmDevice(new SoftwareTpm({ seed: new Uint8Array(32).fill(11) }))
const mallory = new TpmDevice(new SoftwareTpm({ seed: new Uint8Array(32).fill(12) }))
const ek = (d: TpmDevice) => base64Encode(d.endorsementKey())
const srk = (d: TpmDevice) => base64Encode(d.storageRootKey())

/** The SAS the Node TPM client builds: `sr` URL-encoded, signed inside the TPM (§2.1, §11). */
function tpmSas(d: TpmDevice, registrationId: string, se: number, sign: (data: Uint8Array) => Uint8Array = (x) => d.sign(x)): string {
  const sr = encodeURIComponent(`${ID_SCOPE}/registrations/${registrationId}`)
  const sig = base64Encode(sign(new TextEncoder().encode(`${sr}\n${se}`)))
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=registration`
}

function world(options: { assignmentBudgetMs?: number; challengeTtlMs?: number; store?: Store } = {}) {
  const random = { bytes: (n: number) => new Uint8Array(randomBytes(n)) }
  const tpm = createTpmVerifier({ random, ...(options.challengeTtlMs !== undefined ? { challengeTtlMs: options.challengeTtlMs } : {}) })
  return setup({ verifiers: [tpm], assignmentBudgetMs: options.assignmentBudgetMs ?? 1000, ...(options.store === undefined ? {} : { store: options.store }) })
}

async function enroll(s: ReturnType<typeof setup>, registrationId: string, d: TpmDevice, status: 'enabled' | 'disabled' = 'enabled') {
  await s.engine.createOrUpdateEnrollment(ID_SCOPE, { registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: ek(d) } }, iotHubHostName: HUB_A, allocationPolicy: 'static', provisioningStatus: status })
}

function evidence(d: TpmDevice, token?: string, withSrk = true): Evidence {
  return { type: 'tpm', endorsementKey: ek(d), ...(withSrk ? { storageRootKey: srk(d) } : {}), ...(token !== undefined ? { token } : {}) }
}

async function refusal(p: Promise<unknown>): Promise<ProvisioError> {
  const e = await p.then(() => undefined, (x: unknown) => x)
  if (!(e instanceof ProvisioError)) throw new Error(`expected a ProvisioError, got ${String(e)}`)
  return e
}

async function challenge(s: ReturnType<typeof setup>, d: TpmDevice, registrationId: string): Promise<string> {
  const first = await s.raw.register({ idScope: ID_SCOPE, registrationId, evidence: evidence(d), apiVersion: '2019-03-31' })
  if (first.status !== 401) throw new Error(`expected a challenge, got ${first.status}`)
  expect(first.challenge.keyName).toBe('registration')
  return first.challenge.authenticationKey
}

describe('TPM verifier', () => {
  it('challenges, admits the device that activated the blob, and hands out a hub key blob', async () => {
    const s = world()
    await enroll(s, 'tpm-dev', alice)
    const blob = await challenge(s, alice, 'tpm-dev')
    alice.activate(base64Decode(blob))
    const se = s.nowSeconds() + 3600
    const reply = await s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, tpmSas(alice, 'tpm-dev', se)), apiVersion: '2019-03-31' })
    if (reply.status === 401) throw new Error('second leg challenged again')
    expect(reply.status).toBe(200)
    const state = reply.body.registrationState!
    expect(state).toMatchObject({ status: 'assigned', assignedHub: HUB_A, deviceId: 'tpm-dev' })
    // The fresh blob carries the hub key: the device imports it and signs hub tokens with it.
    const hubBlob = base64Decode(state.tpm!.authenticationKey)
    expect(parseActivationBlob(hubBlob).idKeyPublic.type).toBe('keyedHash')
    alice.activate(hubBlob)
    const auth = s.hubs.device(HUB_A, 'tpm-dev')?.auth
    if (auth?.type !== 'sas') throw new Error('hub identity has no SAS keys')
    const data = new TextEncoder().encode('hub%2Fdevices%2Ftpm-dev\n1800000000')
    expect(base64Encode(alice.sign(data))).toBe(base64Encode(hmacSha256(base64Decode(auth.primaryKey), data)))
    expect(auth.primaryKey).not.toBe(auth.secondaryKey)
    // The service view never shows the blob.
    expect(await s.engine.getRegistrationState(ID_SCOPE, 'tpm-dev')).not.toHaveProperty('tpm')
  })

  it('binds a challenge to one token: the same token again is the same attempt, another is a replay', async () => {
    const s = world()
    await enroll(s, 'tpm-dev', alice)
    alice.activate(base64Decode(await challenge(s, alice, 'tpm-dev')))
    const token = tpmSas(alice, 'tpm-dev', s.nowSeconds() + 3600)
    const first = await s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, token), apiVersion: '2019-03-31' })
    expect(first.status).toBe(200)
    // AMQP checks the token at SASL time and then registers with it; clients retry a request.
    const again = await s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, token), apiVersion: '2019-03-31' })
    expect(again.status).toBe(200)
    // A second credential minted with the challenge key is a replay of the challenge.
    const minted = tpmSas(alice, 'tpm-dev', s.nowSeconds() + 7200)
    const e = await refusal(s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, minted), apiVersion: '2019-03-31' }))
    expect(e.errorCode).toBe(401002)
    expect(e.reason).toMatch(/replayed TPM challenge/)
    // …and the answer itself lapses.
    s.clock.advance(31 * 60_000)
    const late = await refusal(s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, token), apiVersion: '2019-03-31' }))
    expect(late.reason).toMatch(/no TPM challenge is outstanding.*answered more than 1800 s ago/)
  })

  it('refuses unknown EKs with the reason', async () => {
    const s = world()
    const none = await refusal(s.raw.register({ idScope: ID_SCOPE, registrationId: 'nobody', evidence: evidence(alice), apiVersion: '2019-03-31' }))
    expect(none.code).toBe('ENROLLMENT_NOT_FOUND')
    expect(none.reason).toMatch(/unknown EK .*no individual enrollment 'nobody'/)
    await enroll(s, 'tpm-dev', alice)
    const other = await refusal(s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(mallory), apiVersion: '2019-03-31' }))
    expect(other.code).toBe('ATTESTATION_MISMATCH')
    expect(other.reason).toMatch(/unknown EK: the device's EK .* is not the EK of individual enrollment 'tpm-dev'/)
  })

  it('refuses a SAS not signed with the challenge key', async () => {
    const s = world()
    await enroll(s, 'tpm-dev', alice)
    await challenge(s, alice, 'tpm-dev')
    const forged = tpmSas(alice, 'tpm-dev', s.nowSeconds() + 3600, (x) => hmacSha256(new Uint8Array(32).fill(1), x))
    const e = await refusal(s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, forged), apiVersion: '2019-03-31' }))
    expect(e.code).toBe('SAS_BAD_SIGNATURE')
    expect(e.reason).toMatch(/not HMAC-SHA256 with the key of any of the 1 TPM challenge/)
  })

  it('keeps earlier challenges: first legs by someone else do not cancel the one the device answers', async () => {
    const s = world()
    await enroll(s, 'tpm-dev', alice)
    alice.activate(base64Decode(await challenge(s, alice, 'tpm-dev')))
    // Anyone can send the (public) EK and SRK and ask for new challenges meanwhile.
    await challenge(s, alice, 'tpm-dev')
    await challenge(s, alice, 'tpm-dev')
    const reply = await s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, tpmSas(alice, 'tpm-dev', s.nowSeconds() + 3600)), apiVersion: '2019-03-31' })
    expect(reply.status).toBe(200)
  })

  it('refuses an answer after the challenge expired, and a second leg without any challenge', async () => {
    const s = world({ challengeTtlMs: 60_000 })
    await enroll(s, 'tpm-dev', alice)
    const cold = await refusal(s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, tpmSas(alice, 'tpm-dev', s.nowSeconds() + 3600)), apiVersion: '2019-03-31' }))
    expect(cold.reason).toMatch(/no TPM challenge is outstanding/)
    alice.activate(base64Decode(await challenge(s, alice, 'tpm-dev')))
    s.clock.advance(61_000)
    const late = await refusal(s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, tpmSas(alice, 'tpm-dev', s.nowSeconds() + 3600)), apiVersion: '2019-03-31' }))
    expect(late.reason).toMatch(/expired/)
  })

  it('needs the SRK on the first leg and a well-formed EK', async () => {
    const s = world()
    await enroll(s, 'tpm-dev', alice)
    const noSrk = await refusal(s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, undefined, false), apiVersion: '2019-03-31' }))
    expect(noSrk.reason).toMatch(/storageRootKey is missing/)
    const junk = await refusal(s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: { type: 'tpm', endorsementKey: 'AAEAAQ==' }, apiVersion: '2019-03-31' }))
    expect(junk.code).toBe('ATTESTATION_MISMATCH')
    expect(junk.reason).toMatch(/tpm.endorsementKey/)
  })

  it('marks a proven device of a disabled enrollment disabled', async () => {
    const s = world()
    await enroll(s, 'tpm-dev', alice, 'disabled')
    alice.activate(base64Decode(await challenge(s, alice, 'tpm-dev')))
    const e = await refusal(s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, tpmSas(alice, 'tpm-dev', s.nowSeconds() + 3600)), apiVersion: '2019-03-31' }))
    expect(e.code).toBe('ENROLLMENT_DISABLED')
    expect((await s.engine.getRegistrationState(ID_SCOPE, 'tpm-dev'))?.status).toBe('disabled')
  })

  it('verifies polls with the second-leg token and refuses others', async () => {
    const s = world({ assignmentBudgetMs: 0 })
    const id = defaultRegistrationId(alice.endorsementKey())
    await enroll(s, id, alice)
    alice.activate(base64Decode(await challenge(s, alice, id)))
    const token = tpmSas(alice, id, s.nowSeconds() + 3600)
    const reply = await s.raw.register({ idScope: ID_SCOPE, registrationId: id, evidence: evidence(alice, token), apiVersion: '2019-03-31' })
    if (reply.status === 401) throw new Error('challenged again')
    expect(reply.status).toBe(202)
    const operationId = reply.body.operationId
    let poll = await s.raw.operationStatus({ idScope: ID_SCOPE, registrationId: id, operationId, evidence: evidence(alice, token) })
    for (let i = 0; i < 20 && poll.status === 202; i++) poll = await s.raw.operationStatus({ idScope: ID_SCOPE, registrationId: id, operationId, evidence: evidence(alice, token) })
    expect(poll.body.status).toBe('assigned')
    // The Node client polls with the token in Authorization and an empty body: SAS evidence.
    const bare = await s.raw.operationStatus({ idScope: ID_SCOPE, registrationId: id, operationId, evidence: { type: 'sas', token } })
    expect(bare.body.status).toBe('assigned')
    const forged = tpmSas(alice, id, s.nowSeconds() + 3600, (x) => hmacSha256(new Uint8Array(32).fill(2), x))
    const e = await refusal(s.raw.operationStatus({ idScope: ID_SCOPE, registrationId: id, operationId, evidence: evidence(alice, forged) }))
    expect(e.code).toBe('SAS_BAD_SIGNATURE')
  })

  it('shares challenges through the store: the second leg may reach another server process', async () => {
    // Two engines, each with its own verifier, on one store: what two `--workers` processes are.
    const store = new MemoryStore()
    const a = world({ store })
    const b = world({ store })
    await enroll(a, 'tpm-dev', alice)
    alice.activate(base64Decode(await challenge(a, alice, 'tpm-dev')))
    const token = tpmSas(alice, 'tpm-dev', a.nowSeconds() + 3600)
    const reply = await b.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, token), apiVersion: '2019-03-31' })
    if (reply.status === 401) throw new Error('second leg challenged again')
    expect(reply.status).toBe(200)
    expect(reply.body.registrationState).toMatchObject({ status: 'assigned', deviceId: 'tpm-dev' })
    // The answer is shared too: the first process refuses another token signed with the same key.
    const minted = tpmSas(alice, 'tpm-dev', a.nowSeconds() + 7200)
    const e = await refusal(a.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, minted), apiVersion: '2019-03-31' }))
    expect(e.reason).toMatch(/replayed TPM challenge/)
  })

  it('admits one of two different tokens answering one challenge at once on two processes', async () => {
    const store = new MemoryStore()
    const a = world({ store })
    const b = world({ store })
    await enroll(a, 'tpm-dev', alice)
    alice.activate(base64Decode(await challenge(a, alice, 'tpm-dev')))
    const tokens = [tpmSas(alice, 'tpm-dev', a.nowSeconds() + 3600), tpmSas(alice, 'tpm-dev', a.nowSeconds() + 3601)]
    const outcomes = await Promise.all(
      [a, b].map((s, i) => s.raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-dev', evidence: evidence(alice, tokens[i]), apiVersion: '2019-03-31' }).then((r) => r.status, (x: unknown) => x)),
    )
    expect(outcomes.filter((o) => o === 200)).toHaveLength(1)
    const refused = outcomes.find((o) => o !== 200)
    expect(refused).toBeInstanceOf(ProvisioError)
    expect((refused as ProvisioError).reason).toMatch(/replayed TPM challenge/)
  })
})
