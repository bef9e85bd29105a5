// AES-128 / AES-256 (FIPS 197) forward cipher and CFB-128 mode (NIST SP 800-38A §6.3), as TPM 2.0
// uses for parameter and credential encryption (TPM 2.0 Part 1 §11.4.11, §24.5). CFB needs only
// the forward cipher in both directions.
//
// The cipher uses one 256-entry "T-table" (SubBytes, ShiftRows and MixColumns of one byte folded
// into a u32) and rotations for the other three columns; the S-box and table are computed on first
// use from the field arithmetic (FIPS 197 §5.1.1) rather than embedded. Table lookups are not
// constant-time; this core encrypts TPM protocol blobs for a device that is not the adversary's
// co-tenant, and the verification-heavy parts of this module process public data.

const SBOX: usize = memory.data(256, 16)
const T0: usize = memory.data(1024, 16)
const RK: usize = memory.data(60 * 4, 16)
const BLOCK: usize = memory.data(16, 16)
const KS: usize = memory.data(16, 16)
let tablesReady = false
let rounds: i32 = 0

// @ts-ignore: decorator
@inline function xtime(b: u32): u32 {
  return ((b << 1) ^ ((b >> 7) * 0x1b)) & 0xff
}

function buildTables(): void {
  // S(x) = affine(x^-1) over GF(2^8) with the AES polynomial; walk x = 3^i and its inverse 3^-i
  let p: u32 = 1
  let q: u32 = 1
  do {
    // p *= 3
    p = p ^ xtime(p)
    // q /= 3 (multiply by 0xf6, the inverse of 3)
    q ^= q << 1
    q ^= q << 2
    q ^= q << 4
    q &= 0xff
    if ((q & 0x80) != 0) q ^= 0x09
    const x = q ^ rotl8(q, 1) ^ rotl8(q, 2) ^ rotl8(q, 3) ^ rotl8(q, 4)
    store<u8>(SBOX + <usize>p, <u8>(x ^ 0x63))
  } while (p != 1)
  store<u8>(SBOX, 0x63) // 0 has no inverse
  for (let i = 0; i < 256; i++) {
    const s = <u32>load<u8>(SBOX + <usize>i)
    const s2 = xtime(s)
    const s3 = s2 ^ s
    // column (2s, s, s, 3s) as little-endian bytes of a u32
    store<u32>(T0 + (<usize>i << 2), s2 | (s << 8) | (s << 16) | (s3 << 24))
  }
  tablesReady = true
}

// @ts-ignore: decorator
@inline function rotl8(x: u32, n: u32): u32 {
  return ((x << n) | (x >> (8 - n))) & 0xff
}

// @ts-ignore: decorator
@inline function sub(x: u32): u32 {
  return <u32>load<u8>(SBOX + <usize>(x & 0xff)) |
    (<u32>load<u8>(SBOX + <usize>((x >> 8) & 0xff)) << 8) |
    (<u32>load<u8>(SBOX + <usize>((x >> 16) & 0xff)) << 16) |
    (<u32>load<u8>(SBOX + <usize>(x >> 24)) << 24)
}

/** Key expansion (FIPS 197 §5.2); words are little-endian loads of the key bytes. */
function expandKey(key: usize, len: i32): void {
  const nk = len >> 2
  rounds = nk + 6
  const total = 4 * (rounds + 1)
  for (let i = 0; i < nk; i++) store<u32>(RK + (<usize>i << 2), load<u32>(key + (<usize>i << 2)))
  let rcon: u32 = 1
  for (let i = nk; i < total; i++) {
    let t = load<u32>(RK + (<usize>(i - 1) << 2))
    if (i % nk == 0) {
      t = sub(rotr<u32>(t, 8)) ^ rcon
      rcon = xtime(rcon)
    } else if (nk > 6 && i % nk == 4) {
      t = sub(t)
    }
    store<u32>(RK + (<usize>i << 2), load<u32>(RK + (<usize>(i - nk) << 2)) ^ t)
  }
}

// @ts-ignore: decorator
@inline function T(x: u32): u32 {
  return load<u32>(T0 + (<usize>(x & 0xff) << 2))
}

