/**
 * Direct method calls in flight (IoT Hub's `POST /twins/{id}/methods`), across the processes of
 * one hub. Pure: time, randomness, delivery to a device connection and the relay to other
 * processes come in as ports.
 *
 * A call gets a request id (`$rid`). It is delivered at once when this process holds the device's
 * connection with a methods subscription; otherwise it waits up to `connectTimeoutInSeconds` for
 * the device to connect and subscribe here — and, with a relay, is sent to the other processes,
 * which do the same and tell the caller's process when they delivered it (`dispatched`). Once
 * delivered, the device has `responseTimeoutInSeconds` to answer on `$iothub/methods/res/{status}`;
 * its answer goes back to the caller's process (`response`). Outcomes: the device's status and
 * payload; DEVICE_NOT_ONLINE (404103) when it was not delivered in time, or the device
 * disconnected before answering; GATEWAY_TIMEOUT (504101) when it did not answer in time;
 * SERVICE_UNAVAILABLE when the server stops. Nothing is queued for a device beyond the connect
 * timeout (IoT Hub does not queue method calls). With a relay, a call waits at least
 * `relayGraceMs` for another process to report delivery, so a connect timeout of 0 answers
 * 404103 after that grace rather than at once.
 */
import { ProvisioError, formatMethodRequestTopic, type DirectMethodCall, type DirectMethodResult } from '@provisio/protocol'

/** A timer port: the server passes setTimeout/clearTimeout. */
export interface MethodTimers {
  set(ms: number, fire: () => void): unknown
  clear(handle: unknown): void
}

/** A method call as it travels between processes. */
export type MethodRelayMessage =
  | {
      readonly kind: 'request'
      readonly origin: string
      readonly rid: string
      readonly hostName: string
      readonly deviceId: string
      readonly methodName: string
      /** The payload as JSON text. */
      readonly payload: string
      readonly connectTimeoutMs: number
      readonly responseTimeoutMs: number
    }
  | { readonly kind: 'dispatched'; readonly to: string; readonly rid: string }
  | { readonly kind: 'response'; readonly to: string; readonly rid: string; readonly status: number; readonly payload: string }
  | { readonly kind: 'gone'; readonly to: string; readonly rid: string }
  | { readonly kind: 'cancel'; readonly rid: string }

/** What happened to calls, for metrics and logs. */
export type MethodEvent =
  | { readonly type: 'invoked'; readonly hostName: string; readonly deviceId: string; readonly methodName: string; readonly rid: string }
  | { readonly type: 'answered'; readonly hostName: string; readonly deviceId: string; readonly methodName: string; readonly rid: string; readonly status: number }
  | {
      readonly type: 'failed'
      readonly hostName: string
      readonly deviceId: string
      readonly methodName: string
      readonly rid: string
      readonly outcome: 'not_online' | 'timed_out' | 'disconnected' | 'cancelled' | 'stopped'
      readonly reason: string
    }
  | { readonly type: 'unmatched'; readonly hostName: string; readonly deviceId: string; readonly rid: string }

export interface MethodPorts {
  readonly timers: MethodTimers
  readonly random: { bytes(n: number): Uint8Array }
  /**
   * Delivers a request to the device's connection in this process. Returns the connection it went
   * to (any object, handed back to {@link DirectMethods.deviceGone}), or undefined when this
   * process holds no connection of the device subscribed to methods.
   */
  readonly deliver: (hostName: string, deviceId: string, message: { readonly topic: string; readonly payload: string }) => object | undefined
  /** This process's id on the relay. */
  readonly origin: string
  /** Sends to the other processes; absent for a lone process. */
  readonly publish?: (message: MethodRelayMessage) => void
  readonly onEvent?: (event: MethodEvent) => void
}

export interface DirectMethodsLimits {
  /** Calls this process holds at once (its callers' and the ones delivered or waiting for others). */
  readonly maxCalls: number
  /** With a relay, how long a call waits at least for another process to report delivery. */
  readonly relayGraceMs: number
}

