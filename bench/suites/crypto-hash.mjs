// @provisio/crypto hashing against node:crypto, @noble/hashes, hash-wasm and @chainsafe/as-sha256.
// See bench/README.md for what each case measures and its target.
import { createHash, createHmac } from 'node:crypto'
import { strict as assert } from 'node:assert'
import {
  createHmacSha256Key, deriveDeviceKeys, hmacSha256, hmacSha256Into, sha256Into, sha512Into, usingSimd,
} from '@provisio/crypto'
import { sha256 as nobleSha256, sha512 as nobleSha512 } from '@noble/hashes/sha2.js'
import { hmac as nobleHmac } from '@noble/hashes/hmac.js'
import { createSHA256, createSHA512 } from 'hash-wasm'
import { digest as asDigest } from '@chainsafe/as-sha256'

/** Deterministic pseudo-random bytes (bench inputs need no secrecy, only reproducibility). */
function bytes(n, seed) {
  const out = new Uint8Array(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

// ---- batched derivation: 10,000 registration ids of 40 characters, one group key ----
const GROUP_KEY = Buffer.from(bytes(64, 7)).toString('base64')
const GROUP_BYTES = Buffer.from(GROUP_KEY, 'base64')
const IDS = Array.from({ length: 10_000 }, (_, i) => `device-${String(i).padStart(8, '0')}-provisio-bench-`.padEnd(40, 'x'))
assert.equal(IDS[0].length, 40)
let sink = 0

// ---- one HMAC with a fresh 64-byte key per call ----
const KEYS = Array.from({ length: 1024 }, (_, i) => bytes(64, 1000 + i))
const MSG40 = bytes(40, 99)
const MAC_OUT = new Uint8Array(32)
let k = 0

// ---- SHA-256 / SHA-512 of 1 MiB ----
const MIB = bytes(1 << 20, 3)
const OUT32 = new Uint8Array(32)
const OUT64 = new Uint8Array(64)
let hw256
let hw512

const cached = createHmacSha256Key(bytes(64, 5))
const cachedNode = createHmac('sha256', Buffer.from(bytes(64, 5)))
void cachedNode

export default {
  file: 'crypto',
  title: '@provisio/crypto hashing',
  notes: `Our build in this run: ${usingSimd() ? 'SIMD' : 'scalar'} WebAssembly.`,
  cases: [
    {
      name: 'deriveDeviceKeys: 10,000 ids of 40 chars, one group key (keys/s)',
      unit: 'ops',
      opsPerCall: IDS.length,
      target: '>= 1,000,000 keys/s and >= 2.5x node:crypto',
      check() {
        const ours = deriveDeviceKeys(GROUP_KEY, IDS)
        IDS.forEach((id, i) => assert.equal(ours[i], createHmac('sha256', GROUP_BYTES).update(id).digest('base64')))
      },
      ours() {
        sink += deriveDeviceKeys(GROUP_KEY, IDS).length
      },
      peers: {
        'node:crypto': () => {
          const out = new Array(IDS.length)
          for (let i = 0; i < IDS.length; i++) out[i] = createHmac('sha256', GROUP_BYTES).update(IDS[i]).digest('base64')
          sink += out.length
        },
      },
    },
    {
      name: 'HMAC-SHA256 of 40 bytes, fresh 64-byte key each call',
      unit: 'ops',
      target: '>= 1.0x node:crypto',
      check() {
        const want = createHmac('sha256', KEYS[0]).update(MSG40).digest()
        assert.deepEqual(Buffer.from(hmacSha256(KEYS[0], MSG40)), want)
        assert.deepEqual(Buffer.from(nobleHmac(nobleSha256, KEYS[0], MSG40)), want)
      },
      ours() {
        hmacSha256Into(KEYS[k++ & 1023], MSG40, MAC_OUT)
      },
      peers: {
        'node:crypto': () => {
          createHmac('sha256', KEYS[k++ & 1023]).update(MSG40).digest()
        },
        '@noble/hashes': () => {
          nobleHmac(nobleSha256, KEYS[k++ & 1023], MSG40)
        },
      },
    },
    {
      name: 'HMAC-SHA256 of 40 bytes, cached key (createHmacSha256Key.macInto)',
      unit: 'ops',
      ours() {
        cached.macInto(MSG40, MAC_OUT)
      },
      peers: {
        'node:crypto (new Hmac per call)': () => {
          createHmac('sha256', KEYS[0]).update(MSG40).digest()
        },
      },
    },
    {
      name: 'SHA-256 of 1 MiB',
      unit: 'bytes',
      bytesPerOp: MIB.length,
      target: '>= 250 MB/s and >= 1.0x hash-wasm',
      async setup() {
        hw256 = await createSHA256()
      },
      check() {
        const want = createHash('sha256').update(MIB).digest()
        assert.deepEqual(Buffer.from(sha256Into(MIB, OUT32)), want)
        hw256.init()
        hw256.update(MIB)
        assert.deepEqual(Buffer.from(hw256.digest('binary')), want)
        assert.deepEqual(Buffer.from(nobleSha256(MIB)), want)
        assert.deepEqual(Buffer.from(asDigest(MIB)), want)
      },
      ours() {
        sha256Into(MIB, OUT32)
      },
      peers: {
        'node:crypto': () => {
          createHash('sha256').update(MIB).digest()
        },
        'hash-wasm': () => {
          hw256.init()
          hw256.update(MIB)
          hw256.digest('binary')
        },
        '@noble/hashes': () => {
          nobleSha256(MIB)
        },
        '@chainsafe/as-sha256': () => {
          asDigest(MIB)
        },
      },
    },
    {
      name: 'SHA-512 of 1 MiB',
      unit: 'bytes',
      bytesPerOp: MIB.length,
      async setup() {
        hw512 = await createSHA512()
      },
      check() {
        const want = createHash('sha512').update(MIB).digest()
        assert.deepEqual(Buffer.from(sha512Into(MIB, OUT64)), want)
      },
      ours() {
        sha512Into(MIB, OUT64)
      },
      peers: {
        'node:crypto': () => {
          createHash('sha512').update(MIB).digest()
        },
        'hash-wasm': () => {
          hw512.init()
          hw512.update(MIB)
          hw512.digest('binary')
        },
        '@noble/hashes': () => {
          nobleSha512(MIB)
        },
      },
    },
  ],
}

process.on('exit', () => {
  if (sink < 0) console.log(sink)
})
