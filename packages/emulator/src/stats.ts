/**
 * Running statistics of a fleet: counts by status and by error code, and one bucket per second
 * (registrations finished, failures, latency percentiles) for the live chart. Pure.
 */
import type { DeviceStatus } from './fleet.js'

/** Seconds of history kept for the chart. */
export const HISTORY_SECONDS = 600
/** Latency samples kept per second (beyond that, older samples of the second are overwritten in turn). */
const SAMPLES_PER_SECOND = 2048

export interface SecondBucket {
  /** Seconds since the fleet started. */
  readonly second: number
  assigned: number
  failed: number
  /** Latencies (ms) of the devices that finished in this second, assigned or not. */
  readonly latencies: number[]
  seen: number
}

export interface SecondPoint {
  readonly second: number
  readonly assigned: number
  readonly failed: number
  /** Median and 95th percentile latency (ms); undefined when nothing finished that second. */
  readonly p50?: number
  readonly p95?: number
}

export type FinalStatus = Exclude<DeviceStatus, 'pending' | 'registering'>

export class Stats {
  readonly byStatus: Record<FinalStatus, number> = { assigned: 0, failed: 0, disabled: 0, error: 0, stopped: 0 }
  readonly byErrorCode = new Map<string, number>()
  startedDevices = 0
  twinsRead = 0
  twinErrors = 0
  #buckets: SecondBucket[] = []
  #t0: number
  #lastSecond = 0

  constructor(startMs: number) {
    this.#t0 = startMs
  }

  restart(startMs: number): void {
    this.#t0 = startMs
  }

  started(): void {
    this.startedDevices++
  }

  get finished(): number {
    let n = 0
    for (const v of Object.values(this.byStatus)) n += v
    return n
  }

  record(status: FinalStatus, code: string | undefined, latencyMs: number | undefined, nowMs: number): void {
    this.byStatus[status]++
    if (code !== undefined) this.byErrorCode.set(code, (this.byErrorCode.get(code) ?? 0) + 1)
    if (status === 'stopped') return
    const bucket = this.#bucket(nowMs)
    if (status === 'assigned') bucket.assigned++
    else bucket.failed++
    if (latencyMs !== undefined) {
      if (bucket.latencies.length < SAMPLES_PER_SECOND) bucket.latencies.push(latencyMs)
      else bucket.latencies[bucket.seen % SAMPLES_PER_SECOND] = latencyMs
      bucket.seen++
    }
  }

  twinRead(ok: boolean): void {
    if (ok) this.twinsRead++
    else this.twinErrors++
  }

  /** Seconds since start at `nowMs` (the chart's right edge). */
  elapsedSeconds(nowMs: number): number {
    return Math.max(0, Math.floor((nowMs - this.#t0) / 1000))
  }

  /** One point per second from `fromSecond` to `toSecond` (inclusive), zeros where nothing finished. */
  series(fromSecond: number, toSecond: number): SecondPoint[] {
    const out: SecondPoint[] = []
    const byTime = new Map(this.#buckets.map((b) => [b.second, b]))
    for (let s = Math.max(0, fromSecond); s <= toSecond; s++) {
      const b = byTime.get(s)
      if (b === undefined) {
        out.push({ second: s, assigned: 0, failed: 0 })
        continue
      }
      const sorted = [...b.latencies].sort((x, y) => x - y)
      out.push({ second: s, assigned: b.assigned, failed: b.failed, ...(sorted.length > 0 ? { p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95) } : {}) })
    }
    return out
  }

  /** Registrations finished per second over the last `window` whole seconds before `nowMs`. */
  rate(nowMs: number, window = 5): number {
    const end = this.elapsedSeconds(nowMs) - 1
    if (end < 0) return 0
    const from = Math.max(0, end - window + 1)
    let n = 0
    for (const b of this.#buckets) if (b.second >= from && b.second <= end) n += b.assigned + b.failed
    return n / (end - from + 1)
  }

  #bucket(nowMs: number): SecondBucket {
    const second = this.elapsedSeconds(nowMs)
    const last = this.#buckets[this.#buckets.length - 1]
    if (last !== undefined && last.second === second) return last
    const found = this.#buckets.find((b) => b.second === second)
    if (found !== undefined) return found
    const bucket: SecondBucket = { second, assigned: 0, failed: 0, latencies: [], seen: 0 }
    this.#buckets.push(bucket)
    if (second >= this.#lastSecond) this.#lastSecond = second
    else this.#buckets.sort((a, b) => a.second - b.second)
    // Keep a bounded history.
    while (this.#buckets.length > 0 && this.#buckets[0]!.second < this.#lastSecond - HISTORY_SECONDS) this.#buckets.shift()
    return bucket
  }
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no samples')
  const rank = Math.ceil(q * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}
