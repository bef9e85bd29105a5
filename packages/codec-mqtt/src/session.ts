/**
 * One device connection speaking the DPS MQTT dialect (docs/protocol.md §3), sans-IO: the
 * adapter pushes the bytes it reads, writes the bytes the session hands it, and closes the
 * socket when the session says so. No sockets, no timers: keep-alive and the connect timeout are
 * judged when the adapter calls {@link DpsMqttSession.tick}, against the clock it passed in.
 *
 * Flow (§3): CONNECT (username `{idScope}/registrations/{id}/api-version=…`, clientId = the
 * registrationId, password = device SAS or none for X.509) → CONNACK (sessionPresent always 0;
 * 5 when the credentials are refused) → SUBSCRIBE `$dps/registrations/res/#` (QoS 2 granted as 1,
 * any other filter 0x80) → PUBLISH register / poll → PUBACK at once, then the response PUBLISH
 * (QoS 1) on `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]`.
 */
import {
  ProvisioError,
  acceptApiVersion,
  formatDpsTimestamp,
  toErrorBody,
  validateRegistrationId,
  wrapUnknown,
  readRegisterBody,
} from '@provisio/protocol'
import type { DeviceApi, DeviceResponse, Evidence, RegisterRequest, RegistrationOperationStatus, TpmChallengeResponse } from '@provisio/protocol'
import { DPS_RESPONSE_FILTER, formatDpsResponseTopic, parseDpsRequestTopic, parseDpsUsername } from '@provisio/protocol'
import { MqttDialectSession, connackCodeOf as connackCodeOfStatus, type MqttCloseReason, type MqttConnectionLimits, type MqttConnectionState, type MqttDialectPacket } from './connection.js'
import { DEFAULT_MAX_PACKET_BYTES, type MqttConnackPacket, type MqttConnectPacket, type MqttPublishPacket } from './wire.js'

export type { MqttCloseCode, MqttCloseReason } from './connection.js'

/** Limits of one session: the connection's (packet size, connect timeout, keep-alive ceiling, packets held before CONNACK) and the dialect's. */
export interface MqttLimits extends MqttConnectionLimits {
  /** Largest register body (the DPS limit is 96 KB, §9). */
  readonly maxBodyBytes: number
  /** Device requests of one connection awaiting the service at once; more are answered 429. */
  readonly maxInFlight: number
}

export const DEFAULT_MQTT_LIMITS: MqttLimits = Object.freeze({
  maxPacketBytes: DEFAULT_MAX_PACKET_BYTES,
  maxBodyBytes: 96 * 1024,
  connectTimeoutMs: 10_000,
  // Azure IoT Hub's documented keep-alive ceiling is 1177 s; Node's SDK asks for 180 s.
  maxKeepAliveSeconds: 1177,
  maxInFlight: 16,
  maxQueuedBeforeConnack: 32,
})

/** What the session tells the adapter about, for logs and metrics. */
export type DpsMqttEvent =
  | { readonly type: 'connected'; readonly idScope: string; readonly registrationId: string; readonly apiVersion: string; readonly clientVersion?: string; readonly keepAliveSeconds: number }
  | { readonly type: 'refused'; readonly returnCode: MqttConnackPacket['returnCode']; readonly reason: string; readonly registrationId?: string }
  | {
      readonly type: 'response'
      readonly operation: 'register' | 'operationStatus'
      readonly rid: string
      readonly status: number
      /** Set for error answers: the detailed, server-side reason. */
      readonly error?: ProvisioError
      /** False when the client had no subscription to receive it (MQTT-3.3.5: nothing is sent). */
      readonly delivered: boolean
    }

