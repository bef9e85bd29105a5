import { describe, expect, it } from 'vitest'
import { InFlightCounter } from '../src/index.js'

describe('InFlightCounter', () => {
  it('resolves idle() at once when nothing is in flight', async () => {
    const counter = new InFlightCounter()
    let woken = false
    await counter.idle().then(() => (woken = true))
    expect(woken).toBe(true)
    expect(counter.count).toBe(0)
  })

  it('wakes every waiter when the last request is done, not before', async () => {
    const counter = new InFlightCounter()
    counter.begin()
    counter.begin()
    const woken: string[] = []
    void counter.idle().then(() => woken.push('a'))
    void counter.idle().then(() => woken.push('b'))
    counter.done()
    await Promise.resolve()
    expect(counter.count).toBe(1)
    expect(woken).toEqual([])
    counter.done()
    await Promise.resolve()
    expect(woken).toEqual(['a', 'b'])
    // A later wait is a new one: it waits for the next requests.
    counter.begin()
    let later = false
    void counter.idle().then(() => (later = true))
    await Promise.resolve()
    expect(later).toBe(false)
    counter.done()
    await Promise.resolve()
    expect(later).toBe(true)
  })

  it('never goes below zero on an extra done()', () => {
    const counter = new InFlightCounter()
    counter.done()
    expect(counter.count).toBe(0)
  })
})
