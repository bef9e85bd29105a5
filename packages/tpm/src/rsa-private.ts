/**
 * RSA private-key arithmetic for the software TPM, in BigInt (RFC 8017 §5.1.2 decryption with
 * CRT, §7.1.2 OAEP decoding) and deterministic key generation from a seeded generator (FIPS
 * 186-5 §A.1.3-style random primes, Miller-Rabin per FIPS 186-5 §B.3). The server side never
 * needs these: it only encrypts (WASM, @provisio/crypto). Only the software TPM decrypts, and it is
 * a test and emulator device, not a hardened key store: BigInt arithmetic is not constant-time.
 */
import { hmacSha256, sha256 } from '@provisio/crypto'
import { concat } from './marshal.js'

/** An RSA private key (big-endian byte fields as BigInt). */
export interface RsaPrivateKey {
  readonly n: bigint
  readonly e: bigint
  readonly d: bigint
  readonly p: bigint
  readonly q: bigint
  readonly dp: bigint
  readonly dq: bigint
  readonly qinv: bigint
  /** Modulus size in bytes. */
  readonly k: number
}

/** Big-endian bytes → BigInt. */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  let hex = ''
  for (const b of bytes) hex += b.toString(16).padStart(2, '0')
  return hex.length === 0 ? 0n : BigInt('0x' + hex)
}

/** BigInt → big-endian bytes of exactly `length` bytes. */
export function bigIntToBytes(v: bigint, length: number): Uint8Array {
  let hex = v.toString(16)
  if (hex.length > length * 2) throw new RangeError(`value needs ${Math.ceil(hex.length / 2)} bytes, ${length} allowed`)
  hex = hex.padStart(length * 2, '0')
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

/** base^exp mod m (left-to-right square and multiply). */
export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let result = 1n
  let b = base % m
  let e = exp
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m
    b = (b * b) % m
    e >>= 1n
  }
  return result
}

function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [a % m, m]
  let [oldS, s] = [1n, 0n]
  while (r !== 0n) {
    const q = oldR / r
    ;[oldR, r] = [r, oldR - q * r]
    ;[oldS, s] = [s, oldS - q * s]
  }
  if (oldR !== 1n) throw new RangeError('not invertible')
  return ((oldS % m) + m) % m
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b]
  return a
}

/**
 * Deterministic byte generator: HMAC-SHA256(seed, label ‖ counter) blocks (an HMAC-based
 * counter-mode generator in the spirit of SP 800-108; reproducible from the seed).
 */
export class SeededBytes {
  #counter = 0
  readonly #label: Uint8Array
  constructor(
    readonly seed: Uint8Array,
    label: string,
  ) {
    this.#label = new TextEncoder().encode(label)
  }

