/**
 * One port, two services (docs/protocol.md §12.1): an AMQP connection is handed to a hub's
 * {@link AmqpHubSession} or to the DPS {@link AmqpDeviceSession} by what the peer names — the
 * PLAIN user (`{idScope}/registrations/{id}` is DPS, `…@sas.{hub}` a hub), the TPM mechanism (DPS),
 * the open or sasl-init `hostname`, and, when that host name is served by both (the default
 * single-host setup), the address of the first link it attaches (`{idScope}/registrations/{id}`
 * is DPS, anything else the hub).
 *
 * Until the choice this front answers what both sessions answer alike — the protocol headers,
 * the SASL mechanisms, the SASL outcome of ANONYMOUS/EXTERNAL, the open and the begin — and keeps
 * what the peer sent. The chosen session is then fed everything from the first byte; its first
 * writes, the ones this front already made for it, are dropped, so each session runs its own
 * protocol unchanged.
 */
import frames from 'rhea/lib/frames.js'
import terminus from 'rhea/lib/terminus.js'
import type { TransportSession } from '@provisio/protocol'
import { reasonOf } from './errors.js'
import { INCOMING_WINDOW, OUTGOING_WINDOW } from './links.js'
import type { AmqpCloseReason } from './options.js'
import { ATTACH, BEGIN, OPEN, SASL_INIT, asBytes, decodeFrame } from './performatives.js'
import { SASL_MECHANISMS, SASL_OK, decodeUtf8 } from './sasl.js'
import { AMQP_HEADER, FRAME_TYPE_SASL, SASL_HEADER, checkValue, concat, readFrameHeader, readProtocolHeader } from './wire.js'

/** What every AMQP session of this package offers its transport adapter. */
export interface AmqpEndpoint extends TransportSession {
  heartbeat(): void
  openTimedOut(timeoutMs: number): void
  readonly opening: boolean
  readonly closed: boolean
}

/** What the peer named so far. */
export interface AmqpRouteHint {
  /** sasl-init or open `hostname`. */
  readonly hostName?: string
  readonly saslMechanism?: string
  /** The PLAIN authcid. */
  readonly saslUser?: string
  /** Address of the first link attached (its target when the peer sends, else its source). */
  readonly linkAddress?: string
  /** True when nothing more will be learnt: a service must be named. */
  readonly final: boolean
}

/** Which service a hint names: a hub (its canonical host name), DPS, or not known yet. */
export type AmqpRoute = { readonly hub: string } | 'dps' | 'undecided'

/**
 * The routing rule (docs/protocol.md §12.1). `hubNamed` gives the canonical host name of a hub a
 * host name or short hub name names; `dpsHost` tells whether DPS devices use that host name too.
 */
export function routeAmqp(
  hint: AmqpRouteHint,
  hubNamed: (name: string, by: 'host' | 'short') => string | undefined,
  dpsHost: (hostName: string) => boolean,
): AmqpRoute {
  if (hint.saslMechanism === 'TPM' || (hint.saslUser ?? '').includes('/registrations/')) return 'dps'
  const short = /@sas\.(?:root\.)?([^@.]+)$/i.exec(hint.saslUser ?? '')?.[1]
  if (short !== undefined) {
    const hub = hubNamed(short, 'short')
    return hub === undefined ? 'dps' : { hub }
  }
  const hub = hint.hostName === undefined ? undefined : hubNamed(hint.hostName, 'host')
  if (hub === undefined) return 'dps'
  if (!dpsHost(hint.hostName!)) return { hub }
  if (hint.linkAddress !== undefined) return /^(?:amqps?:\/\/[^/]*)?\/?[^/]+\/registrations\/[^/]+$/i.test(hint.linkAddress) ? 'dps' : { hub }
  return hint.final ? { hub } : 'undecided'
}

