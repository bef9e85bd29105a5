/**
 * One device connection speaking IoT Hub's device MQTT dialect (see @provisio/protocol mqtt-hub-topics.ts for the
 * strings), sans-IO like the DPS session: the adapter pushes bytes, writes what the session hands
 * it, calls `tick()`, and delivers desired-property changes with {@link HubMqttSession.pushDesired}.
 *
 * Flow: CONNECT (username `{hub}/{deviceId}/?api-version=…`, clientId = deviceId, password = device
 * SAS, or a TLS client certificate) → `api.authenticate` → the device's session from the
 * `sessions` port (clean session 0: the kept one, if any) → CONNACK 0 with session present 1 when
 * one was kept, or 4/5 with the reason in the `refused` event → unacknowledged QoS 1 messages of a
 * kept session sent again (DUP), then the ones queued for it → SUBSCRIBE (any valid filter that
 * matches a topic the hub sends the device, as MQTT matches filters, granted at QoS ≤ 1; others
 * 0x80) → PUBLISH telemetry (stored, PUBACK), twin GET (`200` with desired and reported),
 * reported PATCH (`204` with the new `$version`), direct method responses (`$iothub/methods/res/{status}/?$rid=`,
 * handed on in a `methodResponse` event; the adapter delivers method requests with
 * {@link HubMqttSession.deliver} on the topic of protocol's `formatMethodRequestTopic`).
 *
 * What the hub sends (twin responses, desired pushes) goes out at the highest QoS of the matching
 * subscriptions; QoS 1 messages stay in the session until PUBACK, at most `maxUnacknowledged` in
 * flight (the rest wait in the session's queue).
 */
import {
  ProvisioError,
  deliveryQos,
  enqueueHubMessage,
  formatDpsTimestamp,
  desiredPushMessage,
  formatTwinResponseTopic,
  hubSubscriptionKinds,
  newHubSessionState,
  parseHubRequestTopic,
  parseHubUsername,
  parseJsonBody,
  toErrorBody,
  wrapUnknown,
  type HubDeviceApi,
  type HubMqttSessionState,
  type HubQueuedMessage,
  type HubSessionOpened,
  type HubSessionStore,
  type HubSubscriptionKind,
  MAX_METHOD_PAYLOAD_BYTES,
} from '@provisio/protocol'
import { MqttDialectSession, connackCodeOf, type MqttCloseReason, type MqttConnectionState, type MqttDialectPacket } from './connection.js'
import { DEFAULT_MQTT_LIMITS, type MqttLimits } from './session.js'
import type { MqttConnackPacket, MqttConnectPacket, MqttPublishPacket } from './wire.js'

/** Limits of one hub session. */
export interface HubMqttLimits extends MqttLimits {
  /** Largest telemetry payload (IoT Hub's device-to-cloud limit is 256 KB). */
  readonly maxTelemetryBytes: number
  /** QoS 1 messages sent and not yet acknowledged; more wait in the session's queue. */
  readonly maxUnacknowledged: number
  /** Messages waiting in a session's queue (the oldest dropped beyond it). */
  readonly maxQueued: number
}

export const DEFAULT_HUB_MQTT_LIMITS: HubMqttLimits = Object.freeze({
  ...DEFAULT_MQTT_LIMITS,
  maxPacketBytes: 256 * 1024 + 4096,
  // IoT Hub's limit on each twin section (desired, reported) is 32 KB.
  maxBodyBytes: 32 * 1024,
  maxTelemetryBytes: 256 * 1024,
  maxUnacknowledged: 32,
  maxQueued: 100,
})

