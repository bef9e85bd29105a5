/**
 * Internal: typed bindings of the hash/HMAC/base64 exports of the WASM core, plus the helpers
 * that move strings and bytes across the boundary without allocating. Bound once, on first use
 * (after `configure()` had its chance to pick the build).
 */
import { fn, ioCapacity, ioOffset, memory, wasm } from './wasm.js'

type P = number

export interface HashCore {
  readonly sha256: (p: P, len: number, out: P) => number
  readonly sha256Init: (ctx: P, kind: number) => void
  readonly sha256Update: (ctx: P, p: P, len: number) => void
  readonly sha256Final: (ctx: P, out: P, kind: number) => number
  readonly sha512: (p: P, len: number, out: P, kind: number) => number
  readonly sha512Init: (ctx: P, kind: number) => void
  readonly sha512Update: (ctx: P, p: P, len: number) => void
  readonly sha512Final: (ctx: P, out: P, kind: number) => number
  readonly hmacKeyInit: (key: P, klen: number, st: P) => number
  readonly hmacKeyInitB64: (b64: P, len: number, st: P) => number
  readonly hmacSha256: (key: P, klen: number, msg: P, mlen: number, out: P) => number
  readonly hmacMac: (st: P, msg: P, mlen: number, out: P) => number
  readonly hmacMacB64: (st: P, msg: P, mlen: number, out: P) => number
  readonly hmacSha256B64: (key: P, klen: number, msg: P, mlen: number, out: P) => number
  readonly hmacVerifyB64: (st: P, msg: P, mlen: number, exp: P, elen: number) => number
  readonly hmacSha256VerifyB64: (key: P, klen: number, msg: P, mlen: number, exp: P, elen: number) => number
  readonly hmacVerify: (st: P, msg: P, mlen: number, tag: P, tlen: number) => number
  readonly deriveKeys: (st: P, rec: P, count: number, out: P) => number
  readonly base64Encode: (src: P, len: number, dst: P, url: number) => number
  readonly base64Decode: (src: P, len: number, dst: P, url: number) => number
  readonly timingSafeEqual: (a: P, b: P, len: number) => number
  /** Start of the I/O window. */
  readonly io: number
  /** Size of the I/O window. */
  readonly cap: number
  /** 256-byte hash-context scratch (outside the window). */
  readonly scratch: number
  /** Key-state slot table and its size. */
  readonly slots: number
  readonly slotCount: number
}

let bound: HashCore | undefined

/** The bound exports (binding on first use). */
export function core(): HashCore {
  return bound ?? bind()
}

function bind(): HashCore {
  const w = wasm()
  const f = <T extends (...args: never[]) => unknown>(name: string): T => fn<T>(name)
  bound = {
    sha256: f('sha256'),
    sha256Init: f('sha256Init'),
    sha256Update: f('sha256Update'),
    sha256Final: f('sha256Final'),
    sha512: f('sha512'),
    sha512Init: f('sha512Init'),
    sha512Update: f('sha512Update'),
    sha512Final: f('sha512Final'),
    hmacKeyInit: f('hmacKeyInit'),
    hmacKeyInitB64: f('hmacKeyInitB64'),
    hmacSha256: f('hmacSha256'),
    hmacMac: f('hmacMac'),
    hmacMacB64: f('hmacMacB64'),
    hmacSha256B64: f('hmacSha256B64'),
    hmacVerifyB64: f('hmacVerifyB64'),
    hmacSha256VerifyB64: f('hmacSha256VerifyB64'),
    hmacVerify: f('hmacVerify'),
    deriveKeys: f('deriveKeys'),
    base64Encode: f('base64Encode'),
    base64Decode: f('base64Decode'),
    timingSafeEqual: f('timingSafeEqual'),
    io: ioOffset(),
    cap: ioCapacity(),
    scratch: f<() => number>('hashScratch')(),
    slots: f<() => number>('hmacSlots')(),
    slotCount: (w['HMAC_SLOT_COUNT'] as WebAssembly.Global).value as number,
  }
  return bound
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * Writes `text` as UTF-8 at `off`, using at most `max` bytes. Returns the byte count, or -1 if it
 * does not fit. ASCII goes byte by byte through charCodeAt (no allocation); the first non-ASCII
 * code unit hands the rest to TextEncoder.encodeInto (lone surrogates become U+FFFD, as in
 * every UTF-8 encoder of the platform).
 */
export function writeUtf8(mem: Uint8Array, text: string, off: number, max: number): number {
  const n = text.length
  // UTF-8 never takes fewer bytes than UTF-16 code units, so this cannot fit.
  if (n > max) return -1
  let i = 0
  for (; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x80) break
    mem[off + i] = c
  }
  if (i === n) return n
  const rest = i === 0 ? text : text.slice(i)
  const r = encoder.encodeInto(rest, mem.subarray(off + i, off + max))
  return r.read === rest.length ? i + r.written : -1
}

/** Writes the characters of `text` as bytes (low 8 bits; callers validate) at off. */
export function writeLatin1(mem: Uint8Array, text: string, off: number): void {
  for (let i = 0; i < text.length; i++) mem[off + i] = text.charCodeAt(i)
}

/** The 44-character base64 string of a 32-byte MAC at `o` (one call, no intermediate objects). */
export function ascii44(m: Uint8Array, o: number): string {
  return String.fromCharCode(
    m[o]!, m[o + 1]!, m[o + 2]!, m[o + 3]!, m[o + 4]!, m[o + 5]!, m[o + 6]!, m[o + 7]!, m[o + 8]!, m[o + 9]!, m[o + 10]!,
    m[o + 11]!, m[o + 12]!, m[o + 13]!, m[o + 14]!, m[o + 15]!, m[o + 16]!, m[o + 17]!, m[o + 18]!, m[o + 19]!, m[o + 20]!,
    m[o + 21]!, m[o + 22]!, m[o + 23]!, m[o + 24]!, m[o + 25]!, m[o + 26]!, m[o + 27]!, m[o + 28]!, m[o + 29]!, m[o + 30]!,
    m[o + 31]!, m[o + 32]!, m[o + 33]!, m[o + 34]!, m[o + 35]!, m[o + 36]!, m[o + 37]!, m[o + 38]!, m[o + 39]!, m[o + 40]!,
    m[o + 41]!, m[o + 42]!, m[o + 43]!,
  )
}

/** ASCII bytes at [o, o+len) as a string. */
export function ascii(m: Uint8Array, o: number, len: number): string {
  if (len === 44) return ascii44(m, o)
  return decoder.decode(m.subarray(o, o + len))
}

/** Copies n bytes from memory at o into out[0..n) without allocating a view. */
export function copyOut(m: Uint8Array, o: number, out: Uint8Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = m[o + i]!
}

/** Copies src into memory at o (small inputs by loop: TypedArray.set has a fixed cost). */
export function copyIn(m: Uint8Array, src: Uint8Array, o: number): void {
  const n = src.length
  if (n > 64) m.set(src, o)
  else for (let i = 0; i < n; i++) m[o + i] = src[i]!
}

export { memory }
