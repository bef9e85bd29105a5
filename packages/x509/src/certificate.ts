/**
 * Certificate parsing (RFC 5280 §4.1) with PKI.js and asn1js into a flat, immutable view holding
 * exactly what path validation and DPS need: the signed bytes, names (as DER for chaining and as
 * text for humans), validity, key, and the extensions we understand, decoded strictly.
 *
 * Size limits: a certificate is at most {@link MAX_CERTIFICATE_BYTES}; a malformed one is an
 * X509Error('X509_MALFORMED'), never an exception from the parser.
 */
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { base64Decode, sha256 } from '@provisio/crypto'
import type { X509CertificateInfo } from '@provisio/protocol'
import { X509Error } from './errors.js'
import { sha1 } from './sha1.js'

/** Largest certificate accepted (real device and CA certificates are 0.5-2 KiB). */
export const MAX_CERTIFICATE_BYTES = 16_384

/** OIDs of the extensions this package understands (RFC 5280 §4.2.1). */
export const OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  commonName: '2.5.4.3',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  anyExtendedKeyUsage: '2.5.29.37.0',
} as const

/** keyUsage bits (RFC 5280 §4.2.1.3), bit 0 = most significant bit of the first byte. */
export const KEY_USAGE = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const

/** One extension as it appears in the certificate. */
export interface RawExtension {
  readonly oid: string
  readonly critical: boolean
  readonly value: Uint8Array
}

/** A parsed certificate. */
export interface Certificate {
  readonly der: Uint8Array
  /** The signed TBSCertificate bytes. */
  readonly tbs: Uint8Array
  /** 1 for v1, 3 for v3 (the number people use, not the encoded 0/2). */
  readonly version: number
  readonly serialNumberHex: string
  /** signatureAlgorithm of the outer Certificate, and its DER parameters (absent or NULL → undefined). */
  readonly signatureAlgorithm: { readonly oid: string; readonly params?: Uint8Array }
  /** The TBSCertificate's copy of the algorithm (must equal the outer one, §4.1.1.2). */
  readonly tbsSignatureAlgorithm: { readonly oid: string; readonly params?: Uint8Array }
  readonly signature: Uint8Array
  readonly issuer: Name
  readonly subject: Name
  readonly notBeforeMs: number
  readonly notAfterMs: number
  readonly notBeforeIso: string
  readonly notAfterIso: string
  readonly spki: Uint8Array
  readonly extensions: readonly RawExtension[]
  /** Decoded extensions (undefined = absent). */
  readonly basicConstraints?: { readonly ca: boolean; readonly pathLen?: number; readonly critical: boolean }
  /** Bit set of KEY_USAGE values. */
  readonly keyUsage?: ReadonlySet<number>
  readonly extKeyUsage?: readonly string[]
  readonly subjectKeyId?: Uint8Array
  readonly authorityKeyId?: Uint8Array
  /** Lower-case hex SHA-256 of the DER (our key for certificates everywhere). */
  readonly sha256Hex: string
  /** Upper-case hex SHA-1 / SHA-256 as DPS and IoT Hub print them. */
  readonly sha1Thumbprint: string
  readonly sha256Thumbprint: string
}

/** A distinguished name. */
export interface Name {
  readonly der: Uint8Array
  /** RFC 4514-like text in certificate order, e.g. `CN=device-1, O=Contoso`. */
  readonly text: string
  /** Values of the commonName attributes, in order. */
  readonly commonNames: readonly string[]
  /** Normalised attribute list for comparison (RFC 5280 §7.1, simplified: case-folded, spaces collapsed). */
  readonly normalized: string
  readonly empty: boolean
}

const SHORT_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.5': 'SERIALNUMBER',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'E',
}

/** Hex of bytes. */
export function toHex(bytes: Uint8Array, upper = false): string {
  let s = ''
  for (const b of bytes) s += b.toString(16).padStart(2, '0')
  return upper ? s.toUpperCase() : s
}

function malformed(reason: string, cause?: unknown): X509Error {
  return new X509Error('X509_MALFORMED', `certificate is malformed: ${reason}`, { cause })
}

function bytesOf(view: ArrayBuffer | Uint8Array): Uint8Array {
  return view instanceof Uint8Array ? view.slice() : new Uint8Array(view.slice(0))
}

/**
 * Decodes certificate text in each encoding DPS accepts in `X509CertificateWithInfo.certificate`
 * and CA certificates (§7, docs/protocol.md §13.2): PEM (one or more blocks), base64 of
 * DER, and base64 of the PEM text (what the Azure portal uploads and Microsoft's Node e2e tests
 * send). Returns the DER of each certificate.
 *
 * @throws X509Error X509_MALFORMED saying which encoding was tried and why it failed;
 *   X509_TOO_LARGE past the size limit
 */
