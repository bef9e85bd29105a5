/**
 * Prepared public keys. Parsing a SubjectPublicKeyInfo, validating a point or deriving the
 * Montgomery constants of a modulus is done once, when the key object is made; the verify
 * functions accept either the SPKI bytes (parsed on every call) or one of these objects (reused),
 * which is what the X.509 verifier and any hot path should pass.
 */
import { CryptoError, assertBytes, describe } from './errors.js'
import type { HashName } from './pk-hash.js'
import { fn, ioOffset, memory } from './wasm.js'

/** Constraints an id-RSASSA-PSS public key carries (RFC 4055 §3.1). */
export interface RsaPssKeyParams {
  readonly hash: HashName
  readonly mgfHash: HashName
  /** Minimum salt length in bytes the key permits. */
  readonly saltLength: number
}

/** An RSA public key ready for the WASM core. Make one with rsaPublicKey or rsaPublicKeyFromSpki. */
export class RsaPublicKey {
  readonly type = 'rsa' as const
  /** Modulus, big-endian, no leading zero byte. */
  readonly n: Uint8Array
  /** Public exponent, big-endian, no leading zero byte. */
  readonly e: Uint8Array
  /** Size of the modulus in bits. */
  readonly bits: number
  /** Set when the key came from an id-RSASSA-PSS SPKI: it may only verify RSASSA-PSS with these. */
  readonly pss: RsaPssKeyParams | undefined
  /** True for an id-RSASSA-PSS key with absent parameters (PSS only, any hash). */
  readonly pssOnly: boolean
  /** @internal snapshot of the WASM key state block (modulus limbs, -n^-1, R^2 mod n, e). */
  readonly state: Uint8Array

  /** @internal use rsaPublicKey() / rsaPublicKeyFromSpki(). */
  constructor(n: Uint8Array, e: Uint8Array, pss: RsaPssKeyParams | undefined, pssOnly: boolean) {
    let i = 0
    while (i < n.length - 1 && n[i] === 0) i++
    n = n.slice(i)
    i = 0
    while (i < e.length - 1 && e[i] === 0) i++
    e = e.slice(i)
    if (n.length > 512 || n.length < 128) {
      throw new CryptoError('CRYPTO_UNSUPPORTED', `RSA modulus of ${n.length * 8 - Math.clz32(n[0]!) + 24} bits: sizes from 1024 to 4096 bits are supported`)
    }
    const io = ioOffset()
    const mem = memory()
    mem.set(n, io)
    mem.set(e, io + 512)
    const rc = fn<(a: number, b: number, c: number, d: number) => number>('rsaLoadKey')(io, n.length, io + 512, e.length)
    if (rc === -1) throw new CryptoError('CRYPTO_UNSUPPORTED', 'RSA modulus must be 1024..4096 bits')
    if (rc === -2) throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'RSA modulus n is even, so it is not an RSA modulus')
    if (rc !== 1) throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'RSA public exponent e must be odd, at least 3 and shorter than the modulus')
    const size = fn<() => number>('rsaKeyStateSize')()
    const at = fn<() => number>('rsaKeyState')()
    this.state = memory().slice(at, at + size)
    // the block now holds this key, but no object is recorded: the first use restores it (cheap)
    loadedRsaKey = undefined
    this.n = n
    this.e = e
    this.bits = n.length * 8 - (Math.clz32(n[0]!) - 24)
    this.pss = pss
    this.pssOnly = pssOnly
  }
}

/** The key whose state is currently in the WASM key block (skip the restore when unchanged). */
let loadedRsaKey: RsaPublicKey | undefined

/** @internal makes `key` the WASM core's current RSA key. */
export function useRsaKey(key: RsaPublicKey): void {
  if (loadedRsaKey === key) return
  memory().set(key.state, fn<() => number>('rsaKeyState')())
  fn<() => void>('rsaKeyRestore')()
  loadedRsaKey = key
}