export interface AmqpConnectionOptions {
  readonly write: (bytes: Uint8Array) => void
  /** Called when the connection ends before a session was chosen. */
  readonly close: (reason: AmqpCloseReason) => void
  /** max-frame-size, sessions and links per session both sessions announce (their open and begin). */
  readonly limits: { readonly maxFrameSize: number; readonly maxSessions: number; readonly maxLinksPerSession: number }
  /** container-id both sessions announce. */
  readonly containerId: string
  readonly clock: { now(): number }
  /** Protocol header, SASL and open must be done within this of the connection starting (default 10,000 ms), judged by `tick()`. */
  readonly openTimeoutMs?: number
  /** Creates the session for what the peer named, writing through `write`; undefined while undecided (never when `hint.final`). */
  readonly select: (hint: AmqpRouteHint, write: (bytes: Uint8Array) => void) => AmqpEndpoint | undefined
}

type Learnt = { hostName?: string; saslMechanism?: string; saslUser?: string; linkAddress?: string }

type Stage = 'header' | 'sasl' | 'amqp-header' | 'open' | 'begin' | 'attach'

/** Picks DPS or a hub by what the peer names, then steps aside. */
export class AmqpConnection implements AmqpEndpoint {
  readonly #options: AmqpConnectionOptions
  #chosen: AmqpEndpoint | undefined
  #received: Uint8Array = new Uint8Array(0)
  /** Where the next unread frame starts in #received. */
  #at = 0
  #stage: Stage = 'header'
  #hint: Learnt = {}
  /** Writes made on the chosen session's behalf: its first this-many writes are dropped. */
  #echoes = 0
  #ended = false

  readonly #openedAtMs: number

  constructor(options: AmqpConnectionOptions) {
    this.#options = options
    this.#openedAtMs = options.clock.now()
  }

  get inFlight(): number {
    return this.#chosen?.inFlight ?? 0
  }

