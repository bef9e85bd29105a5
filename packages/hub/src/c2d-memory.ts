/**
 * Cloud-to-device queues and feedback kept in memory, for one process (a lone server, tests). Each
 * method runs to completion without awaiting, so every step is atomic. The semantics are the
 * module documentation of c2d.ts; the SQL stores follow the same rules.
 */
import {
  feedbackRecord,
  wantsFeedback,
  type C2dContext,
  type C2dDelivery,
  type C2dFeedbackBatch,
  type C2dFeedbackRecord,
  type C2dFeedbackStatus,
  type C2dMessage,
  type C2dOutcome,
  type C2dSettleResult,
  type C2dStore,
} from './c2d.js'

interface Queued {
  message: C2dMessage
  /** Lease, while the message is invisible. */
  lockToken: string | undefined
  lockedUntil: number
}

interface Batch {
  readonly records: readonly C2dFeedbackRecord[]
  readonly enqueuedTimeUtc: number
  deliveryCount: number
  lockToken: string | undefined
  lockedUntil: number
}

interface HubState {
  sequence: number
  readonly queues: Map<string, Queued[]>
  /** Records not yet in a batch. */
  pending: C2dFeedbackRecord[]
  /** Device key of each pending record (for dropping a deleted device's records). */
  pendingDevices: string[]
  lastRecordAt: number
  readonly batches: Batch[]
}

export class MemoryC2dStore implements C2dStore {
  readonly #hubs = new Map<string, HubState>()

