// Test helpers: hex formatting and a seeded PRNG (xorshift128+ over a string seed), so random
// tests are reproducible and every failure can be replayed.
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex')
}

export interface Rng {
  int(maxExclusive: number): number
  bytes(n: number): Uint8Array
}

export function rng(seed: string): Rng {
  let s0 = 0x9e3779b9
  let s1 = 0x85ebca6b
  for (let i = 0; i < seed.length; i++) {
    s0 = Math.imul(s0 ^ seed.charCodeAt(i), 0x01000193) >>> 0
    s1 = Math.imul(s1 + seed.charCodeAt(i), 0x5bd1e995) >>> 0
  }
  const next = (): number => {
    // xorshift32 pair, mixed; good enough for test data
    s0 ^= s0 << 13
    s0 ^= s0 >>> 17
    s0 ^= s0 << 5
    s1 ^= s1 << 17
    s1 ^= s1 >>> 13
    s1 ^= s1 << 8
    return ((s0 >>> 0) + Math.imul(s1 >>> 0, 0x27d4eb2d)) >>> 0
  }
  return {
    int: (max) => next() % Math.max(1, max),
    bytes: (n) => {
      const out = new Uint8Array(n)
      for (let i = 0; i < n; i++) out[i] = next() & 0xff
      return out
    },
  }
}
