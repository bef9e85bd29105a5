import { describe, expect, it } from 'vitest'
import { pooledRandom } from '../src/random.js'

describe('pooledRandom', () => {
  it('hands out fresh, non-repeating bytes across pool refills, and large requests directly', () => {
    const random = pooledRandom(64)
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const b = random.bytes(16)
      expect(b).toHaveLength(16)
      const hex = Buffer.from(b).toString('hex')
      expect(seen.has(hex)).toBe(false)
      seen.add(hex)
    }
    expect(random.bytes(100)).toHaveLength(100)
    // Returned arrays are copies: changing one does not change the next.
    const a = random.bytes(8)
    a.fill(0)
    expect(random.bytes(8).every((x) => x === 0)).toBe(false)
  })
})
