// The fleet's scheduling and bookkeeping, driven through a scripted driver (the real device SDK is
// exercised end to end in Chromium: test/browser/emulator.test.ts at the repository root).
import { describe, expect, it } from 'vitest'
import { Fleet, errorCode, type DeviceDriver, type DeviceSpec, type ProvisionResult } from '../src/fleet.js'
import { Stats, percentile } from '../src/stats.js'
import { niceMax } from '../src/chart.js'

class ManualClock {
  t = 0
  now = (): number => this.t
}

const spec = (index: number): DeviceSpec => ({ index, registrationId: `d-${index}`, credential: { kind: 'symmetric-key', key: 'AAAA' } })

/** A driver whose calls wait until the test settles them. */
function scriptedDriver() {
  const pending: { spec: DeviceSpec; resolve: (r: ProvisionResult) => void; reject: (e: unknown) => void; signal: AbortSignal }[] = []
  const twins: string[] = []
  const driver: DeviceDriver = {
    provision: (s, signal) =>
      new Promise<ProvisionResult>((resolve, reject) => {
        pending.push({ spec: s, resolve, reject, signal })
        signal.addEventListener('abort', () => reject(signal.reason))
      }),
    readTwin: async (s) => {
      twins.push(s.registrationId)
      return { desired: { from: s.registrationId } }
    },
  }
  return { driver, pending, twins }
}

const tick = () => new Promise((r) => setTimeout(r, 0))

describe('Fleet', () => {
  it('keeps at most `concurrency` devices at work and runs every device once', async () => {
    const clock = new ManualClock()
    const { driver, pending, twins } = scriptedDriver()
    const fleet = new Fleet({ count: 7, concurrency: 3, device: spec, driver, clock, readTwins: true })
    let peak = 0
    fleet.on(() => (peak = Math.max(peak, fleet.active)))
    const done = fleet.start()
    await tick()
    expect(pending.length).toBe(3)
    let served = 0
    while (served < 7) {
      const next = pending[served]
      if (next === undefined) {
        await tick()
        continue
      }
      clock.t += 100
      next.resolve({ status: 'assigned', assignedHub: 'hub', deviceId: next.spec.registrationId })
      served++
      await tick()
      expect(fleet.active).toBeLessThanOrEqual(3)
    }
    await done
    expect(peak).toBe(3)
    expect(pending.map((p) => p.spec.index).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6])
    expect(fleet.stats.byStatus.assigned).toBe(7)
    expect(fleet.stats.twinsRead).toBe(7)
    expect(twins.sort()).toEqual(['d-0', 'd-1', 'd-2', 'd-3', 'd-4', 'd-5', 'd-6'])
    expect(fleet.rows[4]).toMatchObject({ status: 'assigned', assignedHub: 'hub', deviceId: 'd-4', twinStatus: 'read', twin: { desired: { from: 'd-4' } } })
    expect(fleet.rows[4]!.log.map((l) => l.text)).toEqual(['registering', 'assigned to hub as d-4 after 300 ms', 'reading the twin from hub', 'twin read'])
    expect(fleet.running).toBe(false)
  })

  it('counts refusals and errors by code, with the reason on the row', async () => {
    const clock = new ManualClock()
    const driver: DeviceDriver = {
      async provision(s, _signal, note) {
        note('retry 1 in 1000 ms: throttled')
        clock.t += 50
        if (s.index === 0) return { status: 'failed', errorCode: 401002, reason: 'Unauthorized' }
        if (s.index === 1) return { status: 'disabled', reason: 'enrollment disabled' }
        throw Object.assign(new Error('socket closed'), { code: 'TRANSPORT_CLOSED' })
      },
    }
    const fleet = new Fleet({ count: 4, concurrency: 1, device: spec, driver, clock, readTwins: true })
    await fleet.start()
    expect(fleet.stats.byStatus).toEqual({ assigned: 0, failed: 1, disabled: 1, error: 2, stopped: 0 })
    expect(Object.fromEntries(fleet.stats.byErrorCode)).toEqual({ '401002': 1, TRANSPORT_CLOSED: 2 })
    expect(fleet.rows[0]).toMatchObject({ status: 'failed', errorCode: '401002', reason: 'Unauthorized', latencyMs: 50 })
    expect(fleet.rows[3]).toMatchObject({ status: 'error', errorCode: 'TRANSPORT_CLOSED', reason: 'socket closed' })
    // Each device keeps a log: when (ms since start) and what happened.
    expect(fleet.rows[0]!.log).toEqual([
      { atMs: 0, text: 'registering' },
      { atMs: 0, text: 'retry 1 in 1000 ms: throttled' },
      { atMs: 50, text: 'failed (401002): Unauthorized' },
    ])
    expect(fleet.rows[3]!.log.at(-1)).toEqual({ atMs: 200, text: 'error: socket closed' })
  })

  it('stop aborts the devices at work and starts no more', async () => {
    const { driver, pending } = scriptedDriver()
    const fleet = new Fleet({ count: 100, concurrency: 5, device: spec, driver, clock: new ManualClock(), readTwins: false })
    const events: string[] = []
    fleet.on((e) => e.type === 'done' && events.push(`done stopped=${e.stopped}`))
    const done = fleet.start()
    await tick()
    pending[0]!.resolve({ status: 'assigned', assignedHub: 'h', deviceId: 'd-0' })
    await tick()
    fleet.stop()
    await done
    expect(pending.every((p) => p.signal.aborted)).toBe(true)
    expect(pending.length).toBe(6)
    expect(fleet.stats.byStatus.assigned).toBe(1)
    expect(fleet.stats.byStatus.stopped).toBe(5)
    expect(fleet.rows.filter(Boolean).length).toBe(6)
    expect(events).toEqual(['done stopped=true'])
  })

  it('records a device whose spec cannot be made as an error and goes on', async () => {
    const driver: DeviceDriver = { provision: async (s) => ({ status: 'assigned', assignedHub: 'h', deviceId: s.registrationId }) }
    const device = (i: number) => {
      if (i === 1) throw new RangeError('no device 1 in the key list')
      return spec(i)
    }
    const fleet = new Fleet({ count: 3, concurrency: 1, device, driver, clock: new ManualClock(), readTwins: false })
    await fleet.start()
    expect(fleet.stats.byStatus).toMatchObject({ assigned: 2, error: 1 })
    expect(fleet.rows[1]).toMatchObject({ status: 'error', errorCode: 'RangeError', reason: 'no device 1 in the key list' })
  })

  it('refuses a concurrency below 1', () => {
    expect(() => new Fleet({ count: 1, concurrency: 0, device: spec, driver: { provision: async () => ({ status: 'failed', reason: 'x' }) }, clock: new ManualClock(), readTwins: false })).toThrow(
      /concurrency/,
    )
  })
})

