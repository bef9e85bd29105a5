/**
 * The certificate authority that issues device certificates from CSRs (docs/protocol.md §1.7).
 * By default an issuing CA generated under the development root in the data directory
 * (`issuing-ca.pem`, key in `issuing-ca-key.pem`, mode 0600); or the operator's certificate
 * (PEM, the issuing CA first, then its issuers up to the root) and private key files
 * (`--issuing-ca-cert`, `--issuing-ca-key`). The key is loaded into a node:crypto KeyObject and only
 * ever used to sign: it is never sent anywhere.
 */
import { X509Certificate, createPrivateKey, sign as nodeSign, webcrypto, type KeyObject } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import type { CredentialPolicy, IssuerSignatureAlgorithm, IssuingAuthority } from '@provisio/engine'
import { writeFileAtomic } from './files.js'
import { PKI_FILES, ensureDevCa, fromPem, toPem } from './pki.js'

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto })
const DAY_MS = 86_400_000

/** File names of the generated issuing CA inside the data directory. */
export const ISSUING_CA_FILES = { certificate: 'issuing-ca.pem', key: 'issuing-ca-key.pem' } as const

/** The default credential policy: 30 days, every key type the verifiers check. */
export const DEFAULT_CREDENTIAL_POLICY: CredentialPolicy = { validityDays: 30, keyTypes: ['ecdsa-p256', 'ecdsa-p384', 'rsa'] }

/** Where the issuing CA comes from. */
export interface IssuingCaSource {
  readonly dataDir: string
  readonly idScope: string
  /** Operator-supplied CA: certificate chain PEM and private key PEM paths (both or neither). */
  readonly certFile?: string
  readonly keyFile?: string
  readonly policy?: CredentialPolicy
  readonly nowMs: number
}

/** An issuing authority with its PEM chain (for logs and operators). */
export interface LoadedIssuingCa extends IssuingAuthority {
  readonly chainPem: string
  /** True when this call generated the CA. */
  readonly created: boolean
}

/** Loads (or generates) the issuing CA. Throws an Error saying which file is wrong. */
export async function loadIssuingCa(source: IssuingCaSource): Promise<LoadedIssuingCa> {
  let chainPem: string
  let keyPem: string
  let created = false
  if (source.certFile !== undefined || source.keyFile !== undefined) {
    if (source.certFile === undefined || source.keyFile === undefined) throw new Error('--issuing-ca-cert and --issuing-ca-key must be given together')
    chainPem = readFileSync(source.certFile, 'utf8')
    keyPem = readFileSync(source.keyFile, 'utf8')
  } else {
    const dir = source.dataDir
    const rootCreated = await ensureDevCa(dir, source.nowMs)
    const certPath = join(dir, ISSUING_CA_FILES.certificate)
    const keyPath = join(dir, ISSUING_CA_FILES.key)
    const rootPem = readFileSync(join(dir, PKI_FILES.caCertificate), 'utf8')
    if (rootCreated || !existsSync(certPath) || !existsSync(keyPath) || !stillValid(readFileSync(certPath, 'utf8'), rootPem, source.nowMs)) {
      const issued = await generateIssuingCa(rootPem, readFileSync(join(dir, PKI_FILES.caKey), 'utf8'), source.idScope, source.nowMs)
      writeFileAtomic(keyPath, issued.keyPem, 0o600)
      writeFileAtomic(certPath, issued.certificatePem + rootPem)
      created = true
    }
    chainPem = readFileSync(certPath, 'utf8')
    keyPem = readFileSync(keyPath, 'utf8')
  }
  const chain = splitPem(chainPem)
  if (chain.length === 0) throw new Error('the issuing CA certificate file holds no PEM CERTIFICATE')
  let key: KeyObject
  try {
    key = createPrivateKey(keyPem)
  } catch (e) {
    throw new Error(`the issuing CA key is not a readable PEM private key: ${(e as Error).message}`, { cause: e })
  }
  const ca = new X509Certificate(Buffer.from(chain[0]!))
  if (!ca.ca) throw new Error(`the issuing CA certificate (${ca.subject}) is not a CA certificate (basicConstraints cA is not set)`)
  if (!ca.checkPrivateKey(key)) throw new Error('the issuing CA key does not belong to the issuing CA certificate')
  const signatureAlgorithm = algorithmOf(key)
  const hash = signatureAlgorithm === 'ecdsa-sha384' ? 'sha384' : 'sha256'
  return {
    chain,
    chainPem,
    created,
    signatureAlgorithm,
    policy: source.policy ?? DEFAULT_CREDENTIAL_POLICY,
    sign: (tbs) => Promise.resolve(new Uint8Array(nodeSign(hash, tbs, key))),
  }
}

