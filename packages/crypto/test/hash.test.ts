import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createSha256, createSha384, createSha512, sha256, sha256Into, sha384, sha384Into, sha512, sha512Into } from '../src/index.js'
import { hex, rng } from './helpers.js'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

// FIPS 180-4 examples (NIST CSRC "Examples with intermediate values", SHA-2 family).
const MSG448 = 'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'
const MSG896 =
  'abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu'

describe('SHA-2 NIST example vectors', () => {
  const cases: [string, Uint8Array, string, string, string][] = [
    [
      'empty',
      enc(''),
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      '38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b',
      'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e',
    ],
    [
      'abc',
      enc('abc'),
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
      'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7',
      'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
    ],
    [
      '448-bit',
      enc(MSG448),
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
      '3391fdddfc8dc7393707a65b1b4709397cf8b1d162af05abfe8f450de5f36bc6b0455a8520bc4e6f5fe95b1fe3c8452b',
      '204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c33596fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445',
    ],
    [
      '896-bit',
      enc(MSG896),
      'cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1',
      '09330c33f71147e83d192fc782cd1b4753111b173b3b05d22fa08086e3b0f712fcc7c71a557e2db966c3e9fa91746039',
      '8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909',
    ],
    [
      'one million a',
      new Uint8Array(1_000_000).fill(0x61),
      'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0',
      '9d0e1809716474cb086e834e310a4a1ced149e9c00f248527972cec5704c2a5b07b8b3dc38ecc4ebae97ddd87f3d8985',
      'e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973ebde0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b',
    ],
  ]
  for (const [name, msg, h256, h384, h512] of cases) {
    it(`${name}`, () => {
      expect(hex(sha256(msg))).toBe(h256)
      expect(hex(sha384(msg))).toBe(h384)
      expect(hex(sha512(msg))).toBe(h512)
    })
  }
})

describe('SHA-2 against node:crypto', () => {
  const algs = [
    ['sha256', sha256, sha256Into, createSha256, 32],
    ['sha384', sha384, sha384Into, createSha384, 48],
    ['sha512', sha512, sha512Into, createSha512, 64],
  ] as const
  for (const [name, oneShot, into, create, size] of algs) {
    it(`${name}: 1,000 random inputs (0..~3 blocks, some large)`, () => {
      const r = rng(name)
      const out = new Uint8Array(size)
      for (let i = 0; i < 1000; i++) {
        const len = i % 100 === 99 ? r.int(300_000) + 200_000 : r.int(3 * 128 + 2)
        const data = r.bytes(len)
        const want = createHash(name).update(data).digest('hex')
        expect(hex(oneShot(data))).toBe(want)
        expect(hex(into(data, out))).toBe(want)
      }
    })
    it(`${name}: streaming over random splits equals one-shot`, () => {
      const r = rng(`${name}-stream`)
      for (let i = 0; i < 200; i++) {
        const data = r.bytes(i % 50 === 49 ? 600_000 : r.int(1000))
        const h = create()
        let at = 0
        while (at < data.length) {
          const step = Math.min(data.length - at, r.int(i % 50 === 49 ? 300_000 : 200) + 1)
          h.update(data.subarray(at, at + step))
          at += step
        }
        expect(hex(h.digest())).toBe(hex(oneShot(data)))
      }
    })
  }

  it('concurrent hashers do not disturb each other', () => {
    const r = rng('concurrent')
    const a = r.bytes(5000)
    const b = r.bytes(7000)
    const ha = createSha256()
    const hb = createSha512()
    const hc = createSha256()
    for (let i = 0; i < 5000; i += 333) {
      ha.update(a.subarray(i, i + 333))
      hb.update(b.subarray(i, i + 333))
      hc.update(b.subarray(i, i + 333))
      sha256(a) // a one-shot in between must not clobber any context
    }
    hb.update(b.subarray(5000 + 328))
    hb.update(new Uint8Array(0))
    hc.update(b.subarray(5000 + 328))
    hb.update(b.subarray(5000, 5000 + 328))
    hc.update(b.subarray(5000, 5000 + 328))
    expect(hex(ha.digest())).toBe(createHash('sha256').update(a).digest('hex'))
    const bb = new Uint8Array([...b.subarray(0, 5328), ...b.subarray(5328), ...b.subarray(5000, 5328)])
    expect(hex(hb.digest())).toBe(createHash('sha512').update(bb.subarray(0, 5328)).update(b.subarray(5328)).update(b.subarray(5000, 5328)).digest('hex'))
    expect(hex(hc.digest())).toBe(createHash('sha256').update(b.subarray(0, 5328)).update(b.subarray(5328)).update(b.subarray(5000, 5328)).digest('hex'))
  })
})

describe('SHA-2 misuse', () => {
  it('rejects non-bytes and wrong output lengths with typed errors', () => {
    expect(() => sha256('abc' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('data') }))
    expect(() => sha512Into(new Uint8Array(1), new Uint8Array(32))).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_LENGTH', message: expect.stringContaining('out must be 64 bytes') }))
    expect(() => sha384Into(new Uint8Array(1), [] as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT' }))
    const h = createSha256()
    h.digest()
    expect(() => h.update(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('digest() was already called') }))
    expect(() => createSha256().update(null as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT' }))
  })
})
