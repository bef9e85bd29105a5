import * as fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { base64Decode, base64Encode, base64UrlDecode, base64UrlEncode, CryptoError, utf8Decode, utf8Encode } from '../src/index.js'
import { hex } from './helpers.js'

describe('base64 (RFC 4648)', () => {
  it('RFC 4648 section 10 test vectors', () => {
    const v: [string, string][] = [['', ''], ['f', 'Zg=='], ['fo', 'Zm8='], ['foo', 'Zm9v'], ['foob', 'Zm9vYg=='], ['fooba', 'Zm9vYmE='], ['foobar', 'Zm9vYmFy']]
    for (const [plain, b64] of v) {
      expect(base64Encode(utf8Encode(plain))).toBe(b64)
      expect(utf8Decode(base64Decode(b64))).toBe(plain)
      expect(base64UrlEncode(utf8Encode(plain))).toBe(b64.replace(/=/g, ''))
      expect(utf8Decode(base64UrlDecode(b64.replace(/=/g, '')))).toBe(plain)
    }
  })

  it('round trips and agrees with Buffer (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const b64 = base64Encode(bytes)
        expect(b64).toBe(Buffer.from(bytes).toString('base64'))
        expect(hex(base64Decode(b64))).toBe(hex(bytes))
        const url = base64UrlEncode(bytes)
        expect(url).toBe(Buffer.from(bytes).toString('base64url'))
        expect(hex(base64UrlDecode(url))).toBe(hex(bytes))
      }),
      { numRuns: 1000 },
    )
  })

  it('round trips inputs larger than the I/O window', () => {
    const bytes = new Uint8Array(1_000_003)
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff
    const b64 = base64Encode(bytes)
    expect(b64).toBe(Buffer.from(bytes).toString('base64'))
    expect(hex(base64Decode(b64))).toBe(hex(bytes))
    expect(hex(base64UrlDecode(base64UrlEncode(bytes)))).toBe(hex(bytes))
  })

  it('accepts exactly the canonical encoding (fast-check over arbitrary strings)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 24, unit: fc.constantFrom(...'AQgw+/=-_a9z*é '.split('')) }), (text) => {
        let decoded: Uint8Array | undefined
        try {
          decoded = base64Decode(text)
        } catch (e) {
          expect(e).toBeInstanceOf(CryptoError)
          expect((e as CryptoError).code).toBe('CRYPTO_INVALID_BASE64')
        }
        // Accepted iff re-encoding gives the same text back.
        const canonical = Buffer.from(text, 'base64').toString('base64') === text && /^[A-Za-z0-9+/]*={0,2}$/.test(text)
        expect(decoded !== undefined).toBe(canonical)
      }),
      { numRuns: 3000 },
    )
  })

  const rejects: [string, number, string][] = [
    ['Zg', 2, 'length'],
    ['Zg=', 3, 'length'],
    ['Zm9v!A==', 4, 'alphabet'],
    ['Zm9vYg=A', 6, 'padding'],
    ['=m9v', 0, 'padding'],
    ['Zg==Zg==', 2, 'padding'],
    ['Z===', 1, 'padding'],
    ['Zh==', 1, 'unused bits'],
    ['Zm9=', 2, 'unused bits'],
    ['Zm9v-_==', 4, 'alphabet'],
    ['Zm9vé===', 4, 'alphabet'],
    ['Zm9v YmFy', 9, 'length'],
  ]
  for (const [text, position, why] of rejects) {
    it(`rejects ${JSON.stringify(text)} at position ${position} (${why})`, () => {
      let err: unknown
      try {
        base64Decode(text)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(CryptoError)
      expect((err as CryptoError).code).toBe('CRYPTO_INVALID_BASE64')
      expect((err as CryptoError).position).toBe(position)
      expect((err as CryptoError).message).toContain(`position ${position}`)
      expect((err as CryptoError).message).toContain(why)
    })
  }

  it('URL-safe decoding rejects the standard alphabet, padding and impossible lengths', () => {
    expect(() => base64UrlDecode('ab+/')).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_BASE64', position: 2 }))
    expect(() => base64UrlDecode('Zg==')).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_BASE64', position: 2 }))
    expect(() => base64UrlDecode('Zm9vY')).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_BASE64', position: 5 }))
    expect(() => base64UrlDecode('Zh')).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_BASE64', position: 1 }))
  })

  it('misuse throws typed errors', () => {
    expect(() => base64Encode('abc' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('bytes') }))
    expect(() => base64Decode(new Uint8Array(2) as unknown as string)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('text') }))
  })
})

describe('UTF-8', () => {
  it('encodes and decodes, strict on malformed input', () => {
    expect(hex(utf8Encode('é€😀'))).toBe(Buffer.from('é€😀').toString('hex'))
    expect(utf8Decode(utf8Encode('\ufeffhi'))).toBe('\ufeffhi')
    expect(() => utf8Decode(new Uint8Array([0xc3]))).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT' }))
    expect(() => utf8Encode(1 as unknown as string)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('text') }))
  })
})
