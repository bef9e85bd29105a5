/**
 * RSA public-key operations (RFC 8017): RSASSA-PKCS1-v1_5 and RSASSA-PSS verification and
 * RSAES-OAEP encryption. The modular exponentiation runs in the WASM core (assembly/bignum.ts);
 * encoding and padding checks run here.
 *
 * Verdicts never throw: a signature of the wrong length, out of range or badly padded gives
 * `false`. Misuse throws CryptoError: a key argument that is neither SPKI bytes nor a prepared
 * key, an unknown hash, data that is not a Uint8Array.
 */
import { CryptoError, assertBytes, describe } from './errors.js'
import { type HashName, assertHash, digest, hashLength, mgf1Xor } from './pk-hash.js'
import { RsaPublicKey, useRsaKey } from './pk-keys.js'
import { rsaPublicKeyFromSpki } from './spki.js'
import { fn, ioOffset, memory } from './wasm.js'

/** A key argument: SubjectPublicKeyInfo DER, or a key prepared once with rsaPublicKeyFromSpki / rsaPublicKey. */
export type RsaKeyInput = Uint8Array | RsaPublicKey

/** Source of random bytes for OAEP seeds, e.g. `(n) => crypto.getRandomValues(new Uint8Array(n))`. */
export type RandomSource = (length: number) => Uint8Array

/** Options of rsaOaepEncrypt: a random source, or (for tests and known-answer checks) the seed itself. */
export type OaepOptions = { readonly random: RandomSource } | { readonly seed: Uint8Array }

function toKey(key: unknown, name = 'spkiDer'): RsaPublicKey {
  if (key instanceof RsaPublicKey) return key
  if (key instanceof Uint8Array) return rsaPublicKeyFromSpki(key)
  throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `${name} must be SubjectPublicKeyInfo DER (Uint8Array) or an RsaPublicKey, got ${describe(key)}`)
}

/**
 * RSAVP1 / RSAEP (RFC 8017 §5.2.2, §5.1.1): returns a view of the k-byte result inside WASM
 * memory (valid until the next core call), or undefined when the input is not below n.
 */
function rsaPublicOp(key: RsaPublicKey, input: Uint8Array): Uint8Array | undefined {
  useRsaKey(key)
  const io = ioOffset()
  const mem = memory()
  mem.set(input, io)
  const k = key.n.length
  if (fn<(i: number, o: number) => number>('rsaPublic')(io, io + 512) !== 1) return undefined
  return memory().subarray(io + 512, io + 512 + k)
}

// DER of DigestInfo up to the digest octets (RFC 8017 §9.2 note 1), parameters NULL.
const DIGEST_INFO: Record<HashName, Uint8Array> = {
  'SHA-256': Uint8Array.of(0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20),
  'SHA-384': Uint8Array.of(0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30),
  'SHA-512': Uint8Array.of(0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40),
}

/**
 * RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2).
 *
 * @param spkiDer SubjectPublicKeyInfo DER of an rsaEncryption key, or a prepared RsaPublicKey
 * @param hash 'SHA-256' | 'SHA-384' | 'SHA-512'
 * @param data the signed message (hashed here)
 * @param signature the signature, exactly the modulus length
 * @returns true only for a valid signature
 */
export function verifyRsaPkcs1v15(spkiDer: RsaKeyInput, hash: HashName, data: Uint8Array, signature: Uint8Array): boolean {
  const key = toKey(spkiDer)
  assertHash(hash)
  assertBytes(data, 'data')
  assertBytes(signature, 'signature')
  return verifyPkcs1v15Digest(key, hash, digest(hash, data), signature)
}

