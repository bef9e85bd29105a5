import { describe, expect, it } from 'vitest'
import { HeaderBlockMeter } from '../src/index.js'

const bytes = (text: string) => new TextEncoder().encode(text)

/** Pushes `text` one chunk of `size` bytes at a time; the verdict of the chunk that first said 'over', or 'ok'. */
function feed(meter: HeaderBlockMeter, text: string, size: number): { verdict: 'ok' | 'over'; at: number } {
  const all = bytes(text)
  for (let i = 0; i < all.length; i += size) {
    if (meter.push(all.subarray(i, i + size)) === 'over') return { verdict: 'over', at: i }
  }
  return { verdict: 'ok', at: all.length }
}

const smallHeaders = (total: number) => {
  let s = 'GET /health HTTP/1.1\r\nHost: localhost\r\n'
  for (let i = 0; s.length < total; i++) s += `x-h${i}: v\r\n`
  return s
}

describe('HeaderBlockMeter', () => {
  it('lets a head within the limit through, counting every byte up to the blank line', () => {
    const meter = new HeaderBlockMeter(64)
    const head = 'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n'
    expect(feed(meter, head, 5)).toEqual({ verdict: 'ok', at: head.length })
    expect(meter.counted).toBe(head.length)
  })

  it('refuses an unterminated block of small headers as soon as it crosses the limit, whatever the chunking', () => {
    for (const size of [1, 7, 512, 16_384]) {
      const meter = new HeaderBlockMeter(16_384)
      const result = feed(meter, smallHeaders(20_000), size)
      expect(result.verdict).toBe('over')
      // Refused in the chunk that holds byte 16,385, not later.
      expect(Math.floor(16_384 / size) * size).toBe(result.at)
    }
  })

  it('refuses a terminated head one byte over the limit and accepts one at the limit', () => {
    const head = smallHeaders(1000) + '\r\n'
    expect(new HeaderBlockMeter(head.length).push(bytes(head))).toBe('ok')
    expect(new HeaderBlockMeter(head.length - 1).push(bytes(head))).toBe('over')
  })

  it('finds the blank line across chunk boundaries and does not count the body', () => {
    const meter = new HeaderBlockMeter(64)
    const head = 'PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 200\r\n\r\n'
    expect(feed(meter, head + 'b'.repeat(200), 1).verdict).toBe('ok')
    expect(meter.counted).toBe(head.length)
  })

  it('counts the next request from zero after next()', () => {
    const meter = new HeaderBlockMeter(48)
    const head = 'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n'
    expect(meter.push(bytes(head))).toBe('ok')
    meter.next()
    expect(meter.push(bytes(head))).toBe('ok')
    meter.next()
    expect(meter.push(bytes(head + 'x'.repeat(10)))).toBe('ok')
    expect(meter.push(bytes('GET /health HTTP/1.1\r\nX-Long: ' + 'a'.repeat(40)))).toBe('ok')
    meter.next()
    expect(meter.push(bytes('GET /health HTTP/1.1\r\nX-Long: ' + 'a'.repeat(40)))).toBe('over')
  })

  it('skips empty lines before a request line and sees a CR inside a line as no terminator', () => {
    const meter = new HeaderBlockMeter(40)
    expect(meter.push(bytes('\r\n\r\nGET / HTTP/1.1\r\nA: b\r\r\n\r\n'))).toBe('ok')
    expect(meter.counted).toBe('GET / HTTP/1.1\r\nA: b\r\r\n\r\n'.length)
  })

  it('refuses a limit that cannot hold a blank line', () => {
    expect(() => new HeaderBlockMeter(3)).toThrow(/at least 4 bytes/)
  })
})