/** What the session tells the adapter about, for logs, take-over and desired pushes. */
export type HubMqttEvent =
  | {
      readonly type: 'connected'
      readonly hostName: string
      readonly deviceId: string
      readonly apiVersion?: string
      readonly clientType?: string
      readonly keepAliveSeconds: number
      readonly clean: boolean
      /** Whether a kept session was found (CONNACK session present). */
      readonly sessionPresent: boolean
    }
  | { readonly type: 'refused'; readonly returnCode: MqttConnackPacket['returnCode']; readonly reason: string; readonly hostName?: string; readonly deviceId?: string }
  | { readonly type: 'twin'; readonly operation: 'get' | 'reportedPatch'; readonly rid: string; readonly status: number; readonly error?: ProvisioError; readonly delivered: boolean }
  | { readonly type: 'telemetry'; readonly bytes: number }
  /** A SUBSCRIBE granted filters of these topic families (`methods`: direct method calls may be delivered now). */
  | { readonly type: 'subscribed'; readonly kinds: readonly HubSubscriptionKind[] }
  /** The device answered a direct method call; `payload` is the PUBLISH body (JSON text, or empty). */
  | { readonly type: 'methodResponse'; readonly rid: string; readonly status: number; readonly payload: Uint8Array }
  | { readonly type: 'methodResponseRefused'; readonly rid: string; readonly reason: string }
  | { readonly type: 'telemetryRefused'; readonly reason: string }

export interface HubMqttSessionOptions {
  readonly api: HubDeviceApi
  readonly clock: { now(): number }
  readonly trackingId: () => string
  readonly write: (bytes: Uint8Array) => void
  readonly close: (reason: MqttCloseReason) => void
  /** TLS client certificate chain, DER, leaf first (X.509 devices). */
  readonly clientCertificates?: readonly Uint8Array[]
  readonly limits?: Partial<HubMqttLimits>
  readonly onEvent?: (event: HubMqttEvent) => void
  /** Where sessions live between connections; without it every connection starts empty (session present 0). */
  readonly sessions?: HubSessionStore
}

export type HubMqttState = MqttConnectionState

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

export function createHubMqttSession(options: HubMqttSessionOptions): HubMqttSession {
  return new HubMqttSession(options)
}

/** One hub device connection; see the module documentation. */
export class HubMqttSession extends MqttDialectSession {
  readonly #options: HubMqttSessionOptions
  readonly #limits: HubMqttLimits
  #expiresAtMs: number | undefined
  #hostName: string | undefined
  #deviceId: string | undefined
  /** The device id as the device names itself (clientId), for its C2D topic. */
  #clientId: string | undefined
  /** Subscriptions and QoS 1 messages in flight; a kept session's once the CONNECT is admitted. */
  #session: HubMqttSessionState = newHubSessionState(this)

  constructor(options: HubMqttSessionOptions) {
    const limits = { ...DEFAULT_HUB_MQTT_LIMITS, ...options.limits }
    super(options, limits)
    this.#options = options
    this.#limits = limits
  }

  /** Canonical hub host name, once connected. */
  get hostName(): string | undefined {
    return this.#hostName
  }

  /** Canonical device id, once connected. */
  get deviceId(): string | undefined {
    return this.#deviceId
  }

  /** Judges the connect timeout, keep-alive and SAS expiry against the clock; call it every second or so. */
  override tick(): void {
    super.tick()
    if (this.connection.state === 'connected' && this.#expiresAtMs !== undefined && this.#options.clock.now() >= this.#expiresAtMs) {
      this.connection.close('CREDENTIALS_EXPIRED', `the SAS token of ${this.#deviceId} expired at ${this.#expiresAtMs / 1000} (unix seconds); the device reconnects with a new one`)
    }
  }

  /** The device's identity was disabled or deleted: the connection ends with the reason. */
  revoke(reason: string): void {
    this.connection.close('IDENTITY_REVOKED', reason)
  }

  /**
   * Delivers a desired-property change (the hub's `DesiredChange.patch`, with `$version`) when
   * the device subscribed to desired updates. Returns whether it was sent or queued.
   */
  pushDesired(patch: Record<string, unknown>, version: number): boolean {
    return this.deliver(desiredPushMessage(patch, version))
  }

