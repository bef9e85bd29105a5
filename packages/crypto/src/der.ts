/**
 * A small, strict DER reader (ITU-T X.690 §8 and §10) for the few structures the public-key code
 * needs: SubjectPublicKeyInfo, RSAPublicKey, RSASSA-PSS-params and ECDSA-Sig-Value. Layer 0 cannot
 * depend on an ASN.1 library, and verification must never accept a BER variant that a signer could
 * use to smuggle a second encoding of the same value, so everything not canonical DER is refused:
 * indefinite lengths, non-minimal length octets, high tag numbers, non-minimal INTEGERs.
 *
 * The reader throws {@link DerError}; callers decide whether that is an argument error (a public
 * key) or a verdict (a signature: `false`).
 */

/** Thrown on any structure that is not canonical DER or not the expected shape. */
export class DerError extends Error {
  override readonly name = 'DerError'
}

/** One TLV: tag byte and the bounds of its contents inside the buffer it was read from. */
export interface Tlv {
  readonly tag: number
  readonly start: number
  readonly end: number
}

export const TAG_INTEGER = 0x02
export const TAG_BIT_STRING = 0x03
export const TAG_OCTET_STRING = 0x04
export const TAG_NULL = 0x05
export const TAG_OID = 0x06
export const TAG_SEQUENCE = 0x30

/** Largest structure the reader accepts (keys and signatures are far smaller). */
export const DER_MAX_LENGTH = 1 << 16

/** Sequential reader over `bytes[start, end)`. */
export class DerReader {
  private pos: number

  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    readonly end = bytes.length,
  ) {
    if (end - start > DER_MAX_LENGTH) throw new DerError(`DER input of ${end - start} bytes exceeds the ${DER_MAX_LENGTH}-byte limit`)
    this.pos = start
  }

  /** True when every byte has been consumed. */
  get done(): boolean {
    return this.pos >= this.end
  }

  /** Peeks at the next tag without consuming it (-1 at the end). */
  peekTag(): number {
    return this.pos < this.end ? this.bytes[this.pos]! : -1
  }

  /** Reads one TLV; `expected` (if given) must match the tag byte. */
  read(expected?: number): Tlv {
    const b = this.bytes
    if (this.pos + 2 > this.end) throw new DerError('truncated DER: no room for tag and length')
    const tag = b[this.pos]!
    // X.690 §8.1.2.4: tag number 31 introduces the multi-byte form, which none of our structures use
    if ((tag & 0x1f) === 0x1f) throw new DerError('high-tag-number form is not used by these structures')
    if (expected !== undefined && tag !== expected) {
      throw new DerError(`expected tag 0x${expected.toString(16)}, found 0x${tag.toString(16)}`)
    }
    let p = this.pos + 1
    let len = b[p++]!
    if (len & 0x80) {
      const count = len & 0x7f
      // 0x80 is BER's indefinite length (§8.1.3.6), forbidden by DER (§10.1)
      if (count === 0) throw new DerError('indefinite length is not DER')
      if (count > 3) throw new DerError('length field too long')
      if (p + count > this.end) throw new DerError('truncated DER length')
      if (b[p] === 0) throw new DerError('length has a leading zero byte (not minimal, X.690 §10.1)')
      len = 0
      for (let i = 0; i < count; i++) len = len * 256 + b[p++]!
      if (len < 0x80) throw new DerError('long-form length below 128 (not minimal, X.690 §10.1)')
    }
    if (len > this.end - p) throw new DerError(`DER length ${len} runs past the end of its container`)
    this.pos = p + len
    return { tag, start: p, end: p + len }
  }

  /** Reads a constructed TLV and returns a reader over its contents. */
  sequence(tag = TAG_SEQUENCE): DerReader {
    const t = this.read(tag)
    return new DerReader(this.bytes, t.start, t.end)
  }

  /** Throws unless the reader is exhausted (no trailing data). */
  finish(what: string): void {
    if (this.pos !== this.end) throw new DerError(`trailing bytes after ${what}`)
  }

  /**
   * Reads a non-negative INTEGER and returns its magnitude without sign padding (at least one
   * byte; zero is [0]). Rejects negative values and non-minimal encodings (X.690 §8.3.2).
   */
  unsignedInteger(): Uint8Array {
    const t = this.read(TAG_INTEGER)
    const b = this.bytes
    if (t.end === t.start) throw new DerError('empty INTEGER')
    if (b[t.start]! & 0x80) throw new DerError('negative INTEGER where a positive one is required')
    if (t.end - t.start > 1 && b[t.start] === 0 && !(b[t.start + 1]! & 0x80)) {
      throw new DerError('INTEGER has a superfluous leading zero byte (not minimal, X.690 §8.3.2)')
    }
    let s = t.start
    if (b[s] === 0 && t.end - s > 1) s++
    return b.subarray(s, t.end)
  }

  /** Reads an OBJECT IDENTIFIER and returns its content bytes. */
  oid(): Uint8Array {
    const t = this.read(TAG_OID)
    if (t.end === t.start) throw new DerError('empty OBJECT IDENTIFIER')
    return this.bytes.subarray(t.start, t.end)
  }

  /** Reads NULL (must be empty). */
  null(): void {
    const t = this.read(TAG_NULL)
    if (t.end !== t.start) throw new DerError('NULL with contents')
  }

  /** Reads a BIT STRING with no unused bits and returns its bytes. */
  bitStringBytes(): Uint8Array {
    const t = this.read(TAG_BIT_STRING)
    if (t.end === t.start) throw new DerError('empty BIT STRING')
    if (this.bytes[t.start] !== 0) throw new DerError('BIT STRING with unused bits where whole bytes are required')
    return this.bytes.subarray(t.start + 1, t.end)
  }
}

/** Compares two byte ranges. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Parses hex (trusted constants only). */
export function hex(text: string): Uint8Array {
  const out = new Uint8Array(text.length >> 1)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16)
  return out
}
