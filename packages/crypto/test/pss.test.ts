import { constants, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CryptoError, rsaPublicKeyFromSpki, verifyRsaPkcs1v15, verifyRsaPss, type HashName } from '../src/index.js'
import { rng } from './helpers.js'

const VECTORS = new URL('../../../../shared/vectors/wycheproof/testvectors_v1/', import.meta.url)
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))
const spkiOf = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ format: 'der', type: 'spki' }))
const nodeHash = (h: HashName): string => h.replace('-', '').toLowerCase()

interface Test { tcId: number; comment: string; flags: string[]; msg: string; sig: string; result: 'valid' | 'invalid' | 'acceptable' }
interface Group { publicKeyDer: string; sha: HashName; mgfSha: HashName; sLen: number; tests: Test[] }

describe('RSASSA-PSS verify: Wycheproof', () => {
  for (const file of [
    'rsa_pss_2048_sha256_mgf1_0_test.json',
    'rsa_pss_2048_sha256_mgf1_32_test.json',
    'rsa_pss_2048_sha256_mgf1_0_params_test.json',
    'rsa_pss_2048_sha256_mgf1_32_params_test.json',
  ]) {
    const data = JSON.parse(readFileSync(new URL(file, VECTORS), 'utf8')) as { testGroups: Group[] }
    it(`${file}: every valid accepted, every invalid rejected (key parsed from the file's DER)`, () => {
      const counts = { valid: 0, invalid: 0, acceptable: 0 }
      for (const g of data.testGroups) {
        const key = rsaPublicKeyFromSpki(unhex(g.publicKeyDer))
        if (file.includes('params')) {
          // id-RSASSA-PSS SPKI: the parameters travel with the key
          expect(key.pss).toEqual({ hash: g.sha, mgfHash: g.mgfSha, saltLength: g.sLen })
        }
        for (const t of g.tests) {
          // no `acceptable` vectors in these files; if one appears the test fails and a policy must be written
          expect(t.result).not.toBe('acceptable')
          const got = verifyRsaPss(key, g.sha, g.sLen, unhex(t.msg), unhex(t.sig))
          expect(got, `tcId ${t.tcId} ${t.comment} ${t.flags.join(',')}`).toBe(t.result === 'valid')
          counts[t.result]++
          // 'auto' recovers the salt: it accepts exactly the valid ones too, except those whose
          // only defect is the salt length
          if (t.result === 'valid') expect(verifyRsaPss(key, g.sha, 'auto', unhex(t.msg), unhex(t.sig))).toBe(true)
        }
      }
      expect(counts.valid).toBeGreaterThan(50)
      expect(counts.invalid).toBeGreaterThan(40)
    })
  }

  it('an id-RSASSA-PSS key never verifies PKCS#1 v1.5 and refuses other hashes or shorter salts', () => {
    const data = JSON.parse(readFileSync(new URL('rsa_pss_2048_sha256_mgf1_32_params_test.json', VECTORS), 'utf8')) as { testGroups: Group[] }
    const g = data.testGroups[0]!
    const key = rsaPublicKeyFromSpki(unhex(g.publicKeyDer))
    const t = g.tests.find((x) => x.result === 'valid')!
    expect(verifyRsaPss(key, 'SHA-256', 32, unhex(t.msg), unhex(t.sig))).toBe(true)
    expect(verifyRsaPss(key, 'SHA-384', 32, unhex(t.msg), unhex(t.sig))).toBe(false)
    expect(verifyRsaPkcs1v15(key, 'SHA-256', unhex(t.msg), unhex(t.sig))).toBe(false)
  })
})

describe('RSASSA-PSS verify: node:crypto cross-checks', () => {
  const hashes: HashName[] = ['SHA-256', 'SHA-384', 'SHA-512']
  for (const bits of [2048, 3072, 4096]) {
    it(`RSA-${bits}: 1000 node-signed PSS messages verify (given and 'auto' salt); flipped bits do not`, () => {
      const r = rng(`pss-${bits}`)
      const keys = Array.from({ length: bits === 4096 ? 2 : 3 }, () => generateKeyPairSync('rsa', { modulusLength: bits }))
      const prepared = keys.map((k) => rsaPublicKeyFromSpki(spkiOf(k.publicKey)))
      for (let i = 0; i < 1000; i++) {
        const k = i % keys.length
        const hash = hashes[i % 3]!
        const saltLength = [0, 20, 32, 48, 64][i % 5]!
        const msg = r.bytes(r.int(200))
        const sig = new Uint8Array(sign(nodeHash(hash), msg, { key: keys[k]!.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }))
        const key = prepared[k]!
        expect(verifyRsaPss(key, hash, saltLength, msg, sig), `case ${i}`).toBe(true)
        expect(verifyRsaPss(key, hash, 'auto', msg, sig), `case ${i} auto`).toBe(true)
        expect(verifyRsaPss(key, hash, saltLength + 1, msg, sig), `case ${i} wrong salt length`).toBe(false)
        const badSig = sig.slice()
        badSig[r.int(badSig.length)]! ^= 1 << r.int(8)
        expect(verifyRsaPss(key, hash, saltLength, msg, badSig), `case ${i} flipped signature bit`).toBe(false)
        const badMsg = new Uint8Array(Math.max(1, msg.length))
        badMsg.set(msg)
        badMsg[r.int(badMsg.length)]! ^= 1 << r.int(8)
        expect(verifyRsaPss(key, hash, 'auto', badMsg, sig), `case ${i} flipped message bit`).toBe(false)
      }
      // node:crypto's key generation and signing dominate; a guard for a loaded CI machine, not a measure.
    }, 240_000)
  }

  it('moduli whose bit length is 1 mod 8 (emLen < k) verify', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2041 })
    const key = rsaPublicKeyFromSpki(spkiOf(publicKey))
    expect(key.bits).toBe(2041)
    for (let i = 0; i < 20; i++) {
      const msg = new Uint8Array([i, 1, 2])
      const sig = new Uint8Array(sign('sha256', msg, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }))
      expect(verifyRsaPss(key, 'SHA-256', 32, msg, sig)).toBe(true)
    }
  })

  it('saltLength must be a non-negative integer or auto', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const key = rsaPublicKeyFromSpki(spkiOf(publicKey))
    expect(() => verifyRsaPss(key, 'SHA-256', -1, new Uint8Array(1), new Uint8Array(256))).toThrow(CryptoError)
    expect(() => verifyRsaPss(key, 'SHA-256', 'max' as 'auto', new Uint8Array(1), new Uint8Array(256))).toThrow(/saltLength/)
  })
})