  idle(): Promise<void> {
    return this.#chosen?.idle() ?? Promise.resolve()
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
    // Choosing reads a handful of small frames; more than a few frames' worth is not an opening.
    if (this.#received.length > 2 * this.#options.limits.maxFrameSize + 64) return void this.#choose(true)
    try {
      this.#read()
    } catch {
      // Whatever is wrong, the chosen session says it to the peer in its own words.
      this.#choose(true)
    }
  }

  #read(): void {
    while (this.#chosen === undefined && !this.#ended) {
      if (this.#stage === 'header' || this.#stage === 'amqp-header') {
        const have = this.#received.length - this.#at
        for (let i = 0; i < Math.min(4, have); i++) if (this.#received[this.#at + i] !== AMQP_HEADER[i]) return void this.#choose(true)
        if (have < 8) return
        const kind = readProtocolHeader(this.#received.subarray(this.#at))
        if (kind === undefined || (this.#stage === 'amqp-header' && kind !== 'amqp')) return void this.#choose(true)
        this.#at += 8
        if (kind === 'amqp') {
          this.#echo(AMQP_HEADER)
          this.#stage = 'open'
        } else {
          this.#echo(SASL_HEADER)
          this.#echo(frames.write_frame(frames.sasl_frame(frames.sasl_mechanisms({ sasl_server_mechanisms: SASL_MECHANISMS }))))
          this.#stage = 'sasl'
        }
        continue
      }
      if (this.#received.length - this.#at < 8) return
      const header = readFrameHeader(this.#received, this.#at, this.#options.limits.maxFrameSize)
      if (this.#received.length - this.#at < header.size) return
      const frameBytes = this.#received.subarray(this.#at, this.#at + header.size)
      this.#at += header.size
      if (header.size === header.doff * 4) continue
      checkValue(frameBytes, header.doff * 4, header.size)
      const frame = decodeFrame(frameBytes)
      const p = frame.performative
      if (this.#stage === 'sasl') {
        if (header.type !== FRAME_TYPE_SASL || frame.code !== SASL_INIT) return void this.#choose(true)
        const mechanism = String(p['mechanism'])
        const user = mechanism === 'PLAIN' ? plainUser(asBytes(p['initial_response'])) : undefined
        this.#hint = { ...stringField('hostName', p['hostname']), saslMechanism: mechanism, ...(user === undefined ? {} : { saslUser: user }) }
        if (this.#choose(false)) return
        // Only these two end SASL alike in both services; any other mechanism decides now.
        if (mechanism !== 'ANONYMOUS' && mechanism !== 'EXTERNAL') {
          this.#choose(true)
          return
        }
        this.#echo(frames.write_frame(frames.sasl_frame(frames.sasl_outcome({ code: SASL_OK }))))
        this.#stage = 'amqp-header'
        continue
      }
      if (header.type === FRAME_TYPE_SASL) return void this.#choose(true)
      if (this.#stage === 'open') {
        if (frame.code !== OPEN) return void this.#choose(true)
        if (typeof p['hostname'] === 'string') this.#hint = { ...this.#hint, hostName: p['hostname'] as string }
        if (this.#choose(false)) return
        const { maxFrameSize, maxSessions } = this.#options.limits
        this.#echo(frames.write_frame(frames.amqp_frame(0, frames.open({ container_id: this.#options.containerId, max_frame_size: maxFrameSize, channel_max: maxSessions - 1 }))))
        this.#stage = 'begin'
        continue
      }
      if (this.#stage === 'begin') {
        if (frame.code !== BEGIN) return void this.#choose(true)
        this.#echo(
          frames.write_frame(
            frames.amqp_frame(
              0,
              frames.begin({ remote_channel: header.channel, next_outgoing_id: 0, incoming_window: INCOMING_WINDOW, outgoing_window: OUTGOING_WINDOW, handle_max: this.#options.limits.maxLinksPerSession - 1 }),
            ),
          ),
        )
        this.#stage = 'attach'
        continue
      }
      if (frame.code !== ATTACH) return void this.#choose(true)
      const terminal = terminus.unwrap(p['role'] === true ? p['source'] : p['target'])
      const address = terminal?.address
      if (typeof address === 'string') this.#hint = { ...this.#hint, linkAddress: address }
      this.#choose(true)
      return
    }
  }

  #echo(bytes: Uint8Array): void {
    this.#echoes++
    this.#options.write(bytes)
  }

  /** Asks for a session; true when one was chosen (or the connection ended). */
  #choose(final: boolean): boolean {
    if (this.#chosen !== undefined || this.#ended) return true
    const write = (bytes: Uint8Array) => {
      if (this.#echoes > 0) {
        this.#echoes--
        return
      }
      this.#options.write(bytes)
    }
    let chosen: AmqpEndpoint | undefined
    try {
      chosen = this.#options.select({ ...this.#hint, final }, write)
    } catch (error) {
      this.#ended = true
      this.#options.close({ code: 'PROTOCOL_ERROR', reason: `no service for this connection: ${reasonOf(error)}` })
      return true
    }
    if (chosen === undefined) return false
    this.#chosen = chosen
    const received = this.#received
    this.#received = new Uint8Array(0)
    chosen.push(received)
    return true
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
    if (this.#chosen === undefined && !this.#ended) this.#choose(true)
    this.#chosen?.openTimedOut(timeoutMs)
  }

  abandon(reason?: string): void {
    this.#ended = true
    this.#chosen?.abandon(reason)
  }

  tick(): void {
    if (this.#chosen !== undefined) return this.#chosen.tick()
    if (this.#ended) return
    // Still undecided: the open timeout is the front's to judge.
    const openTimeoutMs = this.#options.openTimeoutMs ?? 10_000
    if (this.#options.clock.now() - this.#openedAtMs >= openTimeoutMs) this.openTimedOut(openTimeoutMs)
  }
}

function stringField(name: 'hostName', value: unknown): { hostName?: string } {
  return typeof value === 'string' && value.length > 0 ? { [name]: value } : {}
}

function plainUser(response: Uint8Array | undefined): string | undefined {
  if (response === undefined) return undefined
  const first = response.indexOf(0)
  const second = first < 0 ? -1 : response.indexOf(0, first + 1)
  if (second < 0) return undefined
  return decodeUtf8(response.subarray(first + 1, second))
}
