/**
 * The key pair and PKCS#10 certificate signing request a device sends in `register({ csr })` to
 * get an operational certificate (docs/protocol.md §1.7). Made with WebCrypto (`globalThis.crypto`,
 * present in browsers and in Node ≥ 20) and PKI.js; the private key never leaves the device.
 */
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { base64Encode } from '@provisio/crypto'
import { DeviceError } from './errors.js'

/** Key types of {@link createCertificateRequest}. */
export type CertificateKeyType = 'P-256' | 'P-384' | 'RSA-2048' | 'RSA-3072' | 'RSA-4096'

/** A fresh key pair and the CSR for it. */
export interface CertificateRequest {
  /** DER PKCS#10, subject CN = the registration id. */
  readonly csr: Uint8Array
  /** The private key, PKCS#8 PEM (what TLS stacks load next to the issued certificate). */
  readonly keyPem: string
  readonly privateKey: CryptoKey
}

function webCrypto(): Crypto {
  const c = (globalThis as { crypto?: Crypto }).crypto
  if (c?.subtle === undefined) throw new DeviceError('INVALID_ARGUMENT', 'createCertificateRequest needs WebCrypto (globalThis.crypto.subtle)')
  return c
}

/** Makes a key pair of `keyType` (default P-256) and a CSR whose subject CN is `registrationId`. */
export async function createCertificateRequest(registrationId: string, keyType: CertificateKeyType = 'P-256'): Promise<CertificateRequest> {
  if (typeof registrationId !== 'string' || registrationId === '') throw new DeviceError('INVALID_ARGUMENT', 'createCertificateRequest: registrationId must be a non-empty string')
  const crypto = webCrypto()
  const rsa = keyType.startsWith('RSA-')
  const algorithm: RsaHashedKeyGenParams | EcKeyGenParams = rsa
    ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: Number(keyType.slice(4)), publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
    : { name: 'ECDSA', namedCurve: keyType }
  if (rsa && ![2048, 3072, 4096].includes((algorithm as RsaHashedKeyGenParams).modulusLength)) {
    throw new DeviceError('INVALID_ARGUMENT', `createCertificateRequest: unknown key type ${String(keyType)}`)
  }
  if (!rsa && keyType !== 'P-256' && keyType !== 'P-384') throw new DeviceError('INVALID_ARGUMENT', `createCertificateRequest: unknown key type ${String(keyType)}`)
  const keys = (await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair
  const engine = new pkijs.CryptoEngine({ name: 'provisio-device', crypto })
  const request = new pkijs.CertificationRequest()
  request.version = 0
  request.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: registrationId }) }))
  await request.subjectPublicKeyInfo.importKey(keys.publicKey, engine)
  await request.sign(keys.privateKey, keyType === 'P-384' ? 'SHA-384' : 'SHA-256', engine)
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey))
  return { csr: new Uint8Array(request.toSchema().toBER(false)), keyPem: pem('PRIVATE KEY', pkcs8), privateKey: keys.privateKey }
}

/** The `issuedCertificateChain` of a registration (base64 DER, leaf first) as one PEM bundle for TLS. */
export function certificateChainPem(chain: readonly string[]): string {
  return chain.map((b64) => `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`).join('')
}

function pem(label: string, der: Uint8Array): string {
  const b64 = base64Encode(der)
  return `-----BEGIN ${label}-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`
}
