/**
 * The MQTT 3.1.1 connection rules both device dialects (DPS in session.ts, IoT Hub in
 * hub-session.ts) follow, in one place, sans-IO: framing with limits, CONNECT first and only once,
 * the connect timeout and keep-alive judged at `tick()`, packets a client pipelines behind its
 * CONNECT held (bounded) until CONNACK, PINGREQ/DISCONNECT/PUBACK, packet identifiers, and one
 * typed close. A dialect composes one {@link MqttConnection} and handles only what is its own: the
 * CONNECT's username and credentials, SUBSCRIBE, UNSUBSCRIBE and PUBLISH.
 */
import { InFlightCounter, type ProvisioError, type TransportSession } from '@provisio/protocol'
import {
  MqttDecoder,
  encodePacket,
  type MqttConnackPacket,
  type MqttConnectPacket,
  type MqttPacket,
  type MqttPublishPacket,
  type MqttSubscribePacket,
  type MqttUnsubscribePacket,
} from './wire.js'

/** Stable codes of why a session ended. */
export type MqttCloseCode =
  /** The client sent DISCONNECT. */
  | 'CLIENT_DISCONNECT'
  /** The adapter reported the connection gone (socket closed or errored). */
  | 'CONNECTION_LOST'
  /** The adapter ended the session (server shutdown). */
  | 'SERVER_CLOSING'
  /** Another connection CONNECTed with the same clientId; the older one is closed (MQTT-3.1.4-2). */
  | 'TAKEN_OVER'
  /** Bytes that are not MQTT 3.1.1. */
  | 'MALFORMED_PACKET'
  /** A packet over `maxPacketBytes`. */
  | 'PACKET_TOO_LARGE'
  /** Valid packets in an order or direction MQTT forbids (e.g. no CONNECT first, a second CONNECT). */
  | 'PROTOCOL_VIOLATION'
  /** Something MQTT allows and DPS does not serve (QoS 2 PUBLISH, a topic outside the dialect). */
  | 'UNSUPPORTED'
  /** CONNACK with a non-zero return code was sent. */
  | 'CONNECT_REFUSED'
  | 'CONNECT_TIMEOUT'
  /** Nothing received for 1.5 × keep-alive (MQTT-3.1.2-24). */
  | 'KEEPALIVE_TIMEOUT'
  /** Hub dialect: the device's identity was disabled or deleted while it was connected. */
  | 'IDENTITY_REVOKED'
  /** Hub dialect: the SAS token the device connected with expired (IoT Hub closes the connection). */
  | 'CREDENTIALS_EXPIRED'
  /** A bug: an exception inside the session. */
  | 'INTERNAL_ERROR'

/** Why a session ended: a stable code and a sentence for the log. */
export interface MqttCloseReason {
  readonly code: MqttCloseCode
  readonly reason: string
}

/** Where a connection is; both dialects' session states are this. */
export type MqttConnectionState = 'awaitingConnect' | 'authenticating' | 'connected' | 'closed'

/** The limits the connection itself enforces (the dialects' limits extend these). */
export interface MqttConnectionLimits {
  /** Largest packet accepted, fixed header included. */
  readonly maxPacketBytes: number
  /** Time from the first byte of the connection to a complete CONNECT. */
  readonly connectTimeoutMs: number
  /**
   * Ceiling of the keep-alive the server honours, seconds: a client asking for 0 (no keep-alive)
   * or more is held to this, so an idle connection cannot stay open forever.
   */
  readonly maxKeepAliveSeconds: number
  /** Packets a client may pipeline behind its CONNECT while the credentials are checked. */
  readonly maxQueuedBeforeConnack: number
}

/** A packet only a dialect can serve. */
export type MqttDialectPacket = MqttPublishPacket | MqttSubscribePacket | MqttUnsubscribePacket

