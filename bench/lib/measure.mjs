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
 * Like measure(), for functions that return a Promise (e.g. a batch of engine operations):
 * every call is awaited before the next, so one call = one completed batch.
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
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + r) % names.length]
      const fn = fns[name]
      const n = iterations[name]
      const start = now()
      for (let i = 0; i < n; i++) await fn()
      rates[name].push((n * 1000) / (now() - start))
    }
  }
  const out = {}
  for (const name of names) {
    const sorted = [...rates[name]].sort((a, b) => a - b)
    out[name] = { callsPerSec: sorted[sorted.length >> 1], min: sorted[0], max: sorted[sorted.length - 1], runs: rates[name] }
  }
  return out
}
