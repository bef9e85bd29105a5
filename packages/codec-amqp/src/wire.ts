// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- rhea ships no typings for lib/*.js; every project compiling this source (server, tests) needs these ambient declarations
/// <reference path="./rhea-internals.d.ts" />
/**
 * Wire helpers under the session: protocol headers, frame boundaries, a structural check of AMQP
 * type encoding run before rhea's decoder sees a frame, and byte conversions.
 *
 * Why the structural check: rhea's reader trusts sizes and counts (it is written for peers that
 * are brokers, not for untrusted devices). An array of zero-width elements (null, true, list0)
 * declares a count but consumes no bytes, so a 13-byte frame could make it loop 2^32 times; a
 * size larger than the frame makes it read short slices silently. Every frame is therefore
 * scanned here first against the encoding rules of AMQP 1.0 §1.6 (constructors, fixed and
 * variable widths, compound size/count, arrays) with a depth limit, and only then decoded.
 */
import rheaUtil from 'rhea/lib/util.js'
import { AmqpCodecError } from './errors.js'

/** `AMQP` followed by protocol id, major, minor, revision (AMQP 1.0 §2.2, §5.3.1). */
export const AMQP_HEADER = Uint8Array.of(0x41, 0x4d, 0x51, 0x50, 0x00, 0x01, 0x00, 0x00)
export const SASL_HEADER = Uint8Array.of(0x41, 0x4d, 0x51, 0x50, 0x03, 0x01, 0x00, 0x00)

/** Frame types (§2.3.1): 0x00 AMQP, 0x01 SASL. */
export const FRAME_TYPE_AMQP = 0x00
export const FRAME_TYPE_SASL = 0x01

/** Which protocol a header asks for, or undefined when it is not one this server speaks. */
export function readProtocolHeader(bytes: Uint8Array): 'amqp' | 'sasl' | undefined {
  if (bytes.length < 8) return undefined
  for (let i = 0; i < 4; i++) if (bytes[i] !== AMQP_HEADER[i]) return undefined
  if (bytes[5] !== 1 || bytes[6] !== 0 || bytes[7] !== 0) return undefined
  if (bytes[4] === 0) return 'amqp'
  if (bytes[4] === 3) return 'sasl'
  return undefined
}

/** Frame header fields (§2.3.1). */
export interface FrameHeader {
  readonly size: number
  readonly doff: number
  readonly type: number
  readonly channel: number
}

/**
 * Reads the 8-byte frame header at `offset`. Checks SIZE against `maxFrameSize` before the body
 * arrives, so an oversized frame is refused without buffering it.
 */
export function readFrameHeader(bytes: Uint8Array, offset: number, maxFrameSize: number): FrameHeader {
  const size = ((bytes[offset]! << 24) >>> 0) + (bytes[offset + 1]! << 16) + (bytes[offset + 2]! << 8) + bytes[offset + 3]!
  const doff = bytes[offset + 4]!
  const type = bytes[offset + 5]!
  const channel = (bytes[offset + 6]! << 8) | bytes[offset + 7]!
  if (size < 8) throw new AmqpCodecError('FRAMING_ERROR', `frame SIZE ${size} is below the 8-byte frame header (AMQP 1.0 §2.3.1)`)
  if (size > maxFrameSize) throw new AmqpCodecError('FRAME_TOO_LARGE', `frame of ${size} bytes exceeds the max-frame-size of ${maxFrameSize} (AMQP 1.0 §2.7.1)`)
  if (doff < 2 || doff * 4 > size) throw new AmqpCodecError('FRAMING_ERROR', `data offset ${doff} is outside 2..${Math.floor(size / 4)} for a ${size}-byte frame (§2.3.1)`)
  if (type !== FRAME_TYPE_AMQP && type !== FRAME_TYPE_SASL) throw new AmqpCodecError('FRAMING_ERROR', `unknown frame type 0x${type.toString(16)} (only 0x00 AMQP and 0x01 SASL exist)`)
  return { size, doff, type, channel }
}

/** Deepest nesting of described types, lists, maps and arrays accepted in one frame. */
export const MAX_ENCODING_DEPTH = 24

/** Fixed widths of the primitive type codes (§1.6); absent codes are variable, compound, array or unknown. */
const FIXED_WIDTH = new Map<number, number>([
  [0x40, 0], [0x41, 0], [0x42, 0], [0x43, 0], [0x44, 0], [0x45, 0],
  [0x50, 1], [0x51, 1], [0x52, 1], [0x53, 1], [0x54, 1], [0x55, 1], [0x56, 1],
  [0x60, 2], [0x61, 2],
  [0x70, 4], [0x71, 4], [0x72, 4], [0x73, 4], [0x74, 4],
  [0x80, 8], [0x81, 8], [0x82, 8], [0x83, 8], [0x84, 8],
  [0x94, 16], [0x98, 16],
])

/**
 * Checks that `bytes[start, end)` is a sequence of well-formed AMQP values (a frame body or a
 * message payload). Throws DECODE_ERROR saying where and why otherwise.
 */
export function checkEncoding(bytes: Uint8Array, start: number, end: number): void {
  let pos = start
  while (pos < end) pos = scanValue(bytes, pos, end, 0)
}

/**
 * Checks the one value starting at `start` (a frame's performative) and returns where it ends.
 * What follows a transfer's performative is a fragment of a message, checked once complete.
 */
export function checkValue(bytes: Uint8Array, start: number, end: number): number {
  return scanValue(bytes, start, end, 0)
}