/** Encrypts the 16 bytes at `src` into `dst` with the expanded key. */
function encryptBlock(src: usize, dst: usize): void {
  let s0 = load<u32>(src) ^ load<u32>(RK)
  let s1 = load<u32>(src, 4) ^ load<u32>(RK, 4)
  let s2 = load<u32>(src, 8) ^ load<u32>(RK, 8)
  let s3 = load<u32>(src, 12) ^ load<u32>(RK, 12)
  let k = RK + 16
  for (let r = 1; r < rounds; r++) {
    // each output column takes row i from column (c + i) mod 4 (ShiftRows)
    const t0 = T(s0) ^ rotl<u32>(T(s1 >> 8), 8) ^ rotl<u32>(T(s2 >> 16), 16) ^ rotl<u32>(T(s3 >> 24), 24) ^ load<u32>(k)
    const t1 = T(s1) ^ rotl<u32>(T(s2 >> 8), 8) ^ rotl<u32>(T(s3 >> 16), 16) ^ rotl<u32>(T(s0 >> 24), 24) ^ load<u32>(k, 4)
    const t2 = T(s2) ^ rotl<u32>(T(s3 >> 8), 8) ^ rotl<u32>(T(s0 >> 16), 16) ^ rotl<u32>(T(s1 >> 24), 24) ^ load<u32>(k, 8)
    const t3 = T(s3) ^ rotl<u32>(T(s0 >> 8), 8) ^ rotl<u32>(T(s1 >> 16), 16) ^ rotl<u32>(T(s2 >> 24), 24) ^ load<u32>(k, 12)
    s0 = t0
    s1 = t1
    s2 = t2
    s3 = t3
    k += 16
  }
  // last round: no MixColumns
  const o0 = fin(s0, s1, s2, s3) ^ load<u32>(k)
  const o1 = fin(s1, s2, s3, s0) ^ load<u32>(k, 4)
  const o2 = fin(s2, s3, s0, s1) ^ load<u32>(k, 8)
  const o3 = fin(s3, s0, s1, s2) ^ load<u32>(k, 12)
  store<u32>(dst, o0)
  store<u32>(dst, o1, 4)
  store<u32>(dst, o2, 8)
  store<u32>(dst, o3, 12)
}

// @ts-ignore: decorator
@inline function fin(a: u32, b: u32, c: u32, d: u32): u32 {
  return <u32>load<u8>(SBOX + <usize>(a & 0xff)) |
    (<u32>load<u8>(SBOX + <usize>((b >> 8) & 0xff)) << 8) |
    (<u32>load<u8>(SBOX + <usize>((c >> 16) & 0xff)) << 16) |
    (<u32>load<u8>(SBOX + <usize>(d >> 24)) << 24)
}

/**
 * AES-CFB-128 in place over `len` bytes at `data`, key of 16 or 32 bytes at `key`, IV (16 bytes)
 * at `iv`. `decrypt` 0 encrypts, 1 decrypts. A final partial block uses the leading keystream
 * bytes (SP 800-38A §6.3). On return the IV slot holds the next chaining value (the last full
 * ciphertext block), so a long message may be processed in consecutive whole-block slices.
 * Returns 1, or -1 for a key length other than 16 or 32.
 */
export function aesCfb(key: usize, keyLen: i32, iv: usize, data: usize, len: i32, decrypt: i32): i32 {
  if (keyLen != 16 && keyLen != 32) return -1
  if (!tablesReady) buildTables()
  expandKey(key, keyLen)
  memory.copy(BLOCK, iv, 16)
  let off = 0
  while (off < len) {
    encryptBlock(BLOCK, KS)
    const n = len - off < 16 ? len - off : 16
    const p = data + <usize>off
    for (let i = 0; i < n; i++) {
      const inByte = load<u8>(p + <usize>i)
      const outByte = inByte ^ load<u8>(KS + <usize>i)
      store<u8>(p + <usize>i, outByte)
      // the next input block is the ciphertext: the output when encrypting, the input when decrypting
      store<u8>(BLOCK + <usize>i, decrypt != 0 ? inByte : outByte)
    }
    off += n
  }
  memory.copy(iv, BLOCK, 16)
  return 1
}