/** What a dialect gives its connection. */
export interface MqttConnectionOptions {
  readonly clock: { now(): number }
  readonly limits: MqttConnectionLimits
  /** Bytes for the peer, in order. */
  readonly write: (bytes: Uint8Array) => void
  /** The session is over; called once. */
  readonly close: (reason: MqttCloseReason) => void
  /** The first packet, an MQTT 3.1.1 CONNECT: the dialect checks it, then accepts or refuses. */
  readonly connect: (packet: MqttConnectPacket) => void
  /** SUBSCRIBE, UNSUBSCRIBE or PUBLISH of a connected client (queued ones in order after CONNACK). */
  readonly serve: (packet: MqttDialectPacket) => void
  /**
   * A CONNECT the connection refuses itself (return code 1, not MQTT 3.1.1): the dialect reports
   * it and calls {@link MqttConnection.refuse}.
   */
  readonly refuse: (returnCode: MqttConnackPacket['returnCode'], reason: string) => void
  /** A PUBACK of the client for one of our QoS 1 PUBLISHes. */
  readonly acknowledged?: (messageId: number) => void
}

/** A packet to send; a PUBLISH payload may be text. */
export type MqttOutgoingPacket = MqttPacket | (Omit<MqttPublishPacket, 'payload'> & { readonly payload: string })

/** One MQTT connection's rules; see the module documentation. The connect timeout runs from now. */
export class MqttConnection {
  readonly #options: MqttConnectionOptions
  readonly #decoder: MqttDecoder
  #state: MqttConnectionState = 'awaitingConnect'
  readonly #openedAtMs: number
  #lastPacketAtMs: number
  #keepAliveMs = 0
  #nextPacketId = 1
  #queued: MqttPacket[] = []

  constructor(options: MqttConnectionOptions) {
    this.#options = options
    this.#decoder = new MqttDecoder({ maxPacketBytes: options.limits.maxPacketBytes })
    this.#openedAtMs = this.#lastPacketAtMs = options.clock.now()
  }

  get state(): MqttConnectionState {
    return this.#state
  }

  /** A method, not a property read: callbacks may close the connection under TypeScript's narrowing. */
  isClosed(): boolean {
    return this.#state === 'closed'
  }