export function decodeCertificateText(text: string): Uint8Array[] {
  if (typeof text !== 'string') throw malformed(`certificate text must be a string, got ${text === null ? 'null' : typeof text}`)
  if (text.length > MAX_CERTIFICATE_BYTES * 12) throw new X509Error('X509_TOO_LARGE', `certificate text is ${text.length} characters, over the limit`)
  const blocks = pemBlocks(text)
  if (blocks.length > 0) return blocks.map((b64, i) => base64Body(b64, `PEM block ${i + 1}`))
  if (text.includes('-----BEGIN')) throw malformed('the text has a PEM header but no complete -----BEGIN CERTIFICATE----- … -----END CERTIFICATE----- block')
  const bytes = base64Body(text, 'the text (not PEM, so read as base64)')
  // base64 of PEM text: the decoded bytes are ASCII starting with the PEM armour (after blanks).
  let at = 0
  while (at < bytes.length && (bytes[at] === 0x20 || bytes[at] === 0x09 || bytes[at] === 0x0a || bytes[at] === 0x0d)) at++
  if (bytes[at] === 0x2d /* - */) {
    let inner = ''
    for (const b of bytes) {
      if (b > 0x7e) throw malformed('the base64 decodes to text that starts like PEM but is not ASCII')
      inner += String.fromCharCode(b)
    }
    const innerBlocks = pemBlocks(inner)
    if (innerBlocks.length === 0) throw malformed('the base64 decodes to text without a complete -----BEGIN CERTIFICATE----- block')
    return innerBlocks.map((b64, i) => base64Body(b64, `PEM block ${i + 1} inside the base64`))
  }
  return [bytes]
}

function pemBlocks(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => m[1]!)
}

function base64Body(b64: string, what: string): Uint8Array {
  const clean = b64.replace(/\s+/g, '')
  if (clean.length === 0) throw malformed(`${what} is empty`)
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw malformed(`${what} is neither PEM nor base64 (a character outside the base64 alphabet)`)
  try {
    return base64Decode(clean)
  } catch (error) {
    throw malformed(`${what} is not valid base64`, error)
  }
}

/** Encodes DER as a PEM certificate block. */
export function toPem(der: Uint8Array): string {
  let b64 = ''
  // base64 of the whole buffer, wrapped at 64 characters (RFC 7468 §2)
  const chars = base64Encode64(der)
  for (let i = 0; i < chars.length; i += 64) b64 += chars.slice(i, i + 64) + '\n'
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
function base64Encode64(bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0)
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]!
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63]! : '='
    out += i + 2 < bytes.length ? B64[n & 63]! : '='
  }
  return out
}

/** Parses one DER certificate. */
export function parseCertificate(der: Uint8Array): Certificate {
  if (!(der instanceof Uint8Array)) throw malformed('expected DER bytes')
  if (der.length > MAX_CERTIFICATE_BYTES) {
    throw new X509Error('X509_TOO_LARGE', `certificate is ${der.length} bytes, over the ${MAX_CERTIFICATE_BYTES}-byte limit`)
  }
  let cert: pkijs.Certificate
  let asn: ReturnType<typeof asn1js.fromBER>
  try {
    asn = asn1js.fromBER(der)
    if (asn.offset === -1 || asn.offset !== der.length) throw malformed(asn.offset === -1 ? 'not DER' : 'trailing bytes after the certificate')
    cert = new pkijs.Certificate({ schema: asn.result })
  } catch (e) {
    if (e instanceof X509Error) throw e
    throw malformed(e instanceof Error ? e.message : 'PKI.js could not decode it', e)
  }
  try {
    return fromPkijs(der.slice(), cert, (asn.result as asn1js.Sequence).valueBlock.value[0])
  } catch (e) {
    if (e instanceof X509Error) throw e
    throw malformed(e instanceof Error ? e.message : String(e), e)
  }
}

function algorithm(a: pkijs.AlgorithmIdentifier): { oid: string; params?: Uint8Array } {
  const p = a.algorithmParams as asn1js.AsnType | undefined
  if (p === undefined || p instanceof asn1js.Null) return { oid: a.algorithmId }
  return { oid: a.algorithmId, params: new Uint8Array(p.toBER(false)) }
}

