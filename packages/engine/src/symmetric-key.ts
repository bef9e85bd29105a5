/**
 * The symmetric-key verifier (docs/protocol.md §2.1, §2.2). A device token names no enrollment, so:
 *
 * 1. An individual enrollment with this registrationId decides alone: its primary key, then its
 *    secondary key. If it is disabled, the device is refused even where a group would admit it
 *    (an individual enrollment overrides groups, as in the X.509 selection order of §6).
 * 2. Otherwise every symmetric-key group is a candidate: the device key is
 *    HMAC-SHA256(groupKey, registrationId) for the group's primary and secondary keys (§2.2),
 *    and the first group (in id order) whose derived key verifies the token admits the device.
 *    Group HMAC key schedules are cached per group key, so a derivation costs two SHA-256
 *    compressions; the group list is re-read only when the store's groups revision moves. A fast
 *    pass checks each derived key against the signature over `sr` as sent with a raw-key HMAC (no
 *    key objects, nothing cached per device); the full protocol verification (skn, resource,
 *    expiry) then runs on the matching group only, and the lenient `sr` spellings of §2.1 only
 *    when no group matched. (The crypto batch API derives many ids under one key; a registration
 *    needs one id under many keys, so the prepared per-group keys serve it.)
 *
 * Every refusal says which enrollment and which key failed, or that the token expired or named
 * another resource; the device only sees 401002 (protocol error catalog).
 */
import { ProvisioError } from '@provisio/protocol'
import type { EnrollmentGroup, IndividualEnrollment } from '@provisio/protocol'
import type { AttestationContext, AttestationOutcome, AttestationVerifier } from './attestation.js'
import type { AssignmentRequest } from './store.js'
import { base64Encode, utf8Encode } from '@provisio/crypto'
import { deviceKeyDeriver, parseDeviceToken, signatureMatches, verifyDeviceToken, type DeviceKeyDeriver, type ParsedDeviceToken } from './internal/sas.js'
import { groupsOfType, individualEnrollment } from './group-cache.js'

const EMPTY = new Uint8Array(0)

/** Options of {@link createSymmetricKeyVerifier}. */
export interface SymmetricKeyVerifierOptions {
  /** Maximum number of group keys whose HMAC schedules are cached (default 4096). */
  readonly keyCacheSize?: number
}

