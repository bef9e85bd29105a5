/**
 * Base64 (RFC 4648) on the WASM core: the standard alphabet with padding (section 4) and the
 * URL-safe alphabet without padding (section 5). Decoding is strict (see assembly/base64.ts):
 * it throws CRYPTO_INVALID_BASE64 with the position of the first offending character and why.
 */
import { assertBytes, assertString, CryptoError } from './errors.js'
import { ascii, copyIn, core, memory } from './core.js'

const REASONS = [
  '',
  'the length is not valid for base64',
  'the character is not in the base64 alphabet',
  'padding "=" is misplaced',
  'the unused bits of the last character are not zero (non-canonical encoding)',
] as const

function encode(bytes: Uint8Array, url: 0 | 1): string {
  const c = core()
  const m = memory()
  // Input chunks are a multiple of 3 bytes so each chunk's text joins the next without padding;
  // chunk + its text (4/3 of it) must fit the window together.
  const chunk = Math.floor((c.cap * 3) / 7 / 3) * 3
  if (bytes.length <= chunk) {
    copyIn(m, bytes, c.io)
    const o = c.io + bytes.length
    return ascii(m, o, c.base64Encode(c.io, bytes.length, o, url))
  }
  const parts: string[] = []
  for (let i = 0; i < bytes.length; i += chunk) {
    const part = bytes.subarray(i, i + chunk)
    m.set(part, c.io)
    const o = c.io + part.length
    parts.push(ascii(m, o, c.base64Encode(c.io, part.length, o, url)))
  }
  return parts.join('')
}

function decode(text: string, url: 0 | 1, what: string): Uint8Array {
  const c = core()
  const m = memory()
  const len = text.length
  let pads = 0
  if (!url && len % 4 === 0 && len > 0 && text.charCodeAt(len - 1) === 61) pads = text.charCodeAt(len - 2) === 61 ? 2 : 1
  const size = url ? Math.floor((len * 3) / 4) : Math.max(0, (len / 4) * 3 - pads)
  const out = new Uint8Array(Number.isInteger(size) ? size : 0)
  // Chunks of whole quads, decoded in place; only the last one may carry padding.
  const chunk = c.cap & ~3
  let written = 0
  for (let start = 0; start < len || start === 0; start += chunk) {
    const end = Math.min(len, start + chunk)
    const last = end === len
    for (let i = start; i < end; i++) {
      const ch = text.charCodeAt(i)
      if (ch >= 0x80) fail(what, i, 2)
      m[c.io + i - start] = ch
    }
    if (!last && text.charCodeAt(end - 1) === 61) fail(what, end - 1, 3)
    const r = c.base64Decode(c.io, end - start, c.io, url)
    if (r < 0) {
      const e = -1 - r
      fail(what, start + (e >>> 3), e & 7)
    }
    for (let i = 0; i < r; i++) out[written + i] = m[c.io + i]!
    written += r
    if (last) break
  }
  return written === out.length ? out : out.subarray(0, written)
}

function fail(what: string, position: number, reason: number): never {
  throw new CryptoError('CRYPTO_INVALID_BASE64', `${what} is not valid base64 at position ${position}: ${REASONS[reason] ?? 'malformed'}`, {
    position,
  })
}

/** Standard base64 with padding (RFC 4648 section 4). */
export function base64Encode(bytes: Uint8Array): string {
  assertBytes(bytes, 'bytes')
  return encode(bytes, 0)
}

/**
 * Strict standard base64 decode (RFC 4648 section 4): length a multiple of 4, padding only at
 * the end, zero unused bits. Throws CryptoError CRYPTO_INVALID_BASE64 (with `position`).
 */
export function base64Decode(text: string): Uint8Array {
  assertString(text, 'text')
  return decode(text, 0, 'text')
}

/** URL-safe base64 without padding (RFC 4648 section 5). */
export function base64UrlEncode(bytes: Uint8Array): string {
  assertBytes(bytes, 'bytes')
  return encode(bytes, 1)
}

/** Strict URL-safe base64 decode without padding (RFC 4648 section 5). */
export function base64UrlDecode(text: string): Uint8Array {
  assertString(text, 'text')
  return decode(text, 1, 'text')
}

/** Internal: decode with a caller-chosen parameter name in errors. */
export function base64DecodeNamed(text: string, name: string): Uint8Array {
  return decode(text, 0, name)
}
