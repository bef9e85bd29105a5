/**
 * Durable device-to-cloud telemetry: the port a store implements (SQLite in
 * @provisio/store-sqlite) and the sink every device transport calls. The sink resolves once the
 * message is stored, so a transport acknowledges (MQTT PUBACK, later AMQP disposition and HTTP
 * 204) only what a crash cannot lose.
 *
 * Messages are kept per hub in partitions chosen by a hash of the device id (docs/protocol.md,
 * "Durable telemetry"); inside a partition each message has a sequence number (0 upwards, as Event
 * Hubs numbers them) and an offset (the payload bytes stored before it in the partition), so a
 * reader can start from either, or from an enqueued time. A device always lands in the same
 * partition, so its messages' sequence numbers rise in the order it sent them.
 */
import { base64Encode } from '@provisio/crypto'
import { ProvisioError, formatDpsTimestamp } from '@provisio/protocol'
import type { HubTelemetryMessage, HubTelemetryPage } from '@provisio/protocol'

/** IoT Hub's limit on one device-to-cloud message (docs/protocol.md, "Durable telemetry"). */
export const MAX_TELEMETRY_BYTES = 256 * 1024
/** Most partitions a hub's telemetry may have (Event Hubs allows 32 on its standard tier). */
export const MAX_TELEMETRY_PARTITIONS = 32