/** @internal PKCS#1 v1.5 verification of a precomputed digest. */
export function verifyPkcs1v15Digest(key: RsaPublicKey, hash: HashName, mHash: Uint8Array, signature: Uint8Array): boolean {
  // An id-RSASSA-PSS key must not verify PKCS#1 v1.5 signatures (RFC 4055 §1.2).
  if (key.pssOnly) return false
  const k = key.n.length
  if (signature.length !== k) return false
  const em = rsaPublicOp(key, signature)
  if (!em) return false
  // Rather than parsing EM (a source of forgeries, e.g. Bleichenbacher 2006), build the one
  // valid encoding EMSA-PKCS1-v1_5(H) = 00 01 FF..FF 00 ‖ DigestInfo and compare (§8.2.2 step 3-4).
  // Policy: a DigestInfo whose AlgorithmIdentifier omits the NULL parameters (Wycheproof
  // "MissingNull", rated acceptable) is rejected; only the §9.2 note 1 encoding is valid.
  const prefix = DIGEST_INFO[hash]
  const tLen = prefix.length + mHash.length
  if (k < tLen + 11) return false
  const psEnd = k - tLen - 1
  let diff = em[0]! | (em[1]! ^ 1) | em[psEnd]!
  for (let i = 2; i < psEnd; i++) diff |= em[i]! ^ 0xff
  const p = psEnd + 1
  for (let i = 0; i < prefix.length; i++) diff |= em[p + i]! ^ prefix[i]!
  const h = p + prefix.length
  for (let i = 0; i < mHash.length; i++) diff |= em[h + i]! ^ mHash[i]!
  return diff === 0
}

/**
 * RSASSA-PSS verification (RFC 8017 §8.1.2, EMSA-PSS-VERIFY §9.1.2) with MGF1 over the same hash.
 *
 * @param spkiDer SubjectPublicKeyInfo DER (rsaEncryption or id-RSASSA-PSS) or a prepared RsaPublicKey.
 *   An id-RSASSA-PSS key with parameters only verifies with its hash, and with a salt at least as
 *   long as its saltLength (RFC 4055 §3.1); anything else is `false`.
 * @param saltLength salt length in bytes, or 'auto' to accept whatever length the signature encodes
 */
export function verifyRsaPss(spkiDer: RsaKeyInput, hash: HashName, saltLength: number | 'auto', data: Uint8Array, signature: Uint8Array): boolean {
  const key = toKey(spkiDer)
  assertHash(hash)
  if (saltLength !== 'auto' && !(Number.isSafeInteger(saltLength) && saltLength >= 0)) {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `saltLength must be a non-negative integer or 'auto', got ${typeof saltLength === 'number' ? saltLength : describe(saltLength)}`)
  }
  assertBytes(data, 'data')
  assertBytes(signature, 'signature')
  return verifyPssDigest(key, hash, saltLength, digest(hash, data), signature)
}

/** @internal PSS verification of a precomputed digest. */
export function verifyPssDigest(key: RsaPublicKey, hash: HashName, saltLength: number | 'auto', mHash: Uint8Array, signature: Uint8Array): boolean {
  const pss = key.pss
  if (pss && (pss.hash !== hash || pss.mgfHash !== hash)) return false
  const k = key.n.length
  if (signature.length !== k) return false
  const out = rsaPublicOp(key, signature)
  if (!out) return false
  // §8.1.2 step 2c: EM = I2OSP(m, emLen) with emBits = modBits - 1
  const emBits = key.bits - 1
  const emLen = (emBits + 7) >> 3
  if (emLen < k && out[0] !== 0) return false
  const em = out.slice(k - emLen)
  const hLen = hashLength(hash)
  // §9.1.2 steps 3-6
  if (emLen < hLen + 2 || em[emLen - 1] !== 0xbc) return false
  const dbLen = emLen - hLen - 1
  const topMask = 0xff >> (8 * emLen - emBits)
  if ((em[0]! & ~topMask) !== 0) return false
  const H = em.slice(dbLen, dbLen + hLen)
  // steps 7-9: DB = maskedDB XOR MGF1(H), leftmost bits cleared
  mgf1Xor(hash, H, em, 0, dbLen)
  em[0]! &= topMask
  // step 10: DB = PS (zeros) ‖ 0x01 ‖ salt
  let i = 0
  while (i < dbLen && em[i] === 0) i++
  if (i === dbLen || em[i] !== 0x01) return false
  const sLen = dbLen - i - 1
  if (saltLength !== 'auto' && sLen !== saltLength) return false
  if (pss && sLen < pss.saltLength) return false
  if (emLen < hLen + sLen + 2) return false
  // steps 12-14: H' = Hash(0^8 ‖ mHash ‖ salt)
  const mPrime = new Uint8Array(8 + hLen + sLen)
  mPrime.set(mHash, 8)
  mPrime.set(em.subarray(i + 1, dbLen), 8 + hLen)
  const h2 = digest(hash, mPrime)
  let diff = 0
  for (let j = 0; j < hLen; j++) diff |= h2[j]! ^ H[j]!
  return diff === 0
}