/** What a session needs. */
export interface DpsMqttSessionOptions {
  /** The device API every request becomes a call of. */
  readonly api: DeviceApi
  /** Milliseconds since the epoch: timeouts and error-body timestamps. */
  readonly clock: { now(): number }
  /** A fresh tracking id per error body. */
  readonly trackingId: () => string
  /** Bytes for the peer, in order. */
  readonly write: (bytes: Uint8Array) => void
  /** The session is over: flush what was written, then close the connection. Called once. */
  readonly close: (reason: MqttCloseReason) => void
  /** TLS client certificate chain, DER, leaf first: the evidence of X.509 devices (§6). */
  readonly clientCertificates?: readonly Uint8Array[]
  readonly limits?: Partial<MqttLimits>
  /**
   * Check the credentials at CONNECT (default true) with `api.authenticate` (else
   * `api.registrationStatus`), device API calls that attest without side effects, and answer
   * CONNACK 5 when they are refused. The engine checks them again at register.
   */
  readonly authenticateAtConnect?: boolean
  readonly onEvent?: (event: DpsMqttEvent) => void
}

/** Where a session is. */
export type DpsMqttState = MqttConnectionState

interface Identity {
  readonly idScope: string
  readonly registrationId: string
  readonly apiVersion: string
  readonly evidence: Evidence
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Creates a session for one accepted connection; the connect timeout runs from now.
 *
 * @example
 * ```ts
 * const session = createDpsMqttSession({ api, clock, trackingId, write: (b) => socket.write(b), close: () => socket.end() })
 * socket.on('data', (chunk) => session.push(chunk))
 * socket.on('close', () => session.end('CONNECTION_LOST', 'socket closed'))
 * ```
 */
export function createDpsMqttSession(options: DpsMqttSessionOptions): DpsMqttSession {
  return new DpsMqttSession(options)
}

/** One DPS MQTT connection; see the module documentation. */
export class DpsMqttSession extends MqttDialectSession {
  readonly #options: DpsMqttSessionOptions
  readonly #limits: MqttLimits
  #identity: Identity | undefined
  #subscribed = false

  constructor(options: DpsMqttSessionOptions) {
    const limits = { ...DEFAULT_MQTT_LIMITS, ...options.limits }
    super(options, limits)
    this.#options = options
    this.#limits = limits
  }

  /** The registrationId of the CONNECT username, once accepted. */
  get registrationId(): string | undefined {
    return this.#identity?.registrationId
  }

  get idScope(): string | undefined {
    return this.#identity?.idScope
  }

  // ---------------------------------------------------------------------------------------------

  protected override refuseConnect(returnCode: MqttConnackPacket['returnCode'], reason: string): void {
    this.#refuse(returnCode, reason)
  }

  protected override onPacket(packet: MqttDialectPacket): void {
    switch (packet.cmd) {
      case 'subscribe': {
        // §3 flow 1: only the response filter; QoS 2 is granted as 1, anything else fails (0x80).
        const granted = packet.subscriptions.map((s) => {
          if (s.topic !== DPS_RESPONSE_FILTER) return 0x80
          this.#subscribed = true
          return Math.min(s.qos, 1)
        })
        this.connection.send({ cmd: 'suback', messageId: packet.messageId, granted })
        return
      }
      case 'unsubscribe':
        if (packet.unsubscriptions.includes(DPS_RESPONSE_FILTER)) this.#subscribed = false
        this.connection.send({ cmd: 'unsuback', messageId: packet.messageId })
        return
      case 'publish':
        return this.#publish(packet)
    }
  }

