import { createCipheriv } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { CryptoError, aesCfbDecrypt, aesCfbEncrypt } from '../src/index.js'
import { hex, rng } from './helpers.js'

const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))

describe('AES-CFB-128', () => {
  it('NIST SP 800-38A F.3.13 (CFB128-AES128) and F.3.17 (CFB128-AES256) known answers', () => {
    const iv = unhex('000102030405060708090a0b0c0d0e0f')
    const pt = unhex('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51')
    const c128 = aesCfbEncrypt(unhex('2b7e151628aed2a6abf7158809cf4f3c'), iv, pt)
    expect(hex(c128)).toBe('3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b')
    const c256 = aesCfbEncrypt(unhex('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4'), iv, pt.subarray(0, 16))
    expect(hex(c256)).toBe('dc7e84bfda79164b7ecd8486985d3860')
    expect(hex(aesCfbDecrypt(unhex('2b7e151628aed2a6abf7158809cf4f3c'), iv, c128))).toBe(hex(pt))
  })

  for (const bits of [128, 256]) {
    it(`AES-${bits}: matches node:crypto aes-${bits}-cfb for lengths 0..300 and a few large ones, both directions`, () => {
      const r = rng(`aes-${bits}`)
      const lengths = [...Array.from({ length: 301 }, (_, i) => i), 4096, 65537, 300_001]
      for (const len of lengths) {
        const key = r.bytes(bits / 8)
        const iv = r.bytes(16)
        const pt = r.bytes(len)
        const c = createCipheriv(`aes-${bits}-cfb`, key, iv)
        const want = Buffer.concat([c.update(pt), c.final()])
        const got = aesCfbEncrypt(key, iv, pt)
        expect(hex(got), `length ${len}`).toBe(want.toString('hex'))
        expect(hex(aesCfbDecrypt(key, iv, got)), `length ${len} decrypt`).toBe(hex(pt))
      }
    })
  }

  it('rejects bad keys and IVs with CryptoError', () => {
    expect(() => aesCfbEncrypt(new Uint8Array(24), new Uint8Array(16), new Uint8Array(1))).toThrow(/key must be 16 bytes \(AES-128\) or 32 bytes/)
    expect(() => aesCfbEncrypt(new Uint8Array(16), new Uint8Array(8), new Uint8Array(1))).toThrow(/iv must be 16 bytes/)
    expect(() => aesCfbDecrypt(new Uint8Array(16), new Uint8Array(16), 'x' as unknown as Uint8Array)).toThrow(CryptoError)
  })
})
