// Base64 (RFC 4648): the standard alphabet with padding (section 4) and the URL-safe alphabet
// without padding (section 5). Decoding is strict: a non-alphabet byte, misplaced or missing
// padding, or non-zero unused bits in the last character are rejected, so every byte string has
// exactly one accepted encoding (RFC 4648 section 3.5 allows decoders to enforce this; signatures
// compared as text would otherwise have several spellings).

const ENC_STD: usize = memory.data(64)
const ENC_URL: usize = memory.data(64)
/** 256-entry decode tables: 6-bit value, or 0xff for a byte outside the alphabet. */
const DEC_STD: usize = memory.data(256)
const DEC_URL: usize = memory.data(256)

// Filled once at instantiation (module start), never at call time.
memory.fill(DEC_STD, 0xff, 256)
memory.fill(DEC_URL, 0xff, 256)
for (let i: u32 = 0; i < 64; i++) {
  let c: u32
  if (i < 26) c = 65 + i
  else if (i < 52) c = 97 + i - 26
  else if (i < 62) c = 48 + i - 52
  else c = 0
  let s = c
  let u = c
  if (i == 62) {
    s = 43 // '+'
    u = 45 // '-'
  } else if (i == 63) {
    s = 47 // '/'
    u = 95 // '_'
  }
  store<u8>(ENC_STD + i, <u8>s)
  store<u8>(ENC_URL + i, <u8>u)
  store<u8>(DEC_STD + s, <u8>i)
  store<u8>(DEC_URL + u, <u8>i)
}

/** Decode error reasons, packed with the offending position into a negative return value. */
export const B64_ERR_LENGTH: i32 = 1
export const B64_ERR_CHAR: i32 = 2
export const B64_ERR_PADDING: i32 = 3
export const B64_ERR_TRAILING_BITS: i32 = 4

@inline function fail(pos: i32, reason: i32): i32 {
  return -1 - ((pos << 3) | reason)
}

/** Encoded length of n bytes. */
@inline export function b64Len(n: i32, url: bool): i32 {
  return url ? (n * 4 + 2) / 3 : ((n + 2) / 3) * 4
}

/** Encodes len bytes at src as base64 at dst; returns the number of characters written. */
export function b64EncodeRaw(src: usize, len: i32, dst: usize, url: bool): i32 {
  const enc = url ? ENC_URL : ENC_STD
  const start = dst
  const end = src + <usize>(len - len % 3)
  while (src < end) {
    const v: u32 = (<u32>load<u8>(src) << 16) | (<u32>load<u8>(src, 1) << 8) | <u32>load<u8>(src, 2)
    store<u8>(dst, load<u8>(enc + (v >>> 18)))
    store<u8>(dst, load<u8>(enc + ((v >>> 12) & 63)), 1)
    store<u8>(dst, load<u8>(enc + ((v >>> 6) & 63)), 2)
    store<u8>(dst, load<u8>(enc + (v & 63)), 3)
    src += 3
    dst += 4
  }
  const rest = len % 3
  if (rest == 1) {
    const v: u32 = <u32>load<u8>(src)
    store<u8>(dst, load<u8>(enc + (v >>> 2)))
    store<u8>(dst, load<u8>(enc + ((v << 4) & 63)), 1)
    if (url) dst += 2
    else {
      store<u16>(dst, 0x3d3d, 2) // "=="
      dst += 4
    }
  } else if (rest == 2) {
    const v: u32 = (<u32>load<u8>(src) << 8) | <u32>load<u8>(src, 1)
    store<u8>(dst, load<u8>(enc + (v >>> 10)))
    store<u8>(dst, load<u8>(enc + ((v >>> 4) & 63)), 1)
    store<u8>(dst, load<u8>(enc + ((v << 2) & 63)), 2)
    if (url) dst += 3
    else {
      store<u8>(dst, 0x3d, 3) // "="
      dst += 4
    }
  }
  return <i32>(dst - start)
}

