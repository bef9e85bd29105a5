/**
 * HMAC-SHA256 (RFC 2104 / FIPS 198-1) on the WASM core.
 *
 * `createHmacSha256Key` computes a key's inner/outer chaining states once (two compressions)
 * and keeps them in a slot of the core's slot table, with a JS-side copy to restore the slot if
 * another key took it over; each MAC then costs two compressions for messages up to 55 bytes.
 * The raw-key functions compute the states per call (four compressions in all).
 */
import { assertBytes, assertString } from './errors.js'
import { ascii44, copyIn, copyOut, core, memory, writeUtf8 } from './core.js'
import type { HashCore } from './core.js'
import { base64Decode, base64Encode } from './base64.js'
import { sha256 } from './hash.js'
import { utf8Encode } from './utf8.js'
import { timingSafeEqual } from './compare.js'

/** A key with its HMAC-SHA256 padded states precomputed. */
export interface HmacSha256Key {
  /** HMAC-SHA256 tag (32 bytes) of `data`. */
  mac(data: Uint8Array): Uint8Array
  /** Writes the tag of `data` into `out` (exactly 32 bytes); returns `out`. Allocation-free. */
  macInto(data: Uint8Array, out: Uint8Array): Uint8Array
  /** Base64 (standard, padded) tag of the UTF-8 of `message`. */
  macBase64(message: string): string
  /**
   * Whether `expectedBase64` is the base64 tag of the UTF-8 of `message`. Constant-time tag
   * comparison; false (never an exception) when `expectedBase64` is not a 44-character strict
   * base64 encoding of 32 bytes. Allocation-free.
   */
  verifyBase64(message: string, expectedBase64: string): boolean
}

/** Messages up to this size go through the I/O window in one call; output sits past it. */
function maxInline(c: HashCore): number {
  return c.cap - 128
}

// ---- the slot table: which key object owns which slot of the core's key-state table ----
const owners: (HmacKey | undefined)[] = []
let nextSlot = 0

class HmacKey implements HmacSha256Key {
  /** JS-side copy of the 64-byte key state, to reload the slot if it was taken over. */
  readonly #state = new Uint8Array(64)
  readonly #slot: number

