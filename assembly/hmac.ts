// HMAC-SHA256 (RFC 2104, FIPS 198-1) with a keyed-state cache.
//
// A key is turned once into its "key state": the SHA-256 chaining value after absorbing
// K xor ipad (inner) and after K xor opad (outer), 32 bytes each. Every MAC under that key then
// starts from those states, so a message of up to 55 bytes costs exactly two compressions
// (one inner block holding message + padding, one outer block holding the inner digest).
// Key states live wherever the caller keeps them: in the slot table below (JS-side HmacSha256Key
// objects own slots), or in the I/O window.
import { compress256, iv256 } from './generated/sha2-core'
import { ctx256Pad, ctx256Resume, ctx256Update, CTX256_SIZE, put256, sha256Digest } from './sha256'
import { b64DecodeRaw, b64EncodeRaw } from './base64'
import { ctEqualRaw } from './ct'

/** Bytes of one key state: inner chaining value (8×u32) then outer chaining value (8×u32). */
export const HMAC_STATE_SIZE: i32 = 64
/** Number of key-state slots JS may fill (see @provisio/crypto hmac.ts). */
export const HMAC_SLOT_COUNT: i32 = 256
const SLOTS: usize = memory.data(HMAC_STATE_SIZE * HMAC_SLOT_COUNT, 64)

/** Key state of the one-shot exports. */
const KS: usize = memory.data(HMAC_STATE_SIZE, 16)
/** Padded key block (wiped after use so key material does not linger). */
const KBLK: usize = memory.data(64, 16)
/** Inner single block. */
const IBLK: usize = memory.data(64, 16)
/** Outer block: inner digest in bytes 0..31; the constant tail is written once below. */
export const OBLK: usize = memory.data(64, 16)
/** Chaining values being worked on (inner, then outer). */
const IST: usize = memory.data(32, 16)
export const OST: usize = memory.data(32, 16)
/** Context for messages longer than one block. */
const LONG: usize = memory.data(CTX256_SIZE, 16)
/** Decoded expected tag / digest bytes. */
const TAG: usize = memory.data(64, 16)
const DIG: usize = memory.data(32, 16)

// Outer block tail (FIPS 180-4 5.1.1): 0x80 after the 32-byte inner digest, then the bit length
// of ipad block + digest = (64 + 32) * 8 = 768 as a big-endian 64-bit integer.
store<u8>(OBLK, 0x80, 32)
store<u32>(OBLK, bswap<u32>(768), 60)

/** Computes the key state of klen key bytes at key into st (64 bytes). */
export function keyState(key: usize, klen: i32, st: usize): void {
  // RFC 2104 section 2: keys longer than the block size are hashed first; shorter ones are
  // zero-padded to 64 bytes.
  if (klen > 64) {
    sha256Digest(key, klen, KBLK)
    memory.fill(KBLK + 32, 0, 32)
  } else {
    memory.copy(KBLK, key, klen)
    memory.fill(KBLK + klen, 0, 64 - klen)
  }
  for (let i = 0; i < 64; i += 8) store<u64>(KBLK + i, load<u64>(KBLK + i) ^ 0x3636363636363636)
  iv256(st)
  compress256(st, KBLK)
  // ipad ^ opad = 0x36 ^ 0x5c = 0x6a: flips the block from K^ipad to K^opad in place.
  for (let i = 0; i < 64; i += 8) store<u64>(KBLK + i, load<u64>(KBLK + i) ^ 0x6a6a6a6a6a6a6a6a)
  iv256(st + 32)
  compress256(st + 32, KBLK)
  memory.fill(KBLK, 0, 64)
}

/** MAC of len bytes at msg under key state st; the final state (native words) is left in OST. */
export function macCore(st: usize, msg: usize, len: i32): void {
  let inner = IST
  if (len <= 55) {
    memory.copy(IST, st, 32)
    memory.copy(IBLK, msg, len)
    store<u8>(IBLK + len, 0x80)
    memory.fill(IBLK + len + 1, 0, 55 - len)
    store<u64>(IBLK, bswap<u64>(<u64>(64 + len) << 3), 56)
    compress256(IST, IBLK)
  } else {
    ctx256Resume(LONG, st, 64)
    ctx256Update(LONG, msg, len)
    ctx256Pad(LONG)
    inner = LONG
  }
  put256(inner, OBLK, 8)
  memory.copy(OST, st + 32, 32)
  compress256(OST, OBLK)
}

/** Export: key state of klen bytes at key into st (any 64-byte region, e.g. a slot). */
export function hmacKeyInit(key: usize, klen: i32, st: usize): i32 {
  keyState(key, klen, st)
  return HMAC_STATE_SIZE
}

/** Export: base64-decode a key (strict) at b64 and compute its state into st. 0 or a decode error. */
export function hmacKeyInitB64(b64: usize, len: i32, st: usize): i32 {
  // Decoding in place is safe: output never overtakes input.
  const n = b64DecodeRaw(b64, len, b64, false)
  if (n < 0) return n
  keyState(b64, n, st)
  memory.fill(b64, 0, n)
  return 0
}

/** Export: address of the key-state slot table (HMAC_SLOT_COUNT × 64 bytes). */
export function hmacSlots(): usize {
  return SLOTS
}

/** Export: one-shot HMAC-SHA256 with a raw key; 32-byte tag to out. */
export function hmacSha256(key: usize, klen: i32, msg: usize, mlen: i32, out: usize): i32 {
  keyState(key, klen, KS)
  macCore(KS, msg, mlen)
  put256(OST, out, 8)
  return 32
}

/** Export: HMAC under a key state; 32-byte tag to out. */
export function hmacMac(st: usize, msg: usize, mlen: i32, out: usize): i32 {
  macCore(st, msg, mlen)
  put256(OST, out, 8)
  return 32
}

/** Export: HMAC under a key state, written as 44 base64 characters to out. */
export function hmacMacB64(st: usize, msg: usize, mlen: i32, out: usize): i32 {
  macCore(st, msg, mlen)
  put256(OST, DIG, 8)
  return b64EncodeRaw(DIG, 32, out, false)
}

/** Export: one-shot raw-key HMAC as base64. */
export function hmacSha256B64(key: usize, klen: i32, msg: usize, mlen: i32, out: usize): i32 {
  keyState(key, klen, KS)
  return hmacMacB64(KS, msg, mlen, out)
}

/**
 * Export: 1 if the HMAC of msg under st equals the strictly decoded base64 at exp, else 0.
 * A malformed or wrong-length expected value is simply 0. The tag comparison is constant-time.
 */
export function hmacVerifyB64(st: usize, msg: usize, mlen: i32, exp: usize, elen: i32): i32 {
  if (elen != 44) return 0
  if (b64DecodeRaw(exp, 44, TAG, false) != 32) return 0
  macCore(st, msg, mlen)
  put256(OST, DIG, 8)
  return ctEqualRaw(DIG, TAG, 32)
}

/** Export: raw-key variant of hmacVerifyB64. */
export function hmacSha256VerifyB64(key: usize, klen: i32, msg: usize, mlen: i32, exp: usize, elen: i32): i32 {
  if (elen != 44) return 0
  keyState(key, klen, KS)
  return hmacVerifyB64(KS, msg, mlen, exp, elen)
}

/** Export: 1 if the HMAC of msg under st equals the tlen-byte tag at tag (tlen must be 32). */
export function hmacVerify(st: usize, msg: usize, mlen: i32, tag: usize, tlen: i32): i32 {
  if (tlen != 32) return 0
  macCore(st, msg, mlen)
  put256(OST, DIG, 8)
  return ctEqualRaw(DIG, tag, 32)
}