  /** A CONNECT of MQTT 3.1.1 (the connection checked the protocol level, MQTT-3.1.2-2; DPS speaks 3.1.1 only, §3). */
  protected override onConnect(packet: MqttConnectPacket): void {
    if (packet.username === undefined) return this.#refuse(4, 'CONNECT has no username; DPS needs {idScope}/registrations/{registrationId}/api-version=…')
    const user = parseDpsUsername(packet.username)
    if ('error' in user) return this.#refuse(4, user.error)
    const idError = validateRegistrationId(user.registrationId)
    if (idError !== undefined) return this.#refuse(2, `username registrationId: ${idError.reason}`, user.registrationId)
    // §3: the clientId is the registrationId (registration ids compare case-insensitively, §0).
    if (packet.clientId.toLowerCase() !== user.registrationId.toLowerCase()) {
      return this.#refuse(2, `clientId ${JSON.stringify(packet.clientId.slice(0, 128))} differs from the username's registrationId ${JSON.stringify(user.registrationId)}`, user.registrationId)
    }
    let apiVersion: string
    try {
      apiVersion = acceptApiVersion(user.apiVersion, 'device').version
    } catch (error) {
      return this.#refuse(4, wrapUnknown(error).reason, user.registrationId)
    }
    let evidence: Evidence
    if (packet.password !== undefined) {
      let token: string
      try {
        token = strictUtf8.decode(packet.password)
      } catch {
        return this.#refuse(4, 'password is not UTF-8 text; DPS expects a SharedAccessSignature token (§2.1)', user.registrationId)
      }
      evidence = { type: 'sas', token }
    } else if (this.#options.clientCertificates !== undefined && this.#options.clientCertificates.length > 0) {
      evidence = { type: 'x509', chain: this.#options.clientCertificates }
    } else {
      return this.#refuse(5, 'neither a SAS password nor a TLS client certificate was presented', user.registrationId)
    }
    const keepalive = this.connection.keepAlive(packet.keepalive)
    const identity: Identity = { idScope: user.idScope, registrationId: user.registrationId, apiVersion, evidence }
    const accepted = () => {
      this.#identity = identity
      // §3: DPS sessions are never persistent; .NET aborts on sessionPresent = 1.
      this.connection.accept(() =>
        this.#options.onEvent?.({
          type: 'connected',
          idScope: identity.idScope,
          registrationId: identity.registrationId,
          apiVersion,
          ...(user.clientVersion === undefined ? {} : { clientVersion: user.clientVersion }),
          keepAliveSeconds: keepalive,
        }),
      )
    }
    if (this.#options.authenticateAtConnect === false) return accepted()
    this.connection.authenticating()
    const api = this.#options.api
    const check = { idScope: identity.idScope, registrationId: identity.registrationId, evidence }
    ;(api.authenticate !== undefined ? api.authenticate(check) : api.registrationStatus(check))
      .then(
        () => {
          if (this.connection.state === 'authenticating') accepted()
        },
        (error: unknown) => {
          if (this.connection.state !== 'authenticating') return
          const err = wrapUnknown(error)
          this.#refuse(connackCodeOf(err), `credentials refused: ${err.code}: ${err.reason}`, identity.registrationId)
        },
      )
      .catch((error: unknown) => this.connection.close('INTERNAL_ERROR', `session failure after CONNECT: ${(error as Error)?.message ?? String(error)}`))
  }

  #refuse(returnCode: MqttConnackPacket['returnCode'], reason: string, registrationId?: string): void {
    this.connection.refuse(returnCode, reason, () =>
      this.#options.onEvent?.({ type: 'refused', returnCode, reason, ...(registrationId === undefined ? {} : { registrationId }) }),
    )
  }

