/**
 * The TPM verifier (docs/protocol.md §5.1-§5.6, §10 item 7). Two legs over one registration:
 *
 * 1. First leg (no SAS token): the device's EK must be the EK of its individual enrollment (DPS has
 *    no TPM enrollment groups; EKs are compared by RSA modulus, §5.1). The verifier draws a fresh
 *    HMAC key K, builds the activation blob for EK + SRK (@provisio/tpm, §5.4/§5.6), remembers K
 *    for this device, and answers with the challenge (HTTP 401 `authenticationKey`, `keyName`).
 * 2. Second leg (SAS token signed inside the TPM with the imported key): the token must verify
 *    with K (HMAC-SHA256(K, sr + "\n" + se) over `sr` as sent: the Node TPM client URL-encodes it,
 *    §2.1, §11). A challenge admits one registration: a second use is refused as a replay, and an
 *    unanswered challenge expires. Admission mints another key K2 and a fresh blob for it, which
 *    goes to `registrationState.tpm.authenticationKey`; the hub identity is created with K2
 *    (§5.2 item 4: the device imports it and signs its hub tokens with it).
 *
 * A challenge is bound to the first token that answers it: that same token may be presented
 * again while the answer is kept (`answeredTtlMs`): polls of the operation, a client's retry of
 * the same request, and the AMQP flow, which checks the token at SASL time and then registers
 * with it (§5.3). Any other token signed with K is a replayed challenge and is refused, so K
 * cannot mint a second credential: a new registration needs a new challenge, i.e. the TPM again.
 *
 * Challenges live in the store (`addTpmChallenge`, `listTpmChallenges`, `answerTpmChallenge`), not
 * in this verifier: the two legs of a device may reach different server processes (`provisio serve
 * --workers`, several instances on one PostgreSQL database), and the answer is a compare-and-set
 * there, so two legs racing with different tokens cannot both be admitted.
 */
import { ProvisioError, formatDpsTimestamp } from '@provisio/protocol'
import type { IndividualEnrollment } from '@provisio/protocol'
import { base64Decode, base64Encode, sha256 } from '@provisio/crypto'
import {
  buildActivationBlob,
  checkEndorsementKey,
  checkStorageRootKey,
  decodeTpm2bPublicBase64,
  sameEndorsementKey,
  type RsaPublic,
} from '@provisio/tpm'
import type { AttestationContext, AttestationOutcome, AttestationVerifier } from './attestation.js'
import type { Random } from './ports.js'
import type { AssignmentRequest } from './store.js'
import { parseDeviceToken, verifyDeviceToken } from './internal/sas.js'

/** Options of {@link createTpmVerifier}. */
export interface TpmVerifierOptions {
  /** Randomness for keys, OAEP seeds, wrapper keys and challenge ids. */
  readonly random: Random
  /** How long an unanswered challenge stays valid (default 5 minutes). */
  readonly challengeTtlMs?: number
  /** How long an answered challenge still verifies polls of its operation (default 30 minutes). */
  readonly answeredTtlMs?: number
  /**
   * Challenges kept per device (default 4): a first leg does not cancel the previous ones, so
   * someone who knows a device's EK (a public key) cannot knock out the challenge the device is
   * answering by asking for new ones. Only enrolled EKs get challenges, so this also bounds what
   * the store keeps; lapsed challenges are dropped as new ones are added.
   */
  readonly challengesPerDevice?: number
}

const HUB_KEY_BYTES = 32

/** Short fingerprint of an RSA modulus for refusal reasons. */
function fingerprint(ek: RsaPublic): string {
  const d = sha256(ek.unique)
  let s = ''
  for (let i = 0; i < 6; i++) s += d[i]!.toString(16).padStart(2, '0')
  return `sha256(modulus)=${s}…`
}

function hex(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += b.toString(16).padStart(2, '0')
  return s
}

function iso(ms: number): string {
  return formatDpsTimestamp(ms)
}

