/**
 * DPS device-key derivation for symmetric-key enrollment groups:
 * deviceKey = base64(HMAC-SHA256(base64decode(groupKey), utf8(registrationId))).
 *
 * The batch form writes ids straight into the I/O window (ASCII by charCodeAt, UTF-8 fallback),
 * derives a whole window-full in one WASM call (4 lanes at a time in the SIMD build), has the core
 * emit base64, and turns the output into strings with one decode per slice plus a substring per
 * key.
 */
import { assertString, CryptoError, describe } from './errors.js'
import { core, memory, writeUtf8 } from './core.js'
import { base64DecodeNamed } from './base64.js'
import { createHmacSha256Key, keyAddress } from './hmac.js'
import type { HmacSha256Key } from './hmac.js'

const decoder = new TextDecoder()

/** One-entry cache: DPS derives many keys under the same group key. */
let cachedGroup: string | undefined
let cachedKey: HmacSha256Key | undefined

function groupKey(groupKeyBase64: string): HmacSha256Key {
  if (groupKeyBase64 === cachedGroup && cachedKey) return cachedKey
  assertString(groupKeyBase64, 'groupKeyBase64')
  const bytes = base64DecodeNamed(groupKeyBase64, 'groupKeyBase64')
  const key = createHmacSha256Key(bytes)
  bytes.fill(0)
  cachedGroup = groupKeyBase64
  cachedKey = key
  return key
}

/** The base64 device key of `registrationId` under the base64 enrollment-group key. */
export function deriveDeviceKey(groupKeyBase64: string, registrationId: string): string {
  assertString(groupKeyBase64, 'groupKeyBase64')
  assertString(registrationId, 'registrationId')
  return groupKey(groupKeyBase64).macBase64(registrationId)
}

/**
 * Base64 device keys of many registration ids under one group key, in order. Equivalent to
 * mapping deriveDeviceKey, but one WASM call per window-full of ids.
 */
export function deriveDeviceKeys(groupKeyBase64: string, registrationIds: readonly string[]): string[] {
  assertString(groupKeyBase64, 'groupKeyBase64')
  if (!Array.isArray(registrationIds)) {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `registrationIds must be an array of strings, got ${describe(registrationIds)}`)
  }
  const out = new Array<string>(registrationIds.length)
  deriveDeviceKeysInto(groupKeyBase64, registrationIds, out)
  return out
}

/**
 * Like deriveDeviceKeys, writing the keys into `out[offset…]` (an existing array, e.g. reused
 * between batches). Returns `out`.
 */
export function deriveDeviceKeysInto(
  groupKeyBase64: string,
  registrationIds: readonly string[],
  out: string[],
  offset = 0,
): string[] {
  assertString(groupKeyBase64, 'groupKeyBase64')
  if (!Array.isArray(registrationIds)) {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `registrationIds must be an array of strings, got ${describe(registrationIds)}`)
  }
  if (!Array.isArray(out)) throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `out must be an array, got ${describe(out)}`)
  const key = groupKey(groupKeyBase64)
  const c = core()
  const m = memory()
  const total = registrationIds.length
  const end = c.io + c.cap
  let i = 0
  while (i < total) {
    // Records [u32 length][UTF-8 bytes] from the window start; 44 output bytes per record are
    // reserved at the window end, so a slice stops when the two would meet.
    let p = c.io
    let count = 0
    const first = i
    while (i < total) {
      const id = registrationIds[i]
      if (typeof id !== 'string') {
        throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `registrationIds[${i}] must be a string, got ${describe(id)}`)
      }
      const room = end - (p + 4) - 44 * (count + 1)
      const n = room > 0 ? writeUtf8(m, id, p + 4, room) : -1
      if (n < 0) break
      m[p] = n & 0xff
      m[p + 1] = (n >>> 8) & 0xff
      m[p + 2] = (n >>> 16) & 0xff
      m[p + 3] = n >>> 24
      p += 4 + n
      count++
      i++
    }
    if (count === 0) {
      // An id too large to share the window with its output: the single-key path streams it.
      out[offset + i] = key.macBase64(registrationIds[i]!)
      i++
      continue
    }
    c.deriveKeys(keyAddress(key), c.io, count, p)
    const text = decoder.decode(m.subarray(p, p + 44 * count))
    for (let k = 0; k < count; k++) out[offset + first + k] = text.substring(44 * k, 44 * k + 44)
  }
  return out
}
