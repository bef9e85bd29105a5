/**
 * One port, two services (docs/protocol.md §12.1): an AMQP connection is told apart by the host
 * name the peer names — the open frame's `hostname` (Node clients send the AMQP header straight
 * after TLS) or the sasl-init `hostname`, else a PLAIN user `…@sas.{hub}` — and handed to the
 * session of that service: a hub's {@link AmqpHubSession} or the DPS {@link AmqpDeviceSession}.
 *
 * Until then this front answers the protocol header itself (the same bytes either session would
 * write: the AMQP header, or the SASL header and the mechanisms both offer) and keeps what the peer
 * sent. The chosen session is then fed everything from the first byte; the bytes it writes that
 * were already written are checked and dropped, so each session runs its own protocol unchanged.
 */
import frames from 'rhea/lib/frames.js'
import { AmqpCodecError, reasonOf } from './errors.js'
import type { AmqpCloseReason } from './options.js'
import { OPEN, SASL_INIT, asBytes, decodeFrame } from './performatives.js'
import { SASL_MECHANISMS, decodeUtf8 } from './sasl.js'
import { AMQP_HEADER, SASL_HEADER, checkValue, concat, readFrameHeader, readProtocolHeader } from './wire.js'

/** What every AMQP session of this package offers its transport adapter. */
export interface AmqpEndpoint {
  push(bytes: Uint8Array): void
  shutdown(reason?: string): void
  heartbeat(): void
  openTimedOut(timeoutMs: number): void
  abandon(): void
  /** Time-driven work (token expiry on hub connections); a no-op where there is none. */
  tick?(): void
  readonly opening: boolean
  readonly closed: boolean
}

/** What the peer named before the session was chosen. */
export interface AmqpRouteHint {
  /** Open `hostname`, or sasl-init `hostname`. */
  readonly hostName?: string
  /** The PLAIN authcid, when SASL PLAIN was used. */
  readonly saslUser?: string
}

export interface AmqpConnectionOptions {
  readonly write: (bytes: Uint8Array) => void
  /** Called when the connection ends before a session was chosen. */
  readonly close: (reason: AmqpCloseReason) => void
  /** Largest frame read while choosing (the open or sasl-init). */
  readonly maxFrameSize?: number
  /** Creates the session for what the peer named; it must write through `write`. */
  readonly select: (hint: AmqpRouteHint, write: (bytes: Uint8Array) => void) => AmqpEndpoint
}

/** Picks DPS or a hub by the host name the peer names, then steps aside. */
export class AmqpConnection implements AmqpEndpoint {
  readonly #options: AmqpConnectionOptions
  #chosen: AmqpEndpoint | undefined
  #received: Uint8Array = new Uint8Array(0)
  /** Bytes written on the chosen session's behalf, still to be matched by what it writes. */
  #written: Uint8Array = new Uint8Array(0)
  #header: 'amqp' | 'sasl' | undefined
  #ended = false

  constructor(options: AmqpConnectionOptions) {
    this.#options = options
  }

  get opening(): boolean {
    return this.#chosen === undefined ? !this.#ended : this.#chosen.opening
  }

  get closed(): boolean {
    return this.#chosen === undefined ? this.#ended : this.#chosen.closed
  }

  push(bytes: Uint8Array): void {
    if (this.#chosen !== undefined) return this.#chosen.push(bytes)
    if (this.#ended) return
    this.#received = concat(this.#received, bytes)
    if (this.#received.length > (this.#options.maxFrameSize ?? 64 * 1024) + 16) return this.#choose({})
    try {
      this.#read()
    } catch {
      // Whatever is wrong, the session says it to the peer in its own words.
      this.#choose({})
    }
  }

  #read(): void {
    if (this.#header === undefined) {
      if (this.#received.length < 8) {
        for (let i = 0; i < this.#received.length && i < 4; i++) if (this.#received[i] !== AMQP_HEADER[i]) return this.#choose({})
        return
      }
      const kind = readProtocolHeader(this.#received)
      if (kind === undefined) return this.#choose({})
      this.#header = kind
      if (kind === 'amqp') this.#write(AMQP_HEADER)
      else {
        this.#write(SASL_HEADER)
        this.#write(frames.write_frame(frames.sasl_frame(frames.sasl_mechanisms({ sasl_server_mechanisms: SASL_MECHANISMS }))))
      }
    }
    const at = 8
    if (this.#received.length < at + 8) return
    const header = readFrameHeader(this.#received, at, this.#options.maxFrameSize ?? 64 * 1024)
    if (this.#received.length < at + header.size) return
    const frameBytes = this.#received.subarray(at, at + header.size)
    checkValue(frameBytes, header.doff * 4, header.size)
    const frame = decodeFrame(frameBytes)
    const hostName = typeof frame.performative['hostname'] === 'string' ? (frame.performative['hostname'] as string) : undefined
    if (this.#header === 'amqp' && frame.code === OPEN) return this.#choose(hostName === undefined ? {} : { hostName })
    if (this.#header === 'sasl' && frame.code === SASL_INIT) {
      const user = String(frame.performative['mechanism']) === 'PLAIN' ? plainUser(asBytes(frame.performative['initial_response'])) : undefined
      return this.#choose({ ...(hostName === undefined ? {} : { hostName }), ...(user === undefined ? {} : { saslUser: user }) })
    }
    this.#choose({})
  }

  #write(bytes: Uint8Array): void {
    this.#written = concat(this.#written, bytes)
    this.#options.write(bytes)
  }

  #choose(hint: AmqpRouteHint): void {
    const write = (bytes: Uint8Array) => {
      if (this.#written.length === 0) return this.#options.write(bytes)
      const n = Math.min(bytes.length, this.#written.length)
      for (let i = 0; i < n; i++) {
        if (bytes[i] !== this.#written[i]) throw new AmqpCodecError('PROTOCOL_ERROR', 'the chosen session opened differently from the bytes already sent')
      }
      this.#written = this.#written.subarray(n)
      if (n < bytes.length) this.#options.write(bytes.subarray(n))
    }
    try {
      this.#chosen = this.#options.select(hint, write)
    } catch (error) {
      this.#ended = true
      this.#options.close({ code: 'PROTOCOL_ERROR', reason: `no session for this connection: ${reasonOf(error)}` })
      return
    }
    const received = this.#received
    this.#received = new Uint8Array(0)
    this.#chosen.push(received)
  }

  shutdown(reason?: string): void {
    if (this.#chosen !== undefined) return this.#chosen.shutdown(reason)
    if (this.#ended) return
    this.#ended = true
    this.#options.close({ code: 'shutdown', reason: reason ?? 'server shutting down' })
  }

  heartbeat(): void {
    this.#chosen?.heartbeat()
  }

  openTimedOut(timeoutMs: number): void {
    if (this.#chosen !== undefined) return this.#chosen.openTimedOut(timeoutMs)
    if (this.#ended) return
    // Still choosing: the peer never sent its open or sasl-init. Let the default session end it properly.
    this.#choose({})
    const chosen = this.#chosen as AmqpEndpoint | undefined
    chosen?.openTimedOut(timeoutMs)
  }

  abandon(): void {
    this.#ended = true
    this.#chosen?.abandon()
  }

  tick(): void {
    this.#chosen?.tick?.()
  }
}

function plainUser(response: Uint8Array | undefined): string | undefined {
  if (response === undefined) return undefined
  const first = response.indexOf(0)
  const second = first < 0 ? -1 : response.indexOf(0, first + 1)
  if (second < 0) return undefined
  return decodeUtf8(response.subarray(first + 1, second))
}
