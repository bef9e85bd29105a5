// Machine-checkable targets. A case's `target` string is a list of clauses joined by " and ", ";" or ", "; each clause is one of
//   ">= 1,000,000/s" (also "ops/s", "keys/s", any "<word>/s"): our operations per second
//   ">= 250 MB/s" (or "GB/s", "KB/s"): our throughput, for cases with bytesPerOp (MB = 10^6 bytes)
//   ">= 2.5x node:crypto": ours/peer ratio for the named peer
// "≥" may stand for ">=", numbers may use "," or "_" separators and a k/M suffix. A clause the
// runner cannot parse makes the verdict `null` (reported as "n/a"), never a silent pass.

// The k/M suffix must not start a word ("keys/s", "MB/s").
const NUM = String.raw`([0-9][0-9,_]*(?:\.[0-9]+)?)\s*([kKM](?![A-Za-z])|)`

function number(text, suffix) {
  const n = Number(text.replace(/[,_]/g, ''))
  return suffix === 'M' ? n * 1e6 : suffix === 'k' || suffix === 'K' ? n * 1e3 : n
}

/**
 * @param {string} target
 * @param {{ opsPerSec: number, bytesPerSec?: number, ratios: Record<string, number> }} result
 * @returns {{ met: boolean | null, clauses: { text: string, met: boolean | null, actual?: number }[] }}
 */
export function checkTarget(target, result) {
  const clauses = target
    .split(/\s+and\s+|\s*;\s*|,\s+/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map((text) => ({ text, ...checkClause(text.replace(/≥/g, '>='), result) }))
  const met = clauses.some((c) => c.met === null) ? null : clauses.every((c) => c.met)
  return { met, clauses }
}

function checkClause(text, result) {
  let m = new RegExp(String.raw`^>=\s*${NUM}\s*x\s+(\S.*)$`).exec(text)
  if (m) {
    const want = number(m[1], m[2])
    const actual = result.ratios[m[3].trim()]
    return actual === undefined ? { met: null } : { met: actual >= want, actual }
  }
  m = new RegExp(String.raw`^>=\s*${NUM}\s*([KMG])B/s$`).exec(text)
  if (m) {
    const scale = { K: 1e3, M: 1e6, G: 1e9 }[m[3]]
    if (result.bytesPerSec === undefined) return { met: null }
    const actual = result.bytesPerSec / scale
    return { met: actual >= number(m[1], m[2]), actual }
  }
  m = new RegExp(String.raw`^>=\s*${NUM}\s*(?:[A-Za-z. -]*)/s$`).exec(text)
  if (m) {
    return { met: result.opsPerSec >= number(m[1], m[2]), actual: result.opsPerSec }
  }
  return { met: null }
}
