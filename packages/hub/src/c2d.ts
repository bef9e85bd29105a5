/**
 * Cloud-to-device messages (docs/protocol.md, "Cloud-to-device messages"): the per-device queue a
 * service fills and a device drains, and the feedback the service reads back. Pure: time, lock
 * tokens, timers and the registry come in as ports; persistence is a {@link C2dStore}.
 *
 * Life of a message, as IoT Hub runs it:
 * - `send` checks the device exists, the message fits (256 KB) and the queue has room (50), and
 *   enqueues it with a sequence number, an enqueued time and an expiry (the message's own, else the
 *   hub's default time to live, 1 h).
 * - `receive` leases the oldest enqueued message: it becomes invisible for the lock duration
 *   (1 minute) and is handed out with a lock token. A lock that runs out puts the message back,
 *   its delivery count unchanged.
 * - `complete` removes it (feedback `Success` when it asked for positive acknowledgement);
 *   `reject` dead-letters it (`Rejected`); `abandon` puts it back with its delivery count plus
 *   one, and dead-letters it (`DeliveryCountExceeded`) once the count reaches the hub's
 *   maxDeliveryCount (10). A message past its expiry is dead-lettered (`Expired`) whatever its state.
 * - `purge` drops a device's queue (`Purged` feedback for those that asked for negative feedback);
 *   deleting a device drops its queue and its pending feedback silently.
 * - Feedback records gather per hub and become one batch of up to 64 records, or fewer once 15 s
 *   passed since the last record; the service takes a batch with a lock and settles it like a
 *   device settles a message.
 */
import { ProvisioError, formatDpsTimestamp } from '@provisio/protocol'

/** Which outcomes the service wants feedback for (`iothub-ack`). */
export type C2dAck = 'none' | 'positive' | 'negative' | 'full'

export const C2D_ACK_VALUES: readonly C2dAck[] = Object.freeze(['none', 'positive', 'negative', 'full'])

