/**
 * ECDSA signature verification on P-256 and P-384 (FIPS 186-5 §6.4.2; the curve arithmetic is in
 * assembly/ecc.ts). Signatures come as DER ECDSA-Sig-Value (RFC 3279 §2.2.3, X.509 and most TLS
 * stacks) or IEEE P1363 r ‖ s (Web Crypto, JOSE, TPM after conversion). Any signature that is not
 * exactly one of these encodings (BER variants, extra bytes, wrong length) is `false`.
 */
import { DerError, DerReader } from './der.js'
import { CryptoError, assertBytes, describe } from './errors.js'
import { type HashName, assertHash, digest } from './pk-hash.js'
import { EcPublicKey, curveSize } from './pk-keys.js'
import { ecPublicKeyFromSpki } from './spki.js'
import { fn, ioOffset, memory } from './wasm.js'

/** Signature encodings: DER ECDSA-Sig-Value or fixed-width IEEE P1363 r ‖ s. */
export type EcdsaSignatureFormat = 'der' | 'p1363'

/** A key argument: SubjectPublicKeyInfo DER, or a key prepared with ecPublicKeyFromSpki / ecPublicKey. */
export type EcKeyInput = Uint8Array | EcPublicKey

function toKey(key: unknown): EcPublicKey {
  if (key instanceof EcPublicKey) return key
  if (key instanceof Uint8Array) return ecPublicKeyFromSpki(key)
  throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `spkiDer must be SubjectPublicKeyInfo DER (Uint8Array) or an EcPublicKey, got ${describe(key)}`)
}

/**
 * Verifies an ECDSA signature.
 *
 * @param spkiDer SubjectPublicKeyInfo DER of an id-ecPublicKey P-256/P-384 key, or a prepared EcPublicKey
 * @param hash digest applied to `data`; any of the three may be used with either curve (the digest
 *   is truncated to the curve's order length as FIPS 186-5 §6.4.2 prescribes)
 * @param data the signed message
 * @param signature DER or P1363 encoded (r, s)
 * @param format 'der' or 'p1363'
 * @returns true only for a valid signature
 */
export function verifyEcdsa(spkiDer: EcKeyInput, hash: HashName, data: Uint8Array, signature: Uint8Array, format: EcdsaSignatureFormat): boolean {
  const key = toKey(spkiDer)
  assertHash(hash)
  assertBytes(data, 'data')
  assertBytes(signature, 'signature')
  if (format !== 'der' && format !== 'p1363') {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `format must be 'der' or 'p1363', got ${typeof format === 'string' ? `'${String(format).slice(0, 20)}'` : describe(format)}`)
  }
  return verifyEcdsaDigest(key, digest(hash, data), signature, format)
}

/** @internal ECDSA verification of a precomputed digest. */
export function verifyEcdsaDigest(key: EcPublicKey, mHash: Uint8Array, signature: Uint8Array, format: EcdsaSignatureFormat): boolean {
  const size = curveSize(key.curve)
  const rs = format === 'p1363' ? (signature.length === 2 * size ? signature : undefined) : derToRaw(signature, size)
  if (!rs) return false
  const io = ioOffset()
  const mem = memory()
  mem.set(key.xy, io)
  // FIPS 186-5 §6.4.2 step 3: e = leftmost min(bitlen(n), hashlen) bits of the digest; the
  // orders of P-256 and P-384 are 256 and 384 bits, so this is whole bytes
  if (mHash.length >= size) {
    mem.set(mHash.subarray(0, size), io + 128)
  } else {
    mem.fill(0, io + 128, io + 128 + size - mHash.length)
    mem.set(mHash, io + 128 + size - mHash.length)
  }
  mem.set(rs, io + 192)
  return fn<(b: number, k: number, e: number, s: number) => number>('ecdsaVerify')(size * 8, io, io + 128, io + 192) === 1
}

/**
 * Strict DER ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } to r ‖ s of the curve size;
 * undefined for anything else (including values too long for the curve, which cannot be valid).
 */
function derToRaw(sig: Uint8Array, size: number): Uint8Array | undefined {
  try {
    const top = new DerReader(sig)
    const seq = top.sequence()
    top.finish('ECDSA-Sig-Value')
    const r = seq.unsignedInteger()
    const s = seq.unsignedInteger()
    seq.finish('ECDSA-Sig-Value')
    if (r.length > size || s.length > size) return undefined
    const out = new Uint8Array(2 * size)
    out.set(r, size - r.length)
    out.set(s, 2 * size - s.length)
    return out
  } catch (e) {
    if (e instanceof DerError) return undefined
    throw e
  }
}
