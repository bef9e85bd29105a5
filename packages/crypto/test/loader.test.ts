import { describe, expect, it } from 'vitest'
import { usingSimd } from '../src/index.js'
import { ioCapacity, memory, ioOffset } from '../src/wasm.js'

describe('WASM loader', () => {
  it('instantiates synchronously on first use and exposes the I/O window', () => {
    expect(ioCapacity()).toBe(1 << 18)
    expect(ioOffset()).toBeGreaterThan(0)
    expect(memory().length).toBeGreaterThanOrEqual(ioOffset() + ioCapacity())
    expect(typeof usingSimd()).toBe('boolean')
  })
})
