// SHA-256 and SHA-224 (FIPS 180-4 sections 6.2 and 6.3) over a context that lives wherever the
// caller says: JS streaming hashers keep their own copy and load it into CTX_SCRATCH per update,
// HMAC keeps inner/outer states in a slot table. Nothing is allocated.
import { compress256, iv224, iv256 } from './generated/sha2-core'

// Context layout (bytes): 0 state 8×u32 (native order) | 32 total length u64 | 40 buffered u32 |
// 64 pending partial block (64 bytes).
export const CTX256_SIZE: i32 = 128
const C_TOTAL = 32
const C_FILL = 40
const C_BUF = 64

/** Scratch context for the one-shot export. */
const ONE: usize = memory.data(CTX256_SIZE, 16)

/** Starts ctx from the SHA-256 IV (or the SHA-224 one when is224). */
@inline export function ctx256Init(ctx: usize, is224: bool): void {
  if (is224) iv224(ctx)
  else iv256(ctx)
  store<u64>(ctx, 0, C_TOTAL)
  store<u32>(ctx, 0, C_FILL)
}

/** Starts ctx from an arbitrary chaining state (8 native u32 at st) after `done` bytes. */
@inline export function ctx256Resume(ctx: usize, st: usize, done: u64): void {
  memory.copy(ctx, st, 32)
  store<u64>(ctx, done, C_TOTAL)
  store<u32>(ctx, 0, C_FILL)
}

/** Absorbs len bytes at p. */
export function ctx256Update(ctx: usize, p: usize, len: i32): void {
  store<u64>(ctx, load<u64>(ctx, C_TOTAL) + <u64>len, C_TOTAL)
  let fill = <i32>load<u32>(ctx, C_FILL)
  const buf = ctx + C_BUF
  if (fill > 0) {
    const take = min(64 - fill, len)
    memory.copy(buf + fill, p, take)
    fill += take
    p += take
    len -= take
    if (fill < 64) {
      store<u32>(ctx, fill, C_FILL)
      return
    }
    compress256(ctx, buf)
  }
  while (len >= 64) {
    compress256(ctx, p)
    p += 64
    len -= 64
  }
  if (len > 0) memory.copy(buf, p, len)
  store<u32>(ctx, len, C_FILL)
}

/** Pads (FIPS 180-4 5.1.1), compresses, and leaves the final state in ctx's first 32 bytes. */
export function ctx256Pad(ctx: usize): void {
  const fill = <i32>load<u32>(ctx, C_FILL)
  const buf = ctx + C_BUF
  store<u8>(buf + fill, 0x80)
  if (fill >= 56) {
    memory.fill(buf + fill + 1, 0, 63 - fill)
    compress256(ctx, buf)
    memory.fill(buf, 0, 56)
  } else {
    memory.fill(buf + fill + 1, 0, 55 - fill)
  }
  store<u64>(buf, bswap<u64>(load<u64>(ctx, C_TOTAL) << 3), 56)
  compress256(ctx, buf)
}

/** Writes the first n bytes (n = 32 or 28) of a state as the big-endian digest. */
@inline export function put256(st: usize, out: usize, words: i32): void {
  for (let i = 0; i < words; i++) store<u32>(out + (i << 2), bswap<u32>(load<u32>(st + (i << 2))))
}

/** Pads and writes the digest (28 or 32 bytes) to out. */
@inline export function ctx256Final(ctx: usize, out: usize, is224: bool): void {
  ctx256Pad(ctx)
  put256(ctx, out, is224 ? 7 : 8)
}

/** One-shot SHA-256 of len bytes at p, digest to out (32 bytes). Returns 32. */
export function sha256Digest(p: usize, len: i32, out: usize): i32 {
  ctx256Init(ONE, false)
  ctx256Update(ONE, p, len)
  ctx256Final(ONE, out, false)
  return 32
}

// ---- exports for streaming hashers (ctx is any CTX256_SIZE region, normally the I/O scratch) ----

/** Export: initialise a SHA-256 (kind 0) or SHA-224 (kind 1) context at ctx. */
export function sha256Init(ctx: usize, kind: i32): void {
  ctx256Init(ctx, kind == 1)
}

/** Export: absorb len bytes at p into the context at ctx. */
export function sha256Update(ctx: usize, p: usize, len: i32): void {
  ctx256Update(ctx, p, len)
}

/** Export: finish ctx, write the digest to out; returns its length (32, or 28 for kind 1). */
export function sha256Final(ctx: usize, out: usize, kind: i32): i32 {
  ctx256Final(ctx, out, kind == 1)
  return kind == 1 ? 28 : 32
}

/** Export: one-shot SHA-256. */
export function sha256(p: usize, len: i32, out: usize): i32 {
  return sha256Digest(p, len, out)
}
