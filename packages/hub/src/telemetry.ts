/**
 * Device-to-cloud telemetry the embedded hub keeps so that tests, tools and people can read it
 * back: a bounded buffer per device (oldest dropped first, counted), and a bound on the number of
 * devices (the device written to least recently is forgotten). In memory, per server instance:
 * with several instances on one database, each holds what its own connections received.
 */
import { base64Encode } from '@provisio/crypto'
import { formatDpsTimestamp } from '@provisio/protocol'
import type { HubTelemetryMessage, HubTelemetryPage } from '@provisio/protocol'

/** One message as the device sent it (the protocol's shape). */
export type TelemetryMessage = HubTelemetryMessage
/** A read: the messages after `after`, and how many this device lost to the bounds so far. */
export type TelemetryPage = HubTelemetryPage

export interface TelemetryLimits {
  /** Messages kept per device. */
  readonly maxMessagesPerDevice: number
  /** Payload bytes kept per device. */
  readonly maxBytesPerDevice: number
  /** Devices with a buffer; beyond it the least recently written device's buffer is forgotten. */
  readonly maxDevices: number
  /** Largest page one read returns. */
  readonly maxPage: number
}

export const DEFAULT_TELEMETRY_LIMITS: TelemetryLimits = Object.freeze({
  maxMessagesPerDevice: 1000,
  maxBytesPerDevice: 1024 * 1024,
  maxDevices: 10_000,
  maxPage: 1000,
})

interface DeviceBuffer {
  readonly deviceId: string
  messages: TelemetryMessage[]
  bytes: number
  dropped: number
  next: number
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** The telemetry of one hub. */
export class TelemetryBuffer {
  readonly limits: TelemetryLimits
  // Map iteration order is insertion order: re-inserting on write keeps it least-recent first.
  readonly #devices = new Map<string, DeviceBuffer>()
  #forgotten = 0

  constructor(
    private readonly clock: { now(): number },
    limits: Partial<TelemetryLimits> = {},
  ) {
    this.limits = { ...DEFAULT_TELEMETRY_LIMITS, ...limits }
  }

  /** Device buffers forgotten because of `maxDevices`. */
  get forgottenDevices(): number {
    return this.#forgotten
  }

  /** Stores one message; returns its sequence number. */
  append(deviceId: string, message: { readonly body: Uint8Array; readonly properties?: Readonly<Record<string, string>>; readonly systemProperties?: Readonly<Record<string, string>> }): number {
    const key = deviceId.toLowerCase()
    let buffer = this.#devices.get(key)
    if (buffer !== undefined) this.#devices.delete(key)
    else {
      buffer = { deviceId, messages: [], bytes: 0, dropped: 0, next: 1 }
      while (this.#devices.size >= this.limits.maxDevices) {
        const oldest = this.#devices.keys().next().value as string
        this.#devices.delete(oldest)
        this.#forgotten++
      }
    }
    this.#devices.set(key, buffer)
    let body: string
    let bodyEncoding: TelemetryMessage['bodyEncoding']
    try {
      body = strictUtf8.decode(message.body)
      bodyEncoding = 'utf-8'
    } catch {
      body = base64Encode(message.body)
      bodyEncoding = 'base64'
    }
    const sequenceNumber = buffer.next++
    buffer.messages.push({
      sequenceNumber,
      enqueuedTimeUtc: formatDpsTimestamp(this.clock.now()),
      properties: { ...message.properties },
      systemProperties: { ...message.systemProperties },
      body,
      bodyEncoding,
      size: message.body.length,
    })
    buffer.bytes += message.body.length
    while (buffer.messages.length > this.limits.maxMessagesPerDevice || (buffer.bytes > this.limits.maxBytesPerDevice && buffer.messages.length > 0)) {
      const gone = buffer.messages.shift()!
      buffer.bytes -= gone.size
      buffer.dropped++
    }
    return sequenceNumber
  }

  /** Messages of a device with a sequence number above `after` (default 0), at most `limit`. */
  read(deviceId: string, options: { after?: number; limit?: number } = {}): TelemetryPage {
    const buffer = this.#devices.get(deviceId.toLowerCase())
    const limit = Math.min(Math.max(1, options.limit ?? this.limits.maxPage), this.limits.maxPage)
    if (buffer === undefined) return { deviceId, messages: [], dropped: 0, lastSequenceNumber: 0 }
    const after = options.after ?? 0
    const messages = buffer.messages.filter((m) => m.sequenceNumber > after).slice(0, limit)
    return { deviceId: buffer.deviceId, messages, dropped: buffer.dropped, lastSequenceNumber: buffer.next - 1 }
  }

  /** Forgets a device's messages (its identity was deleted). */
  clear(deviceId: string): void {
    this.#devices.delete(deviceId.toLowerCase())
  }
}