/** A message as the service sends it (the AMQP `/messages/devicebound` fields). */
export interface C2dMessageInput {
  readonly messageId?: string
  readonly correlationId?: string
  /** The address the service set; IoT Hub writes `/devices/{id}/messages/deviceBound` when absent. */
  readonly to?: string
  readonly userId?: string
  /** Absolute expiry time, ms since the epoch; absent: the hub's default time to live. */
  readonly expiryTimeUtc?: number
  readonly ack?: C2dAck
  readonly contentType?: string
  readonly contentEncoding?: string
  /** Application properties. */
  readonly properties?: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/** A message as it is stored in a device's queue. */
export interface C2dMessage {
  /** The device id as the registry spells it. */
  readonly deviceId: string
  readonly deviceGenerationId: string
  readonly messageId?: string
  readonly correlationId?: string
  readonly to: string
  readonly userId?: string
  readonly expiryTimeUtc: number
  readonly ack: C2dAck
  readonly contentType?: string
  readonly contentEncoding?: string
  readonly properties: Readonly<Record<string, string>>
  readonly body: Uint8Array
  /** Per hub, increasing. */
  readonly sequenceNumber: number
  /** ms since the epoch. */
  readonly enqueuedTimeUtc: number
  /** Explicit abandons so far. */
  readonly deliveryCount: number
}

/** A message handed to a device: the stored message plus its lease. */
export interface C2dDelivery extends C2dMessage {
  readonly lockToken: string
  /** ms since the epoch when the lock runs out. */
  readonly lockedUntilUtc: number
}

/** How a device or the service settles a leased message or feedback batch. */
export type C2dOutcome = 'complete' | 'abandon' | 'reject'

export type C2dFeedbackStatus = 'Success' | 'Expired' | 'DeliveryCountExceeded' | 'Rejected' | 'Purged'

/** One feedback record, as IoT Hub writes it in the feedback message's JSON array. */
export interface C2dFeedbackRecord {
  readonly originalMessageId: string
  /** ISO 8601: when the record was made. */
  readonly enqueuedTimeUtc: string
  readonly statusCode: C2dFeedbackStatus
  readonly description: string
  readonly deviceId: string
  readonly deviceGenerationId: string
}

/** A feedback message handed to the service. */
export interface C2dFeedbackBatch {
  readonly lockToken: string
  readonly lockedUntilUtc: number
  /** ms since the epoch when the batch was made. */
  readonly enqueuedTimeUtc: number
  readonly deliveryCount: number
  readonly records: readonly C2dFeedbackRecord[]
}

/** Hub settings of the queue (IoT Hub's cloudToDevice block), in ms and counts. */
export interface C2dSettings {
  readonly maxQueueDepth: number
  /** Body plus properties, in bytes. */
  readonly maxMessageBytes: number
  readonly defaultTtlMs: number
  readonly maxDeliveryCount: number
  readonly lockDurationMs: number
  readonly feedbackBatchSize: number
  readonly feedbackBatchDelayMs: number
  readonly feedbackTtlMs: number
  readonly feedbackMaxDeliveryCount: number
  readonly feedbackLockDurationMs: number
}

export const DEFAULT_C2D_SETTINGS: C2dSettings = Object.freeze({
  maxQueueDepth: 50,
  maxMessageBytes: 256 * 1024,
  defaultTtlMs: 3_600_000,
  maxDeliveryCount: 10,
  lockDurationMs: 60_000,
  feedbackBatchSize: 64,
  feedbackBatchDelayMs: 15_000,
  feedbackTtlMs: 3_600_000,
  feedbackMaxDeliveryCount: 10,
  feedbackLockDurationMs: 60_000,
})

/** What a store operation is told: the time, the settings, and where its events go. */
export interface C2dContext {
  readonly now: number
  readonly settings: C2dSettings
}

/** Result of a store's settle: done, or the lock token names no message locked now. */
export type C2dSettleResult = 'settled' | 'lock-lost'

/**
 * Persistence of the queues and feedback of all hubs. Every method is one atomic step: a leased
 * message is leased to one caller only, a settled one settled once, and the feedback records a
 * step makes are stored with it. Device keys are lower-cased device ids. Stores apply the whole
 * semantics of the module documentation (expiry, lock expiry, dead-lettering, feedback batching)
 * with `context.now` as the clock.
 */
export interface C2dStore {
  /** Enqueues `message` (its sequence number assigned here); 'full' when the queue holds maxQueueDepth live messages. */
  enqueue(hub: string, deviceKey: string, message: Omit<C2dMessage, 'sequenceNumber'>, context: C2dContext): Promise<C2dMessage | 'full'>
  /** Leases the oldest enqueued live message under `lockToken`; undefined when there is none. */
  lease(hub: string, deviceKey: string, lockToken: string, context: C2dContext): Promise<C2dDelivery | undefined>
  settle(hub: string, deviceKey: string, lockToken: string, outcome: C2dOutcome, context: C2dContext): Promise<C2dSettleResult>
  /** Drops every message of the device (Purged feedback where asked); returns how many. */
  purge(hub: string, deviceKey: string, context: C2dContext): Promise<number>
  /** Drops the device's queue and its feedback records not yet taken, without feedback. */
  dropDevice(hub: string, deviceKey: string): Promise<void>
  /** Live messages in the device's queue (enqueued or locked). */
  depth(hub: string, deviceKey: string, context: C2dContext): Promise<number>
  /** Takes the next feedback batch under `lockToken` (forming one when due); undefined when none is due. */
  leaseFeedback(hub: string, lockToken: string, context: C2dContext): Promise<C2dFeedbackBatch | undefined>
  settleFeedback(hub: string, lockToken: string, outcome: C2dOutcome, context: C2dContext): Promise<C2dSettleResult>
  /**
   * When the next feedback batch of the hub becomes due (ms since the epoch): now when one is
   * ready, undefined when no record waits.
   */
  feedbackDueAt(hub: string, context: C2dContext): Promise<number | undefined>
}

/** What C2D tells the connections (and, through the server, the other processes). */
export type C2dNotice =
  /** The device's queue may have a message to deliver. */
  | { readonly kind: 'message'; readonly hostName: string; readonly deviceId: string }
  /** The hub may have a feedback batch to take. */
  | { readonly kind: 'feedback'; readonly hostName: string }

/** What happened, for metrics and logs. */
export type C2dEvent =
  | { readonly type: 'sent'; readonly hostName: string; readonly deviceId: string; readonly bytes: number }
  | { readonly type: 'delivered'; readonly hostName: string; readonly deviceId: string }
  | { readonly type: 'completed' | 'abandoned' | 'rejected'; readonly hostName: string; readonly deviceId: string }
  | { readonly type: 'purged'; readonly hostName: string; readonly deviceId: string; readonly count: number }
  | { readonly type: 'refused'; readonly hostName: string; readonly deviceId: string; readonly code: string; readonly reason: string }
  | { readonly type: 'feedback'; readonly hostName: string; readonly records: number }

export interface C2dPorts {
  readonly store: C2dStore
  readonly now: () => number
  readonly random: { bytes(n: number): Uint8Array }
  /** The device's id as the registry spells it and its generation id; undefined when the hub has no such device. */
  readonly lookupDevice: (hostName: string, deviceId: string) => Promise<{ readonly deviceId: string; readonly generationId: string } | undefined>
  /** Timers, for telling of feedback batches that become due by time; absent: no timed notices. */
  readonly timers?: { set(ms: number, fire: () => void): unknown; clear(handle: unknown): void }
  readonly settings?: Partial<C2dSettings>
  readonly onEvent?: (event: C2dEvent) => void
}

/** Lock tokens are UUIDs (IoT Hub's form; the HTTPS API sends them as the ETag). */
const LOCK_TOKEN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Longest id-like system property (message id, correlation id, user id, content type/encoding). */
const MAX_SYSTEM_PROPERTY = 128

/** Parses a lock token as a device or service sends it (with or without quotes); throws BAD_REQUEST. */
export function parseLockToken(text: string): string {
  const bare = text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1) : text
  if (!LOCK_TOKEN.test(bare)) {
    const message = 'the lock token is malformed: a lock token is the UUID the message was delivered with'
    throw new ProvisioError('BAD_REQUEST', message, { deviceMessage: message })
  }
  return bare.toLowerCase()
}