/** One message on its way into the store. */
export interface TelemetryInput {
  readonly hostName: string
  readonly partition: number
  readonly deviceId: string
  readonly enqueuedTimeMs: number
  readonly properties: Readonly<Record<string, string>>
  readonly systemProperties: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/** One stored message, with its place in its partition. */
export interface TelemetryRecord extends TelemetryInput {
  readonly sequenceNumber: number
  readonly offset: number
  /** The device's own numbering, 1 upwards (the registry API's `sequenceNumber`). */
  readonly deviceSequenceNumber: number
}

/** Where a partition read starts (inclusive): a sequence number, an offset or an enqueued time. */
export type TelemetryPosition = { readonly sequenceNumber: number } | { readonly offset: number } | { readonly enqueuedTimeMs: number }

/** What a partition holds now (`lastSequenceNumber` -1: it never held a message). */
export interface TelemetryPartitionInfo {
  readonly partition: number
  /** Oldest kept (equals `lastSequenceNumber + 1` when the partition is empty). */
  readonly firstSequenceNumber: number
  readonly lastSequenceNumber: number
  readonly lastOffset: number
  readonly lastEnqueuedTimeMs: number | undefined
}

/** The storage port. Implementations keep retention and the size bound themselves. */
export interface TelemetryStore {
  /** Stores the messages (in order) and resolves once they are durable. */
  append(messages: readonly TelemetryInput[]): Promise<readonly TelemetryRecord[]>
  /** A device's messages with a device sequence number above `after` (0: from the oldest kept); `lastSequenceNumber` 0: none yet. */
  readDevice(hostName: string, deviceId: string, options: { readonly after: number; readonly limit: number }): Promise<{ readonly messages: readonly TelemetryRecord[]; readonly dropped: number; readonly lastSequenceNumber: number }>
  /** A partition's messages from a position on, in order, at most `limit`. */
  readPartition(hostName: string, partition: number, from: TelemetryPosition, limit: number): Promise<readonly TelemetryRecord[]>
  partitionInfo(hostName: string, partition: number): Promise<TelemetryPartitionInfo>
  /** Forgets a device's messages (its identity was deleted). */
  clearDevice(hostName: string, deviceId: string): Promise<void>
  close(): void
}

/**
 * The partition of a device: FNV-1a (32 bit) of its lower-cased id, modulo the partition count.
 * Stable across processes and releases, so every instance writes a device to the same partition.
 */
export function telemetryPartition(deviceId: string, partitions: number): number {
  let hash = 0x811c9dc5
  const id = deviceId.toLowerCase()
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash % partitions
}

/** What the transports pass: the payload and the property bags they decoded. */
export interface TelemetrySinkMessage {
  readonly body: Uint8Array
  readonly properties: Readonly<Record<string, string>>
  readonly systemProperties: Readonly<Record<string, string>>
  /** How the device authenticated (`sas`, `x509`); the hub's `iothub-connection-auth-method`. */
  readonly authMethod?: string
  /** The module that sent it, for module telemetry. */
  readonly moduleId?: string
}

const MAX_PROPERTY_COUNT = 256
const MAX_PROPERTY_BYTES = 8 * 1024

/**
 * IoT Hub's system properties from what a transport decoded: the MQTT topic's `$.mid`, `$.cid`,
 * `$.ct`, `$.ce` (and the AMQP/HTTP names, which the other transports pass as they are), plus what
 * the hub sets itself (docs/protocol.md, "Durable telemetry").
 */
function hubSystemProperties(deviceId: string, message: TelemetrySinkMessage, enqueuedTimeMs: number): Record<string, string> {
  const renamed: Record<string, string> = {}
  const names: Record<string, string> = { '$.mid': 'message-id', '$.cid': 'correlation-id', '$.ct': 'content-type', '$.ce': 'content-encoding', '$.uid': 'user-id' }
  for (const [name, value] of Object.entries(message.systemProperties)) renamed[names[name] ?? name] = value
  renamed['iothub-connection-device-id'] = deviceId
  if (message.moduleId !== undefined) renamed['iothub-connection-module-id'] = message.moduleId
  renamed['iothub-connection-auth-method'] = JSON.stringify({ scope: 'device', type: message.authMethod ?? 'sas', issuer: 'iothub' })
  renamed['iothub-enqueuedtime'] = formatDpsTimestamp(enqueuedTimeMs)
  renamed['iothub-message-source'] = 'Telemetry'
  return renamed
}

function checkBag(kind: string, bag: Readonly<Record<string, string>>): void {
  const entries = Object.entries(bag)
  if (entries.length > MAX_PROPERTY_COUNT) throw new ProvisioError('VALIDATION_FAILED', `telemetry ${kind} properties: ${entries.length} given, at most ${MAX_PROPERTY_COUNT} accepted`)
  let bytes = 0
  for (const [name, value] of entries) {
    if (typeof name !== 'string' || typeof value !== 'string' || name.length === 0) throw new ProvisioError('VALIDATION_FAILED', `telemetry ${kind} property ${JSON.stringify(String(name).slice(0, 64))} must be a non-empty name with a string value`)
    bytes += name.length + value.length
  }
  if (bytes > MAX_PROPERTY_BYTES) throw new ProvisioError('VALIDATION_FAILED', `telemetry ${kind} properties: ${bytes} characters, at most ${MAX_PROPERTY_BYTES} accepted`)
}

/** The one entry point of device telemetry: resolves once the message is stored. */
export type TelemetrySink = (hostName: string, deviceId: string, message: TelemetrySinkMessage) => Promise<void>

export function createTelemetrySink(store: TelemetryStore, options: { readonly partitions: number; readonly clock: { now(): number }; readonly maxBytes?: number }): TelemetrySink {
  const { partitions, clock } = options
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_TELEMETRY_PARTITIONS) {
    throw new ProvisioError('VALIDATION_FAILED', `telemetry partitions must be 1 to ${MAX_TELEMETRY_PARTITIONS}, got ${String(partitions)}`)
  }
  const maxBytes = options.maxBytes ?? MAX_TELEMETRY_BYTES
  return async (hostName, deviceId, message) => {
    if (message.body.length > maxBytes) throw new ProvisioError('PAYLOAD_TOO_LARGE', `telemetry message of ${message.body.length} bytes exceeds the limit of ${maxBytes} bytes`)
    checkBag('application', message.properties)
    checkBag('system', message.systemProperties)
    const enqueuedTimeMs = clock.now()
    await store.append([
      {
        hostName,
        partition: telemetryPartition(deviceId, partitions),
        deviceId,
        enqueuedTimeMs,
        properties: { ...message.properties },
        systemProperties: hubSystemProperties(deviceId, message, enqueuedTimeMs),
        body: message.body,
      },
    ])
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

const TOPIC_NAMES: Readonly<Record<string, string>> = { 'message-id': '$.mid', 'correlation-id': '$.cid', 'content-type': '$.ct', 'content-encoding': '$.ce', 'user-id': '$.uid' }

/** The registry API shows the MQTT topic's names (`$.mid`, …), as the in-memory buffer did, beside the hub's own. */
function restSystemProperties(stored: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(stored)) out[TOPIC_NAMES[name] ?? name] = value
  return out
}

/** A stored record as the registry REST API returns it (GET /devices/{id}/messages/events). */
export function telemetryMessageOf(record: TelemetryRecord): HubTelemetryMessage {
  let body: string
  let bodyEncoding: HubTelemetryMessage['bodyEncoding']
  try {
    body = strictUtf8.decode(record.body)
    bodyEncoding = 'utf-8'
  } catch {
    body = base64Encode(record.body)
    bodyEncoding = 'base64'
  }
  return {
    sequenceNumber: record.deviceSequenceNumber,
    enqueuedTimeUtc: formatDpsTimestamp(record.enqueuedTimeMs),
    properties: record.properties,
    systemProperties: restSystemProperties(record.systemProperties),
    body,
    bodyEncoding,
    size: record.body.length,
  }
}

/** A hub's telemetry as the registry API reads it, over a store. */
export function telemetryReaderOf(store: TelemetryStore, hostName: string): { read(deviceId: string, options?: { after?: number; limit?: number }): Promise<HubTelemetryPage>; clear(deviceId: string): Promise<void> } {
  return {
    async read(deviceId, options = {}) {
      const limit = Math.min(Math.max(1, options.limit ?? 1000), 1000)
      const page = await store.readDevice(hostName, deviceId, { after: options.after ?? 0, limit })
      return { deviceId: page.messages[0]?.deviceId ?? deviceId, messages: page.messages.map(telemetryMessageOf), dropped: page.dropped, lastSequenceNumber: page.lastSequenceNumber }
    },
    clear: (deviceId) => store.clearDevice(hostName, deviceId),
  }
}
