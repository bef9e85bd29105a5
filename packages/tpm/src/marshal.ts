/**
 * Big-endian TPM 2.0 marshalling primitives (TPM 2.0 Part 2 §5 "base types", §10.4 "sized
 * buffers"): a bounded reader that never reads past its input and a growable writer. Every
 * TPM2B read takes the structure's own size limit, so a hostile size field fails before any
 * allocation.
 */
import { TpmError } from './errors.js'

/** A bounded big-endian reader over a byte array. */
export class TpmReader {
  #pos = 0
  constructor(
    readonly bytes: Uint8Array,
    /** What is being parsed, for error messages. */
    readonly what: string,
  ) {}

  get position(): number {
    return this.#pos
  }

  get remaining(): number {
    return this.bytes.length - this.#pos
  }

  #need(n: number, field: string): void {
    if (this.#pos + n > this.bytes.length) {
      throw new TpmError('TPM_TRUNCATED', `${this.what}: ${field} needs ${n} byte(s) at offset ${this.#pos}, only ${this.remaining} left`)
    }
  }

  u8(field: string): number {
    this.#need(1, field)
    return this.bytes[this.#pos++]!
  }

  u16(field: string): number {
    this.#need(2, field)
    const b = this.bytes
    const v = (b[this.#pos]! << 8) | b[this.#pos + 1]!
    this.#pos += 2
    return v
  }

  u32(field: string): number {
    this.#need(4, field)
    const b = this.bytes
    const p = this.#pos
    const v = ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0
    this.#pos += 4
    return v
  }

  raw(n: number, field: string): Uint8Array {
    this.#need(n, field)
    const out = this.bytes.slice(this.#pos, this.#pos + n)
    this.#pos += n
    return out
  }

  /** A TPM2B: UINT16 size, then that many bytes, at most `max`. */
  tpm2b(field: string, max: number): Uint8Array {
    const size = this.u16(`${field}.size`)
    if (size > max) throw new TpmError('TPM_TOO_LARGE', `${this.what}: ${field}.size is ${size}, the limit is ${max}`)
    return this.raw(size, field)
  }

  /** Fails unless every byte was consumed. */
  end(): void {
    if (this.remaining !== 0) {
      throw new TpmError('TPM_TRAILING_BYTES', `${this.what}: ${this.remaining} byte(s) left after the structure at offset ${this.#pos}`)
    }
  }
}

/** A growable big-endian writer. */
export class TpmWriter {
  #buf = new Uint8Array(256)
  #len = 0

  #grow(n: number): void {
    if (this.#len + n <= this.#buf.length) return
    let size = this.#buf.length * 2
    while (size < this.#len + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.#buf.subarray(0, this.#len))
    this.#buf = next
  }

  u8(v: number): this {
    this.#grow(1)
    this.#buf[this.#len++] = v & 0xff
    return this
  }

  u16(v: number): this {
    this.#grow(2)
    this.#buf[this.#len++] = (v >>> 8) & 0xff
    this.#buf[this.#len++] = v & 0xff
    return this
  }

  u32(v: number): this {
    this.#grow(4)
    this.#buf[this.#len++] = (v >>> 24) & 0xff
    this.#buf[this.#len++] = (v >>> 16) & 0xff
    this.#buf[this.#len++] = (v >>> 8) & 0xff
    this.#buf[this.#len++] = v & 0xff
    return this
  }

  raw(bytes: Uint8Array): this {
    this.#grow(bytes.length)
    this.#buf.set(bytes, this.#len)
    this.#len += bytes.length
    return this
  }

  /** A TPM2B: UINT16 size ‖ bytes. */
  tpm2b(bytes: Uint8Array): this {
    if (bytes.length > 0xffff) throw new TpmError('TPM_TOO_LARGE', `a TPM2B holds at most 65535 bytes, got ${bytes.length}`)
    return this.u16(bytes.length).raw(bytes)
  }

  get length(): number {
    return this.#len
  }

  /** Overwrites a UINT32 at `at` (command and response size fields). */
  patchU32(at: number, v: number): void {
    this.#buf[at] = (v >>> 24) & 0xff
    this.#buf[at + 1] = (v >>> 16) & 0xff
    this.#buf[at + 2] = (v >>> 8) & 0xff
    this.#buf[at + 3] = v & 0xff
  }

  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#len)
  }
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** UINT16 size ‖ bytes (a TPM2B of any kind). */
export function sized(bytes: Uint8Array): Uint8Array {
  return new TpmWriter().tpm2b(bytes).bytes()
}

/** Byte equality (not constant-time; use for public data only). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