  next(n: number): Uint8Array {
    const out = new Uint8Array(n)
    let at = 0
    while (at < n) {
      const c = this.#counter++
      const block = hmacSha256(this.seed, concat(this.#label, new Uint8Array([(c >>> 24) & 0xff, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff])))
      const take = Math.min(32, n - at)
      out.set(block.subarray(0, take), at)
      at += take
    }
    return out
  }
}

const SMALL_PRIMES: number[] = (() => {
  const out: number[] = []
  for (let n = 3; out.length < 400; n += 2) {
    let prime = true
    for (const p of out) {
      if (p * p > n) break
      if (n % p === 0) {
        prime = false
        break
      }
    }
    if (prime) out.push(n)
  }
  return out
})()

/** Miller-Rabin with `rounds` bases from the generator (FIPS 186-5 §B.3.1). */
function probablyPrime(n: bigint, rounds: number, gen: SeededBytes, byteLength: number): boolean {
  let d = n - 1n
  let s = 0
  while ((d & 1n) === 0n) {
    d >>= 1n
    s++
  }
  for (let i = 0; i < rounds; i++) {
    const a = 2n + (bytesToBigInt(gen.next(byteLength)) % (n - 3n))
    let x = modPow(a, d, n)
    if (x === 1n || x === n - 1n) continue
    let composite = true
    for (let j = 1; j < s; j++) {
      x = (x * x) % n
      if (x === n - 1n) {
        composite = false
        break
      }
    }
    if (composite) return false
  }
  return true
}

/** A random prime of `bits` bits with the top two bits set, p - 1 coprime to e. */
function generatePrime(bits: number, e: bigint, gen: SeededBytes): bigint {
  const bytes = bits / 8
  for (;;) {
    const raw = gen.next(bytes)
    raw[0]! |= 0xc0
    raw[bytes - 1]! |= 1
    const start = bytesToBigInt(raw)
    // Incremental search with a small-prime sieve on the remainders (cheap number arithmetic).
    const rems = SMALL_PRIMES.map((p) => Number(start % BigInt(p)))
    for (let delta = 0; delta < 20000; delta += 2) {
      let divisible = false
      for (let i = 0; i < SMALL_PRIMES.length; i++) {
        if ((rems[i]! + delta) % SMALL_PRIMES[i]! === 0) {
          divisible = true
          break
        }
      }
      if (divisible) continue
      const candidate = start + BigInt(delta)
      if (candidate >> BigInt(bits) !== 0n) break
      if (gcd(candidate - 1n, e) !== 1n) continue
      if (probablyPrime(candidate, 5, gen, bytes)) return candidate
    }
  }
}

/** Generates an RSA key pair deterministically from `seed` (same seed, same key). */
export function generateRsaKey(seed: Uint8Array, label: string, bits = 2048, exponent = 65537): RsaPrivateKey {
  const gen = new SeededBytes(seed, label)
  const e = BigInt(exponent)
  for (;;) {
    const p = generatePrime(bits / 2, e, gen)
    const q = generatePrime(bits / 2, e, gen)
    if (p === q) continue
    const n = p * q
    if (n.toString(2).length !== bits) continue
    return rsaPrivateKeyFromPrimes(p, q, e)
  }
}

/** Completes a private key from its primes. */
export function rsaPrivateKeyFromPrimes(p0: bigint, q0: bigint, e: bigint): RsaPrivateKey {
  const [p, q] = p0 > q0 ? [p0, q0] : [q0, p0]
  const n = p * q
  const phi = (p - 1n) * (q - 1n)
  const d = modInverse(e, phi)
  return { n, e, d, p, q, dp: d % (p - 1n), dq: d % (q - 1n), qinv: modInverse(q, p), k: Math.ceil(n.toString(16).length / 2) }
}

/** RSADP with CRT (RFC 8017 §5.1.2); undefined when the ciphertext is out of range. */
export function rsaDecryptRaw(key: RsaPrivateKey, c: Uint8Array): Uint8Array | undefined {
  if (c.length !== key.k) return undefined
  const cv = bytesToBigInt(c)
  if (cv >= key.n) return undefined
  const m1 = modPow(cv, key.dp, key.p)
  const m2 = modPow(cv, key.dq, key.q)
  let h = ((m1 - m2) * key.qinv) % key.p
  if (h < 0n) h += key.p
  return bigIntToBytes(m2 + h * key.q, key.k)
}

function mgf1(seed: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length)
  let at = 0
  for (let c = 0; at < length; c++) {
    const block = sha256(concat(seed, new Uint8Array([(c >>> 24) & 0xff, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff])))
    const take = Math.min(32, length - at)
    out.set(block.subarray(0, take), at)
    at += take
  }
  return out
}

/**
 * RSAES-OAEP decryption with SHA-256 and MGF1-SHA-256 (RFC 8017 §7.1.2). Returns undefined on
 * any decoding failure (a verdict, not an error; one outcome for every failure, §7.1.2 note).
 */
export function rsaOaepDecrypt(key: RsaPrivateKey, ciphertext: Uint8Array, label: Uint8Array): Uint8Array | undefined {
  const hLen = 32
  const k = key.k
  if (k < 2 * hLen + 2) return undefined
  const em = rsaDecryptRaw(key, ciphertext)
  if (em === undefined) return undefined
  const maskedSeed = em.subarray(1, 1 + hLen)
  const maskedDb = em.subarray(1 + hLen)
  const seedMask = mgf1(maskedDb, hLen)
  const seed = new Uint8Array(hLen)
  for (let i = 0; i < hLen; i++) seed[i] = maskedSeed[i]! ^ seedMask[i]!
  const dbMask = mgf1(seed, k - hLen - 1)
  const db = new Uint8Array(k - hLen - 1)
  for (let i = 0; i < db.length; i++) db[i] = maskedDb[i]! ^ dbMask[i]!
  const lHash = sha256(label)
  let bad = em[0]!
  for (let i = 0; i < hLen; i++) bad |= db[i]! ^ lHash[i]!
  let sep = -1
  for (let i = hLen; i < db.length; i++) {
    if (db[i] === 1) {
      sep = i
      break
    }
    if (db[i] !== 0) {
      bad |= 1
      break
    }
  }
  if (bad !== 0 || sep < 0) return undefined
  return db.slice(sep + 1)
}