export const DEFAULT_DIRECT_METHODS_LIMITS: DirectMethodsLimits = Object.freeze({ maxCalls: 10_000, relayGraceMs: 2_000 })

/** A call of a caller in this process. */
interface Call {
  readonly hostName: string
  readonly deviceId: string
  readonly methodName: string
  readonly responseTimeoutMs: number
  dispatched: boolean
  timer: unknown
  readonly resolve: (result: DirectMethodResult) => void
  readonly reject: (error: ProvisioError) => void
}

/** A request this process delivers or waits to deliver (for a caller here or elsewhere). */
interface Held {
  readonly origin: string
  readonly hostName: string
  readonly deviceId: string
  readonly topic: string
  readonly payload: string
  readonly responseTimeoutMs: number
  /** The connection it went to; undefined while waiting for the device. */
  connection: object | undefined
  timer: unknown
}

const deviceKey = (hostName: string, deviceId: string) => `${hostName.toLowerCase()}\u0000${deviceId.toLowerCase()}`

export class DirectMethods {
  readonly #ports: MethodPorts
  readonly #limits: DirectMethodsLimits
  readonly #calls = new Map<string, Call>()
  readonly #held = new Map<string, Held>()
  #stopped = false

  constructor(ports: MethodPorts, limits: Partial<DirectMethodsLimits> = {}) {
    this.#ports = ports
    this.#limits = { ...DEFAULT_DIRECT_METHODS_LIMITS, ...limits }
  }

  /** Calls of callers in this process not yet answered. */
  get pending(): number {
    return this.#calls.size
  }

  /** Requests this process delivered or waits to deliver. */
  get held(): number {
    return this.#held.size
  }