const utf8 = new TextEncoder()

/** The size a message counts against the limit: body plus every property name and value. */
export function c2dMessageSize(message: C2dMessageInput): number {
  let size = message.body.byteLength
  for (const value of [message.messageId, message.correlationId, message.to, message.userId, message.contentType, message.contentEncoding]) {
    if (value !== undefined) size += utf8.encode(value).byteLength
  }
  for (const [key, value] of Object.entries(message.properties ?? {})) size += utf8.encode(key).byteLength + utf8.encode(value).byteLength
  return size
}

function formatUuid(bytes: Uint8Array): string {
  const b = Array.from(bytes.subarray(0, 16), (x) => x.toString(16).padStart(2, '0'))
  b[6] = ((parseInt(b[6]!, 16) & 0x0f) | 0x40).toString(16).padStart(2, '0')
  b[8] = ((parseInt(b[8]!, 16) & 0x3f) | 0x80).toString(16).padStart(2, '0')
  return `${b.slice(0, 4).join('')}-${b.slice(4, 6).join('')}-${b.slice(6, 8).join('')}-${b.slice(8, 10).join('')}-${b.slice(10, 16).join('')}`
}

/** Whether a message with this ack wants feedback of this status. */
export function wantsFeedback(ack: C2dAck, status: C2dFeedbackStatus): boolean {
  if (ack === 'full') return true
  if (ack === 'positive') return status === 'Success'
  if (ack === 'negative') return status !== 'Success'
  return false
}

/** The feedback record for a message that ended with `status` at `now` (stores call it). */
export function feedbackRecord(message: C2dMessage, status: C2dFeedbackStatus, now: number): C2dFeedbackRecord {
  return {
    originalMessageId: message.messageId ?? '',
    enqueuedTimeUtc: formatDpsTimestamp(now),
    statusCode: status,
    description: FEEDBACK_DESCRIPTIONS[status],
    deviceId: message.deviceId,
    deviceGenerationId: message.deviceGenerationId,
  }
}

