// @provisio/crypto public-key operations against node:crypto (OpenSSL, with KeyObjects prepared
// once), node-forge and @noble/curves. Targets in bench/README.md. Every function hashes the message
// itself (SHA-256 / SHA-384 of 64 bytes), so the comparisons include the digest on both sides.
import { strict as assert } from 'node:assert'
import {
  constants, createCipheriv, createPublicKey, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, sign, verify,
} from 'node:crypto'
import {
  aesCfbEncrypt, ecPublicKeyFromSpki, rsaOaepEncrypt, rsaPublicKeyFromSpki, usingSimd, verifyEcdsa, verifyRsaPkcs1v15, verifyRsaPss,
} from '@provisio/crypto'
import { p256, p384 } from '@noble/curves/nist.js'
import forge from 'node-forge'

const MSG = new Uint8Array(64).map((_, i) => (i * 37 + 11) & 0xff)
const spki = (k) => new Uint8Array(k.export({ format: 'der', type: 'spki' }))

// ---- keys and signatures, made once (outside every timed function) ----
const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsa4096 = generateKeyPairSync('rsa', { modulusLength: 4096 })
const rsaKey2048 = rsaPublicKeyFromSpki(spki(rsa2048.publicKey))
const rsaKey4096 = rsaPublicKeyFromSpki(spki(rsa4096.publicKey))
const sig2048 = new Uint8Array(sign('sha256', MSG, rsa2048.privateKey))
const sig4096 = new Uint8Array(sign('sha256', MSG, rsa4096.privateKey))
const pss2048 = new Uint8Array(sign('sha256', MSG, { key: rsa2048.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }))
const forgeKey2048 = forge.pki.publicKeyFromPem(rsa2048.publicKey.export({ format: 'pem', type: 'spki' }))
const forgeSig2048 = forge.util.binary.raw.encode(sig2048)
const forgeVerify = () => {
  const md = forge.md.sha256.create()
  md.update(forge.util.binary.raw.encode(MSG))
  return forgeKey2048.verify(md.digest().bytes(), forgeSig2048)
}

const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
const ecKey256 = ecPublicKeyFromSpki(spki(ec256.publicKey))
const ecKey384 = ecPublicKeyFromSpki(spki(ec384.publicKey))
const ecSig256 = new Uint8Array(sign('sha256', MSG, { key: ec256.privateKey, dsaEncoding: 'ieee-p1363' }))
const ecSig384 = new Uint8Array(sign('sha384', MSG, { key: ec384.privateKey, dsaEncoding: 'ieee-p1363' }))
const rawPoint = (key) => {
  const out = new Uint8Array(1 + key.x.length * 2)
  out[0] = 4
  out.set(key.x, 1)
  out.set(key.y, 1 + key.x.length)
  return out
}
const noblePub256 = rawPoint(ecKey256)
const noblePub384 = rawPoint(ecKey384)

const spki2048 = spki(rsa2048.publicKey)
const AES_KEY = new Uint8Array(16).fill(3)
const AES_IV = new Uint8Array(16).fill(5)
const AES_DATA = new Uint8Array(1 << 16).fill(9)
const fixedRandom = (n) => new Uint8Array(randomBytes(n))
let sink = 0

