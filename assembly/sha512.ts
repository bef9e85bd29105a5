// SHA-512 and SHA-384 (FIPS 180-4 sections 6.4 and 6.5). Same context scheme as sha256.ts with
// 64-bit words and 128-byte blocks.
import { compress512, iv384, iv512 } from './generated/sha2-core'

// Context layout: 0 state 8×u64 | 64 total length u64 (bytes) | 72 buffered u32 | 128 pending block.
export const CTX512_SIZE: i32 = 256
const C_TOTAL = 64
const C_FILL = 72
const C_BUF = 128

const ONE: usize = memory.data(CTX512_SIZE, 16)

@inline function ctx512Init(ctx: usize, is384: bool): void {
  if (is384) iv384(ctx)
  else iv512(ctx)
  store<u64>(ctx, 0, C_TOTAL)
  store<u32>(ctx, 0, C_FILL)
}

function ctx512Update(ctx: usize, p: usize, len: i32): void {
  store<u64>(ctx, load<u64>(ctx, C_TOTAL) + <u64>len, C_TOTAL)
  let fill = <i32>load<u32>(ctx, C_FILL)
  const buf = ctx + C_BUF
  if (fill > 0) {
    const take = min(128 - fill, len)
    memory.copy(buf + fill, p, take)
    fill += take
    p += take
    len -= take
    if (fill < 128) {
      store<u32>(ctx, fill, C_FILL)
      return
    }
    compress512(ctx, buf)
  }
  while (len >= 128) {
    compress512(ctx, p)
    p += 128
    len -= 128
  }
  if (len > 0) memory.copy(buf, p, len)
  store<u32>(ctx, len, C_FILL)
}

/** Pads (FIPS 180-4 5.1.2: 128-bit length; our byte count fits 64 bits, so its high part is 0). */
function ctx512Final(ctx: usize, out: usize, is384: bool): void {
  const fill = <i32>load<u32>(ctx, C_FILL)
  const buf = ctx + C_BUF
  store<u8>(buf + fill, 0x80)
  if (fill >= 112) {
    memory.fill(buf + fill + 1, 0, 127 - fill)
    compress512(ctx, buf)
    memory.fill(buf, 0, 112)
  } else {
    memory.fill(buf + fill + 1, 0, 111 - fill)
  }
  const total = load<u64>(ctx, C_TOTAL)
  store<u64>(buf, bswap<u64>(total >>> 61), 112)
  store<u64>(buf, bswap<u64>(total << 3), 120)
  compress512(ctx, buf)
  const words = is384 ? 6 : 8
  for (let i = 0; i < words; i++) store<u64>(out + (i << 3), bswap<u64>(load<u64>(ctx + (i << 3))))
}

/** Export: initialise a SHA-512 (kind 0) or SHA-384 (kind 1) context at ctx. */
export function sha512Init(ctx: usize, kind: i32): void {
  ctx512Init(ctx, kind == 1)
}

/** Export: absorb len bytes at p. */
export function sha512Update(ctx: usize, p: usize, len: i32): void {
  ctx512Update(ctx, p, len)
}

/** Export: finish ctx, write the digest (64 bytes, or 48 for kind 1) to out; returns its length. */
export function sha512Final(ctx: usize, out: usize, kind: i32): i32 {
  ctx512Final(ctx, out, kind == 1)
  return kind == 1 ? 48 : 64
}

/** Export: one-shot SHA-512 (kind 0) or SHA-384 (kind 1) of len bytes at p. */
export function sha512(p: usize, len: i32, out: usize, kind: i32): i32 {
  ctx512Init(ONE, kind == 1)
  ctx512Update(ONE, p, len)
  ctx512Final(ONE, out, kind == 1)
  return kind == 1 ? 48 : 64
}