const FEEDBACK_DESCRIPTIONS: Readonly<Record<C2dFeedbackStatus, string>> = Object.freeze({
  Success: 'Success',
  Expired: 'Message Expired',
  DeliveryCountExceeded: 'Message Delivery Count Exceeded',
  Rejected: 'Message Rejected',
  Purged: 'Message Purged',
})

const deviceKeyOf = (deviceId: string) => deviceId.toLowerCase()
const hubKeyOf = (hostName: string) => hostName.toLowerCase()

/**
 * The C2D API of the hubs of one process: what the service side (REST purge, the AMQP
 * `/messages/devicebound` sender and feedback receiver) and the device side (MQTT, AMQP, HTTPS)
 * call. Errors are ProvisioErrors with IoT Hub's codes: NOT_FOUND (DeviceNotFound),
 * PAYLOAD_TOO_LARGE (MessageTooLarge), DEVICE_QUEUE_FULL (DeviceMaximumQueueDepthExceeded),
 * MESSAGE_LOCK_LOST (DeviceMessageLockLost), BAD_REQUEST (malformed input).
 */
export class CloudToDevice {
  readonly settings: C2dSettings
  readonly #ports: C2dPorts
  readonly #listeners = new Set<(notice: C2dNotice) => void>()
  /** Per hub key: the timer telling of the next feedback batch due by time. */
  readonly #feedbackTimers = new Map<string, { handle: unknown; at: number }>()

  constructor(ports: C2dPorts) {
    this.#ports = ports
    this.settings = Object.freeze({ ...DEFAULT_C2D_SETTINGS, ...ports.settings })
  }

  /** Listens for notices (a queue has a message, feedback is due); returns the unsubscribe function. */
  onNotice(listener: (notice: C2dNotice) => void): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  /** Tells this process's listeners of a notice (the server also calls it with notices relayed from other processes). */
  notify(notice: C2dNotice): void {
    for (const listener of this.#listeners) {
      try {
        listener(notice)
      } catch {
        // A failing listener does not stop the others; the message stays queued.
      }
    }
  }

  #context(): C2dContext {
    return { now: this.#ports.now(), settings: this.settings }
  }

  #lockToken(): string {
    return formatUuid(this.#ports.random.bytes(16))
  }