describe('Stats', () => {
  it('buckets finished registrations by second with latency percentiles', () => {
    const stats = new Stats(1000)
    stats.record('assigned', undefined, 10, 1100)
    stats.record('assigned', undefined, 30, 1900)
    stats.record('failed', '401002', 20, 2500)
    stats.record('assigned', undefined, 40, 3999)
    const series = stats.series(0, 3)
    expect(series).toEqual([
      { second: 0, assigned: 2, failed: 0, p50: 10, p95: 30 },
      { second: 1, assigned: 0, failed: 1, p50: 20, p95: 20 },
      { second: 2, assigned: 1, failed: 0, p50: 40, p95: 40 },
      { second: 3, assigned: 0, failed: 0 },
    ])
    expect(stats.rate(4000, 2)).toBe(1) // seconds 2 and 3 → (1 + 1) / 2
    expect(stats.finished).toBe(4)
  })

  it('percentile and axis helpers', () => {
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95)).toBe(10)
    expect(percentile([1, 2, 3, 4], 0.5)).toBe(2)
    expect(() => percentile([], 0.5)).toThrow(RangeError)
    expect([niceMax(1), niceMax(3), niceMax(7), niceMax(9), niceMax(120), niceMax(1000)]).toEqual([1, 4, 8, 10, 200, 1000])
  })

  it('errorCode prefers the DPS errorCode, then code, then the class', () => {
    expect(errorCode({ errorCode: 429001, code: 'X' })).toBe('429001')
    expect(errorCode(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe('ECONNREFUSED')
    expect(errorCode(new TypeError('x'))).toBe('TypeError')
    expect(errorCode('plain')).toBe('ERROR')
  })
})
