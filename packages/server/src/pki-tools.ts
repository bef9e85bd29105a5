/**
 * `provisio pki`: test PKI for X.509 attestation (docs/protocol.md §6) — root CAs, intermediates,
 * device certificates (RSA-2048, ECDSA P-256 or P-384) and the proof-of-possession certificate
 * for a CA's verification code. Made with PKI.js over Node's WebCrypto, kept as PEM files in one
 * directory: `<name>.pem` (certificate), `<name>-key.pem` (PKCS#8 key), and for certificates
 * below a root `<name>-chain.pem` (the certificate followed by its intermediates, not the root:
 * what a device presents in TLS).
 */
import { webcrypto } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { writeFileAtomic } from './files.js'
import { fromPem, toPem } from './pki.js'

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto })
const DAY_MS = 86_400_000

/** Key types of `provisio pki`. */
export type PkiKeyType = 'rsa' | 'ec' | 'ec384'

/** What kind of certificate to make. */
export type PkiKind = 'root' | 'intermediate' | 'device' | 'verification'

/** Arguments of {@link issuePkiCertificate}. */
export interface PkiRequest {
  readonly kind: PkiKind
  /** Directory of the PEM files. */
  readonly dir: string
  /** File base name of the new certificate. */
  readonly name: string
  /** Subject CN: a CA name, the device's registrationId, or the verification code. */
  readonly commonName: string
  /** File base name of the issuing CA in `dir` (all kinds but `root`). */
  readonly issuer?: string
  readonly keyType?: PkiKeyType
  readonly days?: number
  /** pathLenConstraint of a CA. */
  readonly pathLength?: number
  readonly nowMs: number
}

/** Paths written by {@link issuePkiCertificate}. */
export interface PkiResult {
  readonly certificatePath: string
  readonly keyPath: string
  readonly chainPath?: string
}

function algorithm(type: PkiKeyType): RsaHashedKeyGenParams | EcKeyGenParams {
  if (type === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
  return { name: 'ECDSA', namedCurve: type === 'ec' ? 'P-256' : 'P-384' }
}

function extension(extnID: string, critical: boolean, value: asn1js.AsnType): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) })
}

function keyUsage(bits: number): asn1js.BitString {
  let unused = 0
  while (unused < 7 && ((bits >> unused) & 1) === 0) unused++
  return new asn1js.BitString({ valueHex: new Uint8Array([bits]).buffer, unusedBits: unused })
}

async function keyId(cert: pkijs.Certificate): Promise<ArrayBuffer> {
  return webcrypto.subtle.digest('SHA-1', cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView)
}

/** The issuing CA's certificate and private key from `dir`, or an error that says which file is missing. */
async function loadIssuer(dir: string, name: string): Promise<{ cert: pkijs.Certificate; key: CryptoKey; chainPem: string; selfSigned: boolean }> {
  const certPath = join(dir, `${name}.pem`)
  const keyPath = join(dir, `${name}-key.pem`)
  for (const p of [certPath, keyPath]) if (!existsSync(p)) throw new Error(`issuer '${name}': ${p} does not exist (make it first with provisio pki root|intermediate)`)
  const certPem = readFileSync(certPath, 'utf8')
  const cert = pkijs.Certificate.fromBER(fromPem(certPem))
  const pkcs8 = fromPem(readFileSync(keyPath, 'utf8'))
  const isRsa = cert.subjectPublicKeyInfo.algorithm.algorithmId === '1.2.840.113549.1.1.1'
  let key: CryptoKey
  if (isRsa) key = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign'])
  else {
    const curveOid = (cert.subjectPublicKeyInfo.algorithm.algorithmParams as asn1js.ObjectIdentifier).valueBlock.toString()
    key = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: curveOid === '1.3.132.0.34' ? 'P-384' : 'P-256' }, false, ['sign'])
  }
  const chainPath = join(dir, `${name}-chain.pem`)
  const selfSigned = JSON.stringify(cert.subject.toJSON()) === JSON.stringify(cert.issuer.toJSON())
  return { cert, key, chainPem: existsSync(chainPath) ? readFileSync(chainPath, 'utf8') : selfSigned ? '' : certPem, selfSigned }
}