export default {
  file: 'crypto',
  title: '@provisio/crypto public-key operations',
  notes: `Our build in this run: ${usingSimd() ? 'SIMD' : 'scalar'} WebAssembly. Keys are prepared once on every side (our RsaPublicKey/EcPublicKey, node KeyObject, forge key object, noble raw point). ECDSA signatures are P1363 (r ‖ s) for every implementation; noble is called with lowS: false, since OpenSSL signatures may have a high s (ECDSA itself has no low-s rule).`,
  cases: [
    {
      name: 'RSA-2048 PKCS#1 v1.5 verify (SHA-256, e = 65537)',
      unit: 'ops',
      target: '>= 15,000/s and >= 0.4x node:crypto and >= 10x node-forge',
      check() {
        assert.equal(verifyRsaPkcs1v15(rsaKey2048, 'SHA-256', MSG, sig2048), true)
        assert.equal(verify('sha256', MSG, rsa2048.publicKey, sig2048), true)
        assert.equal(forgeVerify(), true)
      },
      ours() {
        sink += verifyRsaPkcs1v15(rsaKey2048, 'SHA-256', MSG, sig2048) ? 1 : 0
      },
      peers: {
        'node:crypto': () => {
          sink += verify('sha256', MSG, rsa2048.publicKey, sig2048) ? 1 : 0
        },
        'node-forge': () => {
          sink += forgeVerify() ? 1 : 0
        },
      },
    },
    {
      name: 'ECDSA P-256 verify (SHA-256)',
      unit: 'ops',
      target: '>= 3,000/s and >= 0.3x node:crypto and >= 10x @noble/curves',
      check() {
        assert.equal(verifyEcdsa(ecKey256, 'SHA-256', MSG, ecSig256, 'p1363'), true)
        assert.equal(verify('sha256', MSG, { key: ec256.publicKey, dsaEncoding: 'ieee-p1363' }, ecSig256), true)
        assert.equal(p256.verify(ecSig256, MSG, noblePub256, { lowS: false }), true)
      },
      ours() {
        sink += verifyEcdsa(ecKey256, 'SHA-256', MSG, ecSig256, 'p1363') ? 1 : 0
      },
      peers: {
        'node:crypto': () => {
          sink += verify('sha256', MSG, { key: ec256.publicKey, dsaEncoding: 'ieee-p1363' }, ecSig256) ? 1 : 0
        },
        '@noble/curves': () => {
          sink += p256.verify(ecSig256, MSG, noblePub256, { lowS: false }) ? 1 : 0
        },
      },
    },
    {
      name: 'ECDSA P-384 verify (SHA-384)',
      unit: 'ops',
      target: '>= 800/s',
      check() {
        assert.equal(verifyEcdsa(ecKey384, 'SHA-384', MSG, ecSig384, 'p1363'), true)
        assert.equal(verify('sha384', MSG, { key: ec384.publicKey, dsaEncoding: 'ieee-p1363' }, ecSig384), true)
        assert.equal(p384.verify(ecSig384, MSG, noblePub384, { lowS: false }), true)
      },
      ours() {
        sink += verifyEcdsa(ecKey384, 'SHA-384', MSG, ecSig384, 'p1363') ? 1 : 0
      },
      peers: {
        'node:crypto': () => {
          sink += verify('sha384', MSG, { key: ec384.publicKey, dsaEncoding: 'ieee-p1363' }, ecSig384) ? 1 : 0
        },
        '@noble/curves': () => {
          sink += p384.verify(ecSig384, MSG, noblePub384, { lowS: false }) ? 1 : 0
        },
      },
    },
    {
      name: 'RSA-4096 PKCS#1 v1.5 verify (SHA-256)',
      unit: 'ops',
      check() {
        assert.equal(verifyRsaPkcs1v15(rsaKey4096, 'SHA-256', MSG, sig4096), true)
      },
      ours() {
        sink += verifyRsaPkcs1v15(rsaKey4096, 'SHA-256', MSG, sig4096) ? 1 : 0
      },
      peers: {
        'node:crypto': () => {
          sink += verify('sha256', MSG, rsa4096.publicKey, sig4096) ? 1 : 0
        },
      },
    },
    {
      name: 'RSA-2048 PSS verify (SHA-256, salt 32)',
      unit: 'ops',
      check() {
        assert.equal(verifyRsaPss(rsaKey2048, 'SHA-256', 32, MSG, pss2048), true)
      },
      ours() {
        sink += verifyRsaPss(rsaKey2048, 'SHA-256', 32, MSG, pss2048) ? 1 : 0
      },
      peers: {
        'node:crypto': () => {
          sink += verify('sha256', MSG, { key: rsa2048.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss2048) ? 1 : 0
        },
      },
    },
    {
      name: 'RSA-2048 OAEP encrypt (SHA-256, label "IDENTITY\\0", 32-byte secret)',
      unit: 'ops',
      check() {
        const c = rsaOaepEncrypt(rsaKey2048, 'SHA-256', MSG.subarray(0, 32), 'IDENTITY\0', { random: fixedRandom })
        const p = privateDecrypt({ key: rsa2048.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0') }, c)
        assert.deepEqual(new Uint8Array(p), MSG.subarray(0, 32))
      },
      ours() {
        sink += rsaOaepEncrypt(rsaKey2048, 'SHA-256', MSG.subarray(0, 32), 'IDENTITY\0', { random: fixedRandom }).length
      },
      peers: {
        'node:crypto': () => {
          sink += publicEncrypt({ key: rsa2048.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0') }, MSG.subarray(0, 32)).length
        },
      },
    },
    {
      name: 'RSA-2048 key preparation from SPKI DER',
      unit: 'ops',
      ours() {
        sink += rsaPublicKeyFromSpki(spki2048).bits
      },
      peers: {
        'node:crypto': () => {
          sink += createPublicKey({ key: Buffer.from(spki2048), format: 'der', type: 'spki' }).asymmetricKeyDetails.modulusLength
        },
      },
    },
    {
      name: 'AES-128-CFB encrypt, 64 KiB',
      unit: 'bytes',
      bytesPerOp: AES_DATA.length,
      check() {
        // results of the timed calls are summed into `sink` so no call can be optimised away
        assert.ok(sink >= 0)
        const c = createCipheriv('aes-128-cfb', AES_KEY, AES_IV)
        assert.deepEqual(aesCfbEncrypt(AES_KEY, AES_IV, AES_DATA), new Uint8Array(Buffer.concat([c.update(AES_DATA), c.final()])))
      },
      ours() {
        sink += aesCfbEncrypt(AES_KEY, AES_IV, AES_DATA).length
      },
      peers: {
        'node:crypto': () => {
          const c = createCipheriv('aes-128-cfb', AES_KEY, AES_IV)
          sink += c.update(AES_DATA).length + c.final().length
        },
      },
    },
  ],
}
