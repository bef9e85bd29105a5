/**
 * Certificate signature verification with @provisio/crypto (the WASM core). Supported signature
 * algorithms (our profile): sha{256,384,512}WithRSAEncryption (RFC 4055 §5), RSASSA-PSS with
 * explicit parameters (RFC 4055 §3.1), ecdsa-with-SHA{256,384,512} (RFC 5758 §3.2) on P-256 and
 * P-384. SHA-1 and anything else is refused as unsupported rather than verified.
 *
 * Keys are prepared once per issuer certificate (rsaPublicKeyFromSpki / ecPublicKeyFromSpki
 * through publicKeyFromSpki) and cached on the certificate's SHA-256.
 */
import * as asn1js from 'asn1js'
import { CryptoError, EcPublicKey, RsaPublicKey, publicKeyFromSpki, verifyEcdsa, verifyRsaPkcs1v15, verifyRsaPss, type HashName, type PublicKey } from '@provisio/crypto'
import type { Certificate } from './certificate.js'
import { X509Error } from './errors.js'

const RSA_PKCS1: Record<string, HashName> = {
  '1.2.840.113549.1.1.11': 'SHA-256',
  '1.2.840.113549.1.1.12': 'SHA-384',
  '1.2.840.113549.1.1.13': 'SHA-512',
}
const ECDSA: Record<string, HashName> = {
  '1.2.840.10045.4.3.2': 'SHA-256',
  '1.2.840.10045.4.3.3': 'SHA-384',
  '1.2.840.10045.4.3.4': 'SHA-512',
}
const RSA_PSS = '1.2.840.113549.1.1.10'
const HASH_OIDS: Record<string, HashName> = {
  '2.16.840.1.101.3.4.2.1': 'SHA-256',
  '2.16.840.1.101.3.4.2.2': 'SHA-384',
  '2.16.840.1.101.3.4.2.3': 'SHA-512',
}

const keyCache = new Map<string, PublicKey>()
const KEY_CACHE_MAX = 1024

