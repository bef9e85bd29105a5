import { constants, generateKeyPairSync, privateDecrypt, randomBytes, type KeyObject } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { CryptoError, rsaOaepEncrypt, rsaPublicKey, rsaPublicKeyFromSpki, type HashName } from '../src/index.js'
import { hex, rng } from './helpers.js'

const spkiOf = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ format: 'der', type: 'spki' }))
const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n))

describe('RSAES-OAEP encrypt', () => {
  const keys = [2048, 3072].map((bits) => generateKeyPairSync('rsa', { modulusLength: bits }))

  for (const label of ['IDENTITY\0', 'DUPLICATE\0']) {
    it(`SHA-256 with the TPM label ${JSON.stringify(label)}: node:crypto privateDecrypt opens 200 ciphertexts`, () => {
      const r = rng(label)
      for (let i = 0; i < 200; i++) {
        const { publicKey, privateKey } = keys[i % 2]!
        const key = i % 4 === 0 ? spkiOf(publicKey) : rsaPublicKeyFromSpki(spkiOf(publicKey))
        const msg = r.bytes(r.int(100))
        const c = rsaOaepEncrypt(key, 'SHA-256', msg, label, { random })
        expect(c.length).toBe(i % 2 === 0 ? 256 : 384)
        const opened = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from(label, 'latin1') }, c)
        expect(hex(new Uint8Array(opened))).toBe(hex(msg))
      }
    })
  }

  it('SHA-384 / SHA-512 and byte labels, up to the maximum message length', () => {
    const { publicKey, privateKey } = keys[1]!
    for (const hash of ['SHA-384', 'SHA-512'] as HashName[]) {
      const hLen = hash === 'SHA-384' ? 48 : 64
      const label = new Uint8Array([1, 2, 3, 0])
      for (const len of [0, 1, 100, 384 - 2 * hLen - 2]) {
        const msg = random(len)
        const c = rsaOaepEncrypt(publicKey.export({ format: 'der', type: 'spki' }) as unknown as Uint8Array, hash, msg, label, { random })
        const opened = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash.replace('-', '').toLowerCase(), oaepLabel: Buffer.from(label) }, c)
        expect(hex(new Uint8Array(opened))).toBe(hex(msg))
      }
      expect(() => rsaOaepEncrypt(spkiOf(publicKey), hash, random(384 - 2 * hLen - 1), label, { random })).toThrow(/data must be at most/)
    }
  })

  it('a given seed makes the encryption deterministic; different seeds differ', () => {
    const key = rsaPublicKeyFromSpki(spkiOf(keys[0]!.publicKey))
    const seed = new Uint8Array(32).fill(7)
    const a = rsaOaepEncrypt(key, 'SHA-256', new Uint8Array([1]), 'IDENTITY\0', { seed })
    const b = rsaOaepEncrypt(key, 'SHA-256', new Uint8Array([1]), 'IDENTITY\0', { seed })
    const c = rsaOaepEncrypt(key, 'SHA-256', new Uint8Array([1]), 'IDENTITY\0', { seed: new Uint8Array(32).fill(8) })
    expect(hex(a)).toBe(hex(b))
    expect(hex(a)).not.toBe(hex(c))
  })

  it('without a random source it throws a CryptoError that says what to pass', () => {
    const key = rsaPublicKey({ n: new Uint8Array(256).fill(0xff), e: 65537 })
    expect(() => rsaOaepEncrypt(key, 'SHA-256', new Uint8Array(1), 'x', undefined as never)).toThrow(/needs randomness/)
    expect(() => rsaOaepEncrypt(key, 'SHA-256', new Uint8Array(1), 'x', { random: () => new Uint8Array(3) })).toThrow(CryptoError)
    expect(() => rsaOaepEncrypt(key, 'SHA-256', new Uint8Array(1), 'x', { seed: new Uint8Array(31) })).toThrow(/options.seed must be 32 bytes/)
  })
})
