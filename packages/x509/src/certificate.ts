/**
 * Certificate parsing (RFC 5280 §4.1) with the lean DER reader (der.ts) into a flat, immutable
 * view holding exactly what path validation and DPS need: the signed bytes, names (as DER for
 * chaining and as text for humans), validity, key, and the extensions we understand, decoded
 * strictly. Byte fields are views into one private copy of the DER; nothing else is copied.
 *
 * Size limits: a certificate is at most {@link MAX_CERTIFICATE_BYTES}; a malformed one is an
 * X509Error('X509_MALFORMED'), never an exception from the parser.
 */
import { base64Decode, sha256 } from '@provisio/crypto'
import type { X509CertificateInfo } from '@provisio/protocol'
import {
  CONTEXT,
  type DerElement,
  TAG,
  bitString,
  booleanValue,
  checkInteger,
  checkStructure,
  children,
  content,
  encoding,
  isContext,
  isUniversal,
  isoSeconds,
  oidText,
  readSingle,
  smallInteger,
  stringValue,
  timeValue,
} from './der.js'
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
  try {
    return readCertificate(der.slice())
  } catch (e) {
    if (e instanceof X509Error) {
      if (e.code === 'X509_MALFORMED' && !e.message.startsWith('certificate is malformed')) throw malformed(e.message, e)
      throw e
    }
    throw malformed(e instanceof Error ? e.message : String(e), e)
  }
}

/**
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue } and
 * TBSCertificate (RFC 5280 §4.1), read in place by the lean DER reader (der.ts).
 */
function readCertificate(der: Uint8Array): Certificate {
  const outer = readSingle(der, 'the certificate')
  if (!isUniversal(outer, TAG.sequence)) throw malformed('the certificate is not a SEQUENCE')
  checkStructure(outer)
  const top = children(outer, 'Certificate')
  if (top.length !== 3) throw malformed(`Certificate has ${top.length} fields, not 3 (RFC 5280 §4.1.1)`)
  const [tbsEl, sigAlgEl, sigEl] = top as [DerElement, DerElement, DerElement]
  if (!isUniversal(tbsEl, TAG.sequence)) throw malformed('tbsCertificate is not a SEQUENCE')
  const signatureAlgorithm = readAlgorithm(sigAlgEl, 'signatureAlgorithm')
  const sig = bitString(sigEl, 'signatureValue')
  if (sig.unused !== 0) throw malformed('signatureValue has unused bits')

  const f = children(tbsEl, 'TBSCertificate')
  let i = 0
  let version = 1
  if (isContext(f[0], 0)) {
    const v = children(f[0]!, 'version')
    if (v.length !== 1) throw malformed('version [0] does not hold one INTEGER')
    checkInteger(v[0]!, 'version')
    const n = smallInteger(v[0]!)
    if (n === undefined || n > 2) throw malformed('version is not v1, v2 or v3 (RFC 5280 §4.1.2.1)')
    version = n + 1
    i = 1
  }
  const need = (what: string): DerElement => {
    const e = f[i++]
    if (e === undefined) throw malformed(`TBSCertificate ends before ${what}`)
    return e
  }
  const serialEl = need('serialNumber')
  if (!isUniversal(serialEl, TAG.integer) || serialEl.end === serialEl.contentStart) throw malformed('serialNumber is not an INTEGER')
  const tbsSignatureAlgorithm = readAlgorithm(need('signature'), 'TBSCertificate signature')
  const issuer = readName(need('issuer'), 'issuer')
  const validity = need('validity')
  if (!isUniversal(validity, TAG.sequence)) throw malformed('validity is not a SEQUENCE')
  const times = children(validity, 'validity')
  if (times.length !== 2) throw malformed('validity does not hold notBefore and notAfter')
  const notBeforeMs = timeValue(times[0]!, 'notBefore')
  const notAfterMs = timeValue(times[1]!, 'notAfter')
  const subject = readName(need('subject'), 'subject')
  const spkiEl = need('subjectPublicKeyInfo')
  if (!isUniversal(spkiEl, TAG.sequence)) throw malformed('subjectPublicKeyInfo is not a SEQUENCE')
  const spkiParts = children(spkiEl, 'subjectPublicKeyInfo')
  if (spkiParts.length !== 2) throw malformed('subjectPublicKeyInfo does not hold an algorithm and a key')
  readAlgorithm(spkiParts[0]!, 'subjectPublicKeyInfo algorithm')
  bitString(spkiParts[1]!, 'subjectPublicKey')
  let extensions: RawExtension[] = []
  let last = -1
  for (; i < f.length; i++) {
    const e = f[i]!
    const n = e.tagClass === CONTEXT ? e.tag : -1
    if (n < 1 || n > 3 || n <= last) throw malformed('TBSCertificate has an unexpected field after subjectPublicKeyInfo')
    last = n
    if (n === 3) {
      if (!e.constructed) throw malformed('extensions [3] is not constructed')
      const inner = children(e, 'extensions')
      if (inner.length !== 1 || !isUniversal(inner[0], TAG.sequence)) throw malformed('extensions [3] does not hold one SEQUENCE')
      extensions = readExtensions(inner[0]!)
    }
  }
  const seen = new Set<string>()
  for (const e of extensions) {
    // RFC 5280 §4.2: "A certificate MUST NOT include more than one instance of a particular extension."
    if (seen.has(e.oid)) throw new X509Error('X509_BAD_EXTENSION', `extension ${e.oid} appears more than once (RFC 5280 §4.2)`)
    seen.add(e.oid)
  }
  const ext = (oid: string) => extensions.find((e) => e.oid === oid)
  const bc = ext(OID.basicConstraints)
  const ku = ext(OID.keyUsage)
  const eku = ext(OID.extKeyUsage)
  const ski = ext(OID.subjectKeyIdentifier)
  const aki = ext(OID.authorityKeyIdentifier)
  const sha256Bytes = sha256(der)
  let sha1Thumbprint: string | undefined
  return {
    der,
    tbs: encoding(tbsEl),
    version,
    serialNumberHex: toHex(content(serialEl), true),
    signatureAlgorithm,
    tbsSignatureAlgorithm,
    signature: sig.bytes,
    issuer,
    subject,
    notBeforeMs,
    notAfterMs,
    notBeforeIso: isoSeconds(notBeforeMs),
    notAfterIso: isoSeconds(notAfterMs),
    spki: encoding(spkiEl),
    extensions,
    ...(bc ? { basicConstraints: { ...decodeBasicConstraints(bc.value), critical: bc.critical } } : {}),
    ...(ku ? { keyUsage: decodeKeyUsage(ku.value) } : {}),
    ...(eku ? { extKeyUsage: decodeExtKeyUsage(eku.value) } : {}),
    ...(ski ? { subjectKeyId: decodeOctetString(ski.value, 'subjectKeyIdentifier') } : {}),
    ...(aki ? decodeAuthorityKeyId(aki.value) : {}),
    sha256Hex: toHex(sha256Bytes),
    // SHA-1 (in TypeScript) only when someone asks: validation never does.
    get sha1Thumbprint(): string {
      return (sha1Thumbprint ??= toHex(sha1(der), true))
    },
    sha256Thumbprint: toHex(sha256Bytes, true),
  }
}

