/**
 * The hash functions the public-key code needs (message digests, MGF1, HMAC for KDFa), by
 * Web Crypto name. The SHA-2 and HMAC engines themselves live in the hash modules of this
 * package; this file only maps names to them and builds HMAC-SHA-384/512 from the plain hashes
 * (RFC 2104) where no dedicated keyed engine exists.
 */
import { sha256, sha384, sha512 } from './hash.js'
import { hmacSha256 } from './hmac.js'
import { CryptoError, describe } from './errors.js'

/** Hash algorithms accepted by the public-key functions. */
export type HashName = 'SHA-256' | 'SHA-384' | 'SHA-512'

/** Digest length in bytes. */
export function hashLength(hash: HashName): number {
  return hash === 'SHA-256' ? 32 : hash === 'SHA-384' ? 48 : 64
}

/** Validates a hash argument, naming the parameter on failure. */
export function assertHash(value: unknown, name = 'hash'): asserts value is HashName {
  if (value === 'SHA-256' || value === 'SHA-384' || value === 'SHA-512') return
  if (typeof value === 'string') {
    throw new CryptoError('CRYPTO_UNSUPPORTED', `${name} must be 'SHA-256', 'SHA-384' or 'SHA-512', got '${value.slice(0, 40)}'`)
  }
  throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `${name} must be a hash name string, got ${describe(value)}`)
}

/** Hash(data). */
export function digest(hash: HashName, data: Uint8Array): Uint8Array {
  return hash === 'SHA-256' ? sha256(data) : hash === 'SHA-384' ? sha384(data) : sha512(data)
}

/** Hash(a ‖ b) without the caller building the concatenation. */
export function digest2(hash: HashName, a: Uint8Array, b: Uint8Array): Uint8Array {
  const c = new Uint8Array(a.length + b.length)
  c.set(a)
  c.set(b, a.length)
  return digest(hash, c)
}

/** HMAC (RFC 2104) with the given hash. */
export function hmac(hash: HashName, key: Uint8Array, data: Uint8Array): Uint8Array {
  if (hash === 'SHA-256') return hmacSha256(key, data)
  const block = 128 // SHA-384 and SHA-512 block size (FIPS 180-4 §1)
  let k = key.length > block ? digest(hash, key) : key
  const ipad = new Uint8Array(block + data.length)
  const opad = new Uint8Array(block + hashLength(hash))
  for (let i = 0; i < block; i++) {
    const b = i < k.length ? k[i]! : 0
    ipad[i] = b ^ 0x36
    opad[i] = b ^ 0x5c
  }
  k = new Uint8Array(0)
  ipad.set(data, block)
  opad.set(digest(hash, ipad), block)
  return digest(hash, opad)
}

/** MGF1 (RFC 8017 §B.2.1): Hash(seed ‖ C) for C = 0, 1, … truncated to `length`, XORed into `out`. */
export function mgf1Xor(hash: HashName, seed: Uint8Array, out: Uint8Array, start: number, length: number): void {
  const hLen = hashLength(hash)
  const buf = new Uint8Array(seed.length + 4)
  buf.set(seed)
  const c = seed.length
  for (let counter = 0, done = 0; done < length; counter++) {
    buf[c] = counter >>> 24
    buf[c + 1] = (counter >>> 16) & 0xff
    buf[c + 2] = (counter >>> 8) & 0xff
    buf[c + 3] = counter & 0xff
    const h = digest(hash, buf)
    const n = Math.min(hLen, length - done)
    for (let i = 0; i < n; i++) out[start + done + i]! ^= h[i]!
    done += n
  }
}