function fromPkijs(der: Uint8Array, cert: pkijs.Certificate, tbsBlock?: asn1js.AsnType): Certificate {
  const extensions: RawExtension[] = (cert.extensions ?? []).map((e) => ({
    oid: e.extnID,
    critical: e.critical === true,
    value: bytesOf(e.extnValue.valueBlock.valueHexView),
  }))
  const seen = new Set<string>()
  for (const e of extensions) {
    // RFC 5280 §4.2: "A certificate MUST NOT include more than one instance of a particular extension."
    if (seen.has(e.oid)) throw new X509Error('X509_BAD_EXTENSION', `extension ${e.oid} appears more than once (RFC 5280 §4.2)`)
    seen.add(e.oid)
  }
  const ext = (oid: string) => extensions.find((e) => e.oid === oid)
  const notBefore = cert.notBefore.value
  const notAfter = cert.notAfter.value
  const tbs = bytesOf(cert.tbsView)
  const spki = spkiBytes(tbsBlock, cert)
  const bc = ext(OID.basicConstraints)
  const ku = ext(OID.keyUsage)
  const eku = ext(OID.extKeyUsage)
  const ski = ext(OID.subjectKeyIdentifier)
  const aki = ext(OID.authorityKeyIdentifier)
  const sha256Bytes = sha256(der)
  return {
    der,
    tbs,
    version: cert.version + 1,
    serialNumberHex: toHex(bytesOf(cert.serialNumber.valueBlock.valueHexView), true),
    signatureAlgorithm: algorithm(cert.signatureAlgorithm),
    tbsSignatureAlgorithm: algorithm(cert.signature),
    signature: bytesOf(cert.signatureValue.valueBlock.valueHexView),
    issuer: parseName(cert.issuer),
    subject: parseName(cert.subject),
    notBeforeMs: notBefore.getTime(),
    notAfterMs: notAfter.getTime(),
    notBeforeIso: notBefore.toISOString().replace('.000Z', 'Z'),
    notAfterIso: notAfter.toISOString().replace('.000Z', 'Z'),
    spki,
    extensions,
    ...(bc ? { basicConstraints: { ...decodeBasicConstraints(bc.value), critical: bc.critical } } : {}),
    ...(ku ? { keyUsage: decodeKeyUsage(ku.value) } : {}),
    ...(eku ? { extKeyUsage: decodeExtKeyUsage(eku.value) } : {}),
    ...(ski ? { subjectKeyId: decodeOctetString(ski.value, 'subjectKeyIdentifier') } : {}),
    ...(aki ? decodeAuthorityKeyId(aki.value) : {}),
    sha256Hex: toHex(sha256Bytes),
    sha1Thumbprint: toHex(sha1(der), true),
    sha256Thumbprint: toHex(sha256Bytes, true),
  }
}

/**
 * The SubjectPublicKeyInfo as it was received: the TBS's field after subject (RFC 5280 §4.1;
 * index 6 with the explicit [0] version, 5 without). Re-encoding PKI.js's object gave the same
 * bytes for DER input at several times the cost; anything unexpected falls back to it.
 */
function spkiBytes(tbsBlock: asn1js.AsnType | undefined, cert: pkijs.Certificate): Uint8Array {
  const fields = tbsBlock instanceof asn1js.Sequence ? tbsBlock.valueBlock.value : undefined
  if (fields !== undefined) {
    const first = fields[0]
    const versioned = first !== undefined && first.idBlock.tagClass === 3 && first.idBlock.tagNumber === 0
    const field = fields[versioned ? 6 : 5]
    if (field instanceof asn1js.Sequence && field.valueBeforeDecodeView.length > 0) return new Uint8Array(field.valueBeforeDecodeView)
  }
  return new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER(false))
}

function parseName(name: pkijs.RelativeDistinguishedNames): Name {
  const parts: string[] = []
  const norm: string[] = []
  const cns: string[] = []
  for (const tv of name.typesAndValues) {
    const v = tv.value as asn1js.AsnType & { valueBlock: { value?: unknown } }
    const text = typeof v.valueBlock.value === 'string' ? v.valueBlock.value : '#' + toHex(new Uint8Array(v.toBER(false)))
    if (tv.type === OID.commonName) cns.push(text)
    parts.push(`${SHORT_NAMES[tv.type] ?? tv.type}=${text}`)
    norm.push(`${tv.type}=${text.trim().replace(/\s+/g, ' ').toLowerCase()}`)
  }
  // The Name as received (PKI.js keeps it for a parsed name); re-encoding it meant parsing it again.
  const der = name.valueBeforeDecode.byteLength > 0 ? new Uint8Array(name.valueBeforeDecode.slice(0)) : new Uint8Array(name.toSchema().toBER(false))
  return { der, text: parts.join(', '), commonNames: cns, normalized: norm.join('\u0000'), empty: name.typesAndValues.length === 0 }
}

/** Names are equal when their DER is, or when they match attribute by attribute after RFC 5280 §7.1-style folding. */
export function namesEqual(a: Name, b: Name): boolean {
  if (a.der.length === b.der.length && a.der.every((x, i) => x === b.der[i])) return true
  return a.normalized === b.normalized
}

