// One suite run against each WebAssembly build. Each build-*.test.ts file calls configure() before
// anything touches the core; vitest gives every test file its own module graph, so each file
// really instantiates the build it asked for (asserted by the first test).
import { createHash, createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  base64Decode, base64Encode, createHmacSha256Key, createSha256, deriveDeviceKey, deriveDeviceKeys, hmacSha256, hmacSha256Base64,
  sha256, sha384, sha512, timingSafeEqual, usingSimd, verifyHmacSha256Base64,
} from '../src/index.js'
import { hex, rng } from './helpers.js'

const GROUP_KEY = '8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=='

export function sharedSuite(build: 'scalar' | 'simd'): void {
  describe(`${build} build`, () => {
    it('is the build that was requested', () => {
      expect(usingSimd()).toBe(build === 'simd')
    })

    it('SHA-2: NIST "abc" and 896-bit vectors, random inputs vs node:crypto', () => {
      const abc = new TextEncoder().encode('abc')
      expect(hex(sha256(abc))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
      expect(hex(sha384(abc))).toBe('cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7')
      expect(hex(sha512(abc))).toBe('ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f')
      const r = rng(`${build}-sha`)
      for (let i = 0; i < 300; i++) {
        const data = r.bytes(i === 299 ? 700_000 : r.int(400))
        expect(hex(sha256(data))).toBe(createHash('sha256').update(data).digest('hex'))
        expect(hex(sha384(data))).toBe(createHash('sha384').update(data).digest('hex'))
        expect(hex(sha512(data))).toBe(createHash('sha512').update(data).digest('hex'))
        const h = createSha256()
        const cut = r.int(data.length + 1)
        expect(hex(h.update(data.subarray(0, cut)).update(data.subarray(cut)).digest())).toBe(hex(sha256(data)))
      }
    })

    it('HMAC: RFC 4231 case 2 and random keys/messages vs node:crypto', () => {
      const enc = new TextEncoder()
      expect(hex(hmacSha256(enc.encode('Jefe'), enc.encode('what do ya want for nothing?')))).toBe(
        '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
      )
      const r = rng(`${build}-hmac`)
      for (let i = 0; i < 300; i++) {
        const key = r.bytes(r.int(150))
        const data = r.bytes(r.int(200))
        const want = createHmac('sha256', key).update(data).digest()
        expect(hex(hmacSha256(key, data))).toBe(want.toString('hex'))
        expect(hex(createHmacSha256Key(key).mac(data))).toBe(want.toString('hex'))
        const text = Buffer.from(data).toString('latin1')
        const b64 = createHmac('sha256', key).update(text, 'utf8').digest('base64')
        expect(hmacSha256Base64(key, text)).toBe(b64)
        expect(verifyHmacSha256Base64(key, text, b64)).toBe(true)
        expect(createHmacSha256Key(key).verifyBase64(text + 'x', b64)).toBe(false)
      }
    })

    it('derivation: documented vector and batches of every size against node:crypto', () => {
      expect(deriveDeviceKey(GROUP_KEY, 'sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6')).toBe('Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=')
      const r = rng(`${build}-derive`)
      const key = Buffer.from(GROUP_KEY, 'base64')
      for (let n = 0; n < 40; n++) {
        const ids = Array.from({ length: n * 7 }, () => 'abc-é'.repeat(r.int(30)).slice(0, r.int(140)))
        const got = deriveDeviceKeys(GROUP_KEY, ids)
        ids.forEach((id, i) => expect(got[i]).toBe(createHmac('sha256', key).update(id).digest('base64')))
      }
      const many = Array.from({ length: 7000 }, (_, i) => `device-${i}`.padEnd(40, '-'))
      const got = deriveDeviceKeys(GROUP_KEY, many)
      many.forEach((id, i) => expect(got[i]).toBe(createHmac('sha256', key).update(id).digest('base64')))
    })

    it('base64 and timingSafeEqual', () => {
      const r = rng(`${build}-b64`)
      for (let i = 0; i < 200; i++) {
        const bytes = r.bytes(r.int(300))
        const text = base64Encode(bytes)
        expect(text).toBe(Buffer.from(bytes).toString('base64'))
        expect(hex(base64Decode(text))).toBe(hex(bytes))
        expect(timingSafeEqual(bytes, bytes.slice())).toBe(true)
        if (bytes.length > 0) {
          const other = bytes.slice()
          other[r.int(other.length)]! ^= 1 << r.int(8)
          expect(timingSafeEqual(bytes, other)).toBe(false)
        }
      }
    })
  })
}
