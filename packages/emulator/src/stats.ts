/**
 * Running statistics of a fleet: counts by status and by error code, and one bucket per second
 * (registrations finished, failures, latency percentiles) for the live chart. Pure.
 */
import type { DeviceStatus } from './fleet.js'

/** Seconds of history kept for the chart. */
export const HISTORY_SECONDS = 600
/** Latency samples kept per second (beyond that, older samples of the second are overwritten in turn). */
const SAMPLES_PER_SECOND = 2048
/** Latency samples kept for the whole-run summary (beyond that, older samples are overwritten in turn). */
export const RUN_SAMPLES = 1_000_000

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

/** The whole run in numbers (the page's summary panel and the JSON export). */
export interface RunSummary {
  readonly started: number
  /** Devices whose registration finished (assigned, failed, disabled or error; not stopped). */
  readonly finished: number
  readonly byStatus: Readonly<Record<FinalStatus, number>>
  readonly byErrorCode: Readonly<Record<string, number>>
  /** From the start to the last finished registration (to now while none has finished), s. */
  readonly durationSeconds: number
  /** finished / durationSeconds: the rate over the whole run. */
  readonly ratePerSecond: number
  /** Registration latency over the whole run, ms (absent when nothing finished). */
  readonly latencyMs?: { readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number; readonly mean: number }
  readonly twinsRead: number
  readonly twinErrors: number
  readonly connected: number
  readonly telemetrySent: number
  readonly telemetryErrors: number
  readonly desiredReceived: number
}

export class Stats {
  readonly byStatus: Record<FinalStatus, number> = { assigned: 0, failed: 0, disabled: 0, error: 0, stopped: 0 }
  readonly byErrorCode = new Map<string, number>()
  startedDevices = 0
  twinsRead = 0
  twinErrors = 0
  /** Devices connected to their hub right now (stay-connected runs). */
  connected = 0
  telemetrySent = 0
  telemetryErrors = 0
  desiredReceived = 0
  readonly #runLatencies: number[] = []
  #runSeen = 0
  #lastFinishMs: number | undefined
  #buckets: SecondBucket[] = []
  #t0: number
  #lastSecond = 0

  constructor(startMs: number) {
    this.#t0 = startMs
  }

  restart(startMs: number): void {
    this.#t0 = startMs
  }

  /** The whole run: counts, the rate from start to the last finished registration, latency percentiles. */
  summary(nowMs: number): RunSummary {
    const finished = this.finished - this.byStatus.stopped
    const durationSeconds = Math.max(0, ((this.#lastFinishMs ?? nowMs) - this.#t0) / 1000)
    const sorted = [...this.#runLatencies].sort((a, b) => a - b)
    let sum = 0
    for (const v of sorted) sum += v
    return {
      started: this.startedDevices,
      finished,
      byStatus: { ...this.byStatus },
      byErrorCode: Object.fromEntries(this.byErrorCode),
      durationSeconds,
      ratePerSecond: durationSeconds > 0 ? finished / durationSeconds : 0,
      ...(sorted.length === 0
        ? {}
        : { latencyMs: { p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1]!, mean: sum / sorted.length } }),
      twinsRead: this.twinsRead,
      twinErrors: this.twinErrors,
      connected: this.connected,
      telemetrySent: this.telemetrySent,
      telemetryErrors: this.telemetryErrors,
      desiredReceived: this.desiredReceived,
    }
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
    this.#lastFinishMs = nowMs
    if (latencyMs !== undefined) {
      if (this.#runLatencies.length < RUN_SAMPLES) this.#runLatencies.push(latencyMs)
      else this.#runLatencies[this.#runSeen % RUN_SAMPLES] = latencyMs
      this.#runSeen++
    }
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