/** The prepared public key of a certificate, or an X509Error explaining why there is none. */
export function publicKeyOf(cert: Certificate): PublicKey {
  const cached = keyCache.get(cert.sha256Hex)
  if (cached) return cached
  let key: PublicKey
  try {
    key = publicKeyFromSpki(cert.spki)
  } catch (e) {
    const unsupported = e instanceof CryptoError && e.code === 'CRYPTO_UNSUPPORTED'
    throw new X509Error(unsupported ? 'X509_UNSUPPORTED_ALGORITHM' : 'X509_MALFORMED', `public key of '${cert.subject.text}': ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  }
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value as string)
  keyCache.set(cert.sha256Hex, key)
  return key
}

/** PSS parameters (RFC 4055 §3.1): hash, MGF1 with the same hash, salt length. */
function pssParams(params: Uint8Array | undefined): { hash: HashName; saltLength: number } {
  // Absent parameters would mean SHA-1 defaults (RFC 4055 §3.1), which we refuse.
  if (params === undefined) throw new X509Error('X509_UNSUPPORTED_ALGORITHM', 'RSASSA-PSS with default (SHA-1) parameters is not supported')
  const asn = asn1js.fromBER(params)
  if (asn.offset !== params.length || !(asn.result instanceof asn1js.Sequence)) throw new X509Error('X509_MALFORMED', 'RSASSA-PSS-params is not a DER SEQUENCE')
  let hash: HashName | undefined
  let mgfHash: HashName | undefined
  let saltLength = 20
  for (const item of asn.result.valueBlock.value) {
    if (item.idBlock.tagClass !== 3) throw new X509Error('X509_MALFORMED', 'RSASSA-PSS-params member is not context-tagged')
    const inner = (item.valueBlock as unknown as { value: asn1js.AsnType[] }).value[0]
    switch (item.idBlock.tagNumber) {
      case 0: {
        const oid = inner instanceof asn1js.Sequence ? inner.valueBlock.value[0] : undefined
        hash = oid instanceof asn1js.ObjectIdentifier ? HASH_OIDS[oid.valueBlock.toString()] : undefined
        break
      }
      case 1: {
        const mgfParams = inner instanceof asn1js.Sequence ? inner.valueBlock.value[1] : undefined
        const oid = mgfParams instanceof asn1js.Sequence ? mgfParams.valueBlock.value[0] : undefined
        mgfHash = oid instanceof asn1js.ObjectIdentifier ? HASH_OIDS[oid.valueBlock.toString()] : undefined
        break
      }
      case 2:
        if (!(inner instanceof asn1js.Integer)) throw new X509Error('X509_MALFORMED', 'RSASSA-PSS saltLength is not an INTEGER')
        saltLength = inner.valueBlock.valueDec
        break
      case 3:
        break // trailerField: only 1 (0xBC) is defined
      default:
        throw new X509Error('X509_MALFORMED', 'RSASSA-PSS-params has an unknown member')
    }
  }
  if (hash === undefined || mgfHash !== hash) {
    throw new X509Error('X509_UNSUPPORTED_ALGORITHM', 'RSASSA-PSS needs SHA-256/384/512 with MGF1 over the same hash')
  }
  return { hash, saltLength }
}

/**
 * Verifies `cert`'s signature with `issuer`'s public key. Returns undefined when it verifies,
 * else the X509Error that says why (unsupported algorithm, key type mismatch, bad signature).
 */
export function checkSignature(cert: Certificate, issuer: Certificate): X509Error | undefined {
  const alg = cert.signatureAlgorithm
  let key: PublicKey
  try {
    key = publicKeyOf(issuer)
  } catch (e) {
    return e as X509Error
  }
  const bad = () => new X509Error('X509_BAD_SIGNATURE', `signature of '${cert.subject.text}' does not verify with the public key of '${issuer.subject.text}'`)
  try {
    const pkcs1 = RSA_PKCS1[alg.oid]
    if (pkcs1 !== undefined) {
      if (!(key instanceof RsaPublicKey)) return new X509Error('X509_BAD_SIGNATURE', `'${cert.subject.text}' is RSA-signed but '${issuer.subject.text}' holds an EC key`)
      return verifyRsaPkcs1v15(key, pkcs1, cert.tbs, cert.signature) ? undefined : bad()
    }
    const ecdsa = ECDSA[alg.oid]
    if (ecdsa !== undefined) {
      if (alg.params !== undefined) return new X509Error('X509_MALFORMED', `ecdsa-with-${ecdsa} must have absent parameters (RFC 5758 §3.2)`)
      if (!(key instanceof EcPublicKey)) return new X509Error('X509_BAD_SIGNATURE', `'${cert.subject.text}' is ECDSA-signed but '${issuer.subject.text}' holds an RSA key`)
      return verifyEcdsa(key, ecdsa, cert.tbs, cert.signature, 'der') ? undefined : bad()
    }
    if (alg.oid === RSA_PSS) {
      const p = pssParams(alg.params)
      if (!(key instanceof RsaPublicKey)) return new X509Error('X509_BAD_SIGNATURE', `'${cert.subject.text}' is RSA-PSS-signed but '${issuer.subject.text}' holds an EC key`)
      return verifyRsaPss(key, p.hash, p.saltLength, cert.tbs, cert.signature) ? undefined : bad()
    }
  } catch (e) {
    if (e instanceof X509Error) return e
    return new X509Error('X509_BAD_SIGNATURE', `signature of '${cert.subject.text}' could not be checked: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  }
  return new X509Error('X509_UNSUPPORTED_ALGORITHM', `signature algorithm ${alg.oid} of '${cert.subject.text}' is not supported (RSA PKCS#1 v1.5 / PSS with SHA-2, ECDSA with SHA-2)`)
}
