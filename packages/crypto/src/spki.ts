/**
 * SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) parsing for the key types the verifiers support:
 * - rsaEncryption (RFC 3279 §2.3.1; parameters MUST be NULL) holding RSAPublicKey (RFC 8017 §A.1.1);
 * - id-RSASSA-PSS (RFC 4055 §3.1, §1.2) with absent or explicit RSASSA-PSS-params;
 * - id-ecPublicKey (RFC 5480 §2.1.1) with namedCurve secp256r1 or secp384r1 and a SEC 1 point.
 *
 * A malformed SPKI is an argument error (CRYPTO_INVALID_ARGUMENT), a well-formed one for an
 * algorithm or curve we do not implement is CRYPTO_UNSUPPORTED.
 */
import { DerError, DerReader, bytesEqual, hex } from './der.js'
import { CryptoError, assertBytes } from './errors.js'
import type { HashName } from './pk-hash.js'
import { EcPublicKey, RsaPublicKey, type CurveName, type RsaPssKeyParams, ecPublicKey } from './pk-keys.js'

const OID_RSA = hex('2a864886f70d010101') // 1.2.840.113549.1.1.1
const OID_RSA_PSS = hex('2a864886f70d01010a') // 1.2.840.113549.1.1.10
const OID_MGF1 = hex('2a864886f70d010108') // 1.2.840.113549.1.1.8
const OID_EC = hex('2a8648ce3d0201') // 1.2.840.10045.2.1
const OID_P256 = hex('2a8648ce3d030107') // 1.2.840.10045.3.1.7
const OID_P384 = hex('2b81040022') // 1.3.132.0.34
const OID_SHA1 = hex('2b0e03021a') // 1.3.14.3.2.26
const OID_SHA256 = hex('608648016503040201') // 2.16.840.1.101.3.4.2.1
const OID_SHA384 = hex('608648016503040202')
const OID_SHA512 = hex('608648016503040203')

/** Upper bound on SPKI size: a 4096-bit RSA-PSS key with parameters is about 600 bytes. */
const SPKI_MAX = 4096

/** Any public key the verifiers accept. */
export type PublicKey = RsaPublicKey | EcPublicKey

function invalid(reason: string, cause?: unknown): CryptoError {
  return new CryptoError('CRYPTO_INVALID_ARGUMENT', `spkiDer is not a valid SubjectPublicKeyInfo: ${reason}`, { cause })
}

/** Parses any supported SPKI into a prepared key. */
export function publicKeyFromSpki(spkiDer: Uint8Array): PublicKey {
  assertBytes(spkiDer, 'spkiDer')
  if (spkiDer.length > SPKI_MAX) throw invalid(`${spkiDer.length} bytes exceeds the ${SPKI_MAX}-byte limit`)
  try {
    const top = new DerReader(spkiDer)
    const spki = top.sequence()
    top.finish('SubjectPublicKeyInfo')
    const alg = spki.sequence()
    const oid = alg.oid()
    const keyBits = spki.bitStringBytes()
    spki.finish('subjectPublicKey')
    if (bytesEqual(oid, OID_RSA)) {
      // RFC 3279 §2.3.1: "the parameters field MUST have ASN.1 type NULL"
      alg.null()
      alg.finish('rsaEncryption parameters')
      return parseRsaKey(keyBits, undefined, false)
    }
    if (bytesEqual(oid, OID_RSA_PSS)) {
      if (alg.done) return parseRsaKey(keyBits, undefined, true)
      const params = parsePssParams(alg.sequence())
      alg.finish('RSASSA-PSS-params')
      return parseRsaKey(keyBits, params, true)
    }
    if (bytesEqual(oid, OID_EC)) {
      // RFC 5480 §2.1.1: ECParameters is a CHOICE, but only namedCurve is allowed in PKIX
      const curveOid = alg.oid()
      alg.finish('ECParameters')
      const curve: CurveName | undefined = bytesEqual(curveOid, OID_P256) ? 'P-256' : bytesEqual(curveOid, OID_P384) ? 'P-384' : undefined
      if (!curve) throw new CryptoError('CRYPTO_UNSUPPORTED', 'spkiDer names an elliptic curve other than P-256 (secp256r1) or P-384 (secp384r1)')
      return ecPublicKey(curve, keyBits)
    }
    throw new CryptoError('CRYPTO_UNSUPPORTED', 'spkiDer has an algorithm other than rsaEncryption, id-RSASSA-PSS or id-ecPublicKey')
  } catch (e) {
    if (e instanceof DerError) throw invalid(e.message, e)
    throw e
  }
}