  /**
   * Invokes `call` on the device (`deviceId` as the registry spells it). Settles with the device's
   * answer or a ProvisioError; when `abandoned` settles first, the call is dropped everywhere.
   */
  invoke(hostName: string, deviceId: string, call: DirectMethodCall, abandoned?: Promise<void>): Promise<DirectMethodResult> {
    if (this.#stopped) return Promise.reject(new ProvisioError('SERVICE_UNAVAILABLE', 'the server is stopping; no direct method calls are started'))
    if (this.#calls.size + this.#held.size >= this.#limits.maxCalls) {
      return Promise.reject(new ProvisioError('SERVICE_THROTTLED', `${this.#limits.maxCalls} direct method calls are in flight in this process`, { retryAfterSeconds: 1 }))
    }
    const rid = this.#rid()
    const payload = JSON.stringify(call.payload)
    const responseTimeoutMs = call.responseTimeoutInSeconds * 1000
    const connectTimeoutMs = call.connectTimeoutInSeconds * 1000
    const topic = formatMethodRequestTopic(call.methodName, rid)
    return new Promise<DirectMethodResult>((resolve, reject) => {
      const entry: Call = { hostName, deviceId, methodName: call.methodName, responseTimeoutMs, dispatched: false, timer: undefined, resolve, reject }
      this.#calls.set(rid, entry)
      this.#emit({ type: 'invoked', hostName, deviceId, methodName: call.methodName, rid })
      void abandoned?.then(() => this.#fail(rid, 'cancelled', new ProvisioError('REQUEST_TIMEOUT', 'the caller went away before the device answered')))
      const held: Held = { origin: this.#ports.origin, hostName, deviceId, topic, payload, responseTimeoutMs, connection: undefined, timer: undefined }
      this.#held.set(rid, held)
      if (this.#tryDeliver(rid, held)) return
      const publish = this.#ports.publish
      const waitMs = publish === undefined ? connectTimeoutMs : Math.max(connectTimeoutMs, this.#limits.relayGraceMs)
      if (waitMs === 0) return this.#fail(rid, 'not_online', notOnline(hostName, deviceId, 0))
      // Armed before the request goes out: a relay may report delivery before publish returns.
      entry.timer = this.#ports.timers.set(waitMs, () => this.#fail(rid, 'not_online', notOnline(hostName, deviceId, waitMs)))
      publish?.({ kind: 'request', origin: this.#ports.origin, rid, hostName, deviceId, methodName: call.methodName, payload, connectTimeoutMs, responseTimeoutMs })
    })
  }

  /** The device connected (or subscribed to methods) in this process: requests waiting for it are delivered. */
  deviceReady(hostName: string, deviceId: string): void {
    const key = deviceKey(hostName, deviceId)
    for (const [rid, held] of this.#held) {
      if (held.connection === undefined && deviceKey(held.hostName, held.deviceId) === key) this.#tryDeliver(rid, held)
    }
  }

  /** A connection of the device in this process closed: requests delivered on it will not be answered. */
  deviceGone(hostName: string, deviceId: string, connection: object): void {
    for (const [rid, held] of this.#held) {
      if (held.connection !== connection) continue
      this.#drop(rid)
      if (held.origin === this.#ports.origin) this.#fail(rid, 'disconnected', disconnected(hostName, deviceId))
      else this.#ports.publish?.({ kind: 'gone', to: held.origin, rid })
    }
  }

  /** The device answered request `rid` (`payload` is the PUBLISH body, JSON or empty). */
  respond(hostName: string, deviceId: string, rid: string, status: number, payload: Uint8Array): void {
    const held = this.#held.get(rid)
    if (held === undefined || held.connection === undefined || deviceKey(held.hostName, held.deviceId) !== deviceKey(hostName, deviceId)) {
      this.#emit({ type: 'unmatched', hostName, deviceId, rid })
      return
    }
    this.#drop(rid)
    const text = new TextDecoder().decode(payload)
    if (held.origin === this.#ports.origin) this.#answer(rid, status, text)
    else this.#ports.publish?.({ kind: 'response', to: held.origin, rid, status, payload: text })
  }

  /** A message of another process (the relay hands every message; ones meant for others are ignored). */
  receive(message: MethodRelayMessage): void {
    if (this.#stopped) return
    switch (message.kind) {
      case 'request': {
        if (message.origin === this.#ports.origin || this.#held.has(message.rid) || this.#calls.size + this.#held.size >= this.#limits.maxCalls) return
        const held: Held = {
          origin: message.origin,
          hostName: message.hostName,
          deviceId: message.deviceId,
          topic: formatMethodRequestTopic(message.methodName, message.rid),
          payload: message.payload,
          responseTimeoutMs: message.responseTimeoutMs,
          connection: undefined,
          timer: undefined,
        }
        this.#held.set(message.rid, held)
        if (this.#tryDeliver(message.rid, held)) return
        if (message.connectTimeoutMs === 0) return void this.#held.delete(message.rid)
        held.timer = this.#ports.timers.set(message.connectTimeoutMs, () => this.#held.delete(message.rid))
        return
      }
      case 'dispatched': {
        // Delivered elsewhere: a copy waiting here must not be delivered too.
        const held = this.#held.get(message.rid)
        if (held !== undefined && held.connection === undefined) this.#drop(message.rid)
        if (message.to === this.#ports.origin) this.#dispatched(message.rid)
        return
      }
      case 'response':
        if (message.to === this.#ports.origin) this.#answer(message.rid, message.status, message.payload)
        return
      case 'gone': {
        const call = message.to === this.#ports.origin ? this.#calls.get(message.rid) : undefined
        if (call !== undefined) this.#fail(message.rid, 'disconnected', disconnected(call.hostName, call.deviceId))
        return
      }
      case 'cancel':
        this.#drop(message.rid)
        return
    }
  }

  /** The server stops: every call is answered SERVICE_UNAVAILABLE and every timer cleared. */
  stop(): void {
    this.#stopped = true
    for (const rid of [...this.#held.keys()]) this.#drop(rid)
    for (const rid of [...this.#calls.keys()]) this.#fail(rid, 'stopped', new ProvisioError('SERVICE_UNAVAILABLE', 'the server stopped before the device answered', { retryAfterSeconds: 1 }))
  }

  #tryDeliver(rid: string, held: Held): boolean {
    const connection = this.#ports.deliver(held.hostName, held.deviceId, { topic: held.topic, payload: held.payload })
    if (connection === undefined) return false
    this.#ports.timers.clear(held.timer)
    held.connection = connection
    // Kept until answered, or a little past the caller's own deadline when the answer never comes.
    held.timer = this.#ports.timers.set(held.responseTimeoutMs + 1000, () => this.#held.delete(rid))
    if (held.origin === this.#ports.origin) this.#dispatched(rid)
    if (this.#ports.publish !== undefined) this.#ports.publish({ kind: 'dispatched', to: held.origin, rid })
    return true
  }

  /** The caller's call reached the device: the response timeout starts. */
  #dispatched(rid: string): void {
    const call = this.#calls.get(rid)
    if (call === undefined || call.dispatched) return
    call.dispatched = true
    this.#ports.timers.clear(call.timer)
    call.timer = this.#ports.timers.set(call.responseTimeoutMs, () =>
      this.#fail(rid, 'timed_out', new ProvisioError('GATEWAY_TIMEOUT', `device ${call.deviceId} on hub ${call.hostName} did not answer method ${call.methodName} within ${call.responseTimeoutMs / 1000} s`)),
    )
  }

  #answer(rid: string, status: number, text: string): void {
    const call = this.#calls.get(rid)
    if (call === undefined) return
    let payload: unknown = null
    if (text.trim() !== '') {
      try {
        payload = JSON.parse(text)
      } catch {
        // IoT Hub expects JSON; a device that sends other text is answered as a JSON string.
        payload = text
      }
    }
    this.#settle(rid, call)
    this.#emit({ type: 'answered', hostName: call.hostName, deviceId: call.deviceId, methodName: call.methodName, rid, status })
    call.resolve({ status, payload })
  }

  #fail(rid: string, outcome: 'not_online' | 'timed_out' | 'disconnected' | 'cancelled' | 'stopped', error: ProvisioError): void {
    const call = this.#calls.get(rid)
    if (call === undefined) return
    this.#settle(rid, call)
    this.#drop(rid)
    this.#ports.publish?.({ kind: 'cancel', rid })
    this.#emit({ type: 'failed', hostName: call.hostName, deviceId: call.deviceId, methodName: call.methodName, rid, outcome, reason: error.reason })
    call.reject(error)
  }

  #settle(rid: string, call: Call): void {
    this.#ports.timers.clear(call.timer)
    this.#calls.delete(rid)
  }

  #drop(rid: string): void {
    const held = this.#held.get(rid)
    if (held === undefined) return
    this.#ports.timers.clear(held.timer)
    this.#held.delete(rid)
  }

  #rid(): string {
    let hex = ''
    for (const b of this.#ports.random.bytes(12)) hex += b.toString(16).padStart(2, '0')
    return hex
  }

  #emit(event: MethodEvent): void {
    try {
      this.#ports.onEvent?.(event)
    } catch {
      // Metrics and logs are the listener's; the call goes on.
    }
  }
}

function notOnline(hostName: string, deviceId: string, waitedMs: number): ProvisioError {
  return new ProvisioError('DEVICE_NOT_ONLINE', `device ${deviceId} on hub ${hostName} was not connected with a methods subscription within ${waitedMs / 1000} s (connectTimeoutInSeconds)`)
}

function disconnected(hostName: string, deviceId: string): ProvisioError {
  return new ProvisioError('DEVICE_NOT_ONLINE', `device ${deviceId} on hub ${hostName} disconnected before it answered`, { deviceMessage: 'The device disconnected before it answered.' })
}
