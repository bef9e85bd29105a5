import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import * as fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CryptoError, EcPublicKey, RsaPublicKey, ecPublicKeyFromSpki, publicKeyFromSpki, rsaPublicKeyFromSpki } from '../src/index.js'
import { hex } from './helpers.js'

const spkiOf = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ format: 'der', type: 'spki' }))
const errorOf = (f: () => unknown): CryptoError | undefined => {
  try {
    f()
  } catch (e) {
    if (e instanceof CryptoError) return e
    throw e
  }
  return undefined
}

describe('SubjectPublicKeyInfo', () => {
  const rsa = spkiOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey)
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey

  it('parses rsaEncryption, P-256 and P-384 keys into prepared keys', () => {
    expect(publicKeyFromSpki(rsa)).toBeInstanceOf(RsaPublicKey)
    const a = ecPublicKeyFromSpki(spkiOf(p256))
    expect(a).toBeInstanceOf(EcPublicKey)
    expect(a.curve).toBe('P-256')
    expect(Buffer.from(a.x).toString('base64url')).toBe(p256.export({ format: 'jwk' }).x)
    expect(Buffer.from(a.y).toString('base64url')).toBe(p256.export({ format: 'jwk' }).y)
    expect(ecPublicKeyFromSpki(spkiOf(p384)).curve).toBe('P-384')
  })

  it('parses id-RSASSA-PSS keys with and without parameters', () => {
    const plain = spkiOf(generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey)
    const k = rsaPublicKeyFromSpki(plain)
    expect(k.pssOnly).toBe(true)
    expect(k.pss).toBeUndefined()
    const withParams = spkiOf(generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha384', mgf1HashAlgorithm: 'sha384', saltLength: 48 } as { modulusLength: number }).publicKey)
    expect(rsaPublicKeyFromSpki(withParams).pss).toEqual({ hash: 'SHA-384', mgfHash: 'SHA-384', saltLength: 48 })
  })

  it('reports unsupported algorithms and curves as CRYPTO_UNSUPPORTED', () => {
    expect(errorOf(() => publicKeyFromSpki(spkiOf(generateKeyPairSync('ed25519').publicKey)))?.code).toBe('CRYPTO_UNSUPPORTED')
    expect(errorOf(() => publicKeyFromSpki(spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey)))?.message).toMatch(/curve other than P-256/)
    expect(errorOf(() => publicKeyFromSpki(spkiOf(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey)))?.code).toBe('CRYPTO_UNSUPPORTED')
  })

  it('rejects non-DER and malformed encodings as CRYPTO_INVALID_ARGUMENT with the reason', () => {
    const trailing = new Uint8Array(rsa.length + 1)
    trailing.set(rsa)
    expect(errorOf(() => publicKeyFromSpki(trailing))?.message).toMatch(/trailing bytes/)
    // long-form length where the short form fits: 30 82 01 22 -> 30 83 00 01 22
    const longLen = new Uint8Array(rsa.length + 1)
    longLen.set([0x30, 0x83, 0x00, 0x01, 0x22])
    longLen.set(rsa.subarray(4), 5)
    expect(errorOf(() => publicKeyFromSpki(longLen))?.message).toMatch(/not minimal/)
    // indefinite length
    const indefinite = rsa.slice()
    indefinite[1] = 0x80
    expect(errorOf(() => publicKeyFromSpki(indefinite))?.message).toMatch(/indefinite/)
    // rsaEncryption without the NULL parameters (RFC 3279 §2.3.1 requires NULL)
    const hexRsa = hex(rsa)
    const noNull = hexRsa.replace('300d06092a864886f70d0101010500', '300b06092a864886f70d010101').replace(/^30820122/, '30820120')
    expect(errorOf(() => publicKeyFromSpki(new Uint8Array(Buffer.from(noNull, 'hex'))))?.code).toBe('CRYPTO_INVALID_ARGUMENT')
    expect(errorOf(() => publicKeyFromSpki(new Uint8Array(0)))?.code).toBe('CRYPTO_INVALID_ARGUMENT')
    expect(errorOf(() => publicKeyFromSpki('MIIB' as unknown as Uint8Array))?.message).toMatch(/spkiDer must be a Uint8Array/)
    expect(errorOf(() => ecPublicKeyFromSpki(rsa))?.message).toMatch(/RSA key where an EC key is required/)
    expect(errorOf(() => rsaPublicKeyFromSpki(spkiOf(p256)))?.message).toMatch(/EC key where an RSA key is required/)
  })

  it('random corruptions of valid keys either parse or throw CryptoError, never anything else', () => {
    const samples = [rsa, spkiOf(p256), spkiOf(p384)]
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), (which, edits, cut) => {
        const b = samples[which]!.slice()
        for (const [at, v] of edits) b[at % b.length] = v
        const input = cut % 5 === 0 ? b.subarray(0, cut % b.length) : b
        try {
          publicKeyFromSpki(input)
        } catch (e) {
          expect(e).toBeInstanceOf(CryptoError)
        }
      }),
      { numRuns: 2000 },
    )
  })
})
