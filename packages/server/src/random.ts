import { randomFillSync } from 'node:crypto'

/**
 * The engine's Random port over node:crypto, drawing from a pooled 8 KiB buffer: a register asks
 * for a few small pieces (operation id, etags), and one randomFillSync per piece costs more than
 * the piece. The pool is refilled whole; bytes are never handed out twice.
 */
export function pooledRandom(poolSize = 8192): { bytes(n: number): Uint8Array } {
  const pool = new Uint8Array(poolSize)
  let at = poolSize
  return {
    bytes(n: number): Uint8Array {
      if (n > poolSize) return randomFillSync(new Uint8Array(n))
      if (at + n > poolSize) {
        randomFillSync(pool)
        at = 0
      }
      const out = pool.slice(at, at + n)
      at += n
      return out
    },
  }
}