  #hub(hub: string): HubState {
    let state = this.#hubs.get(hub)
    if (state === undefined) {
      state = { sequence: 0, queues: new Map(), pending: [], pendingDevices: [], lastRecordAt: 0, batches: [] }
      this.#hubs.set(hub, state)
    }
    return state
  }

  #record(state: HubState, deviceKey: string, message: C2dMessage, status: C2dFeedbackStatus, context: C2dContext): void {
    if (!wantsFeedback(message.ack, status)) return
    state.pending.push(feedbackRecord(message, status, context.now))
    state.pendingDevices.push(deviceKey)
    state.lastRecordAt = context.now
  }

  /** Applies time to a device's queue: expired messages dead-letter, run-out locks end. Returns the queue. */
  #sweep(state: HubState, deviceKey: string, context: C2dContext): Queued[] {
    const queue = state.queues.get(deviceKey) ?? []
    const live: Queued[] = []
    for (const entry of queue) {
      if (entry.message.expiryTimeUtc <= context.now) {
        this.#record(state, deviceKey, entry.message, 'Expired', context)
        continue
      }
      if (entry.lockToken !== undefined && entry.lockedUntil <= context.now) entry.lockToken = undefined
      live.push(entry)
    }
    if (live.length === 0) state.queues.delete(deviceKey)
    else state.queues.set(deviceKey, live)
    return live
  }

  enqueue(hub: string, deviceKey: string, message: Omit<C2dMessage, 'sequenceNumber'>, context: C2dContext): Promise<C2dMessage | 'full'> {
    const state = this.#hub(hub)
    const queue = this.#sweep(state, deviceKey, context)
    if (queue.length >= context.settings.maxQueueDepth) return Promise.resolve('full')
    state.sequence += 1
    const stored: C2dMessage = { ...message, sequenceNumber: state.sequence }
    queue.push({ message: stored, lockToken: undefined, lockedUntil: 0 })
    state.queues.set(deviceKey, queue)
    return Promise.resolve(stored)
  }

  lease(hub: string, deviceKey: string, lockToken: string, context: C2dContext): Promise<C2dDelivery | undefined> {
    const state = this.#hub(hub)
    const entry = this.#sweep(state, deviceKey, context).find((e) => e.lockToken === undefined)
    if (entry === undefined) return Promise.resolve(undefined)
    entry.lockToken = lockToken
    entry.lockedUntil = context.now + context.settings.lockDurationMs
    return Promise.resolve({ ...entry.message, lockToken, lockedUntilUtc: entry.lockedUntil })
  }

  settle(hub: string, deviceKey: string, lockToken: string, outcome: C2dOutcome, context: C2dContext): Promise<C2dSettleResult> {
    const state = this.#hub(hub)
    const queue = this.#sweep(state, deviceKey, context)
    const index = queue.findIndex((e) => e.lockToken === lockToken)
    if (index < 0) return Promise.resolve('lock-lost')
    const entry = queue[index]!
    if (outcome === 'abandon') {
      const message = { ...entry.message, deliveryCount: entry.message.deliveryCount + 1 }
      if (message.deliveryCount < context.settings.maxDeliveryCount) {
        entry.message = message
        entry.lockToken = undefined
        return Promise.resolve('settled')
      }
      queue.splice(index, 1)
      this.#record(state, deviceKey, message, 'DeliveryCountExceeded', context)
    } else {
      queue.splice(index, 1)
      this.#record(state, deviceKey, entry.message, outcome === 'complete' ? 'Success' : 'Rejected', context)
    }
    if (queue.length === 0) state.queues.delete(deviceKey)
    return Promise.resolve('settled')
  }

  purge(hub: string, deviceKey: string, context: C2dContext): Promise<number> {
    const state = this.#hub(hub)
    const queue = this.#sweep(state, deviceKey, context)
    for (const entry of queue) this.#record(state, deviceKey, entry.message, 'Purged', context)
    state.queues.delete(deviceKey)
    return Promise.resolve(queue.length)
  }

  dropDevice(hub: string, deviceKey: string): Promise<void> {
    const state = this.#hubs.get(hub)
    if (state === undefined) return Promise.resolve()
    state.queues.delete(deviceKey)
    const keep = state.pendingDevices.map((key) => key !== deviceKey)
    state.pending = state.pending.filter((_, i) => keep[i])
    state.pendingDevices = state.pendingDevices.filter((_, i) => keep[i])
    return Promise.resolve()
  }

  depth(hub: string, deviceKey: string, context: C2dContext): Promise<number> {
    return Promise.resolve(this.#sweep(this.#hub(hub), deviceKey, context).length)
  }

  /** Forms batches from pending records that are due; drops expired batches and ends run-out locks. */
  #formBatches(state: HubState, context: C2dContext): void {
    for (const deviceKey of [...state.queues.keys()]) this.#sweep(state, deviceKey, context)
    const { feedbackBatchSize: size, feedbackBatchDelayMs: delay } = context.settings
    while (state.pending.length >= size || (state.pending.length > 0 && context.now - state.lastRecordAt >= delay)) {
      const take = Math.min(size, state.pending.length)
      state.batches.push({ records: state.pending.slice(0, take), enqueuedTimeUtc: context.now, deliveryCount: 0, lockToken: undefined, lockedUntil: 0 })
      state.pending = state.pending.slice(take)
      state.pendingDevices = state.pendingDevices.slice(take)
    }
    for (let i = state.batches.length - 1; i >= 0; i--) {
      const batch = state.batches[i]!
      if (batch.enqueuedTimeUtc + context.settings.feedbackTtlMs <= context.now) state.batches.splice(i, 1)
      else if (batch.lockToken !== undefined && batch.lockedUntil <= context.now) batch.lockToken = undefined
    }
  }

  leaseFeedback(hub: string, lockToken: string, context: C2dContext): Promise<C2dFeedbackBatch | undefined> {
    const state = this.#hub(hub)
    this.#formBatches(state, context)
    const batch = state.batches.find((b) => b.lockToken === undefined)
    if (batch === undefined) return Promise.resolve(undefined)
    batch.lockToken = lockToken
    batch.lockedUntil = context.now + context.settings.feedbackLockDurationMs
    return Promise.resolve({ lockToken, lockedUntilUtc: batch.lockedUntil, enqueuedTimeUtc: batch.enqueuedTimeUtc, deliveryCount: batch.deliveryCount, records: batch.records })
  }

  settleFeedback(hub: string, lockToken: string, outcome: C2dOutcome, context: C2dContext): Promise<C2dSettleResult> {
    const state = this.#hub(hub)
    this.#formBatches(state, context)
    const index = state.batches.findIndex((b) => b.lockToken === lockToken)
    if (index < 0) return Promise.resolve('lock-lost')
    const batch = state.batches[index]!
    if (outcome === 'abandon' && batch.deliveryCount + 1 < context.settings.feedbackMaxDeliveryCount) {
      batch.deliveryCount += 1
      batch.lockToken = undefined
    } else {
      state.batches.splice(index, 1)
    }
    return Promise.resolve('settled')
  }

  feedbackDueAt(hub: string, context: C2dContext): Promise<number | undefined> {
    const state = this.#hubs.get(hub)
    if (state === undefined) return Promise.resolve(undefined)
    this.#formBatches(state, context)
    if (state.batches.some((b) => b.lockToken === undefined)) return Promise.resolve(context.now)
    // The next time feedback may become due: a batch of the records waiting, or a message that
    // asked for negative feedback expiring.
    let due = state.pending.length > 0 ? state.lastRecordAt + context.settings.feedbackBatchDelayMs : Infinity
    for (const queue of state.queues.values()) {
      for (const { message } of queue) if (wantsFeedback(message.ack, 'Expired')) due = Math.min(due, message.expiryTimeUtc)
    }
    return Promise.resolve(due === Infinity ? undefined : due)
  }
}