/**
 * RSAES-OAEP encryption (RFC 8017 §7.1.1) with MGF1 over the same hash. TPM 2.0 credential
 * activation and duplication use SHA-256 (or the key's name hash) with labels "IDENTITY\0" and
 * "DUPLICATE\0" (TPM 2.0 Part 1 §B.10.3): pass the label as a string including the NUL, or bytes.
 *
 * @param spkiDer SubjectPublicKeyInfo DER (rsaEncryption) or a prepared RsaPublicKey
 * @param data message, at most k - 2·hLen - 2 bytes
 * @param label OAEP label L (string → UTF-8 bytes)
 * @param options `{ random }` a source of random bytes for the seed (this package has no ambient
 *   randomness), or `{ seed }` the hLen-byte seed itself for deterministic known-answer tests
 * @returns the k-byte ciphertext
 */
export function rsaOaepEncrypt(spkiDer: RsaKeyInput, hash: HashName, data: Uint8Array, label: Uint8Array | string, options: OaepOptions): Uint8Array {
  const key = toKey(spkiDer)
  assertHash(hash)
  assertBytes(data, 'data')
  const L = typeof label === 'string' ? new TextEncoder().encode(label) : label
  assertBytes(L, 'label')
  if (key.pssOnly) throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'spkiDer is an id-RSASSA-PSS key, which may only verify signatures (RFC 4055 §1.2)')
  const hLen = hashLength(hash)
  const k = key.n.length
  if (data.length > k - 2 * hLen - 2) {
    throw new CryptoError('CRYPTO_INVALID_LENGTH', `data must be at most ${k - 2 * hLen - 2} bytes for a ${key.bits}-bit key with ${hash} (RFC 8017 §7.1.1 step 1b), got ${data.length}`)
  }
  let seed: Uint8Array
  if (typeof options === 'object' && options !== null && 'seed' in options) {
    seed = options.seed
    assertBytes(seed, 'options.seed', hLen)
  } else if (typeof options === 'object' && options !== null && typeof (options as { random?: unknown }).random === 'function') {
    seed = (options as { random: RandomSource }).random(hLen)
    if (!(seed instanceof Uint8Array) || seed.length !== hLen) {
      throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `options.random(${hLen}) must return ${hLen} random bytes as a Uint8Array`)
    }
  } else {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'rsaOaepEncrypt needs randomness: pass options { random: (n) => Uint8Array } (e.g. n => crypto.getRandomValues(new Uint8Array(n))) or { seed }')
  }
  // §7.1.1 step 2: EM = 0x00 ‖ maskedSeed ‖ maskedDB, DB = lHash ‖ PS ‖ 0x01 ‖ M
  const em = new Uint8Array(k)
  const dbStart = 1 + hLen
  const dbLen = k - hLen - 1
  em.set(digest(hash, L), dbStart)
  em[k - data.length - 1] = 0x01
  em.set(data, k - data.length)
  mgf1Xor(hash, seed, em, dbStart, dbLen)
  em.set(seed, 1)
  mgf1Xor(hash, em.subarray(dbStart), em, 1, hLen)
  const c = rsaPublicOp(key, em)
  // EM starts with 0x00, so it is below n and the operation cannot refuse it
  if (!c) throw new CryptoError('CRYPTO_WASM_FAILURE', 'RSAEP refused an encoded message below the modulus')
  return c.slice()
}
