/**
 * The header-block limit applied to the bytes as they arrive. A parser that counts only header
 * names and values (Node's does) lets a block of many small headers run to about twice its limit,
 * and an unterminated one is only cut by the header timeout; counting every byte from the first
 * byte of a request to the blank line that ends its head refuses both as soon as they cross the
 * limit. The adapter feeds the meter what the connection received before its parser sees it.
 */

/** What a chunk did to the header block being counted. */
export type HeaderMeterVerdict = 'ok' | 'over'

const CR = 0x0d
const LF = 0x0a

/** Counts the head of each request on one connection (request line, header lines, blank line). */
export class HeaderBlockMeter {
  readonly #limit: number
  #count = 0
  /** Bytes of CR LF CR LF matched at the end of what was counted. */
  #matched = 0
  #counting = true

  /** @param limit the most bytes a request head may have, its final CR LF CR LF included. */
  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 4) throw new RangeError(`header block limit must be an integer of at least 4 bytes, got ${limit}`)
    this.#limit = limit
  }

  /** Bytes of the current head counted so far. */
  get counted(): number {
    return this.#count
  }

  /**
   * Counts `bytes` received on the connection. 'over' once the head being counted is longer than
   * the limit (terminated or not); after the head ended, bytes (a body) are not counted until
   * {@link next}.
   */
  push(bytes: Uint8Array): HeaderMeterVerdict {
    if (!this.#counting) return 'ok'
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]
      if (b === (this.#matched % 2 === 0 ? CR : LF)) this.#matched++
      else this.#matched = b === CR ? 1 : 0
      this.#count++
      if (this.#count > this.#limit) return 'over'
      if (this.#matched === 4) {
        if (this.#count === 4) {
          // Empty lines before a request line (RFC 9112 §2.2) start no head.
          this.#count = 0
          this.#matched = 0
          continue
        }
        this.#counting = false
        return 'ok'
      }
    }
    return 'ok'
  }

  /** The connection's next request begins (the previous one was answered): count from zero. */
  next(): void {
    this.#count = 0
    this.#matched = 0
    this.#counting = true
  }
}