function fail(pos: number, why: string): never {
  throw new AmqpCodecError('DECODE_ERROR', `malformed AMQP encoding at byte ${pos}: ${why} (AMQP 1.0 §1.6)`)
}

function readUint(bytes: Uint8Array, pos: number, width: 1 | 4, end: number): number {
  if (pos + width > end) fail(pos, `${width}-byte size/count runs past the end`)
  if (width === 1) return bytes[pos]!
  return ((bytes[pos]! << 24) >>> 0) + (bytes[pos + 1]! << 16) + (bytes[pos + 2]! << 8) + bytes[pos + 3]!
}

/** Reads a constructor (possibly described) and returns [type code, position after it]. */
function scanConstructor(bytes: Uint8Array, pos: number, end: number, depth: number): [number, number] {
  if (depth > MAX_ENCODING_DEPTH) fail(pos, `nesting deeper than ${MAX_ENCODING_DEPTH}`)
  if (pos >= end) fail(pos, 'constructor expected, none left')
  const code = bytes[pos]!
  if (code !== 0x00) return [code, pos + 1]
  // Described type: 0x00, descriptor value, then the constructor of the value (§1.2).
  const afterDescriptor = scanValue(bytes, pos + 1, end, depth + 1)
  return scanConstructor(bytes, afterDescriptor, end, depth + 1)
}

function scanValue(bytes: Uint8Array, pos: number, end: number, depth: number): number {
  const [code, at] = scanConstructor(bytes, pos, end, depth)
  return scanBody(bytes, code, at, end, depth)
}

/** Skips the encoded value of type `code` starting at `pos`. */
function scanBody(bytes: Uint8Array, code: number, pos: number, end: number, depth: number): number {
  const fixed = FIXED_WIDTH.get(code)
  if (fixed !== undefined) {
    if (pos + fixed > end) fail(pos, `type 0x${code.toString(16)} needs ${fixed} bytes, ${end - pos} left`)
    return pos + fixed
  }
  switch (code) {
    case 0xa0: case 0xa1: case 0xa3: case 0xb0: case 0xb1: case 0xb3: {
      const width = code < 0xb0 ? 1 : 4
      const size = readUint(bytes, pos, width, end)
      const start = pos + width
      if (size > end - start) fail(pos, `variable-width value declares ${size} bytes, ${end - start} left`)
      return start + size
    }
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: {
      const width = code < 0xd0 ? 1 : 4
      const size = readUint(bytes, pos, width, end)
      const start = pos + width
      if (size > end - start) fail(pos, `compound declares ${size} bytes, ${end - start} left`)
      const stop = start + size
      if (size < width) fail(pos, `compound of ${size} bytes cannot hold its ${width}-byte count`)
      const count = readUint(bytes, start, width, stop)
      if ((code & 0x01) === 1 && count % 2 !== 0) fail(pos, `map with an odd element count ${count}`)
      // Every element takes at least one byte (its constructor), so a count above the size is a lie.
      if (count > size) fail(pos, `compound claims ${count} elements in ${size} bytes`)
      let p = start + width
      for (let i = 0; i < count; i++) p = scanValue(bytes, p, stop, depth + 1)
      if (p !== stop) fail(p, `compound elements end at ${p}, its size says ${stop}`)
      return stop
    }
    case 0xe0: case 0xf0: {
      const width = code === 0xe0 ? 1 : 4
      const size = readUint(bytes, pos, width, end)
      const start = pos + width
      if (size > end - start) fail(pos, `array declares ${size} bytes, ${end - start} left`)
      const stop = start + size
      if (size < width) fail(pos, `array of ${size} bytes cannot hold its ${width}-byte count`)
      const count = readUint(bytes, start, width, stop)
      // Zero-width elements (null, booleans, list0) would let a tiny array claim billions of items.
      if (count > size) fail(pos, `array claims ${count} elements in ${size} bytes`)
      const [elementCode, afterConstructor] = scanConstructor(bytes, start + width, stop, depth + 1)
      let p = afterConstructor
      for (let i = 0; i < count; i++) p = scanBody(bytes, elementCode, p, stop, depth + 1)
      if (p !== stop) fail(p, `array elements end at ${p}, its size says ${stop}`)
      return stop
    }
    default:
      return fail(pos - 1, `unknown type code 0x${code.toString(16)}`)
  }
}

/** Copies bytes into a buffer of the kind rhea's reader and writer expect. */
export function toRheaBytes(bytes: Uint8Array): Uint8Array {
  const out = rheaUtil.allocate_buffer(bytes.length)
  out.set(bytes)
  return out
}

/** Joins byte chunks. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/** Standard padded base64 (RFC 4648 §4). */
export function base64Encode(bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!
    const b = i + 1 < bytes.length ? bytes[i + 1]! : 0
    const c = i + 2 < bytes.length ? bytes[i + 2]! : 0
    const n = (a << 16) | (b << 8) | c
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]!
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63]! : '='
    out += i + 2 < bytes.length ? B64[n & 63]! : '='
  }
  return out
}

/** Decodes standard base64 (padding optional); undefined when a character is outside the alphabet. */
export function base64Decode(text: string): Uint8Array | undefined {
  const clean = text.replace(/=+$/, '')
  if (clean.length % 4 === 1) return undefined
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4))
  let bits = 0
  let acc = 0
  let o = 0
  for (let i = 0; i < clean.length; i++) {
    const v = B64.indexOf(clean[i]!)
    if (v < 0) return undefined
    acc = (acc << 6) | v
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >> bits) & 0xff
    }
  }
  return out
}