/**
 * Strictly decodes len characters at src into dst (dst may equal src: output never overtakes
 * input). Returns the byte count, or a negative value -1 - (position << 3 | reason).
 */
export function b64DecodeRaw(src: usize, len: i32, dst: usize, url: bool): i32 {
  const dec = url ? DEC_URL : DEC_STD
  let data = len // characters that carry data (padding excluded)
  if (url) {
    if ((len & 3) == 1) return fail(len, B64_ERR_LENGTH)
  } else {
    if ((len & 3) != 0) return fail(len, B64_ERR_LENGTH)
    if (len > 0 && load<u8>(src + len - 1) == 0x3d) {
      data--
      if (load<u8>(src + len - 2) == 0x3d) data--
    }
  }
  const start = dst
  const fullEnd = src + <usize>(data & ~3)
  const base = src
  while (src < fullEnd) {
    const a = <u32>load<u8>(dec + load<u8>(src))
    const b = <u32>load<u8>(dec + load<u8>(src, 1))
    const c = <u32>load<u8>(dec + load<u8>(src, 2))
    const d = <u32>load<u8>(dec + load<u8>(src, 3))
    if ((a | b | c | d) & 0x80) return badChar(base, src, 4, dec)
    const v = (a << 18) | (b << 12) | (c << 6) | d
    store<u8>(dst, <u8>(v >>> 16))
    store<u8>(dst, <u8>(v >>> 8), 1)
    store<u8>(dst, <u8>v, 2)
    src += 4
    dst += 3
  }
  const rest = data & 3
  if (rest == 1) {
    // One data character carries 6 bits: less than a byte. With padding this is "x===".
    return fail(<i32>(src - base) + 1, url ? B64_ERR_LENGTH : B64_ERR_PADDING)
  } else if (rest == 2) {
    const a = <u32>load<u8>(dec + load<u8>(src))
    const b = <u32>load<u8>(dec + load<u8>(src, 1))
    if ((a | b) & 0x80) return badChar(base, src, 2, dec)
    if (b & 15) return fail(<i32>(src - base) + 1, B64_ERR_TRAILING_BITS)
    store<u8>(dst, <u8>((a << 2) | (b >>> 4)))
    dst += 1
  } else if (rest == 3) {
    const a = <u32>load<u8>(dec + load<u8>(src))
    const b = <u32>load<u8>(dec + load<u8>(src, 1))
    const c = <u32>load<u8>(dec + load<u8>(src, 2))
    if ((a | b | c) & 0x80) return badChar(base, src, 3, dec)
    if (c & 3) return fail(<i32>(src - base) + 2, B64_ERR_TRAILING_BITS)
    const v = (a << 10) | (b << 4) | (c >>> 2)
    store<u8>(dst, <u8>(v >>> 8))
    store<u8>(dst, <u8>v, 1)
    dst += 2
  }
  return <i32>(dst - start)
}

/** Finds the first bad character among n at p and reports it ('=' inside data is misplaced padding). */
function badChar(base: usize, p: usize, n: i32, dec: usize): i32 {
  for (let i = 0; i < n; i++) {
    const ch = load<u8>(p + i)
    if (load<u8>(dec + ch) & 0x80) {
      return fail(<i32>(p - base) + i, ch == 0x3d ? B64_ERR_PADDING : B64_ERR_CHAR)
    }
  }
  return fail(<i32>(p - base), B64_ERR_CHAR)
}

/** Export: base64-encode len bytes at src into dst (url != 0: URL alphabet, no padding). */
export function base64Encode(src: usize, len: i32, dst: usize, url: i32): i32 {
  return b64EncodeRaw(src, len, dst, url != 0)
}

/** Export: strict base64 decode; byte count or -1 - (position << 3 | reason). */
export function base64Decode(src: usize, len: i32, dst: usize, url: i32): i32 {
  return b64DecodeRaw(src, len, dst, url != 0)
}
