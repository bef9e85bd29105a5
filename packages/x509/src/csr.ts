/**
 * PKCS#10 certification requests (RFC 2986) as DPS devices send them in `csr` (docs/protocol.md
 * §1.2: base64 DER, subject CN = registrationId). Parsed with PKI.js; the self-signature, which
 * proves possession of the key, is checked with the WASM core like certificate signatures.
 */
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { sha256 } from '@provisio/crypto'
import { type Certificate, toHex } from './certificate.js'
import { X509Error } from './errors.js'
import { checkSignature } from './signature.js'

/** Largest CSR accepted. */
export const MAX_CSR_BYTES = 8192

/** A parsed, self-signature-checked certification request. */
export interface CertificationRequest {
  readonly der: Uint8Array
  readonly subjectCommonNames: readonly string[]
  readonly subjectText: string
  /** SubjectPublicKeyInfo DER of the requested key. */
  readonly spki: Uint8Array
}

/** Parses a DER PKCS#10 request and verifies its self-signature; an X509Error says what is wrong. */
export function parseCertificationRequest(der: Uint8Array): CertificationRequest {
  if (!(der instanceof Uint8Array) || der.length === 0) throw new X509Error('X509_MALFORMED', 'csr is empty')
  if (der.length > MAX_CSR_BYTES) throw new X509Error('X509_TOO_LARGE', `csr is ${der.length} bytes, over the ${MAX_CSR_BYTES}-byte limit`)
  let req: pkijs.CertificationRequest
  try {
    const asn = asn1js.fromBER(der)
    if (asn.offset === -1 || asn.offset !== der.length) throw new Error(asn.offset === -1 ? 'not DER' : 'trailing bytes')
    req = new pkijs.CertificationRequest({ schema: asn.result })
  } catch (e) {
    throw new X509Error('X509_MALFORMED', `csr is not a PKCS#10 CertificationRequest: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  }
  const cns: string[] = []
  const parts: string[] = []
  for (const tv of req.subject.typesAndValues) {
    const v = (tv.value as unknown as { valueBlock: { value?: unknown } }).valueBlock.value
    const text = typeof v === 'string' ? v : '?'
    if (tv.type === '2.5.4.3') cns.push(text)
    parts.push(`${tv.type === '2.5.4.3' ? 'CN' : tv.type}=${text}`)
  }
  const spki = new Uint8Array(req.subjectPublicKeyInfo.toSchema().toBER(false))
  const sigAlg = req.signatureAlgorithm
  const params = sigAlg.algorithmParams as asn1js.AsnType | undefined
  // The request signs itself: present it to checkSignature as a certificate issued by its own key.
  const self = {
    tbs: new Uint8Array(req.tbsView),
    signature: new Uint8Array(req.signatureValue.valueBlock.valueHexView),
    signatureAlgorithm: params === undefined || params instanceof asn1js.Null ? { oid: sigAlg.algorithmId } : { oid: sigAlg.algorithmId, params: new Uint8Array(params.toBER(false)) },
    subject: { text: parts.join(', ') },
    spki,
    // key cache identity: the requested key itself
    sha256Hex: 'spki:' + toHex(sha256(spki)),
  } as unknown as Certificate
  const bad = checkSignature(self, self)
  if (bad) throw new X509Error(bad.code, `csr self-signature: ${bad.message}`)
  return { der: der.slice(), subjectCommonNames: cns, subjectText: parts.join(', '), spki }
}