/** AlgorithmIdentifier (RFC 5280 §4.1.1.2): parameters absent or NULL → undefined, else their DER. */
function readAlgorithm(e: DerElement, what: string): { oid: string; params?: Uint8Array } {
  if (!isUniversal(e, TAG.sequence)) throw malformed(`${what} is not an AlgorithmIdentifier SEQUENCE`)
  const parts = children(e, what)
  if (parts.length < 1 || parts.length > 2) throw malformed(`${what} does not hold an algorithm and at most one parameter`)
  const oid = oidText(parts[0]!, `${what} algorithm`)
  const p = parts[1]
  if (p === undefined || (isUniversal(p, TAG.null) && p.end === p.contentStart)) return { oid }
  return { oid, params: encoding(p) }
}

/** Name ::= SEQUENCE OF SET OF AttributeTypeAndValue (RFC 5280 §4.1.2.4). */
function readName(e: DerElement, what: string): Name {
  if (!isUniversal(e, TAG.sequence)) throw malformed(`${what} is not a Name SEQUENCE`)
  const parts: string[] = []
  const norm: string[] = []
  const cns: string[] = []
  let count = 0
  for (const rdn of children(e, what)) {
    if (!isUniversal(rdn, TAG.set)) throw malformed(`${what} has a RelativeDistinguishedName that is not a SET`)
    for (const atv of children(rdn, what)) {
      if (!isUniversal(atv, TAG.sequence)) throw malformed(`${what} has an attribute that is not a SEQUENCE`)
      const tv = children(atv, what)
      if (tv.length !== 2) throw malformed(`${what} has an attribute without exactly a type and a value`)
      const type = oidText(tv[0]!, `${what} attribute type`)
      const text = stringValue(tv[1]!) ?? '#' + toHex(encoding(tv[1]!))
      if (type === OID.commonName) cns.push(text)
      parts.push(`${SHORT_NAMES[type] ?? type}=${text}`)
      norm.push(`${type}=${text.trim().replace(/\s+/g, ' ').toLowerCase()}`)
      count++
    }
  }
  return { der: encoding(e), text: parts.join(', '), commonNames: cns, normalized: norm.join('\u0000'), empty: count === 0 }
}

/** Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension (RFC 5280 §4.1.2.9). */
function readExtensions(seq: DerElement): RawExtension[] {
  const out: RawExtension[] = []
  for (const x of children(seq, 'extensions')) {
    if (!isUniversal(x, TAG.sequence)) throw malformed('an extension is not a SEQUENCE')
    const parts = children(x, 'extension')
    if (parts.length < 2 || parts.length > 3) throw malformed('an extension does not hold extnID, critical and extnValue')
    const oid = oidText(parts[0]!, 'extnID')
    let critical = false
    if (parts.length === 3) critical = booleanValue(parts[1]!, `extension ${oid} critical`)
    const value = parts[parts.length - 1]!
    if (!isUniversal(value, TAG.octetString)) throw malformed(`extension ${oid} extnValue is not an OCTET STRING`)
    out.push({ oid, critical, value: content(value) })
  }
  return out
}

/** Names are equal when their DER is, or when they match attribute by attribute after RFC 5280 §7.1-style folding. */
export function namesEqual(a: Name, b: Name): boolean {
  if (a.der.length === b.der.length) {
    let same = true
    for (let i = 0; i < a.der.length; i++) {
      if (a.der[i] !== b.der[i]) {
        same = false
        break
      }
    }
    if (same) return true
  }
  return a.normalized === b.normalized
}

function decodeValue(value: Uint8Array, what: string): DerElement {
  const e = readSingle(value, `${what} extension value`, 'X509_BAD_EXTENSION')
  try {
    checkStructure(e)
  } catch (err) {
    throw new X509Error('X509_BAD_EXTENSION', `${what} extension value is not a single DER value (${(err as Error).message})`)
  }
  return e
}

function badExtension(reason: string): X509Error {
  return new X509Error('X509_BAD_EXTENSION', reason)
}

function decodeBasicConstraints(value: Uint8Array): { ca: boolean; pathLen?: number } {
  const seq = decodeValue(value, 'basicConstraints')
  if (!isUniversal(seq, TAG.sequence)) throw badExtension('basicConstraints is not a SEQUENCE (RFC 5280 §4.2.1.9)')
  let ca = false
  let pathLen: number | undefined
  for (const item of children(seq, 'basicConstraints')) {
    if (isUniversal(item, TAG.boolean) && pathLen === undefined) ca = booleanValue(item, 'basicConstraints cA', 'X509_BAD_EXTENSION')
    else if (isUniversal(item, TAG.integer)) {
      checkInteger(item, 'basicConstraints pathLenConstraint', 'X509_BAD_EXTENSION')
      const n = smallInteger(item)
      if (n === undefined) throw badExtension('basicConstraints pathLenConstraint is not a non-negative integer')
      pathLen = n
    } else throw badExtension('basicConstraints holds something other than cA and pathLenConstraint')
  }
  return pathLen === undefined ? { ca } : { ca, pathLen }
}

function decodeKeyUsage(value: Uint8Array): Set<number> {
  const e = decodeValue(value, 'keyUsage')
  if (!isUniversal(e, TAG.bitString)) throw badExtension('keyUsage is not a BIT STRING (RFC 5280 §4.2.1.3)')
  const { bytes, unused } = bitString(e, 'keyUsage', 'X509_BAD_EXTENSION')
  const out = new Set<number>()
  for (let i = 0; i < bytes.length * 8 - unused; i++) if ((bytes[i >> 3]! >> (7 - (i & 7))) & 1) out.add(i)
  return out
}

function decodeExtKeyUsage(value: Uint8Array): string[] {
  const seq = decodeValue(value, 'extKeyUsage')
  const items = isUniversal(seq, TAG.sequence) ? children(seq, 'extKeyUsage') : []
  if (items.length === 0) throw badExtension('extKeyUsage is not a non-empty SEQUENCE OF KeyPurposeId (RFC 5280 §4.2.1.12)')
  return items.map((v) => {
    if (!isUniversal(v, TAG.oid)) throw badExtension('extKeyUsage holds a non-OID KeyPurposeId')
    return oidText(v, 'extKeyUsage KeyPurposeId', 'X509_BAD_EXTENSION')
  })
}

function decodeOctetString(value: Uint8Array, what: string): Uint8Array {
  const v = decodeValue(value, what)
  if (!isUniversal(v, TAG.octetString)) throw badExtension(`${what} is not an OCTET STRING`)
  return content(v)
}

function decodeAuthorityKeyId(value: Uint8Array): { authorityKeyId?: Uint8Array } {
  const seq = decodeValue(value, 'authorityKeyIdentifier')
  if (!isUniversal(seq, TAG.sequence)) throw badExtension('authorityKeyIdentifier is not a SEQUENCE (RFC 5280 §4.2.1.1)')
  for (const item of children(seq, 'authorityKeyIdentifier')) {
    // keyIdentifier [0] IMPLICIT OCTET STRING
    if (isContext(item, 0) && !item.constructed) return { authorityKeyId: content(item) }
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
