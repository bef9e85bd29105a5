/**
 * DPS and the embedded hub share one MQTT listener (8883, and `/$iothub/websocket`): which dialect
 * a connection speaks is known only from its CONNECT. The router holds the first bytes until the
 * first packet is complete (bounded by the packet limit and the connect timeout), lets the adapter
 * choose a session for that CONNECT, then replays the bytes into it and steps aside.
 */
import type { TransportSession } from '@provisio/protocol'
import { DEFAULT_MQTT_LIMITS, type MqttCloseCode, type MqttCloseReason } from './session.js'
import { MqttDecoder, type MqttConnectPacket } from './wire.js'

/** What the router needs of the session it hands over to (DpsMqttSession and HubMqttSession fit). */
export interface MqttSessionLike extends TransportSession {
  end(code?: 'CONNECTION_LOST' | 'SERVER_CLOSING' | 'TAKEN_OVER', reason?: string): void
}

export interface MqttRouterOptions {
  readonly clock: { now(): number }
  /** Time from the first byte to a complete first packet (default: the DPS session's). */
  readonly connectTimeoutMs?: number
  /** Largest first packet held (default 64 KiB; a CONNECT is a few hundred bytes). */
  readonly maxFirstPacketBytes?: number
  /**
   * Creates the session for this connection. `connect` is undefined when the first packet is not
   * a CONNECT or is broken: the chosen session then sees the same bytes and closes with the reason.
   */
  readonly choose: (connect: MqttConnectPacket | undefined) => MqttSessionLike
  /** The connection ended before a session was chosen (timeout, lost, server closing). */
  readonly close: (reason: MqttCloseReason) => void
}

export class MqttRouter implements MqttSessionLike {
  readonly #options: MqttRouterOptions
  readonly #openedAtMs: number
  #decoder: MqttDecoder | undefined
  #held: Uint8Array[] = []
  #session: MqttSessionLike | undefined
  #closed = false

  constructor(options: MqttRouterOptions) {
    this.#options = options
    this.#openedAtMs = options.clock.now()
    this.#decoder = new MqttDecoder({ maxPacketBytes: options.maxFirstPacketBytes ?? 64 * 1024 })
  }

  /** The chosen session, once the first packet was read. */
  get session(): MqttSessionLike | undefined {
    return this.#session
  }

  get inFlight(): number {
    return this.#session?.inFlight ?? 0
  }

  idle(): Promise<void> {
    return this.#session?.idle() ?? Promise.resolve()
  }

  shutdown(reason = 'server shutting down'): void {
    this.end('SERVER_CLOSING', reason)
  }

  abandon(reason = 'connection closed'): void {
    this.end('CONNECTION_LOST', reason)
  }

  push(bytes: Uint8Array): void {
    if (this.#session !== undefined) return this.#session.push(bytes)
    if (this.#closed) return
    // A copy (Buffer#slice would be a view): the caller may reuse its buffer once push returns.
    this.#held.push(Uint8Array.prototype.slice.call(bytes))
    const { packets, error } = this.#decoder!.push(bytes)
    if (packets.length === 0 && error === undefined) return
    const first = packets[0]
    const session = this.#options.choose(first?.cmd === 'connect' ? first : undefined)
    this.#session = session
    const held = this.#held
    this.#held = []
    this.#decoder = undefined
    for (const chunk of held) session.push(chunk)
  }

  tick(): void {
    if (this.#session !== undefined) return this.#session.tick()
    if (this.#closed) return
    const timeout = this.#options.connectTimeoutMs ?? DEFAULT_MQTT_LIMITS.connectTimeoutMs
    if (this.#options.clock.now() - this.#openedAtMs >= timeout) this.#close('CONNECT_TIMEOUT', `no CONNECT within ${timeout} ms of the connection opening`)
  }

  end(code: 'CONNECTION_LOST' | 'SERVER_CLOSING' | 'TAKEN_OVER' = 'CONNECTION_LOST', reason = 'connection closed'): void {
    if (this.#session !== undefined) return this.#session.end(code, reason)
    this.#close(code, reason)
  }

  #close(code: MqttCloseCode, reason: string): void {
    if (this.#closed) return
    this.#closed = true
    this.#held = []
    this.#options.close({ code, reason })
  }
}