  /** Bytes read from the connection. Never throws; a broken stream closes the connection. */
  push(bytes: Uint8Array): void {
    if (this.#state === 'closed') return
    try {
      const { packets, error } = this.#decoder.push(bytes)
      for (const packet of packets) {
        if (this.isClosed()) return
        this.#lastPacketAtMs = this.#options.clock.now()
        this.#receive(packet)
      }
      if (error !== undefined && !this.isClosed()) {
        if (error.code === 'MQTT_UNSUPPORTED_PROTOCOL' && this.#state === 'awaitingConnect') {
          // MQTT-3.1.2-2: answer an unsupported protocol level with return code 1, then close.
          this.#options.refuse(1, error.message)
          return
        }
        this.close(error.code === 'MQTT_PACKET_TOO_LARGE' ? 'PACKET_TOO_LARGE' : 'MALFORMED_PACKET', error.message)
      }
    } catch (error) {
      this.close('INTERNAL_ERROR', `session failure: ${(error as Error)?.message ?? String(error)}`)
    }
  }

  /** Judges the connect timeout and keep-alive against the clock. */
  tick(): void {
    if (this.#state === 'closed') return
    const now = this.#options.clock.now()
    const limits = this.#options.limits
    if (this.#state === 'awaitingConnect') {
      if (now - this.#openedAtMs >= limits.connectTimeoutMs) {
        this.close('CONNECT_TIMEOUT', `no CONNECT within ${limits.connectTimeoutMs} ms of the connection opening`)
      }
      return
    }
    // MQTT-3.1.2-24: one and a half keep-alive periods without a control packet.
    if (this.#keepAliveMs > 0 && now - this.#lastPacketAtMs > this.#keepAliveMs * 1.5) {
      this.close('KEEPALIVE_TIMEOUT', `no packet for ${now - this.#lastPacketAtMs} ms; keep-alive is ${this.#keepAliveMs / 1000} s (limit 1.5×)`)
    }
  }

  /**
   * The keep-alive honoured for a CONNECT asking for `requestedSeconds` (0, or more than the
   * ceiling, is held to the ceiling); judged from now on. Returns it, in seconds.
   */
  keepAlive(requestedSeconds: number): number {
    const ceiling = this.#options.limits.maxKeepAliveSeconds
    const seconds = requestedSeconds === 0 ? ceiling : Math.min(requestedSeconds, ceiling)
    this.#keepAliveMs = seconds * 1000
    return seconds
  }

  /** The CONNECT is being checked: packets that follow are held until {@link accept}. */
  authenticating(): void {
    this.#state = 'authenticating'
  }

  /**
   * Accepts the CONNECT: CONNACK 0 with `sessionPresent` (DPS: always 0, nothing is kept between
   * connections and .NET's DPS client aborts on 1; the hub: 1 when a clean-session-0 device finds
   * its session again), then `connected()` (the dialect's event), then the held packets.
   */
  accept(connected: () => void, sessionPresent = false): void {
    this.#state = 'connected'
    this.send({ cmd: 'connack', returnCode: 0, sessionPresent })
    connected()
    const queued = this.#queued
    this.#queued = []
    for (const next of queued) {
      if (this.#state !== 'connected') return
      this.#serve(next)
    }
  }

  /** Refuses the CONNECT: CONNACK `returnCode`, then `refused()` (the dialect's event), then close. */
  refuse(returnCode: MqttConnackPacket['returnCode'], reason: string, refused: () => void): void {
    this.send({ cmd: 'connack', returnCode, sessionPresent: false })
    refused()
    // MQTT-3.2.2-5: a refused CONNECT is followed by closing the connection.
    this.close('CONNECT_REFUSED', `CONNACK ${returnCode}: ${reason}`)
  }

  /**
   * Packet identifiers of our QoS 1 PUBLISHes: 1…65535 in turn, skipping those `inUse` (a kept
   * session's unacknowledged messages keep theirs, MQTT-2.3.1-4).
   */
  packetId(inUse: (id: number) => boolean = () => false): number {
    for (let tries = 0; tries < 0xffff; tries++) {
      const id = this.#nextPacketId
      this.#nextPacketId = id === 0xffff ? 1 : id + 1
      if (!inUse(id)) return id
    }
    throw new Error('every MQTT packet identifier is in use')
  }

  /** Sends a packet unless the connection is closed. */
  send(packet: MqttOutgoingPacket): void {
    if (this.#state === 'closed') return
    this.#options.write(encodePacket(packet))
  }

  /** Ends the connection once, with the reason; held packets are dropped. */
  close(code: MqttCloseCode, reason: string): void {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    this.#queued = []
    this.#options.close({ code, reason })
  }

  // ---------------------------------------------------------------------------------------------

  #receive(packet: MqttPacket): void {
    switch (this.#state) {
      case 'awaitingConnect':
        if (packet.cmd !== 'connect') return this.close('PROTOCOL_VIOLATION', `first packet is ${packet.cmd.toUpperCase()}, not CONNECT (MQTT-3.1.0-1)`)
        // MQTT-3.1.2-2: both dialects speak 3.1.1 only.
        if (packet.protocolId !== 'MQTT' || packet.protocolVersion !== 4) {
          return this.#options.refuse(1, `protocol ${packet.protocolId} level ${packet.protocolVersion} is not MQTT 3.1.1 (level 4)`)
        }
        return this.#options.connect(packet)
      case 'authenticating': {
        if (packet.cmd === 'connect') return this.close('PROTOCOL_VIOLATION', 'second CONNECT on one connection (MQTT-3.1.0-2)')
        const most = this.#options.limits.maxQueuedBeforeConnack
        if (this.#queued.length >= most) return this.close('PROTOCOL_VIOLATION', `more than ${most} packets sent before CONNACK`)
        this.#queued.push(packet)
        return
      }
      case 'connected':
        return this.#serve(packet)
      case 'closed':
        return
    }
  }

  #serve(packet: MqttPacket): void {
    switch (packet.cmd) {
      case 'subscribe':
      case 'unsubscribe':
      case 'publish':
        return this.#options.serve(packet)
      case 'puback':
        // The dialect keeps what a persistent session must redeliver (MQTT-4.4.0-1); DPS keeps nothing.
        this.#options.acknowledged?.(packet.messageId)
        return
      case 'pingreq':
        this.send({ cmd: 'pingresp' })
        return
      case 'disconnect':
        return this.close('CLIENT_DISCONNECT', 'client sent DISCONNECT')
      case 'connect':
        return this.close('PROTOCOL_VIOLATION', 'second CONNECT on one connection (MQTT-3.1.0-2)')
      default:
        // PUBREC/PUBREL/PUBCOMP belong to QoS 2, which is never in play; CONNACK, SUBACK,
        // UNSUBACK and PINGRESP only travel server → client.
        return this.close('PROTOCOL_VIOLATION', `${packet.cmd.toUpperCase()} is not expected from a client here`)
    }
  }
}

/**
 * What both dialect sessions are on the outside: a composed {@link MqttConnection} fed by
 * `push()`, judged by `tick()`, ended by `shutdown()`, `abandon()` or `end()` — the
 * {@link TransportSession} contract. A dialect implements the three handlers and counts its
 * requests in `requests`.
 */
export abstract class MqttDialectSession implements TransportSession {
  protected readonly connection: MqttConnection
  /** Device requests awaiting the service. */
  protected readonly requests = new InFlightCounter()

  constructor(ports: Pick<MqttConnectionOptions, 'clock' | 'write' | 'close'>, limits: MqttConnectionLimits) {
    this.connection = new MqttConnection({
      clock: ports.clock,
      limits,
      write: ports.write,
      close: (reason) => {
        this.onClosed()
        ports.close(reason)
      },
      connect: (packet) => this.onConnect(packet),
      serve: (packet) => this.onPacket(packet),
      refuse: (returnCode, reason) => this.refuseConnect(returnCode, reason),
      acknowledged: (messageId) => this.onAcknowledged(messageId),
    })
  }

  get state(): MqttConnectionState {
    return this.connection.state
  }

  /** Bytes read from the connection. Never throws; a broken stream closes the session. */
  push(bytes: Uint8Array): void {
    this.connection.push(bytes)
  }

  /** Judges the connect timeout and keep-alive against the clock; call it every second or so. */
  tick(): void {
    this.connection.tick()
  }

  /** Device requests awaiting the service. */
  get inFlight(): number {
    return this.requests.count
  }

  idle(): Promise<void> {
    return this.requests.idle()
  }

  /** The server is closing (MQTT 3.1.1 has no server goodbye: the connection just ends). */
  shutdown(reason = 'server shutting down'): void {
    this.end('SERVER_CLOSING', reason)
  }

  /** The transport is gone; answers still pending are dropped. */
  abandon(reason = 'connection closed'): void {
    this.end('CONNECTION_LOST', reason)
  }

  /**
   * The adapter ends the session (connection lost, server closing, or taken over by a newer
   * connection of the same client). Answers still pending are dropped.
   */
  end(code: 'CONNECTION_LOST' | 'SERVER_CLOSING' | 'TAKEN_OVER' = 'CONNECTION_LOST', reason = 'connection closed'): void {
    this.connection.close(code, reason)
  }

  /** The first packet, an MQTT 3.1.1 CONNECT. */
  protected abstract onConnect(packet: MqttConnectPacket): void
  /** SUBSCRIBE, UNSUBSCRIBE or PUBLISH of a connected client. */
  protected abstract onPacket(packet: MqttDialectPacket): void
  /** Reports and sends a refusal (CONNACK `returnCode`), then the connection closes. */
  protected abstract refuseConnect(returnCode: MqttConnackPacket['returnCode'], reason: string): void
  /** A PUBACK for one of our QoS 1 PUBLISHes. */
  protected onAcknowledged(_messageId: number): void {}
  /** The connection ended (any reason), before the adapter hears of it. */
  protected onClosed(): void {}
}

/**
 * CONNACK return code for credentials refused at CONNECT (MQTT 3.1.1 §3.2.2.3): 3 when the
 * service cannot tell now (429, 5xx), 5 for who-you-are (401, 403, 404), otherwise 4.
 */
export function connackCodeOf(error: ProvisioError): MqttConnackPacket['returnCode'] {
  if (error.httpStatus === 429 || error.httpStatus >= 500) return 3
  if (error.httpStatus === 401 || error.httpStatus === 403 || error.httpStatus === 404) return 5
  return 4
}
