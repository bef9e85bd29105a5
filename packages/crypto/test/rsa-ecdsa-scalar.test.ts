// The scalar WebAssembly build must give exactly the verdicts of the SIMD build: this file forces
// the scalar build (vitest isolates test files, so the choice holds for this file only) and runs
// every Wycheproof vector plus node:crypto cross-checks through it.
import { generateKeyPairSync, sign } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  aesCfbEncrypt, configure, ecPublicKeyFromSpki, rsaPublicKeyFromSpki, usingSimd, verifyEcdsa, verifyRsaPkcs1v15, verifyRsaPss, type HashName,
} from '../src/index.js'
import { hex, rng } from './helpers.js'

configure({ simd: false })

const VECTORS = new URL('../../../../shared/vectors/wycheproof/testvectors_v1/', import.meta.url)
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))
interface Test { tcId: number; msg: string; sig: string; result: string }
interface Group { publicKeyDer: string; sha: HashName; sLen?: number; tests: Test[] }
const load = (f: string): Group[] => (JSON.parse(readFileSync(new URL(f, VECTORS), 'utf8')) as { testGroups: Group[] }).testGroups

describe('scalar build', () => {
  it('is the build in use', () => {
    expect(usingSimd()).toBe(false)
  })

  it('RSA PKCS#1 v1.5 and PSS Wycheproof verdicts (acceptable = rejected, as in the SIMD build)', () => {
    for (const f of ['rsa_signature_2048_sha256_test.json', 'rsa_signature_3072_sha256_test.json', 'rsa_signature_4096_sha256_test.json']) {
      for (const g of load(f)) {
        const key = rsaPublicKeyFromSpki(unhex(g.publicKeyDer))
        for (const t of g.tests) expect(verifyRsaPkcs1v15(key, g.sha, unhex(t.msg), unhex(t.sig)), `${f} ${t.tcId}`).toBe(t.result === 'valid')
      }
    }
    for (const f of ['rsa_pss_2048_sha256_mgf1_0_test.json', 'rsa_pss_2048_sha256_mgf1_32_params_test.json']) {
      for (const g of load(f)) {
        const key = rsaPublicKeyFromSpki(unhex(g.publicKeyDer))
        for (const t of g.tests) expect(verifyRsaPss(key, g.sha, Number(g.sLen), unhex(t.msg), unhex(t.sig)), `${f} ${t.tcId}`).toBe(t.result === 'valid')
      }
    }
  })

  it('ECDSA P-256 / P-384 Wycheproof verdicts', () => {
    for (const [f, format] of [['ecdsa_secp256r1_sha256_test.json', 'der'], ['ecdsa_secp384r1_sha384_p1363_test.json', 'p1363']] as const) {
      for (const g of load(f)) {
        const key = ecPublicKeyFromSpki(unhex(g.publicKeyDer))
        for (const t of g.tests) expect(verifyEcdsa(key, g.sha, unhex(t.msg), unhex(t.sig), format), `${f} ${t.tcId}`).toBe(t.result === 'valid')
      }
    }
  })

  it('node:crypto signatures: 200 per algorithm, with flipped-bit negatives', () => {
    const r = rng('scalar')
    for (const bits of [2048, 3072, 4096]) {
      const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits })
      const key = rsaPublicKeyFromSpki(new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })))
      for (let i = 0; i < 200; i++) {
        const msg = r.bytes(r.int(100))
        const sig = new Uint8Array(sign('sha256', msg, privateKey))
        expect(verifyRsaPkcs1v15(key, 'SHA-256', msg, sig)).toBe(true)
        sig[r.int(sig.length)]! ^= 1 << r.int(8)
        expect(verifyRsaPkcs1v15(key, 'SHA-256', msg, sig)).toBe(false)
      }
    }
    for (const curve of ['P-256', 'P-384']) {
      const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: curve })
      const key = ecPublicKeyFromSpki(new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })))
      for (let i = 0; i < 200; i++) {
        const msg = r.bytes(r.int(100))
        const sig = new Uint8Array(sign('sha384', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' }))
        expect(verifyEcdsa(key, 'SHA-384', msg, sig, 'p1363')).toBe(true)
        sig[r.int(sig.length)]! ^= 1 << r.int(8)
        expect(verifyEcdsa(key, 'SHA-384', msg, sig, 'p1363')).toBe(false)
      }
    }
  })

  it('AES-CFB known answer (SP 800-38A F.3.13)', () => {
    const c = aesCfbEncrypt(unhex('2b7e151628aed2a6abf7158809cf4f3c'), unhex('000102030405060708090a0b0c0d0e0f'), unhex('6bc1bee22e409f96e93d7e117393172a'))
    expect(hex(c)).toBe('3b3fd92eb72dad20333449f8e83cfb4a')
  })
})