  constructor(key: Uint8Array) {
    const c = core()
    this.#slot = nextSlot
    // The last slot is reserved for one-off raw keys (scratchState below).
    nextSlot = (nextSlot + 1) % (c.slotCount - 1)
    const addr = c.slots + this.#slot * 64
    keyStateAt(key, addr)
    copyOut(memory(), addr, this.#state, 64)
    owners[this.#slot] = this
  }

  /** Address of this key's state in WASM memory, reloading the slot if needed. */
  address(): number {
    const c = core()
    const addr = c.slots + this.#slot * 64
    if (owners[this.#slot] !== this) {
      copyIn(memory(), this.#state, addr)
      owners[this.#slot] = this
    }
    return addr
  }

  mac(data: Uint8Array): Uint8Array {
    assertBytes(data, 'data')
    const out = new Uint8Array(32)
    macWithState(this.address(), data, out)
    return out
  }

  macInto(data: Uint8Array, out: Uint8Array): Uint8Array {
    assertBytes(data, 'data')
    assertBytes(out, 'out', 32)
    macWithState(this.address(), data, out)
    return out
  }

  macBase64(message: string): string {
    assertString(message, 'message')
    const c = core()
    const m = memory()
    const st = this.address()
    const n = writeUtf8(m, message, c.io, maxInline(c))
    if (n < 0) return base64Encode(this.mac(utf8Encode(message)))
    const o = c.io + n
    c.hmacMacB64(st, c.io, n, o)
    return ascii44(m, o)
  }

  verifyBase64(message: string, expectedBase64: string): boolean {
    assertString(message, 'message')
    assertString(expectedBase64, 'expectedBase64')
    if (expectedBase64.length !== 44) return false
    const c = core()
    const m = memory()
    const st = this.address()
    const n = writeUtf8(m, message, c.io, maxInline(c))
    if (n < 0) return verifyLarge(this.mac(utf8Encode(message)), expectedBase64)
    const e = c.io + n
    if (!writeBase64Chars(m, expectedBase64, e)) return false
    return c.hmacVerifyB64(st, c.io, n, e, 44) === 1
  }
}

/** Writes the 44 characters of an expected tag; false if any is outside ASCII (so not base64). */
function writeBase64Chars(m: Uint8Array, text: string, off: number): boolean {
  for (let i = 0; i < 44; i++) {
    const ch = text.charCodeAt(i)
    if (ch >= 0x80) return false
    m[off + i] = ch
  }
  return true
}

/** Verify path for messages larger than the window: decode the expected tag, compare in constant time. */
function verifyLarge(tag: Uint8Array, expectedBase64: string): boolean {
  let expected: Uint8Array
  try {
    expected = base64Decode(expectedBase64)
  } catch {
    return false
  }
  return timingSafeEqual(tag, expected)
}

/** Computes the key state of `key` into WASM memory at addr (hashing over-long keys in JS first). */
function keyStateAt(key: Uint8Array, addr: number): void {
  const c = core()
  // RFC 2104 section 2: a key longer than the block size is replaced by its hash; keys that do
  // not fit the window are hashed here, smaller ones by the core.
  const k = key.length > c.cap ? sha256(key) : key
  copyIn(memory(), k, c.io)
  c.hmacKeyInit(c.io, k.length, addr)
}

/** Tag of data under the key state at st, into out (32 bytes). */
function macWithState(st: number, data: Uint8Array, out: Uint8Array): void {
  const c = core()
  const m = memory()
  const n = data.length
  if (n <= maxInline(c)) {
    copyIn(m, data, c.io)
    c.hmacMac(st, c.io, n, c.io + n)
    copyOut(m, c.io + n, out, 32)
    return
  }
  macLarge(st, data, out)
}

/**
 * Streams a large message: the inner hash resumes from the inner chaining state with 64 bytes
 * (the ipad block) already counted, the outer one from the outer state. Context layout as in
 * assembly/sha256.ts: state at 0, byte count (u64 LE) at 32, buffered count (u32) at 40.
 */
function macLarge(st: number, data: Uint8Array, out: Uint8Array): void {
  const c = core()
  const m = memory()
  const ctx = c.scratch
  const resume = (from: number): void => {
    m.copyWithin(ctx, from, from + 32)
    m.fill(0, ctx + 32, ctx + 48)
    m[ctx + 32] = 64
  }
  // The state may live in the I/O window's neighbourhood only as a slot or KS: both are outside
  // the window, so streaming data through the window does not disturb it.
  resume(st)
  for (let i = 0; i < data.length; i += c.cap) {
    const part = Math.min(c.cap, data.length - i)
    m.set(data.subarray(i, i + part), c.io)
    c.sha256Update(ctx, c.io, part)
  }
  c.sha256Final(ctx, c.io, 0)
  resume(st + 32)
  c.sha256Update(ctx, c.io, 32)
  c.sha256Final(ctx, c.io, 0)
  copyOut(m, c.io, out, 32)
}

/** Slot used by the raw-key functions for inputs too large for their one-call path. */
let scratchKey: number | undefined
function scratchState(key: Uint8Array): number {
  const c = core()
  // The last slot is reserved for one-off raw keys: no HmacKey is ever given it.
  scratchKey ??= c.slots + (c.slotCount - 1) * 64
  keyStateAt(key, scratchKey)
  return scratchKey
}

/** HMAC-SHA256 tag (32 bytes) of `data` under `key`. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(32)
  return hmacSha256Into(key, data, out)
}

/** HMAC-SHA256 of `data` under `key` written into `out` (exactly 32 bytes); returns `out`. */
export function hmacSha256Into(key: Uint8Array, data: Uint8Array, out: Uint8Array): Uint8Array {
  assertBytes(key, 'key')
  assertBytes(data, 'data')
  assertBytes(out, 'out', 32)
  const c = core()
  const m = memory()
  const k = key.length
  const n = data.length
  if (k + n <= maxInline(c)) {
    copyIn(m, key, c.io)
    copyIn(m, data, c.io + k)
    const o = c.io + k + n
    c.hmacSha256(c.io, k, c.io + k, n, o)
    copyOut(m, o, out, 32)
    return out
  }
  macWithState(scratchState(key), data, out)
  return out
}

/** Base64 (standard, padded) HMAC-SHA256 of the UTF-8 of `message` under `key` (SAS signing). */
export function hmacSha256Base64(key: Uint8Array, message: string): string {
  assertBytes(key, 'key')
  assertString(message, 'message')
  const c = core()
  const m = memory()
  const k = key.length
  const n = k <= maxInline(c) ? writeUtf8(m, message, c.io + k, maxInline(c) - k) : -1
  if (n < 0) return base64Encode(hmacSha256(key, utf8Encode(message)))
  copyIn(m, key, c.io)
  const o = c.io + k + n
  c.hmacSha256B64(c.io, k, c.io + k, n, o)
  return ascii44(m, o)
}

/**
 * Whether `expectedBase64` is the base64 HMAC-SHA256 of the UTF-8 of `message` under `key`.
 * Constant-time tag comparison; false (never an exception) for a malformed expected value.
 */
export function verifyHmacSha256Base64(key: Uint8Array, message: string, expectedBase64: string): boolean {
  assertBytes(key, 'key')
  assertString(message, 'message')
  assertString(expectedBase64, 'expectedBase64')
  if (expectedBase64.length !== 44) return false
  const c = core()
  const m = memory()
  const k = key.length
  const n = k <= maxInline(c) ? writeUtf8(m, message, c.io + k, maxInline(c) - k) : -1
  if (n < 0) return verifyLarge(hmacSha256(key, utf8Encode(message)), expectedBase64)
  copyIn(m, key, c.io)
  const e = c.io + k + n
  if (!writeBase64Chars(m, expectedBase64, e)) return false
  return c.hmacSha256VerifyB64(c.io, k, c.io + k, n, e, 44) === 1
}

/**
 * Precomputes the HMAC-SHA256 states of `key` (copied; later changes to `key` do not matter).
 * Any number of keys may be live: the core's table has 255 slots, handed out round-robin, and a
 * key whose slot was taken over reloads it from its own copy (64 bytes) on next use. The table
 * references the 255 most recently created keys, so those stay reachable until replaced.
 */
export function createHmacSha256Key(key: Uint8Array): HmacSha256Key {
  assertBytes(key, 'key')
  return new HmacKey(key)
}

/** Internal: WASM address of a key's state (for batch derivation). */
export function keyAddress(key: HmacSha256Key): number {
  return (key as HmacKey).address()
}