function decodeValue(value: Uint8Array, what: string): asn1js.AsnType {
  const asn = asn1js.fromBER(value)
  if (asn.offset === -1 || asn.offset !== value.length) throw new X509Error('X509_BAD_EXTENSION', `${what} extension value is not a single DER value`)
  return asn.result
}

function decodeBasicConstraints(value: Uint8Array): { ca: boolean; pathLen?: number } {
  const seq = decodeValue(value, 'basicConstraints')
  if (!(seq instanceof asn1js.Sequence)) throw new X509Error('X509_BAD_EXTENSION', 'basicConstraints is not a SEQUENCE (RFC 5280 §4.2.1.9)')
  let ca = false
  let pathLen: number | undefined
  for (const item of seq.valueBlock.value) {
    if (item instanceof asn1js.Boolean && pathLen === undefined) ca = item.valueBlock.value
    else if (item instanceof asn1js.Integer) {
      const n = item.valueBlock.valueDec
      if (!Number.isSafeInteger(n) || n < 0) throw new X509Error('X509_BAD_EXTENSION', 'basicConstraints pathLenConstraint is not a non-negative integer')
      pathLen = n
    } else throw new X509Error('X509_BAD_EXTENSION', 'basicConstraints holds something other than cA and pathLenConstraint')
  }
  return pathLen === undefined ? { ca } : { ca, pathLen }
}

function decodeKeyUsage(value: Uint8Array): Set<number> {
  const bits = decodeValue(value, 'keyUsage')
  if (!(bits instanceof asn1js.BitString)) throw new X509Error('X509_BAD_EXTENSION', 'keyUsage is not a BIT STRING (RFC 5280 §4.2.1.3)')
  const bytes = bits.valueBlock.valueHexView
  const unused = bits.valueBlock.unusedBits
  const out = new Set<number>()
  for (let i = 0; i < bytes.length * 8 - unused; i++) if ((bytes[i >> 3]! >> (7 - (i & 7))) & 1) out.add(i)
  return out
}

function decodeExtKeyUsage(value: Uint8Array): string[] {
  const seq = decodeValue(value, 'extKeyUsage')
  if (!(seq instanceof asn1js.Sequence) || seq.valueBlock.value.length === 0) {
    throw new X509Error('X509_BAD_EXTENSION', 'extKeyUsage is not a non-empty SEQUENCE OF KeyPurposeId (RFC 5280 §4.2.1.12)')
  }
  return seq.valueBlock.value.map((v) => {
    if (!(v instanceof asn1js.ObjectIdentifier)) throw new X509Error('X509_BAD_EXTENSION', 'extKeyUsage holds a non-OID KeyPurposeId')
    return v.valueBlock.toString()
  })
}

function decodeOctetString(value: Uint8Array, what: string): Uint8Array {
  const v = decodeValue(value, what)
  if (!(v instanceof asn1js.OctetString)) throw new X509Error('X509_BAD_EXTENSION', `${what} is not an OCTET STRING`)
  return bytesOf(v.valueBlock.valueHexView)
}

function decodeAuthorityKeyId(value: Uint8Array): { authorityKeyId?: Uint8Array } {
  const seq = decodeValue(value, 'authorityKeyIdentifier')
  if (!(seq instanceof asn1js.Sequence)) throw new X509Error('X509_BAD_EXTENSION', 'authorityKeyIdentifier is not a SEQUENCE (RFC 5280 §4.2.1.1)')
  for (const item of seq.valueBlock.value) {
    // keyIdentifier [0] IMPLICIT OCTET STRING
    if (item.idBlock.tagClass === 3 && item.idBlock.tagNumber === 0) {
      const hex = (item.valueBlock as unknown as { valueHexView?: Uint8Array }).valueHexView
      if (hex !== undefined) return { authorityKeyId: bytesOf(hex) }
    }
  }
  return {}
}

/** X509CertificateInfo as DPS reports it (§1.3). */
export function certificateInfo(cert: Certificate): X509CertificateInfo {
  return {
    subjectName: cert.subject.text,
    sha1Thumbprint: cert.sha1Thumbprint,
    sha256Thumbprint: cert.sha256Thumbprint,
    issuerName: cert.issuer.text,
    notBeforeUtc: cert.notBeforeIso,
    notAfterUtc: cert.notAfterIso,
    serialNumber: cert.serialNumberHex,
    version: cert.version,
  }
}

/** A short label for reasons: `certificate 1 ('CN=Intermediate', sha256 1a2b3c4d…)`. */
export function describeCertificate(cert: Certificate, position?: number): string {
  const where = position === undefined ? 'certificate' : `certificate ${position}`
  return `${where} ('${cert.subject.text.slice(0, 120)}', sha256 ${cert.sha256Hex.slice(0, 16)}…)`
}
