/**
 * The cloud-to-device conformance suite: IoT Hub's queue semantics checked through CloudToDevice
 * over any C2dStore, with a fake clock. Each store's test file calls {@link c2dConformance}.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ProvisioError, formatDpsTimestamp } from '@provisio/protocol'
import { CloudToDevice, type C2dEvent, type C2dFeedbackRecord, type C2dNotice, type C2dStore } from '../src/index.js'

/** A manual clock: timers fire only when `advance` passes their time. */
export class FakeClock {
  now = Date.UTC(2026, 0, 1)
  readonly #timers = new Map<number, { at: number; fire: () => void }>()
  #next = 1
  set(ms: number, fire: () => void): unknown {
    const id = this.#next++
    this.#timers.set(id, { at: this.now + ms, fire })
    return id
  }
  clear(handle: unknown): void {
    this.#timers.delete(handle as number)
  }
  /** When the earliest timer fires, or undefined when none is armed. */
  get nextAt(): number | undefined {
    const times = [...this.#timers.values()].map((t) => t.at)
    return times.length === 0 ? undefined : Math.min(...times)
  }
  advance(ms: number): void {
    this.now += ms
    for (const [id, t] of [...this.#timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at > this.now) continue
      this.#timers.delete(id)
      t.fire()
    }
  }
}

const HUB = 'hub1.example.test'
const body = (text: string) => new TextEncoder().encode(text)
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** Waits for a condition (fired timers run asynchronous store calls), checked every few ms, at most 5 s. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5_000
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`not reached within 5 s: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    if (error instanceof ProvisioError) return error.code
    throw error
  }
  throw new Error('expected a ProvisioError')
}

export interface C2dStoreFactory {
  /** A fresh, empty store. */
  create(): Promise<C2dStore>
  /** A second handle on the same data (another process, or the same store after a restart). */
  reopen?(store: C2dStore): Promise<C2dStore>
  close?(store: C2dStore): Promise<void>
}

export function c2dConformance(name: string, factory: C2dStoreFactory): void {
  describe(`cloud-to-device semantics over ${name}`, () => {
    let clock: FakeClock
    let store: C2dStore
    let c2d: CloudToDevice
    let notices: C2dNotice[]
    let events: C2dEvent[]
    let seed: number
    const devices = new Map([
      ['dev-1', 'gen-1'],
      ['Dev-2', 'gen-2'],
    ])

    const make = (s: C2dStore) =>
      new CloudToDevice({
        store: s,
        now: () => clock.now,
        random: {
          bytes: (n) => {
            seed += 1
            const out = new Uint8Array(n)
            new DataView(out.buffer).setUint32(0, seed)
            new DataView(out.buffer).setUint32(12, Math.floor(Math.random() * 2 ** 32))
            return out
          },
        },
        lookupDevice: async (_hub, id) => {
          for (const [known, generationId] of devices) if (known.toLowerCase() === id.toLowerCase()) return { deviceId: known, generationId }
          return undefined
        },
        timers: clock,
        onEvent: (e) => events.push(e),
      })

    beforeEach(async () => {
      clock = new FakeClock()
      seed = 0
      notices = []
      events = []
      store = await factory.create()
      c2d = make(store)
      c2d.onNotice((n) => notices.push(n))
    })
    afterEach(async () => {
      c2d.stop()
      await factory.close?.(store)
    })

    /** Takes every due feedback batch, completes them, returns their records. */
    async function drainFeedback(): Promise<C2dFeedbackRecord[]> {
      const records: C2dFeedbackRecord[] = []
      for (let batch = await c2d.receiveFeedback(HUB); batch !== undefined; batch = await c2d.receiveFeedback(HUB)) {
        records.push(...batch.records)
        await c2d.settleFeedback(HUB, batch.lockToken, 'complete')
      }
      return records
    }

    it('delivers a message with every field the service set, then completes it', async () => {
      const sent = await c2d.send(HUB, 'dev-1', {
        messageId: 'm1',
        correlationId: 'c1',
        userId: 'svc',
        ack: 'full',
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        properties: { a: '1', 'b c': 'x y' },
        body: body('{"x":1}'),
      })
      expect(sent.sequenceNumber).toBeGreaterThan(0)
      expect(notices).toContainEqual({ kind: 'message', hostName: HUB, deviceId: 'dev-1' })
      const delivery = await c2d.receive(HUB, 'DEV-1')
      expect(delivery).toMatchObject({
        deviceId: 'dev-1',
        messageId: 'm1',
        correlationId: 'c1',
        userId: 'svc',
        ack: 'full',
        to: '/devices/dev-1/messages/deviceBound',
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        properties: { a: '1', 'b c': 'x y' },
        sequenceNumber: sent.sequenceNumber,
        enqueuedTimeUtc: clock.now,
        expiryTimeUtc: clock.now + 3_600_000,
        deliveryCount: 0,
        lockedUntilUtc: clock.now + 60_000,
      })
      expect(text(delivery!.body)).toBe('{"x":1}')
      expect(delivery!.lockToken).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      // Locked: not handed out again.
      expect(await c2d.receive(HUB, 'dev-1')).toBeUndefined()
      await c2d.complete(HUB, 'dev-1', `"${delivery!.lockToken}"`)
      expect(await c2d.depth(HUB, 'dev-1')).toBe(0)
      // A settled lock is lost.
      expect(await codeOf(c2d.complete(HUB, 'dev-1', delivery!.lockToken))).toBe('MESSAGE_LOCK_LOST')
      clock.advance(15_000)
      const records = await drainFeedback()
      expect(records).toEqual([
        { originalMessageId: 'm1', enqueuedTimeUtc: formatDpsTimestamp(clock.now - 15_000), statusCode: 'Success', description: 'Success', deviceId: 'dev-1', deviceGenerationId: 'gen-1' },
      ])
      expect(events.map((e) => e.type)).toEqual(['sent', 'delivered', 'completed', 'refused', 'feedback'])
    })

    it('delivers in order, one lease per message', async () => {
      for (let i = 0; i < 3; i++) await c2d.send(HUB, 'dev-1', { messageId: `m${i}`, body: body(String(i)) })
      const got = [await c2d.receive(HUB, 'dev-1'), await c2d.receive(HUB, 'dev-1'), await c2d.receive(HUB, 'dev-1')]
      expect(got.map((d) => d?.messageId)).toEqual(['m0', 'm1', 'm2'])
      expect(new Set(got.map((d) => d?.lockToken)).size).toBe(3)
      expect(got[0]!.sequenceNumber).toBeLessThan(got[1]!.sequenceNumber)
      expect(await c2d.receive(HUB, 'dev-1')).toBeUndefined()
    })

    it('concurrent receives never hand one message out twice', async () => {
      for (let i = 0; i < 5; i++) await c2d.send(HUB, 'dev-1', { messageId: `m${i}`, body: body('x') })
      const got = await Promise.all(Array.from({ length: 8 }, () => c2d.receive(HUB, 'dev-1')))
      const ids = got.filter((d) => d !== undefined).map((d) => d.messageId)
      expect(ids.sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4'])
    })

    it('refuses an unknown device, an oversized message, a full queue and a malformed lock token', async () => {
      expect(await codeOf(c2d.send(HUB, 'nobody', { body: body('x') }))).toBe('NOT_FOUND')
      expect(await codeOf(c2d.send(HUB, 'dev-1', { body: new Uint8Array(256 * 1024 + 1) }))).toBe('PAYLOAD_TOO_LARGE')
      await c2d.send(HUB, 'dev-1', { body: new Uint8Array(256 * 1024 - 10), properties: { k: 'v' } })
      for (let i = 1; i < 50; i++) await c2d.send(HUB, 'dev-1', { body: body(String(i)) })
      const full = c2d.send(HUB, 'dev-1', { body: body('51') })
      await expect(full).rejects.toMatchObject({ code: 'DEVICE_QUEUE_FULL', errorCode: 403004, httpStatus: 403 })
      expect(await c2d.depth(HUB, 'dev-1')).toBe(50)
      // Another device's queue is its own.
      await c2d.send(HUB, 'dev-2', { body: body('y') })
      await expect(c2d.complete(HUB, 'dev-1', 'not-a-token')).rejects.toMatchObject({ code: 'BAD_REQUEST', reason: expect.stringContaining('lock token') })
      expect(await codeOf(c2d.complete(HUB, 'dev-1', '00000000-0000-4000-8000-000000000000'))).toBe('MESSAGE_LOCK_LOST')
      expect(await codeOf(c2d.send(HUB, 'dev-1', { ack: 'sometimes' as never, body: body('x') }))).toBe('BAD_REQUEST')
      expect(events.filter((e) => e.type === 'refused').map((e) => (e as { code: string }).code)).toEqual([
        'NOT_FOUND',
        'PAYLOAD_TOO_LARGE',
        'DEVICE_QUEUE_FULL',
        'MESSAGE_LOCK_LOST',
        'BAD_REQUEST',
      ])
    })

    it('a lock that runs out puts the message back without counting a delivery', async () => {
      await c2d.send(HUB, 'dev-1', { messageId: 'm1', body: body('x') })
      const first = await c2d.receive(HUB, 'dev-1')
      clock.advance(59_999)
      expect(await c2d.receive(HUB, 'dev-1')).toBeUndefined()
      clock.advance(1)
      const second = await c2d.receive(HUB, 'dev-1')
      expect(second).toMatchObject({ messageId: 'm1', deliveryCount: 0 })
      expect(second!.lockToken).not.toBe(first!.lockToken)
      expect(await codeOf(c2d.complete(HUB, 'dev-1', first!.lockToken))).toBe('MESSAGE_LOCK_LOST')
      await c2d.complete(HUB, 'dev-1', second!.lockToken)
    })

    it('abandon counts deliveries and dead-letters at maxDeliveryCount (10)', async () => {
      await c2d.send(HUB, 'dev-1', { messageId: 'm1', ack: 'negative', body: body('x') })
      for (let i = 0; i < 10; i++) {
        const d = await c2d.receive(HUB, 'dev-1')
        expect(d?.deliveryCount).toBe(i)
        notices = []
        await c2d.abandon(HUB, 'dev-1', d!.lockToken)
        if (i < 9) expect(notices).toContainEqual({ kind: 'message', hostName: HUB, deviceId: 'dev-1' })
      }
      expect(await c2d.receive(HUB, 'dev-1')).toBeUndefined()
      clock.advance(15_000)
      const records = await drainFeedback()
      expect(records.map((r) => [r.originalMessageId, r.statusCode, r.description])).toEqual([['m1', 'DeliveryCountExceeded', 'Message Delivery Count Exceeded']])
    })

    it('reject dead-letters; feedback follows iothub-ack', async () => {
      for (const ack of ['none', 'positive', 'negative', 'full'] as const) {
        await c2d.send(HUB, 'dev-1', { messageId: `rej-${ack}`, ack, body: body('x') })
        await c2d.reject(HUB, 'dev-1', (await c2d.receive(HUB, 'dev-1'))!.lockToken)
        await c2d.send(HUB, 'dev-1', { messageId: `ok-${ack}`, ack, body: body('x') })
        await c2d.complete(HUB, 'dev-1', (await c2d.receive(HUB, 'dev-1'))!.lockToken)
      }
      expect(await c2d.receiveFeedback(HUB)).toBeUndefined()
      clock.advance(15_000)
      const records = await drainFeedback()
      expect(records.map((r) => `${r.originalMessageId}:${r.statusCode}`)).toEqual(['ok-positive:Success', 'rej-negative:Rejected', 'rej-full:Rejected', 'ok-full:Success'])
    })

    it('expiry dead-letters with Expired feedback, told by a notice when the batch is due', async () => {
      await c2d.send(HUB, 'dev-1', { messageId: 'short', ack: 'negative', expiryTimeUtc: clock.now + 5_000, body: body('x') })
      await c2d.send(HUB, 'dev-1', { messageId: 'default', ack: 'full', body: body('x') })
      notices = []
      const expiry = clock.now + 5_000
      expect(clock.nextAt).toBe(expiry)
      clock.advance(5_000)
      // The expiry made a record; the batch is due 15 s later.
      await eventually(() => clock.nextAt === expiry + 15_000, 'the timer for the batch')
      expect(notices).toEqual([])
      clock.advance(15_000)
      await eventually(() => notices.some((n) => n.kind === 'feedback'), 'a feedback notice')
      expect(await c2d.depth(HUB, 'dev-1')).toBe(1)
      const records = await drainFeedback()
      expect(records.map((r) => [r.originalMessageId, r.statusCode, r.description])).toEqual([['short', 'Expired', 'Message Expired']])
      // The default time to live is one hour, counted from the send.
      clock.advance(3_600_000 - 20_000 - 1)
      expect(await c2d.receive(HUB, 'dev-1')).toMatchObject({ messageId: 'default' })
      clock.advance(1)
      expect(await c2d.receive(HUB, 'dev-1')).toBeUndefined()
      clock.advance(15_000)
      expect((await drainFeedback()).map((r) => r.statusCode)).toEqual(['Expired'])
    })

    it('batches up to 64 records, at once when full', async () => {
      for (let i = 0; i < 70; i++) {
        const id = i < 35 ? 'dev-1' : 'Dev-2'
        await c2d.send(HUB, id, { messageId: `m${i}`, ack: 'positive', body: body('x') })
        await c2d.complete(HUB, id, (await c2d.receive(HUB, id))!.lockToken)
      }
      const batch = await c2d.receiveFeedback(HUB)
      expect(batch?.records).toHaveLength(64)
      expect(batch?.records[0]?.originalMessageId).toBe('m0')
      expect(await c2d.receiveFeedback(HUB)).toBeUndefined()
      await c2d.settleFeedback(HUB, batch!.lockToken, 'complete')
      clock.advance(14_999)
      expect(await c2d.receiveFeedback(HUB)).toBeUndefined()
      clock.advance(1)
      const rest = await c2d.receiveFeedback(HUB)
      expect(rest?.records.map((r) => r.deviceId)).toEqual(Array(6).fill('Dev-2'))
    })

    it('an abandoned feedback batch comes back; a lock that runs out too', async () => {
      await c2d.send(HUB, 'dev-1', { messageId: 'm1', ack: 'positive', body: body('x') })
      await c2d.complete(HUB, 'dev-1', (await c2d.receive(HUB, 'dev-1'))!.lockToken)
      clock.advance(15_000)
      const first = await c2d.receiveFeedback(HUB)
      expect(first?.deliveryCount).toBe(0)
      await c2d.settleFeedback(HUB, first!.lockToken, 'abandon')
      const second = await c2d.receiveFeedback(HUB)
      expect(second).toMatchObject({ deliveryCount: 1, records: first!.records })
      clock.advance(60_000)
      const third = await c2d.receiveFeedback(HUB)
      expect(third?.records).toEqual(first!.records)
      expect(await codeOf(c2d.settleFeedback(HUB, second!.lockToken, 'complete'))).toBe('MESSAGE_LOCK_LOST')
      await c2d.settleFeedback(HUB, third!.lockToken, 'complete')
      expect(await c2d.receiveFeedback(HUB)).toBeUndefined()
    })

    it('purge drops the queue with Purged feedback; deleting a device drops queue and pending feedback', async () => {
      await c2d.send(HUB, 'dev-1', { messageId: 'p1', ack: 'negative', body: body('x') })
      await c2d.send(HUB, 'dev-1', { messageId: 'p2', body: body('x') })
      await c2d.receive(HUB, 'dev-1')
      expect(await c2d.purge(HUB, 'DEV-1')).toBe(2)
      expect(await c2d.depth(HUB, 'dev-1')).toBe(0)
      expect(await codeOf(c2d.purge(HUB, 'nobody'))).toBe('NOT_FOUND')
      await c2d.send(HUB, 'Dev-2', { messageId: 'd1', ack: 'full', body: body('x') })
      await c2d.complete(HUB, 'Dev-2', (await c2d.receive(HUB, 'Dev-2'))!.lockToken)
      await c2d.send(HUB, 'Dev-2', { messageId: 'd2', body: body('x') })
      await c2d.deviceDeleted(HUB, 'dev-2')
      expect(await c2d.depth(HUB, 'Dev-2')).toBe(0)
      clock.advance(15_000)
      expect((await drainFeedback()).map((r) => `${r.originalMessageId}:${r.statusCode}`)).toEqual(['p1:Purged'])
    })

    it('hubs are separate', async () => {
      await c2d.send(HUB, 'dev-1', { messageId: 'a', body: body('x') })
      expect(await c2d.receive('other.example.test', 'dev-1')).toBeUndefined()
      expect(await c2d.receive(HUB.toUpperCase(), 'dev-1')).toMatchObject({ messageId: 'a' })
    })

    if (factory.reopen !== undefined) {
      it('keeps queues, leases and feedback across a restart and between processes', async () => {
        await c2d.send(HUB, 'dev-1', { messageId: 'k1', ack: 'full', body: body('kept') })
        await c2d.send(HUB, 'dev-1', { messageId: 'k2', body: body('kept') })
        const leased = await c2d.receive(HUB, 'dev-1')
        const other = make(await factory.reopen!(store))
        try {
          const next = await other.receive(HUB, 'dev-1')
          expect(next?.messageId).toBe('k2')
          expect(text(next!.body)).toBe('kept')
          expect(await other.receive(HUB, 'dev-1')).toBeUndefined()
          await other.complete(HUB, 'dev-1', leased!.lockToken)
          clock.advance(15_000)
          const batch = await other.receiveFeedback(HUB)
          expect(batch?.records.map((r) => r.originalMessageId)).toEqual(['k1'])
        } finally {
          other.stop()
        }
      })
    }
  })
}