  #refuse(hostName: string, deviceId: string, error: ProvisioError): ProvisioError {
    this.#ports.onEvent?.({ type: 'refused', hostName, deviceId, code: error.code, reason: error.reason })
    return error
  }

  /** Enqueues a message for the device; returns it as stored. */
  async send(hostName: string, deviceId: string, input: C2dMessageInput): Promise<C2dMessage> {
    const size = c2dMessageSize(input)
    if (size > this.settings.maxMessageBytes) {
      throw this.#refuse(hostName, deviceId, new ProvisioError('PAYLOAD_TOO_LARGE', `the message is ${size} bytes; a cloud-to-device message holds at most ${this.settings.maxMessageBytes}`, { deviceMessage: `Message size ${size} exceeds the limit of ${this.settings.maxMessageBytes} bytes.` }))
    }
    this.#validate(hostName, deviceId, input)
    const device = await this.#ports.lookupDevice(hostName, deviceId)
    if (device === undefined) {
      throw this.#refuse(hostName, deviceId, new ProvisioError('NOT_FOUND', `device ${deviceId} is not registered in ${hostName}`, { deviceMessage: `Device ${deviceId} not registered.` }))
    }
    const context = this.#context()
    const expiry = input.expiryTimeUtc ?? context.now + this.settings.defaultTtlMs
    const message: Omit<C2dMessage, 'sequenceNumber'> = {
      deviceId: device.deviceId,
      deviceGenerationId: device.generationId,
      ...(input.messageId === undefined ? {} : { messageId: input.messageId }),
      ...(input.correlationId === undefined ? {} : { correlationId: input.correlationId }),
      to: input.to ?? `/devices/${encodeURIComponent(device.deviceId)}/messages/deviceBound`,
      ...(input.userId === undefined ? {} : { userId: input.userId }),
      expiryTimeUtc: expiry,
      ack: input.ack ?? 'none',
      ...(input.contentType === undefined ? {} : { contentType: input.contentType }),
      ...(input.contentEncoding === undefined ? {} : { contentEncoding: input.contentEncoding }),
      properties: { ...input.properties },
      body: input.body.slice(),
      enqueuedTimeUtc: context.now,
      deliveryCount: 0,
    }
    const stored = await this.#ports.store.enqueue(hubKeyOf(hostName), deviceKeyOf(device.deviceId), message, context)
    if (stored === 'full') {
      throw this.#refuse(hostName, device.deviceId, new ProvisioError('DEVICE_QUEUE_FULL', `the queue of ${device.deviceId} holds ${this.settings.maxQueueDepth} messages, its limit`, { deviceMessage: `Total number of messages on IotHub Device Queue exceeds maximum allowed. Maximum messages allowed is ${this.settings.maxQueueDepth}.` }))
    }
    this.#ports.onEvent?.({ type: 'sent', hostName, deviceId: device.deviceId, bytes: size })
    // Expiry may have made feedback due; the service hears of it when the batch forms.
    await this.#scheduleFeedback(hostName, context)
    this.notify({ kind: 'message', hostName, deviceId: device.deviceId })
    return stored
  }

  #validate(hostName: string, deviceId: string, input: C2dMessageInput): void {
    const bad = (why: string): never => {
      throw this.#refuse(hostName, deviceId, new ProvisioError('BAD_REQUEST', why, { deviceMessage: why }))
    }
    if (input.ack !== undefined && !C2D_ACK_VALUES.includes(input.ack)) bad(`iothub-ack must be one of ${C2D_ACK_VALUES.join(', ')}`)
    for (const [name, value] of [
      ['message id', input.messageId],
      ['correlation id', input.correlationId],
      ['user id', input.userId],
      ['content type', input.contentType],
      ['content encoding', input.contentEncoding],
    ] as const) {
      if (value !== undefined && value.length > MAX_SYSTEM_PROPERTY) bad(`the ${name} is longer than ${MAX_SYSTEM_PROPERTY} characters`)
    }
    if (input.expiryTimeUtc !== undefined && !Number.isFinite(input.expiryTimeUtc)) bad('the expiry time is not a valid time')
  }

  /** Leases the device's next message; undefined when its queue has none to deliver now. */
  async receive(hostName: string, deviceId: string): Promise<C2dDelivery | undefined> {
    const context = this.#context()
    const delivery = await this.#ports.store.lease(hubKeyOf(hostName), deviceKeyOf(deviceId), this.#lockToken(), context)
    await this.#scheduleFeedback(hostName, context)
    if (delivery !== undefined) this.#ports.onEvent?.({ type: 'delivered', hostName, deviceId: delivery.deviceId })
    return delivery
  }

  /** Settles a leased message; throws MESSAGE_LOCK_LOST when the token names no message locked now. */
  async settle(hostName: string, deviceId: string, lockToken: string, outcome: C2dOutcome): Promise<void> {
    const token = parseLockToken(lockToken)
    const context = this.#context()
    const result = await this.#ports.store.settle(hubKeyOf(hostName), deviceKeyOf(deviceId), token, outcome, context)
    if (result === 'lock-lost') {
      throw this.#refuse(hostName, deviceId, new ProvisioError('MESSAGE_LOCK_LOST', `lock ${token} of ${deviceId} is unknown, settled or expired`, { deviceMessage: 'The message lock is lost or the lock token is unknown.' }))
    }
    this.#ports.onEvent?.({ type: outcome === 'complete' ? 'completed' : outcome === 'abandon' ? 'abandoned' : 'rejected', hostName, deviceId })
    await this.#scheduleFeedback(hostName, context)
    if (outcome === 'abandon') this.notify({ kind: 'message', hostName, deviceId })
  }

  complete(hostName: string, deviceId: string, lockToken: string): Promise<void> {
    return this.settle(hostName, deviceId, lockToken, 'complete')
  }

  abandon(hostName: string, deviceId: string, lockToken: string): Promise<void> {
    return this.settle(hostName, deviceId, lockToken, 'abandon')
  }

  reject(hostName: string, deviceId: string, lockToken: string): Promise<void> {
    return this.settle(hostName, deviceId, lockToken, 'reject')
  }

  /** Drops the device's queue (`DELETE /devices/{id}/commands`); returns how many messages it held. */
  async purge(hostName: string, deviceId: string): Promise<number> {
    const device = await this.#ports.lookupDevice(hostName, deviceId)
    if (device === undefined) {
      throw this.#refuse(hostName, deviceId, new ProvisioError('NOT_FOUND', `device ${deviceId} is not registered in ${hostName}`, { deviceMessage: `Device ${deviceId} not registered.` }))
    }
    const context = this.#context()
    const count = await this.#ports.store.purge(hubKeyOf(hostName), deviceKeyOf(deviceId), context)
    this.#ports.onEvent?.({ type: 'purged', hostName, deviceId: device.deviceId, count })
    await this.#scheduleFeedback(hostName, context)
    return count
  }

  /** A device was deleted: its queue and pending feedback go. */
  deviceDeleted(hostName: string, deviceId: string): Promise<void> {
    return this.#ports.store.dropDevice(hubKeyOf(hostName), deviceKeyOf(deviceId))
  }

  /** Live messages in the device's queue. */
  depth(hostName: string, deviceId: string): Promise<number> {
    return this.#ports.store.depth(hubKeyOf(hostName), deviceKeyOf(deviceId), this.#context())
  }

  /** Takes the hub's next feedback batch with a lock; undefined when none is due. */
  async receiveFeedback(hostName: string): Promise<C2dFeedbackBatch | undefined> {
    const context = this.#context()
    const batch = await this.#ports.store.leaseFeedback(hubKeyOf(hostName), this.#lockToken(), context)
    if (batch !== undefined) this.#ports.onEvent?.({ type: 'feedback', hostName, records: batch.records.length })
    await this.#scheduleFeedback(hostName, context)
    return batch
  }

  /** Settles a feedback batch; throws MESSAGE_LOCK_LOST when the token names no batch locked now. */
  async settleFeedback(hostName: string, lockToken: string, outcome: C2dOutcome): Promise<void> {
    const token = parseLockToken(lockToken)
    const result = await this.#ports.store.settleFeedback(hubKeyOf(hostName), token, outcome, this.#context())
    if (result === 'lock-lost') {
      throw this.#refuse(hostName, '', new ProvisioError('MESSAGE_LOCK_LOST', `feedback lock ${token} is unknown, settled or expired`, { deviceMessage: 'The message lock is lost or the lock token is unknown.' }))
    }
    if (outcome === 'abandon') this.notify({ kind: 'feedback', hostName })
  }

  /** Tells of a due feedback batch now, or arms a timer for when the next one becomes due. */
  async #scheduleFeedback(hostName: string, context: C2dContext): Promise<void> {
    const dueAt = await this.#ports.store.feedbackDueAt(hubKeyOf(hostName), context)
    if (dueAt === undefined) return
    if (dueAt <= context.now) {
      this.notify({ kind: 'feedback', hostName })
      return
    }
    const timers = this.#ports.timers
    if (timers === undefined) return
    const key = hubKeyOf(hostName)
    const armed = this.#feedbackTimers.get(key)
    if (armed !== undefined) {
      if (armed.at <= dueAt) return
      timers.clear(armed.handle)
    }
    const handle = timers.set(dueAt - context.now, () => {
      this.#feedbackTimers.delete(key)
      void this.#scheduleFeedback(hostName, this.#context()).catch(() => undefined)
    })
    this.#feedbackTimers.set(key, { handle, at: dueAt })
  }

  /** Clears the timers (server stop). */
  stop(): void {
    for (const { handle } of this.#feedbackTimers.values()) this.#ports.timers?.clear(handle)
    this.#feedbackTimers.clear()
  }
}
