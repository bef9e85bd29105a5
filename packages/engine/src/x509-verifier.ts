/**
 * The X.509 verifier (docs/protocol.md §6). The device authenticates with its TLS client
 * certificate chain (leaf first); the enrollment is found exactly as DPS finds it:
 *
 * 1. The leaf's subject CN must equal the registrationId (case-insensitively, as ids are, §0).
 * 2. The individual enrollment with that registrationId decides alone when it exists: the leaf
 *    must be its primary or secondary certificate and be within its validity period. A disabled
 *    enrollment refuses the (proven) device even where a group would admit it.
 * 3. Otherwise, X.509 enrollment groups: walking up the chain the device sent, the first
 *    certificate above the leaf that is a group's certificate picks that group; after the last
 *    certificate sent, a group certificate that issued it (by name) is tried. A group's
 *    certificates are its `signingCertificates` or the CA certificates its `caReferences` name,
 *    which count only once verified (proof of possession, ca-certificates.ts). The first match
 *    decides: the full path from the leaf to that certificate must validate (@provisio/x509:
 *    signatures in WASM, validity at the engine clock, CA rules, pathLen, clientAuth, critical
 *    extensions), else the device is refused; a disabled group refuses.
 *
 * Every refusal names the certificate and the rule (events, registration records); the device
 * only sees 401002. The hub identity: individual enrollments pin the enrollment's certificates by
 * SHA-256 thumbprint (`selfSigned`); groups create `certificateAuthority` devices, which the hub
 * admits by chain to a CA it trusts ([UNCERTAIN] in §6 which one DPS uses; this choice keeps an
 * individual device bound to exactly its certificate and a group device to its CA).
 */
import { sha256 } from '@provisio/crypto'
import { ProvisioError } from '@provisio/protocol'
import type { EnrollmentGroup, IndividualEnrollment, X509CertificateWithInfo } from '@provisio/protocol'
import {
  OID,
  X509Error,
  certificateInfo,
  decodeCertificateText,
  describeCertificate,
  namesEqual,
  parseCertificate,
  validatePath,
  type Certificate,
} from '@provisio/x509'
import type { AttestationContext, AttestationOutcome, AttestationVerifier } from './attestation.js'
import type { AssignmentRequest } from './store.js'
import { groupsOfType, individualEnrollment } from './group-cache.js'

/** Options of {@link createX509Verifier}. */
export interface X509VerifierOptions {
  /** Most certificates accepted in a device chain (default 10). */
  readonly maxChainLength?: number
  /** Most intermediates between leaf and enrollment certificate (default 8). */
  readonly maxIntermediates?: number
}

interface GroupAnchor {
  readonly group: EnrollmentGroup
  readonly cert: Certificate
  /** `signingCertificates.primary`, `caReferences.secondary ('name')`, … */
  readonly slot: string
}

