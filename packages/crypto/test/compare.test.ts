import { describe, expect, it } from 'vitest'
import { configure, CryptoError, sha256, timingSafeEqual, usingSimd } from '../src/index.js'
import { rng } from './helpers.js'

describe('timingSafeEqual', () => {
  it('compares equal and unequal inputs of many lengths, including larger than the I/O window', () => {
    const r = rng('ct')
    for (const n of [0, 1, 7, 8, 9, 31, 32, 33, 64, 1000, 131_072, 300_001]) {
      const a = r.bytes(n)
      expect(timingSafeEqual(a, a.slice())).toBe(true)
      for (const pos of n > 0 ? [0, n >> 1, n - 1] : []) {
        const b = a.slice()
        b[pos]! ^= 0x80
        expect(timingSafeEqual(a, b)).toBe(false)
      }
    }
  })
  it('is false for different lengths, even with a common prefix', () => {
    expect(timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2]))).toBe(false)
    expect(timingSafeEqual(new Uint8Array(0), new Uint8Array(1))).toBe(false)
  })
  it('works on subarray views (byteOffset is honoured)', () => {
    const buf = new Uint8Array([9, 1, 2, 3, 9, 1, 2, 3])
    expect(timingSafeEqual(buf.subarray(1, 4), buf.subarray(5, 8))).toBe(true)
    expect(timingSafeEqual(buf.subarray(0, 3), buf.subarray(5, 8))).toBe(false)
  })
  it('throws typed errors for non-bytes', () => {
    expect(() => timingSafeEqual('a' as unknown as Uint8Array, new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('a must be') }))
    expect(() => timingSafeEqual(new Uint8Array(1), null as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('b must be') }))
  })
})

// (module (func (result v128) (v128.const i32x4 0 0 0 0))): valid only where WebAssembly SIMD is.
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00,
  0x0a, 0x16, 0x01, 0x14, 0x00, 0xfd, 0x0c, ...new Array<number>(16).fill(0), 0x0b,
])

describe('build selection', () => {
  it('picks the SIMD build by default exactly when the engine supports SIMD', () => {
    expect(WebAssembly.validate(SIMD_PROBE)).toBe(true) // every Node >= 16.4; the probe itself is well-formed
    expect(usingSimd()).toBe(WebAssembly.validate(SIMD_PROBE))
  })
})

describe('configure()', () => {
  it('cannot switch builds once the core is in use', () => {
    sha256(new Uint8Array(1))
    expect(() => configure({ simd: false })).toThrow(CryptoError)
  })
})
