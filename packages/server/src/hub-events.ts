/**
 * The embedded hubs' device events (a desired-property change, an identity disabled or deleted)
 * reach the device's connection wherever it is. Only the instance (or worker) holding a device's
 * MQTT connection can push to it, while the service may write through any: each instance
 * publishes the events its own hubs raise on a channel every instance listens to, and dispatches
 * both its own and the others' to its device connections.
 *
 * The channel is a port: PostgreSQL LISTEN/NOTIFY for instances sharing a database, the cluster
 * primary for `--workers`, none for a lone instance. Messages are JSON with a version and the
 * sender's origin (its own come back and are skipped, having been dispatched already), checked
 * field by field on receipt: a malformed one is reported and dropped.
 *
 * Direct method calls travel the same channel (`kind: 'method'`, @provisio/hub methods.ts): the
 * request to every process, then `dispatched`, `response` or `gone` back to the caller's process.
 */
import type { DesiredChange, EmbeddedHub, IdentityRevoked, MethodRelayMessage } from '@provisio/hub'

/** How messages travel between instances. */
export interface HubEventChannel {
  /** Sends to every instance on the channel (this one may hear it back). */
  publish(message: string): Promise<void>
}

/**
 * Messages larger than this are not sent (IoT Hub caps a twin's desired properties at 32 KiB and a
 * method payload at 128 KiB, which JSON escaping inside the message may double).
 */
export const MAX_HUB_EVENT_BYTES = 512 * 1024

type Wire =
  | { readonly v: 1; readonly origin: string; readonly kind: 'desired'; readonly change: DesiredChange }
  | { readonly v: 1; readonly origin: string; readonly kind: 'revoked'; readonly event: IdentityRevoked }
  | { readonly v: 1; readonly origin: string; readonly kind: 'method'; readonly method: MethodRelayMessage }

export interface HubEventRelayOptions {
  /** This instance's id (unique per process). */
  readonly origin: string
  readonly hubs: Iterable<EmbeddedHub>
  /** Failures to send or read a message (logged by the caller); the local dispatch is never affected. */
  readonly onError: (message: string) => void
}

/** Dispatches the hubs' events to local listeners and across a {@link HubEventChannel}. */
export class HubEventRelay {
  readonly #origin: string
  readonly #onError: (message: string) => void
  readonly #desired = new Set<(change: DesiredChange) => void>()
  readonly #revoked = new Set<(event: IdentityRevoked) => void>()
  readonly #methods = new Set<(message: MethodRelayMessage) => void>()
  readonly #hostNames: Set<string>
  #channel: HubEventChannel | undefined

