/**
 * Identifiers the engine mints from the Random port: operation ids in DPS's observed shape
 * `<digit>.<16 hex>.<uuid>` (docs/protocol.md §1.3, AZC traces), etags, and symmetric keys.
 */
import type { Random } from './ports.js'

const HEX = '0123456789abcdef'
const BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/** Lower-case hex of `bytes[from, to)`. */
export function hex(bytes: Uint8Array, from = 0, to = bytes.length): string {
  let out = ''
  for (let i = from; i < to; i++) {
    const b = bytes[i] as number
    out += HEX[b >> 4]! + HEX[b & 15]!
  }
  return out
}

/** RFC 9562 §5.4 version-4 UUID text from 16 random bytes starting at `offset`. */
export function uuidFromBytes(bytes: Uint8Array, offset = 0): string {
  if (bytes.length < offset + 16) throw new RangeError(`uuid needs 16 bytes at offset ${offset}, have ${bytes.length - offset}`)
  const b6 = ((bytes[offset + 6] as number) & 0x0f) | 0x40 // version 4
  const b8 = ((bytes[offset + 8] as number) & 0x3f) | 0x80 // variant 10xx
  return (
    hex(bytes, offset, offset + 4) + '-' + hex(bytes, offset + 4, offset + 6) + '-' +
    HEX[b6 >> 4]! + HEX[b6 & 15]! + hex(bytes, offset + 7, offset + 8) + '-' +
    HEX[b8 >> 4]! + HEX[b8 & 15]! + hex(bytes, offset + 9, offset + 10) + '-' +
    hex(bytes, offset + 10, offset + 16)
  )
}

/** Base64 (RFC 4648 §4, padded) of a byte string; tiny and allocation-light for key generation. */
export function toBase64(bytes: Uint8Array): string {
  let out = ''
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8) | (bytes[i + 2] as number)
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! + BASE64_ALPHABET[(n >> 6) & 63]! + BASE64_ALPHABET[n & 63]!
  }
  const rest = bytes.length - i
  if (rest === 1) {
    const n = (bytes[i] as number) << 16
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! + '=='
  } else if (rest === 2) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8)
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! + BASE64_ALPHABET[(n >> 6) & 63]! + '='
  }
  return out
}

/** Bytes the identifiers of one register call need, drawn from Random in one call. */
export const REGISTER_RANDOM_BYTES = 8 + 16 + 16 + 16

/**
 * Operation id `<digit>.<16 hex>.<uuid>` from 25 bytes at `offset` (first byte picks the digit 1-9,
 * next 8 the hex part, next 16 the uuid).
 */
export function operationIdFromBytes(bytes: Uint8Array, offset = 0): string {
  const digit = 1 + ((bytes[offset] as number) % 9)
  return `${digit}.${hex(bytes, offset + 1, offset + 9)}.${uuidFromBytes(bytes, offset + 9)}`
}

/** A new operation id. */
export function newOperationId(random: Random): string {
  return operationIdFromBytes(random.bytes(25))
}

/** An etag: a quoted opaque string, like the values DPS and Cosmos DB hand out (§7 "ETag"). */
export function etagFromBytes(bytes: Uint8Array, offset = 0): string {
  return `"${uuidFromBytes(bytes, offset)}"`
}

/** A new etag. */
export function newEtag(random: Random): string {
  return etagFromBytes(random.bytes(16))
}

/** A new symmetric key: 64 random bytes, base64 (docs/protocol.md §2.2, D-sym: generated keys are 64 bytes). */
export function newSymmetricKey(random: Random): string {
  return toBase64(random.bytes(64))
}

/** Etag comparison for If-Match (RFC 9110 §13.1.1), from @provisio/protocol. */
export { etagMatches } from '@provisio/protocol'
