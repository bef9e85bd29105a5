import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { etagMatches, formatDpsTimestamp, newOperationId, TokenBuckets, TypedEmitter, type EngineEventMap } from '../src/index.js'
import { hex, toBase64, uuidFromBytes } from '../src/ids.js'
import { decodeContinuation, encodeContinuation } from '../src/query.js'
import { SeededRandom } from './helpers/fakes.js'

describe('formatDpsTimestamp', () => {
  it('agrees with Date#toISOString to the millisecond, over the whole Date range, with 7 digits', () => {
    fc.assert(
      fc.property(fc.integer({ min: -8_640_000_000_000_000, max: 8_640_000_000_000_000 }), (ms) => {
        const iso = new Date(ms).toISOString()
        if (iso.length !== 24) return // 6-digit years are outside DPS's range
        expect(formatDpsTimestamp(ms)).toBe(iso.replace('Z', '0000Z'))
      }),
      { numRuns: 2000 },
    )
  })

  it('keeps sub-millisecond precision in 100 ns ticks and never rounds up', () => {
    expect(formatDpsTimestamp(0)).toBe('1970-01-01T00:00:00.0000000Z')
    expect(formatDpsTimestamp(1586488273027.6997)).toBe('2020-04-10T03:11:13.0276997Z')
    expect(formatDpsTimestamp(951868799999.5)).toBe('2000-02-29T23:59:59.9995000Z')
    expect(formatDpsTimestamp(-1)).toBe('1969-12-31T23:59:59.9990000Z')
    expect(() => formatDpsTimestamp(Number.NaN)).toThrow(RangeError)
  })
})

describe('identifiers', () => {
  it('makes operation ids shaped like DPS ones', () => {
    const random = new SeededRandom(42)
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const id = newOperationId(random)
      expect(id).toMatch(/^[1-9]\.[0-9a-f]{16}\.[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      seen.add(id)
    }
    expect(seen.size).toBe(200)
  })

  it('encodes hex, uuid and base64 like node does', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 100 }), (bytes) => {
        expect(toBase64(bytes)).toBe(Buffer.from(bytes).toString('base64'))
        expect(hex(bytes)).toBe(Buffer.from(bytes).toString('hex'))
      }),
    )
    const bytes = new Uint8Array(16).fill(0xff)
    expect(uuidFromBytes(bytes)).toBe('ffffffff-ffff-4fff-bfff-ffffffffffff')
  })

  it('compares etags per RFC 9110 (quotes, W/, *)', () => {
    expect(etagMatches('"abc"', '"abc"')).toBe(true)
    expect(etagMatches('abc', '"abc"')).toBe(true)
    expect(etagMatches('W/"abc"', '"abc"')).toBe(true)
    expect(etagMatches('*', '"x"')).toBe(true)
    expect(etagMatches('*', undefined)).toBe(false)
    expect(etagMatches('"abd"', '"abc"')).toBe(false)
  })

  it('round-trips continuation tokens and rejects forged ones', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 128 }), (k) => {
        expect(decodeContinuation(encodeContinuation(k))).toBe(k)
      }),
    )
    for (const bad of ['', 'c1.zz', 'c1.abc', 'x1.00', 'c1.ff'] as const) expect(() => decodeContinuation(bad)).toThrow(/continuation token/)
  })
})

describe('TokenBuckets', () => {
  it('admits the burst, then exactly the refill rate, with a Retry-After that works', () => {
    const buckets = new TokenBuckets({ limit: 5, windowMs: 10_000 })
    for (let i = 0; i < 5; i++) expect(buckets.take('d', 0)).toEqual({ ok: true })
    const denied = buckets.take('d', 0)
    expect(denied).toEqual({ ok: false, retryAfterSeconds: 2 })
    expect(buckets.take('d', 1999).ok).toBe(false)
    expect(buckets.take('d', 2000).ok).toBe(true)
    expect(buckets.take('other', 0).ok).toBe(true)
  })

  it('never admits more than limit + elapsed * rate (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 200 }), (gaps) => {
        const limit = { limit: 10, windowMs: 60_000 }
        const buckets = new TokenBuckets(limit)
        let t = 0
        let admitted = 0
        for (const gap of gaps) {
          t += gap
          if (buckets.take('s', t).ok) admitted++
          expect(admitted).toBeLessThanOrEqual(limit.limit + (t * limit.limit) / limit.windowMs + 1e-9)
        }
      }),
    )
  })

  it('prunes refilled buckets so memory stays bounded', () => {
    const buckets = new TokenBuckets({ limit: 1, windowMs: 10 })
    for (let i = 0; i < 5000; i++) buckets.take(`dev-${i}`, i * 100)
    expect(buckets.size).toBeLessThan(2100)
  })

  it('refuses a meaningless limit', () => {
    expect(() => new TokenBuckets({ limit: 0, windowMs: 1 })).toThrow(RangeError)
  })
})

describe('TypedEmitter', () => {
  it('delivers in order, unsubscribes, and isolates throwing listeners', () => {
    const emitter = new TypedEmitter<EngineEventMap>()
    const log: string[] = []
    const off = emitter.on('registrationDeleted', (e) => log.push(`a:${e.registrationId}`))
    emitter.on('registrationDeleted', () => {
      throw new Error('boom')
    })
    emitter.on('registrationDeleted', (e) => log.push(`c:${e.registrationId}`))
    emitter.on('listenerError', (e) => log.push(`error:${e.event}`))
    emitter.emit('registrationDeleted', { idScope: 's', registrationId: 'r1', atMs: 0 })
    off()
    emitter.emit('registrationDeleted', { idScope: 's', registrationId: 'r2', atMs: 0 })
    expect(log).toEqual(['a:r1', 'error:registrationDeleted', 'c:r1', 'error:registrationDeleted', 'c:r2'])
    expect(emitter.has('registrationAssigned')).toBe(false)
  })
})
