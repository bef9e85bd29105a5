/**
 * Certificate issuance at registration (docs/protocol.md §1.7): the `csr` a device sends with its
 * register call is checked once the device has proved its onboarding credential, and the
 * assignment answers with `issuedCertificateChain` (leaf, the CA, its issuers up to the root).
 */
import { base64Decode, base64Encode } from '@provisio/crypto'
import { ProvisioError, acceptApiVersion } from '@provisio/protocol'
import { X509Error, issueLeafCertificate, parseCertificationRequest, requestedKeyType } from '@provisio/x509'
import type { CertificateAuthorities, IssuingAuthority, Random } from './ports.js'

const DAY_MS = 86_400_000
/** Issued certificates start a little in the past: device clocks lag. */
const BACKDATE_MS = 5 * 60_000

function refuse(reason: string, cause?: unknown): ProvisioError {
  return new ProvisioError('CSR_INVALID', reason, { deviceMessage: reason, ...(cause === undefined ? {} : { cause }) })
}

/**
 * Checks a register call's `csr`: allowed at this api-version, an instance CA exists, the request
 * decodes, its self-signature verifies, its CN is the registration id, its key type is in the
 * policy. Throws ProvisioError CSR_INVALID (400040) saying which.
 */
export function checkCsr(
  authorities: CertificateAuthorities | undefined,
  idScope: string,
  registrationId: string,
  csr: string,
  apiVersion: string,
): void {
  if (!acceptApiVersion(apiVersion, 'device').certificateIssuance) {
    throw refuse(`csr is accepted from api-version 2025-07-01-preview on; this request uses ${apiVersion}`)
  }
  const authority = authorities?.forInstance(idScope)
  if (authority === undefined) throw refuse(`ID scope ${idScope} issues no certificates (no certificate authority is configured)`)
  let der: Uint8Array
  try {
    der = base64Decode(csr)
  } catch (e) {
    throw refuse('csr is not base64', e)
  }
  let parsed: ReturnType<typeof parseCertificationRequest>
  try {
    parsed = parseCertificationRequest(der)
  } catch (e) {
    throw refuse(e instanceof X509Error ? e.message : `csr could not be read: ${String(e)}`, e)
  }
  const cns = parsed.subjectCommonNames
  if (cns.length !== 1 || cns[0] !== registrationId) {
    throw refuse(`csr subject CN is ${cns.length ? `'${cns.join("', '")}'` : '(none)'}, but the registration id is '${registrationId}'`)
  }
  checkKeyType(authority, parsed.spki)
}

function checkKeyType(authority: IssuingAuthority, spki: Uint8Array): void {
  let type: string
  try {
    type = requestedKeyType(spki)
  } catch (e) {
    throw refuse(e instanceof Error ? e.message : String(e), e)
  }
  const allowed = authority.policy.keyTypes
  if (type.startsWith('rsa-')) {
    const bits = Number(type.slice(4))
    if (!allowed.includes('rsa')) throw refuse(`the credential policy does not accept RSA keys (accepted: ${allowed.join(', ')})`)
    if (bits < 2048 || bits > 4096) throw refuse(`RSA keys must have 2048-4096 bits; the csr's key has ${bits}`)
    return
  }
  if (!allowed.includes(type as 'ecdsa-p256')) throw refuse(`the credential policy does not accept ${type} keys (accepted: ${allowed.join(', ')})`)
}

/** One issued certificate, as the registration record keeps it. */
export interface IssuedCertificate {
  /** Serial number, upper-case hex. */
  readonly serialNumber: string
  readonly notBeforeMs: number
  readonly notAfterMs: number
  readonly sha256Thumbprint: string
}

/**
 * Issues the certificate for an accepted `csr`: leaf first, then the CA chain, as base64 DER
 * (`issuedCertificateChain`, §1.3).
 */
export async function issueFromCsr(
  authority: IssuingAuthority,
  random: Random,
  registrationId: string,
  csr: string,
  nowMs: number,
): Promise<{ chain: string[]; issued: IssuedCertificate }> {
  const request = parseCertificationRequest(base64Decode(csr))
  const issuer = authority.chain[0]
  if (issuer === undefined) throw new ProvisioError('INTERNAL_ERROR', 'the certificate authority has no certificate')
  const serial = random.bytes(16)
  serial[0] = serial[0]! & 0x7f
  if (serial[0] === 0) serial[0] = 0x01
  const notBeforeMs = nowMs - BACKDATE_MS
  const leaf = await issueLeafCertificate(
    {
      issuer,
      signatureAlgorithm: authority.signatureAlgorithm,
      commonName: registrationId,
      spki: request.spki,
      serial,
      notBeforeMs,
      notAfterMs: nowMs + authority.policy.validityDays * DAY_MS,
    },
    (tbs) => authority.sign(tbs),
  )
  return {
    chain: [leaf.der, ...authority.chain].map((der) => base64Encode(der)),
    issued: { serialNumber: leaf.serialNumberHex.toUpperCase(), notBeforeMs: leaf.notBeforeMs, notAfterMs: leaf.notAfterMs, sha256Thumbprint: leaf.sha256Thumbprint },
  }
}