  #publish(packet: MqttPublishPacket): void {
    if (packet.qos === 2) {
      // Azure IoT's MQTT endpoints do not serve QoS 2 and close the connection (docs/protocol.md §3: QoS 0 or 1).
      return this.connection.close('UNSUPPORTED', 'PUBLISH with QoS 2 is not supported by DPS')
    }
    const topic = parseDpsRequestTopic(packet.topic)
    if ('error' in topic && topic.rid === undefined) return this.connection.close('UNSUPPORTED', topic.error)
    // §3: the PUBACK goes out before the response; .NET's state machine needs this order.
    if (packet.qos === 1) this.connection.send({ cmd: 'puback', messageId: packet.messageId! })
    if ('error' in topic) {
      const error = new ProvisioError('BAD_REQUEST', topic.error, { deviceMessage: topic.error })
      this.#answerError('operationStatus', topic.rid!, error)
      return
    }
    if (this.requests.count >= this.#limits.maxInFlight) {
      const error = new ProvisioError('THROTTLED', `more than ${this.#limits.maxInFlight} requests in flight on one MQTT connection`, { retryAfterSeconds: 1 })
      this.#answerError(topic.kind, topic.rid, error)
      return
    }
    const identity = this.#identity!
    let call: Promise<DeviceResponse<RegistrationOperationStatus> | TpmChallengeResponse>
    try {
      call = topic.kind === 'register'
        ? this.#options.api.register(this.#registerRequest(identity, packet.payload))
        : this.#options.api.operationStatus({ idScope: identity.idScope, registrationId: identity.registrationId, operationId: topic.operationId })
    } catch (error) {
      this.#answerError(topic.kind, topic.rid, error)
      return
    }
    this.requests.begin()
    call
      .then(
        (result) => {
          this.requests.done()
          if (result.status === 401) {
            // Only TPM evidence yields a challenge, and MQTT never sends TPM evidence.
            throw new ProvisioError('INTERNAL_ERROR', 'the service answered a TPM challenge on MQTT')
          }
          this.#answer(topic.kind, topic.rid, result.status, JSON.stringify(result.body), result.retryAfterSeconds)
        },
        (error: unknown) => {
          this.requests.done()
          this.#answerError(topic.kind, topic.rid, error)
        },
      )
      .catch((error: unknown) => this.#answerError(topic.kind, topic.rid, error))
  }
  /** The register call of a PUBLISH body (§1.2; .NET sends an empty body). */
  #registerRequest(identity: Identity, payload: Uint8Array): RegisterRequest {
    const registration = readRegisterBody(payload, identity.registrationId, { idFrom: 'MQTT username', maxBytes: this.#limits.maxBodyBytes })
    if (registration.tpm !== undefined) {
      // §3: TPM attestation is not offered over MQTT by DPS (D-mqtt, C-mqtt).
      throw new ProvisioError('BAD_REQUEST', 'TPM attestation was requested over MQTT', {
        deviceMessage: 'TPM attestation is not supported over MQTT; use HTTPS or AMQP.',
      })
    }
    return {
      idScope: identity.idScope,
      registrationId: identity.registrationId,
      evidence: identity.evidence,
      apiVersion: identity.apiVersion,
      ...(registration.payload === undefined ? {} : { payload: registration.payload }),
      ...(registration.csr === undefined ? {} : { csr: registration.csr }),
    }
  }

  #answerError(operation: 'register' | 'operationStatus', rid: string, error: unknown): void {
    const err = wrapUnknown(error)
    const body = toErrorBody(err, this.#options.trackingId(), formatDpsTimestamp(this.#options.clock.now()))
    // §1.4: transient answers (429, 5xx) carry a retry-after the clients wait for.
    const retryAfter = err.retryAfterSeconds ?? (err.transient ? 1 : undefined)
    this.#answer(operation, rid, err.httpStatus, JSON.stringify(body), retryAfter, err)
  }

  #answer(operation: 'register' | 'operationStatus', rid: string, status: number, body: string, retryAfterSeconds?: number, error?: ProvisioError): void {
    if (this.connection.state !== 'connected') return
    // MQTT-3.3.5: a server delivers only what a subscription matches.
    const delivered = this.#subscribed
    if (delivered) {
      this.connection.send({
        cmd: 'publish',
        topic: formatDpsResponseTopic(status, rid, retryAfterSeconds),
        payload: body,
        qos: 1,
        retain: false,
        dup: false,
        messageId: this.connection.packetId(),
      })
    }
    this.#options.onEvent?.({ type: 'response', operation, rid, status, delivered, ...(error === undefined ? {} : { error }) })
  }
}

/** CONNACK return code for a refusal at CONNECT (MQTT 3.1.1 §3.2.2.3): 2 for an invalid registrationId, else by HTTP status. */
function connackCodeOf(error: ProvisioError): MqttConnackPacket['returnCode'] {
  if (error.code === 'INVALID_REGISTRATION_ID') return 2
  return connackCodeOfStatus(error)
}