  constructor(options: HubEventRelayOptions) {
    this.#origin = options.origin
    this.#onError = options.onError
    this.#hostNames = new Set()
    for (const hub of options.hubs) {
      this.#hostNames.add(hub.hostName.toLowerCase())
      hub.onDesiredChange((change) => {
        notifyAll(this.#desired, change)
        this.#send({ v: 1, origin: this.#origin, kind: 'desired', change })
      })
      hub.onIdentityRevoked((event) => {
        notifyAll(this.#revoked, event)
        this.#send({ v: 1, origin: this.#origin, kind: 'revoked', event })
      })
    }
  }

  /** Starts sending this instance's events on `channel` (none before: a lone instance). */
  connect(channel: HubEventChannel): void {
    this.#channel = channel
  }

  /** Subscribes to desired changes of every hub, raised here or on another instance. */
  onDesiredChange(listener: (change: DesiredChange) => void): () => void {
    this.#desired.add(listener)
    return () => void this.#desired.delete(listener)
  }

  /** Subscribes to identities disabled or deleted, here or on another instance. */
  onIdentityRevoked(listener: (event: IdentityRevoked) => void): () => void {
    this.#revoked.add(listener)
    return () => void this.#revoked.delete(listener)
  }

  /** Whether messages go to other processes (a channel is connected). */
  get relaying(): boolean {
    return this.#channel !== undefined
  }

  /** Sends a direct method message to the other processes. */
  publishMethod(method: MethodRelayMessage): void {
    this.#send({ v: 1, origin: this.#origin, kind: 'method', method })
  }

  /** Subscribes to direct method messages of other processes. */
  onMethodMessage(listener: (message: MethodRelayMessage) => void): () => void {
    this.#methods.add(listener)
    return () => void this.#methods.delete(listener)
  }

  /** A message from the channel. Never throws. */
  receive(message: string): void {
    const wire = parse(message)
    if (typeof wire === 'string') return this.#onError(`hub event dropped: ${wire}`)
    if (wire.origin === this.#origin) return
    if (wire.kind === 'method') notifyAll(this.#methods, wire.method)
    else if (wire.kind === 'desired') {
      if (this.#hostNames.has(wire.change.hostName.toLowerCase())) notifyAll(this.#desired, wire.change)
    } else if (this.#hostNames.has(wire.event.hostName.toLowerCase())) notifyAll(this.#revoked, wire.event)
  }

  #send(wire: Wire): void {
    const channel = this.#channel
    if (channel === undefined) return
    const text = JSON.stringify(wire)
    if (text.length > MAX_HUB_EVENT_BYTES) {
      this.#onError(`hub event for ${describe(wire)} not sent to other instances: ${text.length} bytes exceeds ${MAX_HUB_EVENT_BYTES}`)
      return
    }
    channel.publish(text).catch((error: unknown) => this.#onError(`hub event for ${describe(wire)} not sent to other instances: ${(error as Error)?.message ?? String(error)}`))
  }
}

/** Tells every listener; one listener's failure is its own, the others still hear of it. */
function notifyAll<T>(listeners: ReadonlySet<(value: T) => void>, value: T): void {
  for (const listener of listeners) {
    try {
      listener(value)
    } catch {
      // Not ours to report: the listener owns its failure.
    }
  }
}

function describe(wire: Wire): string {
  if (wire.kind === 'method') return `direct method ${wire.method.kind} ${wire.method.rid}`
  return wire.kind === 'desired' ? `${wire.change.hostName}/${wire.change.deviceId} (desired $version ${wire.change.version})` : `${wire.event.hostName}/${wire.event.deviceId} (${wire.event.why})`
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256

/** The message, checked; or why it is not one. */
function parse(message: string): Wire | string {
  if (message.length > MAX_HUB_EVENT_BYTES) return `${message.length} bytes exceeds ${MAX_HUB_EVENT_BYTES}`
  let value: unknown
  try {
    value = JSON.parse(message)
  } catch {
    return 'not JSON'
  }
  if (!isObject(value) || value.v !== 1) return 'not a version 1 hub event'
  if (!isName(value.origin)) return 'origin missing'
  if (value.kind === 'desired') {
    const c = value.change
    if (!isObject(c) || !isName(c.hostName) || !isName(c.deviceId) || !Number.isSafeInteger(c.version) || !isObject(c.patch)) return 'desired change without hostName, deviceId, integer version and patch object'
    return { v: 1, origin: value.origin, kind: 'desired', change: { hostName: c.hostName, deviceId: c.deviceId, version: c.version as number, patch: c.patch } }
  }
  if (value.kind === 'revoked') {
    const e = value.event
    if (!isObject(e) || !isName(e.hostName) || !isName(e.deviceId) || (e.why !== 'disabled' && e.why !== 'deleted')) return 'revocation without hostName, deviceId and why (disabled or deleted)'
    return { v: 1, origin: value.origin, kind: 'revoked', event: { hostName: e.hostName, deviceId: e.deviceId, why: e.why } }
  }
  if (value.kind === 'method') {
    const method = parseMethod(value.method)
    return typeof method === 'string' ? method : { v: 1, origin: value.origin, kind: 'method', method }
  }
  return `unknown kind ${JSON.stringify(value.kind)}`
}

const isTimeout = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 3_600_000

/** A direct method message, checked field by field; or why it is not one. */
function parseMethod(m: unknown): MethodRelayMessage | string {
  if (!isObject(m) || !isName(m.rid)) return 'direct method message without rid'
  const rid = m.rid
  switch (m.kind) {
    case 'request':
      if (!isName(m.origin) || !isName(m.hostName) || !isName(m.deviceId) || !isName(m.methodName) || typeof m.payload !== 'string' || !isTimeout(m.connectTimeoutMs) || !isTimeout(m.responseTimeoutMs)) {
        return 'direct method request without origin, hostName, deviceId, methodName, payload text and timeouts'
      }
      return {
        kind: 'request',
        origin: m.origin,
        rid,
        hostName: m.hostName,
        deviceId: m.deviceId,
        methodName: m.methodName,
        payload: m.payload,
        connectTimeoutMs: m.connectTimeoutMs,
        responseTimeoutMs: m.responseTimeoutMs,
      }
    case 'response':
      if (!isName(m.to) || !Number.isSafeInteger(m.status) || typeof m.payload !== 'string') return 'direct method response without to, integer status and payload text'
      return { kind: 'response', to: m.to, rid, status: m.status as number, payload: m.payload }
    case 'dispatched':
    case 'gone':
      if (!isName(m.to)) return `direct method ${m.kind} without to`
      return { kind: m.kind, to: m.to, rid }
    case 'cancel':
      return { kind: 'cancel', rid }
    default:
      return `unknown direct method message kind ${JSON.stringify(String(m.kind).slice(0, 20))}`
  }
}