/** Makes one certificate and writes its files. */
export async function issuePkiCertificate(request: PkiRequest): Promise<PkiResult> {
  const type = request.keyType ?? 'ec'
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(request.name)) throw new Error(`--name must be 1-64 letters, digits, '-', '.', '_' (it names files), got ${JSON.stringify(request.name)}`)
  if (request.commonName.length === 0 || request.commonName.length > 64) throw new Error('--cn must be 1-64 characters (RFC 5280 ub-common-name)')
  const days = request.days ?? (request.kind === 'root' ? 3650 : request.kind === 'intermediate' ? 1825 : request.kind === 'verification' ? 7 : 365)
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw new Error('--days must be a whole number from 1 to 36500')
  if (request.pathLength !== undefined && !(Number.isInteger(request.pathLength) && request.pathLength >= 0 && request.pathLength <= 16)) {
    throw new Error('--path-len must be a whole number from 0 to 16')
  }
  mkdirSync(request.dir, { recursive: true })
  const issuer = request.kind === 'root' ? undefined : await loadIssuer(request.dir, request.issuer ?? (() => { throw new Error(`--issuer is required for ${request.kind}`) })())
  const keys = (await webcrypto.subtle.generateKey(algorithm(type), true, ['sign', 'verify'])) as CryptoKeyPair

  const cert = new pkijs.Certificate()
  cert.version = 2
  const serial = webcrypto.getRandomValues(new Uint8Array(16))
  serial[0] = (serial[0]! & 0x7f) | 0x40 // positive, minimal DER (no leading zero byte)
  cert.serialNumber = new asn1js.Integer({ valueHex: serial })
  cert.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: request.commonName }) }))
  cert.issuer = issuer ? issuer.cert.subject : cert.subject
  cert.notBefore.value = new Date(request.nowMs - 3_600_000)
  cert.notAfter.value = new Date(request.nowMs + days * DAY_MS)
  await cert.subjectPublicKeyInfo.importKey(keys.publicKey, engine)
  const ski = await keyId(cert)
  const ca = request.kind === 'root' || request.kind === 'intermediate'
  cert.extensions = [
    extension('2.5.29.19', true, new pkijs.BasicConstraints(ca ? { cA: true, ...(request.pathLength === undefined ? {} : { pathLenConstraint: request.pathLength }) } : { cA: false }).toSchema()),
    // CA: keyCertSign | cRLSign; device: digitalSignature (RFC 5280 §4.2.1.3)
    extension('2.5.29.15', true, keyUsage(ca ? 0x06 : 0x80)),
    extension('2.5.29.14', false, new asn1js.OctetString({ valueHex: ski })),
  ]
  if (!ca) cert.extensions.push(extension('2.5.29.37', false, new pkijs.ExtKeyUsage({ keyPurposes: ['1.3.6.1.5.5.7.3.2'] }).toSchema())) // clientAuth
  if (issuer) {
    cert.extensions.push(extension('2.5.29.35', false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: await keyId(issuer.cert) }) }).toSchema()))
  }
  await cert.sign(issuer ? issuer.key : keys.privateKey, type === 'ec384' && !issuer ? 'SHA-384' : 'SHA-256', engine)

  const certificatePem = toPem('CERTIFICATE', cert.toSchema().toBER())
  const certificatePath = join(request.dir, `${request.name}.pem`)
  const keyPath = join(request.dir, `${request.name}-key.pem`)
  writeFileAtomic(keyPath, toPem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), 0o600)
  writeFileAtomic(certificatePath, certificatePem)
  if (!issuer || request.kind === 'verification') return { certificatePath, keyPath }
  const chainPath = join(request.dir, `${request.name}-chain.pem`)
  writeFileAtomic(chainPath, certificatePem + issuer.chainPem)
  return { certificatePath, keyPath, chainPath }
}
