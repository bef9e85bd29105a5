// Batched DPS device-key derivation: deviceKey = base64(HMAC-SHA256(groupKey, registrationId))
// (docs/protocol.md, symmetric-key enrollment groups). The group key's state is computed once per
// batch; each id then costs two compressions. In the SIMD build, ids of up to 55 bytes (one inner
// block) are derived four at a time with a 4-lane SHA-256.
import { compress256x4 } from './generated/sha2-core'
import { macCore, OST } from './hmac'
import { put256 } from './sha256'
import { b64EncodeRaw } from './base64'

const DIG: usize = memory.data(32, 16)
/** Four padded inner blocks, lane-major (SIMD build). */
const LANES: usize = memory.data(256, 16)
/** Sixteen message vectors, word-major (SIMD build). */
const TBLK: usize = memory.data(256, 16)
/** Eight state vectors (SIMD build). */
const SV: usize = memory.data(128, 16)
/** Output addresses of the four lanes. */
const OUTS: usize = memory.data(16, 16)

/** Base64 of one final state (native words at st) as 44 characters at out. */
@inline function emit(st: usize, out: usize): void {
  put256(st, DIG, 8)
  b64EncodeRaw(DIG, 32, out, false)
}

/** Pads a <=55-byte message for lane j: inner block after the 64-byte ipad block. */
@inline function padLane(j: i32, msg: usize, len: i32): void {
  const b = LANES + (<usize>j << 6)
  memory.copy(b, msg, len)
  store<u8>(b + len, 0x80)
  memory.fill(b + len + 1, 0, 55 - len)
  store<u64>(b, bswap<u64>(<u64>(64 + len) << 3), 56)
}

/** Derives the four lanes prepared in LANES / OUTS under key state st (SIMD build only). */
function derive4(st: usize): void {
  if (ASC_FEATURE_SIMD) {
    for (let t = 0; t < 16; t++) {
      const o = TBLK + (<usize>t << 4)
      const w = <usize>t << 2
      store<u32>(o, bswap<u32>(load<u32>(LANES + w)), 0)
      store<u32>(o, bswap<u32>(load<u32>(LANES + 64 + w)), 4)
      store<u32>(o, bswap<u32>(load<u32>(LANES + 128 + w)), 8)
      store<u32>(o, bswap<u32>(load<u32>(LANES + 192 + w)), 12)
    }
    for (let i = 0; i < 8; i++) v128.store(SV + (<usize>i << 4), i32x4.splat(load<i32>(st + (<usize>i << 2))))
    compress256x4(SV, TBLK)
    // Outer block: the inner digests are exactly the state words, so they become the message
    // words directly; then 0x80 padding and the 768-bit length.
    for (let i = 0; i < 8; i++) v128.store(TBLK + (<usize>i << 4), v128.load(SV + (<usize>i << 4)))
    v128.store(TBLK + 128, i32x4.splat(<i32>0x80000000))
    for (let i = 9; i < 15; i++) v128.store(TBLK + (<usize>i << 4), i32x4.splat(0))
    v128.store(TBLK + 240, i32x4.splat(768))
    for (let i = 0; i < 8; i++) v128.store(SV + (<usize>i << 4), i32x4.splat(load<i32>(st + 32 + (<usize>i << 2))))
    compress256x4(SV, TBLK)
    for (let j = 0; j < 4; j++) {
      for (let i = 0; i < 8; i++) {
        store<u32>(DIG + (<usize>i << 2), bswap<u32>(load<u32>(SV + (<usize>i << 4) + (<usize>j << 2))))
      }
      b64EncodeRaw(DIG, 32, load<usize>(OUTS + (<usize>j << 2)), false)
    }
  }
}

/**
 * Export: derives `count` device keys under key state st. Input at rec: `count` records, each a
 * u32 byte length (little-endian) followed by that many bytes of UTF-8 registration id. Output:
 * 44 base64 characters per key, back to back, at out. Returns count.
 */
export function deriveKeys(st: usize, rec: usize, count: i32, out: usize): i32 {
  let lanes = 0
  for (let i = 0; i < count; i++) {
    const len = <i32>load<u32>(rec)
    const msg = rec + 4
    const dst = out + <usize>i * 44
    rec = msg + len
    if (ASC_FEATURE_SIMD) {
      if (len <= 55) {
        padLane(lanes, msg, len)
        store<u32>(OUTS + (<usize>lanes << 2), dst)
        if (++lanes == 4) {
          derive4(st)
          lanes = 0
        }
        continue
      }
    }
    macCore(st, msg, len)
    emit(OST, dst)
  }
  // Fewer than four short ids left over: finish them one by one (lane blocks are already padded).
  for (let j = 0; j < lanes; j++) {
    const b = LANES + (<usize>j << 6)
    const len = <i32>(bswap<u64>(load<u64>(b, 56)) >> 3) - 64
    macCore(st, b, len)
    emit(OST, load<usize>(OUTS + (<usize>j << 2)))
  }
  return count
}