/** Parses an SPKI that must hold an RSA key (rsaEncryption or id-RSASSA-PSS). */
export function rsaPublicKeyFromSpki(spkiDer: Uint8Array): RsaPublicKey {
  const k = publicKeyFromSpki(spkiDer)
  if (!(k instanceof RsaPublicKey)) throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'spkiDer holds an EC key where an RSA key is required')
  return k
}

/** Parses an SPKI that must hold an EC key on P-256 or P-384. */
export function ecPublicKeyFromSpki(spkiDer: Uint8Array): EcPublicKey {
  const k = publicKeyFromSpki(spkiDer)
  if (!(k instanceof EcPublicKey)) throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'spkiDer holds an RSA key where an EC key is required')
  return k
}

function parseRsaKey(bits: Uint8Array, pss: RsaPssKeyParams | undefined, pssOnly: boolean): RsaPublicKey {
  const r = new DerReader(bits)
  const seq = r.sequence()
  r.finish('RSAPublicKey')
  const n = seq.unsignedInteger()
  const e = seq.unsignedInteger()
  seq.finish('RSAPublicKey')
  return new RsaPublicKey(n, e, pss, pssOnly)
}

function hashFromOid(oid: Uint8Array): HashName {
  if (bytesEqual(oid, OID_SHA256)) return 'SHA-256'
  if (bytesEqual(oid, OID_SHA384)) return 'SHA-384'
  if (bytesEqual(oid, OID_SHA512)) return 'SHA-512'
  if (bytesEqual(oid, OID_SHA1)) throw new CryptoError('CRYPTO_UNSUPPORTED', 'spkiDer restricts the key to SHA-1, which is not supported')
  throw new CryptoError('CRYPTO_UNSUPPORTED', 'spkiDer restricts the key to an unsupported hash algorithm')
}

/** HashAlgorithm ::= AlgorithmIdentifier; parameters absent or NULL (RFC 4055 §2.1 allows both). */
function readHashAlg(r: DerReader): HashName {
  const a = r.sequence()
  const h = hashFromOid(a.oid())
  if (!a.done) a.null()
  a.finish('hash AlgorithmIdentifier')
  return h
}

/**
 * RSASSA-PSS-params (RFC 4055 §3.1): [0] hashAlgorithm default sha1, [1] maskGenAlgorithm default
 * mgf1SHA1, [2] saltLength default 20, [3] trailerField default 1 (the only defined value).
 * Defaults that name SHA-1 make the key unusable here (CRYPTO_UNSUPPORTED).
 */
function parsePssParams(p: DerReader): RsaPssKeyParams {
  let hash: HashName | undefined
  let mgfHash: HashName | undefined
  let saltLength = 20
  if (p.peekTag() === 0xa0) {
    const w = wrap(p, 0xa0)
    hash = readHashAlg(w)
    w.finish('hashAlgorithm')
  }
  if (p.peekTag() === 0xa1) {
    const w = wrap(p, 0xa1)
    const mgf = w.sequence()
    w.finish('maskGenAlgorithm')
    if (!bytesEqual(mgf.oid(), OID_MGF1)) throw new CryptoError('CRYPTO_UNSUPPORTED', 'spkiDer names a mask generation function other than MGF1')
    mgfHash = readHashAlg(mgf)
    mgf.finish('MGF1 parameters')
  }
  if (p.peekTag() === 0xa2) {
    const w = wrap(p, 0xa2)
    const s = w.unsignedInteger()
    w.finish('saltLength')
    if (s.length > 2) throw new DerError('saltLength is unreasonably large')
    saltLength = s.reduce((acc, b) => acc * 256 + b, 0)
  }
  if (p.peekTag() === 0xa3) {
    const w = wrap(p, 0xa3)
    const t = w.unsignedInteger()
    w.finish('trailerField')
    if (t.length !== 1 || t[0] !== 1) throw new DerError('trailerField must be 1 (trailerFieldBC)')
  }
  p.finish('RSASSA-PSS-params')
  if (!hash) throw new CryptoError('CRYPTO_UNSUPPORTED', 'spkiDer RSASSA-PSS parameters default to SHA-1, which is not supported')
  if (!mgfHash) throw new CryptoError('CRYPTO_UNSUPPORTED', 'spkiDer RSASSA-PSS parameters default to MGF1 with SHA-1, which is not supported')
  return { hash, mgfHash, saltLength }
}

/** Enters an EXPLICIT context tag [n] (constructed, 0xa0 | n). */
function wrap(p: DerReader, tag: number): DerReader {
  return p.sequence(tag)
}
