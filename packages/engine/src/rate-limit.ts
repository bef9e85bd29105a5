/**
 * Token-bucket rate limits with DPS's published defaults (docs/protocol.md §9, D-limits):
 * 1,000 device registrations per minute per service, 5 polls per 10 s per device. A bucket holds
 * `limit` tokens and refills continuously at `limit / windowMs`, so a burst up to the limit passes
 * and the long-run rate never exceeds it. State is per engine process (each instance behind a load
 * balancer enforces its own share).
 */

/** A limit: `limit` events per `windowMs`. */
export interface RateLimit {
  readonly limit: number
  readonly windowMs: number
}

/** Rate limits of the engine; `false` disables one. */
export interface RateLimitOptions {
  /** Register calls per ID scope; default 1,000 per 60 s (§9). */
  readonly registrationsPerScope?: RateLimit | false
  /** Operation-status polls per device; default 5 per 10 s (§9). */
  readonly pollsPerDevice?: RateLimit | false
}

/** DPS defaults (§9). */
export const DPS_DEFAULT_RATE_LIMITS: Required<RateLimitOptions> = {
  registrationsPerScope: { limit: 1000, windowMs: 60_000 },
  pollsPerDevice: { limit: 5, windowMs: 10_000 },
}

interface Bucket {
  tokens: number
  atMs: number
}

/** Verdict of a take: allowed, or denied with the seconds until a token is available. */
export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number }

const ALLOWED: TakeResult = { ok: true }

/** Many token buckets sharing one limit, keyed by string; full buckets are pruned. */
export class TokenBuckets {
  readonly #buckets = new Map<string, Bucket>()
  readonly #ratePerMs: number
  /** Prune full buckets whenever the map doubles past this size. */
  #pruneAt = 1024

  constructor(readonly limit: RateLimit) {
    if (!(limit.limit > 0) || !(limit.windowMs > 0)) {
      throw new RangeError(`rate limit needs limit > 0 and windowMs > 0, got ${limit.limit} per ${limit.windowMs} ms`)
    }
    this.#ratePerMs = limit.limit / limit.windowMs
  }

  /** Takes one token for `key` at time `nowMs`. */
  take(key: string, nowMs: number): TakeResult {
    let bucket = this.#buckets.get(key)
    if (!bucket) {
      if (this.#buckets.size >= this.#pruneAt) this.#prune(nowMs)
      bucket = { tokens: this.limit.limit, atMs: nowMs }
      this.#buckets.set(key, bucket)
    } else if (nowMs > bucket.atMs) {
      bucket.tokens = Math.min(this.limit.limit, bucket.tokens + (nowMs - bucket.atMs) * this.#ratePerMs)
      bucket.atMs = nowMs
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return ALLOWED
    }
    const waitMs = (1 - bucket.tokens) / this.#ratePerMs
    // DPS's Retry-After is integer seconds (§1.4); round up so a client that obeys it succeeds.
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) }
  }

  /** Number of tracked keys (for tests and metrics). */
  get size(): number {
    return this.#buckets.size
  }

  #prune(nowMs: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + (nowMs - bucket.atMs) * this.#ratePerMs >= this.limit.limit) this.#buckets.delete(key)
    }
    this.#pruneAt = Math.max(1024, this.#buckets.size * 2)
  }
}