/** Creates the symmetric-key verifier. */
export function createSymmetricKeyVerifier(options: SymmetricKeyVerifierOptions = {}): AttestationVerifier {
  const derivers = new Map<string, DeviceKeyDeriver>()
  const keyCacheSize = options.keyCacheSize ?? 4096

  function deriverFor(groupKey: string): DeviceKeyDeriver | undefined {
    let d = derivers.get(groupKey)
    if (d === undefined) {
      const made = deviceKeyDeriver(groupKey)
      if (made === undefined) return undefined
      if (derivers.size >= keyCacheSize) derivers.delete(derivers.keys().next().value as string)
      derivers.set(groupKey, (d = made))
    }
    return d
  }

  const symmetricGroups = groupsOfType('symmetricKey')

  function expectedResource(ctx: AttestationContext): string {
    return `${ctx.idScope}/registrations/${ctx.registrationId}`
  }

  function individual(ctx: AttestationContext, token: ParsedDeviceToken, e: IndividualEnrollment): AttestationOutcome {
    const ref = { kind: 'individual', id: e.registrationId } as const
    if (e.attestation.type !== 'symmetricKey') {
      return {
        ok: false,
        enrollment: ref,
        error: new ProvisioError(
          'ATTESTATION_MISMATCH',
          `individual enrollment '${e.registrationId}' uses ${e.attestation.type} attestation, but the device presented a SAS token`,
        ),
      }
    }
    const keys = [e.attestation.symmetricKey.primaryKey ?? '', e.attestation.symmetricKey.secondaryKey ?? '']
    const verdict = verifyDeviceToken(token, keys, expectedResource(ctx), ctx.nowMs, ctx.clockSkewSeconds)
    if (!verdict.ok) {
      return { ok: false, enrollment: ref, error: refine(verdict.error, `individual enrollment '${e.registrationId}'`) }
    }
    const keyName = verdict.keyIndex === 0 ? 'primary' : 'secondary'
    if (e.provisioningStatus === 'disabled') {
      return {
        ok: false,
        enrollment: ref,
        disabled: true,
        error: new ProvisioError(
          'ENROLLMENT_DISABLED',
          `individual enrollment '${e.registrationId}' is disabled (token verified with its ${keyName} key); it blocks the device even if a group would admit it`,
        ),
      }
    }
    return {
      ok: true,
      enrollment: { kind: 'individual', value: e },
      auth: { type: 'sas', primaryKey: keys[0]!, secondaryKey: keys[1]! },
      attestation: { symmetricKey: {} },
      detail: `individual enrollment '${e.registrationId}', ${keyName} key`,
    }
  }

  async function groups(ctx: AttestationContext, token: ParsedDeviceToken, knownRevision: number | undefined): Promise<AttestationOutcome> {
    const candidates = await symmetricGroups(ctx, knownRevision)
    if (candidates.length === 0) {
      return {
        ok: false,
        error: new ProvisioError('ENROLLMENT_NOT_FOUND', `no individual enrollment '${ctx.registrationId}' in ID scope ${ctx.idScope}, and there are no symmetric-key enrollment groups`),
      }
    }
    const id = utf8Encode(ctx.registrationId)
    // Fast pass: derive each group's device keys (two compressions each on the cached group key
    // schedule) and check the signature over `sr` as sent with the raw derived key. The full
    // verification (skn, resource, expiry, other `sr` spellings) then runs on the match only.
    for (const g of candidates) {
      const derived = deriveBoth(g, id)
      const which = derived.primary && signatureMatches(token, derived.primary) ? 0 : derived.secondary && signatureMatches(token, derived.secondary) ? 1 : -1
      if (which >= 0) return admitByGroup(ctx, token, g, derived, which)
    }
    // Slow pass, only when nothing matched: a client that signed another spelling of `sr` (§2.1).
    for (const g of candidates) {
      const derived = deriveBoth(g, id)
      const verdict = verifyDeviceToken(token, [derived.primary ?? EMPTY, derived.secondary ?? EMPTY], expectedResource(ctx), ctx.nowMs, ctx.clockSkewSeconds)
      if (verdict.ok || verdict.error.code !== 'SAS_BAD_SIGNATURE') return admitByGroup(ctx, token, g, derived, verdict.ok ? verdict.keyIndex : 0)
    }
    const tried = candidates.map((g) => g.enrollmentGroupId)
    return {
      ok: false,
      error: new ProvisioError(
        'SAS_BAD_SIGNATURE',
        `no individual enrollment '${ctx.registrationId}' in ID scope ${ctx.idScope}, and no device key derived from the ${tried.length} symmetric-key group(s) (${tried.slice(0, 5).join(', ')}${tried.length > 5 ? ', …' : ''}) verifies the token`,
      ),
    }
  }

  function deriveBoth(g: EnrollmentGroup, id: Uint8Array): { primary?: Uint8Array; secondary?: Uint8Array } {
    const sk = g.attestation.type === 'symmetricKey' ? g.attestation.symmetricKey : {}
    const p = sk.primaryKey === undefined ? undefined : deriverFor(sk.primaryKey)
    const s = sk.secondaryKey === undefined ? undefined : deriverFor(sk.secondaryKey)
    return { ...(p ? { primary: p(id) } : {}), ...(s ? { secondary: s(id) } : {}) }
  }

  /** The group whose derived key signed the token: full verification, then the verdict. */
  function admitByGroup(
    ctx: AttestationContext,
    token: ParsedDeviceToken,
    g: EnrollmentGroup,
    derived: { primary?: Uint8Array; secondary?: Uint8Array },
    which: number,
  ): AttestationOutcome {
    const ref = { kind: 'group', id: g.enrollmentGroupId } as const
    const key = which === 0 ? derived.primary : derived.secondary
    const verdict = verifyDeviceToken(token, [key ?? EMPTY], expectedResource(ctx), ctx.nowMs, ctx.clockSkewSeconds)
    if (!verdict.ok) return { ok: false, enrollment: ref, error: refine(verdict.error, `enrollment group '${g.enrollmentGroupId}'`) }
    const keyName = which === 0 ? 'primary' : 'secondary'
    if (g.provisioningStatus === 'disabled') {
      return {
        ok: false,
        enrollment: ref,
        disabled: true,
        error: new ProvisioError(
          'ENROLLMENT_DISABLED',
          `enrollment group '${g.enrollmentGroupId}' is disabled (device key derived from its ${keyName} key verified the token)`,
        ),
      }
    }
    return {
      ok: true,
      enrollment: { kind: 'group', value: g },
      auth: { type: 'sas', primaryKey: derived.primary ? base64Encode(derived.primary) : '', secondaryKey: derived.secondary ? base64Encode(derived.secondary) : '' },
      attestation: { symmetricKey: { enrollmentGroupId: g.enrollmentGroupId } },
      detail: `enrollment group '${g.enrollmentGroupId}', device key derived from the group's ${keyName} key`,
    }
  }

  return {
    kind: 'symmetricKey',
    async attest(ctx: AttestationContext): Promise<AttestationOutcome> {
      if (ctx.evidence.type !== 'sas') {
        return { ok: false, error: new ProvisioError('CREDENTIALS_MISSING', `symmetric-key attestation needs a SAS token, got ${ctx.evidence.type} evidence`) }
      }
      const token = parseDeviceToken(ctx.evidence.token)
      if (!token.ok) return { ok: false, error: token.error }
      const first = await individualEnrollment(ctx)
      if (first.enrollment !== undefined) return individual(ctx, token.token, first.enrollment)
      return groups(ctx, token.token, first.groupsRevision)
    },
    async verifyRepeat(ctx: AttestationContext, request: AssignmentRequest): Promise<ProvisioError | undefined> {
      if (ctx.evidence.type !== 'sas') return new ProvisioError('CREDENTIALS_MISSING', `poll of a symmetric-key registration needs a SAS token, got ${ctx.evidence.type} evidence`)
      if (request.auth.type !== 'sas') return new ProvisioError('ATTESTATION_MISMATCH', 'the operation was not admitted by a symmetric key')
      const token = parseDeviceToken(ctx.evidence.token)
      if (!token.ok) return token.error
      const verdict = verifyDeviceToken(
        token.token,
        [request.auth.primaryKey, request.auth.secondaryKey],
        expectedResource(ctx),
        ctx.nowMs,
        ctx.clockSkewSeconds,
      )
      return verdict.ok ? undefined : refine(verdict.error, `the keys that admitted ${request.enrollment.kind} enrollment '${request.enrollment.id}'`)
    },
  }
}

/** Prefixes the verdict's reason with what was checked, keeping code and cause. */
function refine(error: ProvisioError, against: string): ProvisioError {
  const what = error.code === 'SAS_BAD_SIGNATURE' ? `token signature matches neither the primary nor the secondary key of ${against}` : `${against}: ${error.reason}`
  return new ProvisioError(error.code, error.code === 'SAS_BAD_SIGNATURE' ? `${what} (${error.reason})` : what, { cause: error })
}