/** Named curves supported by ECDSA verification. */
export type CurveName = 'P-256' | 'P-384'

export function curveSize(curve: CurveName): number {
  return curve === 'P-256' ? 32 : 48
}

/** An EC public key whose point has been decoded and checked to lie on its curve. */
export class EcPublicKey {
  readonly type = 'ec' as const
  readonly curve: CurveName
  /** Affine x coordinate, big-endian, curve size bytes. */
  readonly x: Uint8Array
  /** Affine y coordinate, big-endian, curve size bytes. */
  readonly y: Uint8Array
  /** @internal x ‖ y, what the WASM core reads. */
  readonly xy: Uint8Array

  /** @internal use ecPublicKey() / ecPublicKeyFromSpki(). */
  constructor(curve: CurveName, point: Uint8Array) {
    const size = curveSize(curve)
    const io = ioOffset()
    memory().set(point, io)
    // ecLoadPoint(curveBits, ptr, len, out) -> 1, or negative: bad encoding / not on the curve
    const rc = fn<(c: number, p: number, l: number, o: number) => number>('ecLoadPoint')(size * 8, io, point.length, io + 256)
    if (rc !== 1) {
      const why = rc === -1 ? 'is not a compressed (02/03) or uncompressed (04) SEC 1 point of this curve size'
        : rc === -2 ? 'has a coordinate not below the field prime'
          : 'is not on the curve (SEC 1 §3.2.2.1 public key validation)'
      throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `EC public key point for ${curve} ${why}`)
    }
    this.curve = curve
    this.xy = memory().slice(io + 256, io + 256 + 2 * size)
    this.x = this.xy.slice(0, size)
    this.y = this.xy.slice(size)
  }
}

/** RSA public key from raw parameters (big-endian unsigned n and e). */
export function rsaPublicKey(params: { n: Uint8Array; e: Uint8Array | number }): RsaPublicKey {
  if (typeof params !== 'object' || params === null) {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `params must be { n, e }, got ${describe(params)}`)
  }
  assertBytes(params.n, 'params.n')
  let e = params.e
  if (typeof e === 'number') {
    if (!Number.isSafeInteger(e) || e < 3) throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `params.e must be an odd integer >= 3, got ${e}`)
    const bytes: number[] = []
    for (let v = e; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256)
    e = Uint8Array.from(bytes)
  }
  assertBytes(e, 'params.e')
  return new RsaPublicKey(params.n, e, undefined, false)
}

/**
 * EC public key from a curve name and either a SEC 1 encoded point (uncompressed 04‖x‖y or
 * compressed 02/03‖x, §2.3.3) or the affine coordinates { x, y }.
 */
export function ecPublicKey(curve: CurveName, point: Uint8Array | { x: Uint8Array; y: Uint8Array }): EcPublicKey {
  if (curve !== 'P-256' && curve !== 'P-384') {
    throw new CryptoError('CRYPTO_UNSUPPORTED', `curve must be 'P-256' or 'P-384', got ${typeof curve === 'string' ? `'${String(curve).slice(0, 20)}'` : describe(curve)}`)
  }
  const size = curveSize(curve)
  if (!(point instanceof Uint8Array)) {
    if (typeof point !== 'object' || point === null) {
      throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `point must be a Uint8Array or { x, y }, got ${describe(point)}`)
    }
    assertBytes(point.x, 'point.x', size)
    assertBytes(point.y, 'point.y', size)
    const p = new Uint8Array(1 + 2 * size)
    p[0] = 4
    p.set(point.x, 1)
    p.set(point.y, 1 + size)
    point = p
  }
  if (point.length !== 1 + size && point.length !== 1 + 2 * size) {
    throw new CryptoError('CRYPTO_INVALID_LENGTH', `point for ${curve} must be ${1 + size} (compressed) or ${1 + 2 * size} (uncompressed) bytes, got ${point.length}`)
  }
  return new EcPublicKey(curve, point)
}
