// Timing: warm-up with calibration, then interleaved timed runs, median per function.
//
// Why interleaved: this machine's two cores are shared with other work, so load drifts during a
// suite. Running ours and every peer once per round (round-robin) exposes them to the same drift,
// which keeps the ours/peer ratios honest even when absolute numbers wobble.

const now = () => performance.now()

/**
 * Calls fn repeatedly for about `ms` milliseconds; returns calls per millisecond. Also serves as
 * warm-up (the JIT sees the hot loop before any timed run).
 */
function calibrate(fn, ms) {
  let calls = 0
  let batch = 1
  const start = now()
  let elapsed = 0
  while (elapsed < ms) {
    for (let i = 0; i < batch; i++) fn()
    calls += batch
    elapsed = now() - start
    if (elapsed < ms / 10) batch *= 2
  }
  return calls / elapsed
}

/** Times `iterations` calls of fn; returns elapsed milliseconds. */
function timed(fn, iterations) {
  const start = now()
  for (let i = 0; i < iterations; i++) fn()
  return now() - start
}

/**
 * Measures several functions. Returns, per name, the median calls per second of `runs` timed
 * runs, each sized to last about `runMs`, plus every run's rate (for spread).
 *
 * @param {Record<string, () => void>} fns
 * @param {{ warmupMs?: number, runMs?: number, runs?: number }} [options]
 */
export function measure(fns, { warmupMs = 250, runMs = 250, runs = 7 } = {}) {
  const names = Object.keys(fns)
  const iterations = {}
  for (const name of names) {
    const perMs = calibrate(fns[name], warmupMs)
    iterations[name] = Math.max(1, Math.round(perMs * runMs))
  }
  const rates = Object.fromEntries(names.map((n) => [n, []]))
  for (let r = 0; r < runs; r++) {
    // Rotate the starting function each round so none always runs first (e.g. right after GC).
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + r) % names.length]
      const ms = timed(fns[name], iterations[name])
      rates[name].push((iterations[name] * 1000) / ms)
    }
  }
  const out = {}
  for (const name of names) {
    const sorted = [...rates[name]].sort((a, b) => a - b)
    out[name] = { callsPerSec: sorted[sorted.length >> 1], min: sorted[0], max: sorted[sorted.length - 1], runs: rates[name] }
  }
  return out
}

/**
 * Nearest-rank percentile (0 < p <= 100) of numbers sorted ascending.
 * @param {number[]} sorted
 * @param {number} p
 */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

/**
 * Like measure(), for functions that return a Promise (e.g. a batch of engine operations):
 * every call is awaited before the next, so one call = one completed batch.
 *
 * Per-operation latency: a call may resolve with `{ samples: number[] }`, the milliseconds each
 * operation of its batch took (timed where the operation runs, e.g. in a load-client process).
 * The samples of the timed runs (not of warm-up) are pooled per function and reported as
 * `latency: { p50, p99, n }`; the rate is still calls completed per second of the interleaved runs.
 *
 * @param {Record<string, () => Promise<unknown>>} fns
 * @param {{ warmupMs?: number, runMs?: number, runs?: number }} [options]
 */
export async function measureAsync(fns, { warmupMs = 250, runMs = 250, runs = 7 } = {}) {
  const names = Object.keys(fns)
  const iterations = {}
  for (const name of names) {
    const fn = fns[name]
    let calls = 0
    const start = now()
    let elapsed = 0
    while (elapsed < warmupMs) {
      await fn()
      calls++
      elapsed = now() - start
    }
    iterations[name] = Math.max(1, Math.round((calls / elapsed) * runMs))
  }
  const rates = Object.fromEntries(names.map((n) => [n, []]))
  const samples = Object.fromEntries(names.map((n) => [n, []]))
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + r) % names.length]
      const fn = fns[name]
      const n = iterations[name]
      const start = now()
      for (let i = 0; i < n; i++) {
        const result = await fn()
        if (Array.isArray(result?.samples)) for (const ms of result.samples) samples[name].push(ms)
      }
      rates[name].push((n * 1000) / (now() - start))
    }
  }
  const out = {}
  for (const name of names) {
    const sorted = [...rates[name]].sort((a, b) => a - b)
    out[name] = { callsPerSec: sorted[sorted.length >> 1], min: sorted[0], max: sorted[sorted.length - 1], runs: rates[name] }
    if (samples[name].length > 0) {
      const ms = samples[name].sort((a, b) => a - b)
      out[name].latency = { p50: percentile(ms, 50), p99: percentile(ms, 99), n: ms.length }
    }
  }
  return out
}