/** Creates the X.509 verifier. */
export function createX509Verifier(options: X509VerifierOptions = {}): AttestationVerifier {
  const maxChain = options.maxChainLength ?? 10
  const parsed = new Map<string, Certificate[] | X509Error>()
  // Intermediates repeat across a fleet: parsed device certificates are kept by DER hash (a
  // SHA-256 in WASM costs far less than a PKI.js parse). Certificates are immutable values.
  const byDer = new Map<string, Certificate>()
  function parseDeviceCertificate(der: Uint8Array): Certificate {
    const digest = sha256(der)
    let key = ''
    for (const b of digest) key += String.fromCharCode(b)
    const hit = byDer.get(key)
    if (hit !== undefined && hit.der.length === der.length) return hit
    const cert = parseCertificate(der)
    if (byDer.size >= 2048) byDer.delete(byDer.keys().next().value as string)
    byDer.set(key, cert)
    return cert
  }

  /** Parses enrollment certificate text once (PEM or base64 DER); a bad one is an X509Error. */
  function certsOf(text: string): Certificate[] | X509Error {
    let hit = parsed.get(text)
    if (hit === undefined) {
      try {
        hit = decodeCertificateText(text).map(parseCertificate)
      } catch (e) {
        hit = e instanceof X509Error ? e : new X509Error('X509_MALFORMED', String(e))
      }
      if (parsed.size >= 4096) parsed.delete(parsed.keys().next().value as string)
      parsed.set(text, hit)
    }
    return hit
  }

  const x509Groups = groupsOfType('x509')

  /** The usable certificates of every X.509 group, and notes on the unusable ones (for reasons). */
  async function groupAnchors(ctx: AttestationContext, knownRevision: number | undefined): Promise<{ anchors: GroupAnchor[]; notes: string[] }> {
    const anchors: GroupAnchor[] = []
    const notes: string[] = []
    for (const g of await x509Groups(ctx, knownRevision)) {
      if (g.attestation.type !== 'x509') continue
      const x = g.attestation.x509
      const slots: [string, X509CertificateWithInfo | undefined][] = x.signingCertificates
        ? [['signingCertificates.primary', x.signingCertificates.primary], ['signingCertificates.secondary', x.signingCertificates.secondary]]
        : []
      for (const [slot, value] of slots) {
        if (value?.certificate === undefined) continue
        const certs = certsOf(value.certificate)
        if (certs instanceof X509Error) notes.push(`group '${g.enrollmentGroupId}' ${slot} does not parse (${certs.message})`)
        else anchors.push({ group: g, cert: certs[0]!, slot })
      }
      if (x.caReferences) {
        for (const [which, name] of [['primary', x.caReferences.primary], ['secondary', x.caReferences.secondary]] as const) {
          if (name === undefined) continue
          const slot = `caReferences.${which} ('${name}')`
          const ca = await ctx.store.getCaCertificate(ctx.idScope, name)
          if (!ca) {
            notes.push(`group '${g.enrollmentGroupId}' ${slot} names no CA certificate registered in ID scope ${ctx.idScope}`)
            continue
          }
          if (!ca.isVerified) {
            notes.push(`group '${g.enrollmentGroupId}' ${slot} names a CA certificate that is not verified (proof of possession pending)`)
            continue
          }
          const certs = certsOf(ca.certificate)
          if (certs instanceof X509Error) notes.push(`CA certificate '${name}' does not parse (${certs.message})`)
          else anchors.push({ group: g, cert: certs[0]!, slot })
        }
      }
    }
    return { anchors, notes }
  }

  function refuse(code: 'CERTIFICATE_INVALID' | 'CREDENTIALS_MISSING' | 'ENROLLMENT_NOT_FOUND' | 'ATTESTATION_MISMATCH', reason: string, enrollment?: { kind: 'individual' | 'group'; id: string }): AttestationOutcome {
    return { ok: false, error: new ProvisioError(code, reason), ...(enrollment ? { enrollment } : {}) }
  }

  function individual(ctx: AttestationContext, leaf: Certificate, e: IndividualEnrollment): AttestationOutcome {
    const ref = { kind: 'individual', id: e.registrationId } as const
    if (e.attestation.type !== 'x509') {
      return refuse('ATTESTATION_MISMATCH', `individual enrollment '${e.registrationId}' uses ${e.attestation.type} attestation, but the device presented an X.509 certificate`, ref)
    }
    const cc = e.attestation.x509.clientCertificates
    if (!cc) return refuse('ATTESTATION_MISMATCH', `individual enrollment '${e.registrationId}' has no clientCertificates to compare the device certificate with`, ref)
    let matched: 'primary' | 'secondary' | undefined
    const thumbprints: string[] = []
    for (const [name, value] of [['primary', cc.primary], ['secondary', cc.secondary]] as const) {
      if (value?.certificate === undefined) continue
      const certs = certsOf(value.certificate)
      if (certs instanceof X509Error) continue
      thumbprints.push(certs[0]!.sha256Thumbprint)
      if (matched === undefined && certs[0]!.sha256Hex === leaf.sha256Hex) matched = name
    }
    if (matched === undefined) {
      return refuse(
        'CERTIFICATE_INVALID',
        `device ${describeCertificate(leaf, 0)} is neither the primary nor the secondary certificate of individual enrollment '${e.registrationId}' (an individual enrollment decides alone, §6)`,
        ref,
      )
    }
    const who = `device ${describeCertificate(leaf, 0)}, the ${matched} certificate of individual enrollment '${e.registrationId}'`
    if (ctx.nowMs < leaf.notBeforeMs) return refuse('CERTIFICATE_INVALID', `${who}, is not valid before ${leaf.notBeforeIso}`, ref)
    if (ctx.nowMs > leaf.notAfterMs) return refuse('CERTIFICATE_INVALID', `${who}, expired at ${leaf.notAfterIso}`, ref)
    if (leaf.extKeyUsage && !leaf.extKeyUsage.includes(OID.clientAuth) && !leaf.extKeyUsage.includes(OID.anyExtendedKeyUsage)) {
      return refuse('CERTIFICATE_INVALID', `${who}, has extKeyUsage without clientAuth (RFC 5280 §4.2.1.12)`, ref)
    }
    if (e.provisioningStatus === 'disabled') {
      return {
        ok: false,
        enrollment: ref,
        disabled: true,
        error: new ProvisioError('ENROLLMENT_DISABLED', `individual enrollment '${e.registrationId}' is disabled (the device proved its ${matched} certificate); it blocks the device even if a group would admit it`),
      }
    }
    return {
      ok: true,
      enrollment: { kind: 'individual', value: e },
      auth: { type: 'selfSigned', thumbprints: { primary: thumbprints[0]!, ...(thumbprints[1] ? { secondary: thumbprints[1] } : {}) } },
      attestation: { x509: { certificateInfo: certificateInfo(leaf) } },
      detail: `individual enrollment '${e.registrationId}', ${matched} certificate`,
    }
  }

  async function groups(ctx: AttestationContext, chain: Certificate[], knownRevision: number | undefined): Promise<AttestationOutcome> {
    const { anchors, notes } = await groupAnchors(ctx, knownRevision)
    const leaf = chain[0]!
    let decided: GroupAnchor | undefined
    let position = 0
    // Walk up what the device sent: the first certificate above the leaf that is a group's decides.
    for (let i = 1; i < chain.length && !decided; i++) {
      decided = anchors.find((a) => a.cert.sha256Hex === chain[i]!.sha256Hex)
      position = i
    }
    // Then the certificate that issued the top of the chain, when the device did not send it.
    const top = chain[chain.length - 1]!
    if (!decided && !namesEqual(top.issuer, top.subject)) {
      decided = anchors.find((a) => namesEqual(a.cert.subject, top.issuer))
      position = chain.length
    }
    if (!decided) {
      const sent = chain.map((c, i) => describeCertificate(c, i)).join(' → ')
      const topNote = namesEqual(top.issuer, top.subject)
        ? `the top certificate is self-issued and is no group's certificate`
        : `the top certificate's issuer '${top.issuer.text}' was not sent and is no group's certificate (a missing intermediate?)`
      const sameName = anchors.filter((a) => chain.slice(1).some((c) => namesEqual(c.subject, a.cert.subject)))
      const clash = sameName.length > 0 ? `; group '${sameName[0]!.group.enrollmentGroupId}' holds a different certificate with the subject '${sameName[0]!.cert.subject.text}'` : ''
      return refuse(
        'ENROLLMENT_NOT_FOUND',
        `no individual enrollment '${ctx.registrationId}' in ID scope ${ctx.idScope}, and no X.509 enrollment group matches the chain the device sent (${sent}): ${topNote}${clash}${notes.length ? `; ${notes.join('; ')}` : ''}`,
      )
    }
    const g = decided.group
    const ref = { kind: 'group', id: g.enrollmentGroupId } as const
    const groupCerts = anchors.filter((a) => a.group === g).map((a) => a.cert)
    const result = validatePath(leaf, chain.slice(1), groupCerts, {
      nowMs: ctx.nowMs,
      requiredExtKeyUsage: OID.clientAuth,
      maxIntermediates: options.maxIntermediates ?? 8,
    })
    const via = `enrollment group '${g.enrollmentGroupId}' (its ${decided.slot}, ${describeCertificate(decided.cert)}, found at chain position ${position})`
    if (!result.ok) return refuse('CERTIFICATE_INVALID', `${via}: the chain does not validate: ${result.error.message}`, ref)
    if (g.provisioningStatus === 'disabled') {
      return { ok: false, enrollment: ref, disabled: true, error: new ProvisioError('ENROLLMENT_DISABLED', `${via} is disabled (the device chain validated)`) }
    }
    return {
      ok: true,
      enrollment: { kind: 'group', value: g },
      auth: { type: 'certificateAuthority' },
      attestation: { x509: { certificateInfo: certificateInfo(leaf), enrollmentGroupId: g.enrollmentGroupId, signingCertificateInfo: certificateInfo(result.anchor) } },
      detail: `${via}, path of ${result.path.length} certificate(s)`,
    }
  }

  /** Parses the device chain and checks the leaf CN against the registrationId. */
  function deviceChain(ctx: AttestationContext): Certificate[] | AttestationOutcome {
    if (ctx.evidence.type !== 'x509') return refuse('CREDENTIALS_MISSING', `X.509 attestation needs a TLS client certificate, got ${ctx.evidence.type} evidence`)
    const raw = ctx.evidence.chain
    if (raw.length === 0) return refuse('CREDENTIALS_MISSING', 'the device presented no client certificate')
    if (raw.length > maxChain) return refuse('CERTIFICATE_INVALID', `the device sent ${raw.length} certificates, over the limit of ${maxChain}`)
    const chain: Certificate[] = []
    for (let i = 0; i < raw.length; i++) {
      try {
        chain.push(parseDeviceCertificate(raw[i]!))
      } catch (e) {
        return refuse('CERTIFICATE_INVALID', `certificate ${i} sent by the device does not parse: ${e instanceof Error ? e.message : String(e)}`)
      }
    }
    const leaf = chain[0]!
    const cns = leaf.subject.commonNames
    if (cns.length !== 1 || cns[0]!.toLowerCase() !== ctx.registrationId.toLowerCase()) {
      return refuse(
        'CERTIFICATE_INVALID',
        `device ${describeCertificate(leaf, 0)} has subject CN ${cns.length === 0 ? '(none)' : `'${cns.join("', '")}'`}, but the registrationId is '${ctx.registrationId}' (§6: they must be equal)`,
      )
    }
    return chain
  }

  return {
    kind: 'x509',
    async attest(ctx: AttestationContext): Promise<AttestationOutcome> {
      const chain = deviceChain(ctx)
      if (!Array.isArray(chain)) return chain
      const first = await individualEnrollment(ctx)
      if (first.enrollment !== undefined) return individual(ctx, chain[0]!, first.enrollment)
      return groups(ctx, chain, first.groupsRevision)
    },
    async verifyRepeat(ctx: AttestationContext, request: AssignmentRequest): Promise<ProvisioError | undefined> {
      // A poll re-presents the client certificate: it must be the leaf that was admitted.
      const chain = deviceChain(ctx)
      if (!Array.isArray(chain)) return chain.ok ? undefined : chain.error
      const admitted = request.attestation.x509?.certificateInfo?.sha256Thumbprint
      if (admitted === undefined) return new ProvisioError('ATTESTATION_MISMATCH', 'the operation was not admitted by an X.509 certificate')
      if (admitted !== chain[0]!.sha256Thumbprint) {
        return new ProvisioError('CERTIFICATE_INVALID', `the poll presents ${describeCertificate(chain[0]!, 0)}, not the certificate admitted by ${request.enrollment.kind} enrollment '${request.enrollment.id}'`)
      }
      if (ctx.nowMs > chain[0]!.notAfterMs) return new ProvisioError('CERTIFICATE_INVALID', `device certificate expired at ${chain[0]!.notAfterIso}`)
      return undefined
    },
  }
}