/** Creates the TPM verifier. */
export function createTpmVerifier(options: TpmVerifierOptions): AttestationVerifier {
  const challengeTtlMs = options.challengeTtlMs ?? 5 * 60_000
  const answeredTtlMs = options.answeredTtlMs ?? 30 * 60_000
  const perDevice = Math.max(1, options.challengesPerDevice ?? 4)
  const random = (n: number): Uint8Array => options.random.bytes(n)

  function parseKey(text: string | undefined, what: string, role: 'EK' | 'SRK'): RsaPublic | ProvisioError {
    if (text === undefined || text.length === 0) {
      return new ProvisioError('CREDENTIALS_MISSING', `${what} is missing${role === 'SRK' ? ': the activation blob is built for the SRK (docs/protocol.md §5.4)' : ''}`)
    }
    try {
      const decoded = decodeTpm2bPublicBase64(text, what)
      return role === 'EK' ? checkEndorsementKey(decoded.public, what) : checkStorageRootKey(decoded.public, what)
    } catch (error) {
      return new ProvisioError('ATTESTATION_MISMATCH', error instanceof Error ? error.message : String(error), { cause: error })
    }
  }

  /** The individual enrollment whose EK is the device's, or the refusal. */
  async function enrollmentFor(ctx: AttestationContext, ek: RsaPublic): Promise<{ readonly ok: true; readonly value: IndividualEnrollment } | Extract<AttestationOutcome, { ok: false }>> {
    const e = await ctx.store.getEnrollment(ctx.idScope, ctx.registrationId)
    if (e === undefined) {
      return {
        ok: false,
        error: new ProvisioError(
          'ENROLLMENT_NOT_FOUND',
          `unknown EK (${fingerprint(ek)}): no individual enrollment '${ctx.registrationId}' in ID scope ${ctx.idScope} (TPM devices need an individual enrollment; DPS has no TPM groups)`,
        ),
      }
    }
    const ref = { kind: 'individual', id: e.registrationId } as const
    if (e.attestation.type !== 'tpm') {
      return { ok: false, enrollment: ref, error: new ProvisioError('ATTESTATION_MISMATCH', `individual enrollment '${e.registrationId}' uses ${e.attestation.type} attestation, but the device presented a TPM endorsement key`) }
    }
    const enrolled = parseKey(e.attestation.tpm.endorsementKey, `endorsement key of individual enrollment '${e.registrationId}'`, 'EK')
    if (enrolled instanceof ProvisioError) return { ok: false, enrollment: ref, error: enrolled }
    if (!sameEndorsementKey(enrolled, ek)) {
      return {
        ok: false,
        enrollment: ref,
        error: new ProvisioError('ATTESTATION_MISMATCH', `unknown EK: the device's EK (${fingerprint(ek)}) is not the EK of individual enrollment '${e.registrationId}' (${fingerprint(enrolled)})`),
      }
    }
    return { ok: true, value: e }
  }

  async function attest(ctx: AttestationContext): Promise<AttestationOutcome> {
    const evidence = ctx.evidence
    if (evidence.type !== 'tpm') {
      return { ok: false, error: new ProvisioError('CREDENTIALS_MISSING', `TPM attestation needs an endorsement key, got ${evidence.type} evidence`) }
    }
    const ek = parseKey(evidence.endorsementKey, 'tpm.endorsementKey', 'EK')
    if (ek instanceof ProvisioError) return { ok: false, error: ek }
    const found = await enrollmentFor(ctx, ek)
    if (!found.ok) return found
    const e = found.value
    const ref = { kind: 'individual', id: e.registrationId } as const

    if (evidence.token === undefined) {
      // First leg (§5.2 steps 1-2): a fresh key and its activation blob.
      const srk = parseKey(evidence.storageRootKey, 'tpm.storageRootKey', 'SRK')
      if (srk instanceof ProvisioError) return { ok: false, enrollment: ref, error: srk }
      const key = random(32)
      let blob: Uint8Array
      try {
        blob = buildActivationBlob({ endorsementKey: ek, storageRootKey: srk, key, random })
      } catch (error) {
        return { ok: false, enrollment: ref, error: new ProvisioError('ATTESTATION_MISMATCH', `cannot build an activation blob for this EK/SRK: ${error instanceof Error ? error.message : String(error)}`) }
      }
      const expiresAtMs = ctx.nowMs + challengeTtlMs
      await ctx.store.addTpmChallenge(
        ctx.idScope,
        {
          challengeId: hex(random(16)),
          registrationId: ctx.registrationId,
          key: base64Encode(key),
          endorsementKey: evidence.endorsementKey!,
          storageRootKey: evidence.storageRootKey!,
          issuedAtMs: ctx.nowMs,
          expiresAtMs,
          keepUntilMs: expiresAtMs,
        },
        perDevice,
        ctx.nowMs,
      )
      return {
        ok: false,
        enrollment: ref,
        error: new ProvisioError('CREDENTIALS_MISSING', `TPM challenge issued to individual enrollment '${e.registrationId}'; the device must activate it and sign a SAS token`),
        challenge: { authenticationKey: base64Encode(blob), keyName: 'registration' },
      }
    }

    // Second leg (§5.2 step 3): which of the device's challenges (if any) signed the token.
    const kept = await ctx.store.listTpmChallenges(ctx.idScope, ctx.registrationId, ctx.nowMs)
    const restart = 'register again without Authorization for a new challenge'
    if (kept.length === 0) {
      return {
        ok: false,
        enrollment: ref,
        error: new ProvisioError(
          'CREDENTIALS_MISSING',
          `no TPM challenge is outstanding for device '${ctx.registrationId}' in ID scope ${ctx.idScope} (never issued, expired unanswered after ${challengeTtlMs / 1000} s, or answered more than ${answeredTtlMs / 1000} s ago); ${restart}`,
        ),
      }
    }
    const token = parseDeviceToken(evidence.token)
    if (!token.ok) return { ok: false, enrollment: ref, error: token.error }
    const verdict = verifyDeviceToken(token.token, kept.map((x) => base64Decode(x.key)), `${ctx.idScope}/registrations/${ctx.registrationId}`, ctx.nowMs, ctx.clockSkewSeconds)
    if (!verdict.ok) {
      const last = kept[kept.length - 1]!
      const why = verdict.error.code === 'SAS_BAD_SIGNATURE'
        ? `the SAS signature is not HMAC-SHA256 with the key of any of the ${kept.length} TPM challenge(s) kept for this device (latest issued at ${iso(last.issuedAtMs)}; unanswered ones expire after ${challengeTtlMs / 1000} s) (${verdict.error.reason})`
        : `TPM challenge SAS: ${verdict.error.reason}`
      return { ok: false, enrollment: ref, error: new ProvisioError(verdict.error.code, why, { cause: verdict.error }) }
    }
    let c = kept[verdict.keyIndex]!
    const challengedEk = parseKey(c.endorsementKey, 'endorsement key of the TPM challenge', 'EK')
    const challengedSrk = parseKey(c.storageRootKey, 'storage root key of the TPM challenge', 'SRK')
    if (challengedEk instanceof ProvisioError) return { ok: false, enrollment: ref, error: challengedEk }
    if (challengedSrk instanceof ProvisioError) return { ok: false, enrollment: ref, error: challengedSrk }
    if (!sameEndorsementKey(challengedEk, ek)) {
      return { ok: false, enrollment: ref, error: new ProvisioError('ATTESTATION_MISMATCH', `the EK of this request (${fingerprint(ek)}) is not the EK the challenge was issued to (${fingerprint(challengedEk)})`) }
    }
    if (c.answeredToken === undefined) {
      // Compare-and-set in the store: of two legs racing with different tokens (on two server
      // processes), one answers and the other sees that answer.
      const answered = await ctx.store.answerTpmChallenge(ctx.idScope, c.challengeId, evidence.token, ctx.nowMs, ctx.nowMs + answeredTtlMs)
      if (answered === undefined) {
        return { ok: false, enrollment: ref, error: new ProvisioError('CREDENTIALS_MISSING', `the TPM challenge issued at ${iso(c.issuedAtMs)} expired at ${iso(c.expiresAtMs)} (challenges live ${challengeTtlMs / 1000} s); ${restart}`) }
      }
      c = answered
    }
    if (c.answeredToken !== evidence.token) {
      return {
        ok: false,
        enrollment: ref,
        error: new ProvisioError(
          'CREDENTIALS_MISSING',
          `replayed TPM challenge: the challenge issued at ${iso(c.issuedAtMs)} was already answered at ${iso(c.answeredAtMs ?? c.issuedAtMs)} with another token; a challenge admits one token; ${restart}`,
        ),
      }
    }
    if (e.provisioningStatus === 'disabled') {
      return { ok: false, enrollment: ref, disabled: true, error: new ProvisioError('ENROLLMENT_DISABLED', `individual enrollment '${e.registrationId}' is disabled (the device proved its TPM)`) }
    }
    // The hub key and its blob (§5.2 item 4, §10 item 7).
    const hubKey = random(HUB_KEY_BYTES)
    let blob: Uint8Array
    try {
      blob = buildActivationBlob({ endorsementKey: ek, storageRootKey: challengedSrk, key: hubKey, random })
    } catch (error) {
      return { ok: false, enrollment: ref, error: new ProvisioError('ATTESTATION_MISMATCH', `cannot build the hub-key activation blob: ${error instanceof Error ? error.message : String(error)}`) }
    }
    return {
      ok: true,
      enrollment: { kind: 'individual', value: e },
      // The device holds only the primary key; the secondary lets an operator rotate it.
      auth: { type: 'sas', primaryKey: base64Encode(hubKey), secondaryKey: base64Encode(random(HUB_KEY_BYTES)) },
      attestation: { tpm: { authenticationKey: base64Encode(blob) } },
      detail: `individual enrollment '${e.registrationId}', TPM EK ${fingerprint(ek)}`,
    }
  }

  return {
    kind: 'tpm',
    attest,
    async verifyRepeat(ctx: AttestationContext, request: AssignmentRequest): Promise<ProvisioError | undefined> {
      // Polls carry the second-leg token, with or without the `tpm` body (the Node client sends `{}`).
      const evidence = ctx.evidence
      const text = evidence.type === 'tpm' || evidence.type === 'sas' ? evidence.token : undefined
      if (text === undefined) {
        return new ProvisioError('CREDENTIALS_MISSING', 'a poll of a TPM registration needs the SAS token of the second leg')
      }
      if (request.enrollment.kind !== 'individual') return new ProvisioError('ATTESTATION_MISMATCH', 'the operation was not admitted by TPM attestation')
      const answered = (await ctx.store.listTpmChallenges(ctx.idScope, ctx.registrationId, ctx.nowMs)).filter((x) => x.answeredToken !== undefined)
      if (answered.length === 0) {
        return new ProvisioError('CREDENTIALS_MISSING', `no answered TPM challenge is kept for device '${ctx.registrationId}' (polls verify for ${answeredTtlMs / 1000} s after admission); register again without Authorization`)
      }
      const token = parseDeviceToken(text)
      if (!token.ok) return token.error
      const verdict = verifyDeviceToken(token.token, answered.map((x) => base64Decode(x.key)), `${ctx.idScope}/registrations/${ctx.registrationId}`, ctx.nowMs, ctx.clockSkewSeconds)
      if (!verdict.ok) return new ProvisioError(verdict.error.code, `poll of a TPM registration: ${verdict.error.reason}`, { cause: verdict.error })
      const c = answered[verdict.keyIndex]!
      if (c.answeredToken !== text) {
        return new ProvisioError('CREDENTIALS_MISSING', `poll of a TPM registration with a token other than the one that answered the challenge at ${iso(c.answeredAtMs!)} (replayed challenge key)`)
      }
      return undefined
    },
  }
}
