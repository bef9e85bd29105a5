/**
 * Building the leaf certificates DPS issues from a device's CSR (docs/protocol.md §1.7). The
 * to-be-signed part is assembled here with PKI.js; the signature comes from a caller-supplied
 * function, so the CA's private key stays with whoever holds it (the server, through a port) and
 * this package stays free of platform crypto.
 */
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { publicKeyFromSpki } from '@provisio/crypto'
import { formatDpsTimestamp } from '@provisio/protocol'
import { OID, parseCertificate, type Certificate } from './certificate.js'
import { X509Error } from './errors.js'
import { sha1 } from './sha1.js'

/** Signature algorithms a CA may sign issued certificates with. */
export type IssuerSignatureAlgorithm = 'ecdsa-sha256' | 'ecdsa-sha384' | 'rsa-sha256'

const SIGNATURE_OIDS: Record<IssuerSignatureAlgorithm, string> = {
  'ecdsa-sha256': '1.2.840.10045.4.3.2',
  'ecdsa-sha384': '1.2.840.10045.4.3.3',
  'rsa-sha256': '1.2.840.113549.1.1.11',
}

/** Key types a CSR may request (what the WebAssembly verifiers can check a CSR's signature with). */
export type RequestedKeyType = 'ecdsa-p256' | 'ecdsa-p384' | `rsa-${number}`

/**
 * The key type of a SubjectPublicKeyInfo, e.g. `ecdsa-p256` or `rsa-2048`; an X509Error when the
 * key is of a type the verifiers do not support.
 */
export function requestedKeyType(spki: Uint8Array): RequestedKeyType {
  let key: ReturnType<typeof publicKeyFromSpki>
  try {
    key = publicKeyFromSpki(spki)
  } catch (e) {
    throw new X509Error('X509_UNSUPPORTED_ALGORITHM', `requested key: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  }
  if (key.type === 'ec') return key.curve === 'P-256' ? 'ecdsa-p256' : 'ecdsa-p384'
  return `rsa-${key.bits}`
}

/** What goes into an issued leaf. */
export interface LeafCertificateRequest {
  /** DER of the issuing CA's certificate (its subject becomes the issuer; its key id the AKI). */
  readonly issuer: Uint8Array
  readonly signatureAlgorithm: IssuerSignatureAlgorithm
  /** Subject common name (the registration id). */
  readonly commonName: string
  /** SubjectPublicKeyInfo DER of the device's key, from its CSR. */
  readonly spki: Uint8Array
  /** Serial number, big-endian, 1-20 bytes, positive (top bit clear). */
  readonly serial: Uint8Array
  readonly notBeforeMs: number
  readonly notAfterMs: number
}

/** Signs the DER of a TBSCertificate; returns the signature value as X.509 carries it (ECDSA: DER SEQUENCE of r, s). */
export type TbsSigner = (tbs: Uint8Array) => Promise<Uint8Array>

/**
 * Builds and signs a client-authentication leaf: subject CN, basicConstraints cA=false,
 * keyUsage digitalSignature (plus keyEncipherment for RSA keys), extKeyUsage clientAuth,
 * subject and authority key identifiers. Returns the parsed certificate.
 */
export async function issueLeafCertificate(request: LeafCertificateRequest, sign: TbsSigner): Promise<Certificate> {
  if (request.serial.length === 0 || request.serial.length > 20 || (request.serial[0]! & 0x80) !== 0) {
    throw new X509Error('X509_MALFORMED', 'serial number must be 1-20 bytes and positive (RFC 5280 §4.1.2.2)')
  }
  if (!(request.notAfterMs > request.notBeforeMs)) throw new X509Error('X509_MALFORMED', 'notAfter must be later than notBefore')
  const issuer = parseCertificate(request.issuer)
  const issuerPki = new pkijs.Certificate({ schema: asn1js.fromBER(request.issuer).result })
  const keyType = requestedKeyType(request.spki)
  const spki = new pkijs.PublicKeyInfo({ schema: asn1js.fromBER(request.spki).result })

  const cert = new pkijs.Certificate()
  cert.version = 2
  cert.serialNumber = new asn1js.Integer({ valueHex: request.serial })
  const sigOid = SIGNATURE_OIDS[request.signatureAlgorithm]
  const algorithm = new pkijs.AlgorithmIdentifier({
    algorithmId: sigOid,
    ...(request.signatureAlgorithm.startsWith('rsa') ? { algorithmParams: new asn1js.Null() } : {}),
  })
  cert.signature = algorithm
  cert.signatureAlgorithm = algorithm
  cert.issuer = issuerPki.subject
  cert.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: request.commonName }) }))
  cert.notBefore = asn1Time(request.notBeforeMs)
  cert.notAfter = asn1Time(request.notAfterMs)
  cert.subjectPublicKeyInfo = spki
  const keyId = sha1(new Uint8Array(spki.subjectPublicKey.valueBlock.valueHexView))
  // digitalSignature (bit 0); RSA keys also keyEncipherment (bit 2) for TLS stacks that want it.
  const usage = keyType.startsWith('rsa') ? 0xa0 : 0x80
  cert.extensions = [
    extension(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: false }).toSchema()),
    extension(OID.keyUsage, true, new asn1js.BitString({ valueHex: new Uint8Array([usage]), unusedBits: keyType.startsWith('rsa') ? 5 : 7 })),
    extension(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.clientAuth] }).toSchema()),
    extension(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: keyId })),
    extension(OID.authorityKeyIdentifier, false, new pkijs.AuthorityKeyIdentifier({
      keyIdentifier: new asn1js.OctetString({ valueHex: issuer.subjectKeyId ?? sha1(publicKeyBits(issuerPki)) }),
    }).toSchema()),
  ]
  const tbs = new Uint8Array(cert.encodeTBS().toBER(false))
  const signature = await sign(tbs)
  const der = new asn1js.Sequence({
    value: [asn1js.fromBER(tbs).result, algorithm.toSchema(), new asn1js.BitString({ valueHex: signature })],
  }).toBER(false)
  return parseCertificate(new Uint8Array(der))
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, `Z`. */
function asn1Time(epochMs: number): pkijs.Time {
  const iso = formatDpsTimestamp(epochMs) // YYYY-MM-DDTHH:MM:SS.fffffffZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '')
  const year = Number(digits.slice(0, 4))
  const schema = year < 2050 ? new asn1js.UTCTime({ value: digits.slice(2) + 'Z' }) : new asn1js.GeneralizedTime({ value: digits + 'Z' })
  return new pkijs.Time({ schema })
}

function publicKeyBits(cert: pkijs.Certificate): Uint8Array {
  return new Uint8Array(cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView)
}

function extension(extnID: string, critical: boolean, value: asn1js.AsnType): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) })
}