  /**
   * Sends a message to the device at the QoS its matching subscriptions grant: QoS 1 kept in
   * the session until acknowledged (queued while too many are in flight). Returns false when no
   * subscription matches or the connection is not up.
   */
  deliver(message: HubQueuedMessage): boolean {
    if (this.connection.state !== 'connected') return false
    const qos = deliveryQos(this.#session.subscriptions, message.topic)
    if (qos === undefined) return false
    if (qos === 0) this.connection.send({ cmd: 'publish', topic: message.topic, payload: message.payload, qos: 0, retain: false, dup: false })
    else if (this.#session.unacknowledged.size >= this.#limits.maxUnacknowledged) enqueueHubMessage(this.#session, message, this.#limits.maxQueued)
    else this.#sendQos1(message)
    return true
  }

  #sendQos1(message: HubQueuedMessage): void {
    const messageId = this.connection.packetId((id) => this.#session.unacknowledged.has(id))
    this.#session.unacknowledged.set(messageId, message)
    this.connection.send({ cmd: 'publish', topic: message.topic, payload: message.payload, qos: 1, retain: false, dup: false, messageId })
  }

  /** Sends queued messages while fewer than `maxUnacknowledged` are in flight. */
  #drain(): void {
    const session = this.#session
    while (this.connection.state === 'connected' && session.queued.length > 0 && session.unacknowledged.size < this.#limits.maxUnacknowledged) {
      this.#sendQos1(session.queued.shift()!)
    }
  }

  protected override onAcknowledged(messageId: number): void {
    if (this.#session.unacknowledged.delete(messageId)) this.#drain()
  }

  protected override onClosed(): void {
    if (this.#hostName !== undefined && this.#deviceId !== undefined) this.#options.sessions?.close(this.#hostName, this.#deviceId, this)
  }

  // ---------------------------------------------------------------------------------------------

  protected override refuseConnect(returnCode: MqttConnackPacket['returnCode'], reason: string): void {
    this.#refuse(returnCode, reason)
  }

  /** A CONNECT of MQTT 3.1.1 (the connection checked the protocol level). */
  protected override onConnect(packet: MqttConnectPacket): void {
    if (packet.username === undefined) return this.#refuse(4, 'CONNECT has no username; the hub needs {hubHostName}/{deviceId}/?api-version=…')
    const user = parseHubUsername(packet.username)
    if ('error' in user) return this.#refuse(4, user.error)
    const who = { hostName: user.hostName, deviceId: user.deviceId }
    if (user.moduleId !== undefined) return this.#refuse(2, `module identities (${user.deviceId}/${user.moduleId}) are not served by the embedded hub`, who)
    if (packet.clientId !== user.deviceId) {
      return this.#refuse(2, `clientId ${JSON.stringify(packet.clientId.slice(0, 128))} differs from the username's deviceId ${JSON.stringify(user.deviceId.slice(0, 128))}`, who)
    }
    let sasToken: string | undefined
    if (packet.password !== undefined) {
      try {
        sasToken = strictUtf8.decode(packet.password)
      } catch {
        return this.#refuse(4, 'password is not UTF-8 text; the hub expects a SharedAccessSignature token', who)
      }
    } else if (this.#options.clientCertificates === undefined || this.#options.clientCertificates.length === 0) {
      return this.#refuse(5, 'neither a SAS password nor a TLS client certificate was presented', who)
    }
    const keepalive = this.connection.keepAlive(packet.keepalive)
    this.connection.authenticating()
    this.#options.api
      .authenticate({
        ...who,
        ...(sasToken === undefined ? { clientCertificates: this.#options.clientCertificates ?? [] } : { sasToken }),
      })
      .then(
        (admitted) => {
          if (this.connection.state !== 'authenticating') return
          const sessions = this.#options.sessions
          const opened: HubSessionOpened | Promise<HubSessionOpened> = sessions === undefined ? { state: this.#session, present: false } : sessions.open(admitted.hostName, admitted.deviceId, packet.clean, this)
          return Promise.resolve(opened).then(({ state, present }) => {
            if (this.connection.state !== 'authenticating') {
              // Closed while the session was read: give it back.
              sessions?.close(admitted.hostName, admitted.deviceId, this)
              return
            }
            this.#hostName = admitted.hostName
            this.#deviceId = admitted.deviceId
            this.#clientId = user.deviceId
            this.#expiresAtMs = admitted.expiresAtMs
            this.#session = state
            this.connection.accept(
              () =>
                this.#options.onEvent?.({
                  type: 'connected',
                  hostName: admitted.hostName,
                  deviceId: admitted.deviceId,
                  ...(user.apiVersion === undefined ? {} : { apiVersion: user.apiVersion }),
                  ...(user.clientType === undefined ? {} : { clientType: user.clientType }),
                  keepAliveSeconds: keepalive,
                  clean: packet.clean,
                  sessionPresent: present,
                }),
              present,
            )
            // MQTT-4.4.0-1: unacknowledged PUBLISHes of a kept session again, with DUP set, then what waited.
            for (const [messageId, message] of state.unacknowledged) {
              this.connection.send({ cmd: 'publish', topic: message.topic, payload: message.payload, qos: 1, retain: false, dup: true, messageId })
            }
            this.#drain()
          })
        },
        (error: unknown) => {
          if (this.connection.state !== 'authenticating') return
          const err = wrapUnknown(error)
          this.#refuse(connackCodeOf(err), `credentials refused: ${err.code}: ${err.reason}`, who)
        },
      )
      .catch((error: unknown) => this.connection.close('INTERNAL_ERROR', `session failure after CONNECT: ${(error as Error)?.message ?? String(error)}`))
  }

  #refuse(returnCode: MqttConnackPacket['returnCode'], reason: string, who?: { hostName: string; deviceId: string }): void {
    this.connection.refuse(returnCode, reason, () => this.#options.onEvent?.({ type: 'refused', returnCode, reason, ...(who ?? {}) }))
  }

  protected override onPacket(packet: MqttDialectPacket): void {
    switch (packet.cmd) {
      case 'subscribe': {
        const kinds = new Set<HubSubscriptionKind>()
        const granted = packet.subscriptions.map((s) => {
          const matched = hubSubscriptionKinds(s.topic, this.#clientId!)
          if (matched.length === 0) return 0x80
          for (const kind of matched) kinds.add(kind)
          const qos = s.qos === 0 ? 0 : 1
          this.#session.subscriptions.set(s.topic, qos)
          return qos
        })
        this.connection.send({ cmd: 'suback', messageId: packet.messageId, granted })
        if (kinds.size > 0) this.#options.onEvent?.({ type: 'subscribed', kinds: [...kinds] })
        return
      }
      case 'unsubscribe':
        for (const filter of packet.unsubscriptions) this.#session.subscriptions.delete(filter)
        this.connection.send({ cmd: 'unsuback', messageId: packet.messageId })
        return
      case 'publish':
        return this.#onPublish(packet)
    }
  }
  #onPublish(packet: MqttPublishPacket): void {
    // IoT Hub serves QoS 0 and 1 only and closes the connection on QoS 2.
    if (packet.qos === 2) return this.connection.close('UNSUPPORTED', 'PUBLISH with QoS 2 is not supported by IoT Hub')
    const topic = parseHubRequestTopic(packet.topic)
    if ('error' in topic && topic.rid === undefined) return this.connection.close('UNSUPPORTED', topic.error)
    if (!('error' in topic) && topic.kind === 'telemetry') return this.#telemetry(packet, topic.deviceId, topic.properties, topic.systemProperties)
    if (packet.qos === 1) this.connection.send({ cmd: 'puback', messageId: packet.messageId! })
    if ('error' in topic) return this.#answerError('reportedPatch', topic.rid!, new ProvisioError('BAD_REQUEST', topic.error, { deviceMessage: topic.error }))
    if (topic.kind === 'methodResponse') {
      if (packet.payload.length > MAX_METHOD_PAYLOAD_BYTES) {
        const reason = `method response of ${packet.payload.length} bytes exceeds IoT Hub's limit of ${MAX_METHOD_PAYLOAD_BYTES} bytes; the call is left to time out`
        return this.#options.onEvent?.({ type: 'methodResponseRefused', rid: topic.rid, reason })
      }
      return this.#options.onEvent?.({ type: 'methodResponse', rid: topic.rid, status: topic.status, payload: packet.payload })
    }
    if (this.requests.count >= this.#limits.maxInFlight) {
      const error = new ProvisioError('THROTTLED', `more than ${this.#limits.maxInFlight} twin requests in flight on one MQTT connection`, { retryAfterSeconds: 1 })
      return this.#answerError(topic.kind === 'twinGet' ? 'get' : 'reportedPatch', topic.rid, error)
    }
    const hostName = this.#hostName!
    const deviceId = this.#deviceId!
    if (topic.kind === 'twinGet') {
      this.#track('get', topic.rid, () => this.#options.api.getTwin(hostName, deviceId).then((twin) => ({ status: 200, body: JSON.stringify({ desired: twin.desired, reported: twin.reported }) })))
      return
    }
    this.#track('reportedPatch', topic.rid, () => {
      const json = parseJsonBody(packet.payload, { maxBytes: this.#limits.maxBodyBytes })
      if (typeof json !== 'object' || json === null || Array.isArray(json)) {
        throw new ProvisioError('VALIDATION_FAILED', 'a reported-properties patch must be a JSON object', { deviceMessage: 'The reported properties patch must be a JSON object.' })
      }
      return this.#options.api.patchReported(hostName, deviceId, json as Record<string, unknown>).then((version) => ({ status: 204, body: '', version }))
    })
  }

  #telemetry(packet: MqttPublishPacket, topicDeviceId: string, properties: Record<string, string>, systemProperties: Record<string, string>): void {
    if (topicDeviceId.toLowerCase() !== this.#deviceId!.toLowerCase()) {
      // IoT Hub closes a connection that publishes for another device.
      return this.connection.close('UNSUPPORTED', `telemetry topic names device ${JSON.stringify(topicDeviceId.slice(0, 128))}, but this connection is ${JSON.stringify(this.#deviceId)}`)
    }
    if (packet.payload.length > this.#limits.maxTelemetryBytes) {
      return this.connection.close('PACKET_TOO_LARGE', `telemetry payload of ${packet.payload.length} bytes exceeds the limit of ${this.#limits.maxTelemetryBytes} bytes`)
    }
    // Not acknowledged when refused: the device's SDK sees no PUBACK and retries or fails the send.
    const refused = (error: unknown): void => {
      const err = wrapUnknown(error)
      this.#options.onEvent?.({ type: 'telemetryRefused', reason: `${err.code}: ${err.reason}` })
    }
    const stored = (): void => {
      // The sink resolves in the order it was called, so PUBACKs keep the order of the PUBLISHes
      // (MQTT 3.1.1 §4.6).
      if (packet.qos === 1 && this.connection.state !== 'closed') this.connection.send({ cmd: 'puback', messageId: packet.messageId! })
      this.#options.onEvent?.({ type: 'telemetry', bytes: packet.payload.length })
    }
    let pending: void | Promise<void>
    try {
      pending = this.#options.api.telemetry(this.#hostName!, this.#deviceId!, { body: packet.payload, properties, systemProperties })
    } catch (error) {
      return refused(error)
    }
    // Acknowledged only once stored (durable telemetry, docs/protocol.md).
    if (pending instanceof Promise) pending.then(stored, refused)
    else stored()
  }

  #track(operation: 'get' | 'reportedPatch', rid: string, call: () => Promise<{ status: number; body: string; version?: number }>): void {
    let pending: Promise<{ status: number; body: string; version?: number }>
    try {
      pending = call()
    } catch (error) {
      return this.#answerError(operation, rid, error)
    }
    this.requests.begin()
    pending
      .then(
        (result) => {
          this.requests.done()
          this.#answer(operation, rid, result.status, result.body, result.version)
        },
        (error: unknown) => {
          this.requests.done()
          this.#answerError(operation, rid, error)
        },
      )
      .catch((error: unknown) => this.connection.close('INTERNAL_ERROR', `session failure answering a twin request: ${(error as Error)?.message ?? String(error)}`))
  }

  #answerError(operation: 'get' | 'reportedPatch', rid: string, error: unknown): void {
    const err = wrapUnknown(error)
    // azure-iot-device fails a twin request whose response body carries an errorCode.
    const body = toErrorBody(err, this.#options.trackingId(), formatDpsTimestamp(this.#options.clock.now()))
    this.#answer(operation, rid, err.httpStatus, JSON.stringify(body), undefined, err)
  }

  #answer(operation: 'get' | 'reportedPatch', rid: string, status: number, body: string, version?: number, error?: ProvisioError): void {
    if (this.connection.state !== 'connected') return
    const delivered = this.deliver({ topic: formatTwinResponseTopic(status, rid, version), payload: body })
    this.#options.onEvent?.({ type: 'twin', operation, rid, status, delivered, ...(error === undefined ? {} : { error }) })
  }
}