function algorithmOf(key: KeyObject): IssuerSignatureAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'rsa-sha256'
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve
    if (curve === 'prime256v1') return 'ecdsa-sha256'
    if (curve === 'secp384r1') return 'ecdsa-sha384'
    throw new Error(`the issuing CA key is on curve ${curve ?? '?'}; P-256 and P-384 are supported`)
  }
  throw new Error(`the issuing CA key is ${key.asymmetricKeyType ?? '?'}; RSA, ECDSA P-256 and P-384 are supported`)
}

function stillValid(certPem: string, rootPem: string, nowMs: number): boolean {
  const [first] = splitPem(certPem)
  if (first === undefined) return false
  const cert = new X509Certificate(Buffer.from(first))
  const root = new X509Certificate(rootPem)
  return cert.checkIssued(root) && cert.verify(root.publicKey) && new Date(cert.validTo).getTime() - nowMs > 30 * DAY_MS
}

/** DER certificates of a PEM bundle, in order. */
export function splitPem(pem: string): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const m of pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)) out.push(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')))
  return out
}

async function generateIssuingCa(rootPem: string, rootKeyPem: string, idScope: string, nowMs: number): Promise<{ certificatePem: string; keyPem: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const
  const root = pkijs.Certificate.fromBER(fromPem(rootPem))
  const rootKey = await webcrypto.subtle.importKey('pkcs8', fromPem(rootKeyPem), algorithm, false, ['sign'])
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair
  const cert = new pkijs.Certificate()
  cert.version = 2
  const serial = webcrypto.getRandomValues(new Uint8Array(16))
  serial[0] = (serial[0]! & 0x3f) | 0x40
  cert.serialNumber = new asn1js.Integer({ valueHex: serial })
  cert.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: `Provisio Issuing CA ${idScope}` }) }))
  cert.issuer = root.subject
  cert.notBefore.value = new Date(nowMs - 3_600_000)
  // Within the root's validity: a chain longer-lived than its root would not verify near the end.
  cert.notAfter.value = new Date(Math.min(nowMs + 3 * 365 * DAY_MS, root.notAfter.value.getTime()))
  await cert.subjectPublicKeyInfo.importKey(keys.publicKey as CryptoKey, engine)
  const ski = await webcrypto.subtle.digest('SHA-1', cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView)
  const rootSki = await webcrypto.subtle.digest('SHA-1', root.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView)
  cert.extensions = [
    new pkijs.Extension({ extnID: '2.5.29.19', critical: true, extnValue: new pkijs.BasicConstraints({ cA: true, pathLenConstraint: 0 }).toSchema().toBER(false) }),
    // keyCertSign | cRLSign
    new pkijs.Extension({ extnID: '2.5.29.15', critical: true, extnValue: new asn1js.BitString({ valueHex: new Uint8Array([0x06]).buffer, unusedBits: 1 }).toBER(false) }),
    new pkijs.Extension({ extnID: '2.5.29.14', critical: false, extnValue: new asn1js.OctetString({ valueHex: ski }).toBER(false) }),
    new pkijs.Extension({ extnID: '2.5.29.35', critical: false, extnValue: new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: rootSki }) }).toSchema().toBER(false) }),
  ]
  await cert.sign(rootKey, 'SHA-256', engine)
  const keyPem = toPem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as CryptoKey))
  return { certificatePem: toPem('CERTIFICATE', cert.toSchema().toBER()), keyPem }
}
