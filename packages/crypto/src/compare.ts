/** Constant-time comparison on the WASM core. */
import { assertBytes } from './errors.js'
import { copyIn, core, memory } from './core.js'

/**
 * True when `a` and `b` hold the same bytes. Different lengths give false at once (lengths are
 * not secret); for equal lengths the time depends only on the length, not on the contents.
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  assertBytes(a, 'a')
  assertBytes(b, 'b')
  if (a.length !== b.length) return false
  const c = core()
  const m = memory()
  const half = c.cap >>> 1
  let equal = 1
  // No early exit between chunks: every chunk is compared whatever the earlier ones said.
  for (let i = 0; i < a.length || i === 0; i += half) {
    const n = Math.min(half, a.length - i)
    if (i === 0 && n === a.length) {
      copyIn(m, a, c.io)
      copyIn(m, b, c.io + half)
    } else {
      m.set(a.subarray(i, i + n), c.io)
      m.set(b.subarray(i, i + n), c.io + half)
    }
    equal &= c.timingSafeEqual(c.io, c.io + half, n)
    if (n === a.length - i) break
  }
  return equal === 1
}
