import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  createHmacSha256Key, hmacSha256, hmacSha256Base64, hmacSha256Into, timingSafeEqual, verifyHmacSha256Base64,
} from '../src/index.js'
import { hex, rng } from './helpers.js'

const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))
const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

// RFC 4231 section 4: test cases 1-7, HMAC-SHA-256 column. Case 5 is truncated to 128 bits.
const RFC4231: { key: string; data: string; tag: string; truncate?: number }[] = [
  { key: '0b'.repeat(20), data: hexOf('Hi There'), tag: 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7' },
  { key: hexOf('Jefe'), data: hexOf('what do ya want for nothing?'), tag: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843' },
  { key: 'aa'.repeat(20), data: 'dd'.repeat(50), tag: '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe' },
  {
    key: '0102030405060708090a0b0c0d0e0f10111213141516171819',
    data: 'cd'.repeat(50),
    tag: '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b',
  },
  { key: '0c'.repeat(20), data: hexOf('Test With Truncation'), tag: 'a3b6167473100ee06e0c796c2955552b', truncate: 16 },
  {
    key: 'aa'.repeat(131),
    data: hexOf('Test Using Larger Than Block-Size Key - Hash Key First'),
    tag: '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
  },
  {
    key: 'aa'.repeat(131),
    data: hexOf('This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.'),
    tag: '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
  },
]
function hexOf(s: string): string {
  return Buffer.from(s, 'latin1').toString('hex')
}

describe('HMAC-SHA256 RFC 4231 vectors', () => {
  RFC4231.forEach((v, i) => {
    it(`test case ${i + 1}`, () => {
      const key = fromHex(v.key)
      const data = fromHex(v.data)
      const full = hmacSha256(key, data)
      const cached = createHmacSha256Key(key).mac(data)
      const n = v.truncate ?? 32
      expect(hex(full.subarray(0, n))).toBe(v.tag)
      expect(hex(cached.subarray(0, n))).toBe(v.tag)
    })
  })
})

interface WycheproofMac {
  testGroups: { keySize: number; tagSize: number; tests: { tcId: number; key: string; msg: string; tag: string; result: string; comment: string }[] }[]
}

describe('Wycheproof hmac_sha256_test.json', () => {
  const file = JSON.parse(
    readFileSync(new URL('../../../../shared/vectors/wycheproof/testvectors_v1/hmac_sha256_test.json', import.meta.url), 'utf8'),
  ) as WycheproofMac
  for (const group of file.testGroups) {
    it(`keySize ${group.keySize}, tagSize ${group.tagSize} (${group.tests.length} cases)`, () => {
      const tagBytes = group.tagSize / 8
      for (const t of group.tests) {
        const key = fromHex(t.key)
        const msg = fromHex(t.msg)
        const tag = fromHex(t.tag)
        const mac = hmacSha256(key, msg)
        const prefixMatches = timingSafeEqual(mac.subarray(0, tagBytes), tag)
        const k = createHmacSha256Key(key)
        expect(hex(k.mac(msg)), `tcId ${t.tcId}`).toBe(hex(mac))
        if (t.result === 'valid') {
          expect(prefixMatches, `tcId ${t.tcId} ${t.comment}`).toBe(true)
        } else {
          expect(prefixMatches, `tcId ${t.tcId} ${t.comment}`).toBe(false)
        }
        // Full-length tags also go through the base64 verifiers.
        if (tagBytes === 32 && msg.every((b) => b < 0x80)) {
          const text = Buffer.from(msg).toString('latin1')
          const b64 = Buffer.from(tag).toString('base64')
          expect(verifyHmacSha256Base64(key, text, b64), `tcId ${t.tcId}`).toBe(t.result === 'valid')
          expect(k.verifyBase64(text, b64), `tcId ${t.tcId}`).toBe(t.result === 'valid')
        }
      }
    })
  }
})

describe('HMAC-SHA256 against node:crypto', () => {
  it('1,000 random keys and messages (0..~3 blocks, some large), every API', () => {
    const r = rng('hmac')
    const out = new Uint8Array(32)
    for (let i = 0; i < 1000; i++) {
      const key = r.bytes(i % 10 === 0 ? r.int(300) : r.int(80))
      const len = i % 100 === 99 ? 200_000 + r.int(300_000) : r.int(3 * 64 + 2)
      const data = r.bytes(len)
      const want = createHmac('sha256', key).update(data).digest()
      expect(hex(hmacSha256(key, data))).toBe(want.toString('hex'))
      expect(hex(hmacSha256Into(key, data, out))).toBe(want.toString('hex'))
      const k = createHmacSha256Key(key)
      expect(hex(k.mac(data))).toBe(want.toString('hex'))
      expect(hex(k.macInto(data, out))).toBe(want.toString('hex'))
    }
  })

  it('string messages (ASCII, non-ASCII, lone surrogates, larger than the window): base64 MAC and verify', () => {
    const r = rng('hmac-text')
    const alphabet = ['a', 'Z', '0', '/', '%', '\n', 'é', '€', '😀', '\ud800', '\udc00']
    for (let i = 0; i < 1000; i++) {
      const key = r.bytes(r.int(100))
      const n = i === 999 ? 300_000 : r.int(200)
      let msg = ''
      for (let j = 0; j < n; j++) msg += i % 2 === 0 ? String.fromCharCode(32 + r.int(95)) : alphabet[r.int(alphabet.length)]
      const want = createHmac('sha256', key).update(msg, 'utf8').digest('base64')
      expect(hmacSha256Base64(key, msg)).toBe(want)
      const k = createHmacSha256Key(key)
      expect(k.macBase64(msg)).toBe(want)
      expect(verifyHmacSha256Base64(key, msg, want)).toBe(true)
      expect(k.verifyBase64(msg, want)).toBe(true)
      // Flip one character of the expected value: must not verify.
      const pos = r.int(43)
      const flipped = want.slice(0, pos) + (want[pos] === 'A' ? 'B' : 'A') + want.slice(pos + 1)
      expect(verifyHmacSha256Base64(key, msg, flipped)).toBe(false)
      expect(k.verifyBase64(msg, flipped)).toBe(false)
    }
  })
})

describe('HMAC-SHA256 verification of malformed expected values', () => {
  const key = enc('key')
  const msg = 'sr\nse'
  const good = createHmac('sha256', key).update(msg).digest('base64')
  const k = createHmacSha256Key(key)
  const bad = [
    '',
    good.slice(0, 43),
    good + '=',
    good.slice(0, 42) + '==',
    good.slice(0, 43) + 'A', // not padded
    good.slice(0, 10) + '*' + good.slice(11),
    good.slice(0, 10) + 'Ł' + good.slice(11), // low byte of U+0141 is 'A': must not alias
    good.slice(0, 42) + String.fromCharCode(good.charCodeAt(42) ^ 1) + '=', // non-zero trailing bits or wrong tag
    good.replace(/\+/g, '-').replace(/\//g, '_'),
  ].filter((s) => s !== good)
  for (const b of bad) {
    it(`returns false, never throws, for ${JSON.stringify(b)}`, () => {
      expect(verifyHmacSha256Base64(key, msg, b)).toBe(false)
      expect(k.verifyBase64(msg, b)).toBe(false)
    })
  }
  it('accepts the good value', () => {
    expect(verifyHmacSha256Base64(key, msg, good)).toBe(true)
    expect(k.verifyBase64(msg, good)).toBe(true)
  })
})

describe('HmacSha256Key slot cache', () => {
  it('more live keys than slots still give correct MACs (slots are reloaded)', () => {
    const r = rng('slots')
    const keys = Array.from({ length: 600 }, () => r.bytes(32))
    const objs = keys.map((k) => createHmacSha256Key(k))
    const data = r.bytes(40)
    for (let round = 0; round < 2; round++) {
      for (let i = objs.length - 1; i >= 0; i -= 7) {
        expect(hex(objs[i]!.mac(data))).toBe(createHmac('sha256', keys[i]!).update(data).digest('hex'))
      }
    }
  })
  it('copies the key: later changes to the caller\'s array do not matter', () => {
    const key = enc('secret')
    const k = createHmacSha256Key(key)
    key.fill(0)
    expect(hex(k.mac(enc('x')))).toBe(createHmac('sha256', 'secret').update('x').digest('hex'))
  })
})

describe('HMAC-SHA256 misuse', () => {
  it('throws typed errors naming the parameter', () => {
    const bytes = new Uint8Array(4)
    expect(() => hmacSha256('k' as unknown as Uint8Array, bytes)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('key') }))
    expect(() => hmacSha256(bytes, [1, 2] as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('data') }))
    expect(() => hmacSha256Into(bytes, bytes, new Uint8Array(31))).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_LENGTH', message: expect.stringContaining('out') }))
    expect(() => hmacSha256Base64(bytes, 5 as unknown as string)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('message') }))
    expect(() => verifyHmacSha256Base64(bytes, 'm', null as unknown as string)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('expectedBase64') }))
    expect(() => createHmacSha256Key(undefined as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT' }))
    const k = createHmacSha256Key(bytes)
    expect(() => k.macInto(bytes, new Uint8Array(33))).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_LENGTH' }))
    expect(() => k.verifyBase64({} as unknown as string, 'x')).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('message') }))
  })
})
