// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- rhea ships no typings for lib/*.js; every project compiling this source (server, tests) needs these ambient declarations
/// <reference path="./rhea-internals.d.ts" />
/**
 * Sans-IO AMQP 1.0 connection of an embedded hub (docs/protocol.md §12).
 *
 * Same contract as the DPS session (session.ts): the adapter feeds bytes to `push`, the session
 * writes through `options.write` and ends through `options.close`; it owns no socket and no
 * timer — the adapter calls {@link AmqpHubSession.tick} so that tokens that expire without renewal
 * detach their links.
 *
 * What a connection proves and what its links may do:
 * - SASL: none (Node clients send the AMQP header right after TLS), ANONYMOUS, EXTERNAL, or PLAIN
 *   with `{policy}@sas.root.{hub}` / `{deviceId}@sas.{hub}` and a SAS token as password, which
 *   authorizes the connection as a put-token would.
 * - `$cbs`: put-token with a hub policy token (audience = the hub host, policy granting
 *   ServiceConnect) or a device token (audience `{host}/devices/{id}`); answered with `status-code`
 *   200, 400 (malformed) or 401 (with the reason). A new put-token for an audience replaces its expiry.
 * - `/devices/{id}/messages/events`: the device's telemetry, with a valid token for that device
 *   or, without one, the TLS client certificate checked at attach (X.509 devices skip CBS).
 * - `/devices/{id}/twin` (both directions, same authorization): GET, PATCH of reported properties,
 *   PUT/DELETE of the desired-change subscription, answered on the device's receiver link with the
 *   request's correlation-id and a `status` annotation; desired changes the adapter hands to
 *   {@link AmqpHubSession.pushDesired} go out there without one.
 * - `/devices/{id}/methods/devicebound` (both directions): direct method requests the adapter hands
 *   to {@link AmqpHubSession.deliverMethod}; the device's responses come back as `methodResponse` events.
 * Every other address is refused at attach with `amqp:not-found` (or `amqp:not-implemented` for
 * the service addresses not served yet) and a reason.
 */
import { ERROR_CATALOG, InFlightCounter, MAX_METHOD_PAYLOAD_BYTES, ProvisioError, parseJsonBody, wrapUnknown, type HubDeviceApi, type TransportSession } from '@provisio/protocol'
import frames, { type FrameSpec, type Performative } from 'rhea/lib/frames.js'
import message from 'rhea/lib/message.js'
import terminus from 'rhea/lib/terminus.js'
import { AmqpCodecError, reasonOf } from './errors.js'
import {
  decodeMessage,
  encodeCbsAnswer,
  encodeDesiredPush,
  encodeMethodRequest,
  encodeTwinResponse,
  MAX_HUB_MESSAGE_BODY_BYTES,
  parseHubAddress,
  readAudience,
  readC2dSend,
  readMethodResponse,
  readPutToken,
  readTelemetry,
  readTwinRequest,
  type C2dSendInput,
  type TwinOperation,
} from './hub-messages.js'
import { INCOMING_WINDOW, OUTGOING_WINDOW, TRANSFER_OVERHEAD, lowestFree } from './links.js'
import { MIN_MAX_FRAME_SIZE, type AmqpCloseReason, type AmqpLimits } from './options.js'
import { ATTACH, BEGIN, CLOSE, DETACH, DISPOSITION, EMPTY_FRAME, END, FLOW, OPEN, SASL_INIT, TRANSFER, asBytes, decodeFrame, describeError, numberOr } from './performatives.js'
import { SASL_AUTH, SASL_MECHANISMS, SASL_OK, SASL_SYS_TEMP, decodeUtf8 } from './sasl.js'
import { AMQP_HEADER, FRAME_TYPE_SASL, SASL_HEADER, checkValue, concat, readFrameHeader, readProtocolHeader, toRheaBytes } from './wire.js'

/** Limits of a hub connection: 256 KB messages plus room for their properties; Node puts up to 9 links in one session. */
/** Default of `AmqpHubSessionOptions.openTimeoutMs`. */
const DEFAULT_HUB_OPEN_TIMEOUT_MS = 10_000

export const DEFAULT_HUB_AMQP_LIMITS: AmqpLimits = Object.freeze({
  maxFrameSize: 64 * 1024,
  maxMessageBytes: MAX_HUB_MESSAGE_BODY_BYTES + 32 * 1024,
  maxSessions: 4,
  maxLinksPerSession: 16,
  linkCredit: 32,
  tpmChunkBytes: 400,
  maxInFlight: 16,
})

/** What happened on a hub connection, for logs and metrics. */
export type AmqpHubEvent =
  | { readonly type: 'token'; readonly audience: 'hub' | 'device'; readonly status: number; readonly reason?: string }
  | { readonly type: 'telemetry'; readonly deviceId: string; readonly bytes: number }
  | { readonly type: 'telemetryRefused'; readonly deviceId: string; readonly reason: string }
  | { readonly type: 'linkRefused'; readonly address: string; readonly reason: string }
  | { readonly type: 'linkExpired'; readonly reason: string }
  | { readonly type: 'twin'; readonly deviceId: string; readonly operation: TwinOperation | 'invalid'; readonly status: number; readonly reason?: string }
  /** The device's method receiver link attached: calls for it may be delivered on this connection now. */
  | { readonly type: 'methodsReady'; readonly deviceId: string }
  /** The device's last method receiver link on this connection went away: calls delivered on it will not be answered. */
  | { readonly type: 'methodsGone'; readonly deviceId: string }
  | { readonly type: 'methodResponse'; readonly deviceId: string; readonly rid: string; readonly status: number; readonly payload: Uint8Array }
  | { readonly type: 'methodResponseRefused'; readonly deviceId: string; readonly reason: string }

export interface AmqpHubSessionOptions {
  /** Canonical host name of the hub this connection opened. */
  readonly hostName: string
  /** The hub's device side: device tokens and certificates, telemetry. */
  readonly api: HubDeviceApi
  /**
   * Checks a hub policy token for service links: verified by the hub's policy named in `skn`,
   * granting ServiceConnect. Resolves with when it expires; throws a ProvisioError to refuse.
   */
  readonly authorizeService: (token: string) => Promise<{ readonly expiresAtMs?: number }>
  readonly write: (bytes: Uint8Array) => void
  readonly close: (reason: AmqpCloseReason) => void
  readonly clock: { now(): number }
  /** TLS client certificate chain, DER leaf first (X.509 devices). */
  readonly clientCertificates?: readonly Uint8Array[]
  readonly containerId?: string
  readonly onPeerIdleTimeout?: (ms: number) => void
  /** Protocol header, SASL and open must be done within this of the connection starting (default 10,000 ms), judged by `tick()`. */
  readonly openTimeoutMs?: number
  readonly onEvent?: (event: AmqpHubEvent) => void
  readonly limits?: Partial<AmqpLimits>
  /**
   * The hub's cloud-to-device queue (the `CloudToDevice` of @provisio/hub): `send` resolves once the
   * message is queued, throws a ProvisioError to refuse (NOT_FOUND, DEVICE_QUEUE_FULL,
   * PAYLOAD_TOO_LARGE, ...). Without it `/messages/devicebound` is refused as not served.
   */
  readonly c2d?: { send(hostName: string, deviceId: string, input: C2dSendInput): Promise<unknown> }
}

type Phase = 'header' | 'sasl' | 'sasl-done' | 'open-wait' | 'open' | 'closed'

interface HubLink {
  readonly name: string
  readonly remoteHandle: number
  readonly localHandle: number
  /** 'out': we send (the peer's receiver); 'in': the peer sends. */
  readonly direction: 'out' | 'in'
  readonly kind: 'cbs' | 'deviceEvents' | 'c2dSend' | 'twin' | 'methods'
  readonly deviceId?: string
  /** `com.microsoft:channel-correlation-id` of the attach (pairs a twin sender with its receiver). */
  readonly channel?: string
  /** Messages waiting for credit on an outgoing twin or methods link. */
  readonly outbox: Uint8Array[]
  /** The authorization the link lives on (undefined: a certificate, which does not expire). */
  readonly authKey?: string
  deliveryCount: number
  credit: number
  partial?: { deliveryId: number; settled: boolean; bytes: Uint8Array; oversize: number }
}

interface HubSession {
  readonly remoteChannel: number
  readonly localChannel: number
  nextOutgoingId: number
  nextIncomingId: number
  incomingWindowLeft: number
  remoteIncomingWindow: number
  nextDeliveryId: number
  readonly links: Map<number, HubLink>
  readonly refused: Set<number>
  /** CBS answers waiting for credit on the session's `$cbs` receiver link. */
  readonly outbox: Uint8Array[]
}

const SERVICE_KEY = 'service'
/** Largest twin request body read (IoT Hub's limit on a twin section is 32 KB; room for the JSON around it). */
const MAX_TWIN_BODY_BYTES = 64 * 1024
const deviceKey = (deviceId: string) => `device:${deviceId.toLowerCase()}`

/** One AMQP connection to an embedded hub. */
export class AmqpHubSession implements TransportSession {
  readonly #options: AmqpHubSessionOptions
  readonly #limits: AmqpLimits
  #phase: Phase = 'header'
  #input: Uint8Array = new Uint8Array(0)
  #paused = false
  #peerMaxFrame = MIN_MAX_FRAME_SIZE
  #sentOpen = false
  readonly #sessions = new Map<number, HubSession>()
  /** Valid authorizations by key ('service', 'device:{id}'): when each expires (undefined: never). */
  readonly #auth = new Map<string, number | undefined>()
  /** Telemetry and C2D sends awaiting the hub (what a graceful shutdown waits for). */
  readonly #requests = new InFlightCounter()
  readonly #openedAtMs: number
  #lastWriteAtMs: number
  /** The peer's idle-time-out (ms), once its open announced one. */
  #peerIdleMs: number | undefined
  /** Devices (by key) whose desired-property changes this connection pushes. */
  readonly #desired = new Set<string>()

  constructor(options: AmqpHubSessionOptions) {
    this.#options = options
    this.#limits = { ...DEFAULT_HUB_AMQP_LIMITS, ...options.limits }
    this.#openedAtMs = options.clock.now()
    this.#lastWriteAtMs = this.#openedAtMs
  }

  /** Requests accepted and not yet answered. */
  get inFlight(): number {
    return this.#requests.count
  }

  idle(): Promise<void> {
    return this.#requests.idle()
  }

  /** Writes to the peer, remembering when (heartbeats are due after half the peer's idle-time-out of silence). */
  #write(bytes: Uint8Array): void {
    this.#lastWriteAtMs = this.#options.clock.now()
    this.#options.write(bytes)
  }

  get closed(): boolean {
    return this.#phase === 'closed'
  }

  get opening(): boolean {
    return this.#phase !== 'open' && this.#phase !== 'closed'
  }

  push(bytes: Uint8Array): void {
    if (this.#phase === 'closed') return
    this.#input = concat(this.#input, bytes)
    if (this.#paused && this.#input.length > 2 * this.#limits.maxFrameSize + 8) {
      this.#fail(new AmqpCodecError('RESOURCE_LIMIT', `${this.#input.length} bytes queued while a verdict was pending`))
      return
    }
    this.#drain()
  }

  shutdown(reason = 'server shutting down'): void {
    if (this.#phase === 'closed') return
    if (this.#phase === 'open') this.#send(frames.amqp_frame(0, frames.close({ error: { condition: 'amqp:connection:forced', description: reason } })))
    this.#end({ code: 'shutdown', reason })
  }

  heartbeat(): void {
    if (this.#phase === 'open') this.#write(EMPTY_FRAME)
  }

  openTimedOut(timeoutMs: number): void {
    if (!this.opening) return
    const error = new AmqpCodecError('OPEN_TIMEOUT', `the connection did not open within ${timeoutMs} ms (stuck at ${this.#phase})`)
    if (this.#phase === 'sasl') {
      this.#send(frames.sasl_frame(frames.sasl_outcome({ code: SASL_SYS_TEMP })))
      this.#end({ code: error.code, reason: error.message, condition: error.condition })
      return
    }
    this.#fail(error)
  }

  abandon(): void {
    this.#phase = 'closed'
  }

  /**
   * Time passed (about once a second): refuses a connection not open within `openTimeoutMs`, keeps
   * the peer's idle timer from expiring, and detaches links whose token expired.
   */
  tick(): void {
    const now = this.#options.clock.now()
    if (this.opening) {
      const openTimeoutMs = this.#options.openTimeoutMs ?? DEFAULT_HUB_OPEN_TIMEOUT_MS
      if (now - this.#openedAtMs >= openTimeoutMs) this.openTimedOut(openTimeoutMs)
      return
    }
    if (this.#peerIdleMs !== undefined && now - this.#lastWriteAtMs >= Math.max(1000, Math.floor(this.#peerIdleMs / 2))) this.heartbeat()
    this.#expireTokens(now)
  }

  /**
   * Forgets authorizations whose token expired and detaches the links that lived on them with
   * `amqp:unauthorized-access` (the peer had to renew with a new put-token). Call about once a second.
   */
  #expireTokens(now: number): void {
    if (this.#phase !== 'open') return
    const expired = new Set<string>()
    for (const [key, expiresAtMs] of this.#auth) {
      if (expiresAtMs !== undefined && expiresAtMs <= now) expired.add(key)
    }
    if (expired.size === 0) return
    for (const key of expired) this.#auth.delete(key)
    this.#detachWhere(
      (link) => link.authKey !== undefined && expired.has(link.authKey),
      (link) => `the token for ${link.authKey === SERVICE_KEY ? `hub ${this.#options.hostName}` : `device ${JSON.stringify(link.deviceId)}`} expired without renewal (put a new token on $cbs before expiry)`,
    )
  }

  /**
   * The device's identity was disabled or deleted: its authorization is forgotten and every link of
   * it on this connection (token or certificate) is detached with `amqp:unauthorized-access`.
   */
  revoke(deviceId: string, reason: string): void {
    if (this.#phase !== 'open') return
    const key = deviceKey(deviceId)
    this.#auth.delete(key)
    this.#desired.delete(key)
    this.#detachWhere((link) => link.deviceId !== undefined && deviceKey(link.deviceId) === key, () => reason)
  }

  /**
   * Sends a desired-property change (the patch with `$version`) on the device's twin receiver link
   * when it subscribed on this connection. Returns whether it was sent or queued for credit.
   */
  pushDesired(deviceId: string, patch: Record<string, unknown>): boolean {
    if (this.#phase !== 'open' || !this.#desired.has(deviceKey(deviceId))) return false
    return this.#enqueue('twin', deviceId, undefined, () => encodeDesiredPush(patch))
  }

  /**
   * Delivers a direct method request on the device's method receiver link. Returns false when this
   * connection holds no such link of the device.
   */
  deliverMethod(deviceId: string, methodName: string, rid: string, payload: string): boolean {
    if (this.#phase !== 'open') return false
    return this.#enqueue('methods', deviceId, undefined, () => encodeMethodRequest(methodName, rid, payload))
  }

  /** Whether the device has a method receiver link on this connection. */
  hasMethodsLink(deviceId: string): boolean {
    return this.#outLink('methods', deviceId, undefined) !== undefined
  }

  /** Queues a message on the device's outgoing link of `kind` (the one of `channel` when given). */
  #enqueue(kind: 'twin' | 'methods', deviceId: string, channel: string | undefined, encode: () => Uint8Array): boolean {
    const found = this.#outLink(kind, deviceId, channel)
    if (found === undefined) return false
    try {
      found.link.outbox.push(encode())
      this.#flush(found.session)
    } catch (error) {
      this.#fail(error)
      return false
    }
    return true
  }

  #outLink(kind: 'twin' | 'methods', deviceId: string, channel: string | undefined): { session: HubSession; link: HubLink } | undefined {
    const key = deviceKey(deviceId)
    let fallback: { session: HubSession; link: HubLink } | undefined
    for (const session of this.#sessions.values()) {
      for (const link of session.links.values()) {
        if (link.direction !== 'out' || link.kind !== kind || link.deviceId === undefined || deviceKey(link.deviceId) !== key) continue
        if (channel === undefined || link.channel === channel) return { session, link }
        fallback ??= { session, link }
      }
    }
    return fallback
  }

  /** Detaches (closed, unauthorized-access) the links `which` selects. */
  #detachWhere(which: (link: HubLink) => boolean, reasonOfLink: (link: HubLink) => string): void {
    for (const session of this.#sessions.values()) {
      for (const [handle, link] of [...session.links]) {
        if (!which(link)) continue
        const reason = reasonOfLink(link)
        session.links.delete(handle)
        session.refused.add(handle)
        this.#send(frames.amqp_frame(session.localChannel, frames.detach({ handle: link.localHandle, closed: true, error: { condition: 'amqp:unauthorized-access', description: reason } })))
        this.#options.onEvent?.({ type: 'linkExpired', reason })
        this.#linkGone(link)
      }
    }
  }

  /** A link went away: the last method receiver of a device ends its calls here. */
  #linkGone(link: HubLink): void {
    if (link.kind !== 'methods' || link.direction !== 'out' || link.deviceId === undefined) return
    if (this.#outLink('methods', link.deviceId, undefined) === undefined) this.#options.onEvent?.({ type: 'methodsGone', deviceId: link.deviceId })
  }

  // ---------------------------------------------------------------------------------------------
  // Input

  #drain(): void {
    try {
      while (!this.#paused && this.#phase !== 'closed') {
        if (this.#phase === 'header' || this.#phase === 'sasl-done') {
          if (!this.#header()) return
          continue
        }
        if (this.#input.length < 8) return
        const header = readFrameHeader(this.#input, 0, this.#limits.maxFrameSize)
        if (this.#input.length < header.size) return
        const frameBytes = this.#input.subarray(0, header.size)
        this.#input = this.#input.subarray(header.size)
        if (header.size === header.doff * 4) continue
        checkValue(frameBytes, header.doff * 4, header.size)
        const frame = decodeFrame(frameBytes)
        if (header.type === FRAME_TYPE_SASL) {
          if (this.#phase !== 'sasl') throw new AmqpCodecError('PROTOCOL_ERROR', 'SASL frame outside the SASL layer')
          this.#sasl(frame.code, frame.performative)
        } else {
          if (this.#phase === 'sasl') throw new AmqpCodecError('PROTOCOL_ERROR', 'AMQP frame before the SASL outcome')
          this.#amqp(header.channel, frame.code, frame.performative, frame.payload)
        }
      }
    } catch (error) {
      this.#fail(error)
    }
  }

  #header(): boolean {
    const have = Math.min(4, this.#input.length)
    for (let i = 0; i < have; i++) {
      if (this.#input[i] !== AMQP_HEADER[i]) throw this.#badHeader()
    }
    if (this.#input.length < 8) return false
    const kind = readProtocolHeader(this.#input)
    if (kind === undefined || (this.#phase === 'sasl-done' && kind !== 'amqp')) throw this.#badHeader()
    this.#input = this.#input.subarray(8)
    if (this.#phase === 'sasl-done' || kind === 'amqp') {
      this.#write(AMQP_HEADER)
      this.#phase = 'open-wait'
      return true
    }
    this.#write(SASL_HEADER)
    this.#send(frames.sasl_frame(frames.sasl_mechanisms({ sasl_server_mechanisms: SASL_MECHANISMS })))
    this.#phase = 'sasl'
    return true
  }

  #badHeader(): AmqpCodecError {
    this.#write(this.#phase === 'sasl-done' ? AMQP_HEADER : SASL_HEADER)
    const shown = [...this.#input.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('')
    return new AmqpCodecError('BAD_PROTOCOL_HEADER', `protocol header ${shown} is not AMQP 1.0 (AMQP0100) or SASL (AMQP3100)`)
  }

  // ---------------------------------------------------------------------------------------------
  // SASL (docs/protocol.md §12.1)

  #sasl(code: number, p: Performative): void {
    if (code !== SASL_INIT) throw new AmqpCodecError('PROTOCOL_ERROR', `unexpected SASL performative 0x${code.toString(16)} (the hub's mechanisms take one step)`)
    const mechanism = String(p['mechanism'])
    if (mechanism === 'ANONYMOUS' || mechanism === 'EXTERNAL') return this.#outcome(SASL_OK)
    if (mechanism !== 'PLAIN') return this.#refuse(`SASL mechanism ${JSON.stringify(mechanism.slice(0, 40))} is not served by hub ${this.#options.hostName} (PLAIN, ANONYMOUS, EXTERNAL or none)`)
    const parts = splitPlain(asBytes(p['initial_response']))
    if (parts === undefined) return this.#refuse('PLAIN response is not [authzid] NUL authcid NUL passwd in UTF-8')
    const [user, token] = parts
    const hubName = this.#options.hostName.split('.')[0]!.toLowerCase()
    const service = /^(.+)@sas\.root\.([^@]+)$/i.exec(user)
    const device = /^(.+)@sas\.([^@]+)$/i.exec(user)
    const match = service ?? device
    if (match === null || match[2]!.toLowerCase() !== hubName) {
      return this.#refuse(`PLAIN user ${JSON.stringify(user.slice(0, 80))} is not {policy}@sas.root.${hubName} or {deviceId}@sas.${hubName}`)
    }
    this.#paused = true
    Promise.resolve()
      .then(async () => {
        if (service !== null) await this.#authorizeHub(token)
        else await this.#authorizeDevice(match[1]!, token)
      })
      .then(
        () => this.#resume(() => this.#outcome(SASL_OK)),
        (error: unknown) => this.#resume(() => this.#refuse(`PLAIN credentials of ${JSON.stringify(user.slice(0, 80))} refused: ${reasonOf(error)}`)),
      )
  }

  #outcome(code: number): void {
    this.#send(frames.sasl_frame(frames.sasl_outcome({ code })))
    if (code === SASL_OK) this.#phase = 'sasl-done'
  }

  #refuse(reason: string): void {
    this.#outcome(SASL_AUTH)
    this.#end({ code: 'sasl-refused', reason })
  }

  #resume(step: () => void): void {
    if (this.#phase === 'closed') return
    this.#paused = false
    try {
      step()
    } catch (error) {
      this.#fail(error)
      return
    }
    this.#drain()
  }

  // ---------------------------------------------------------------------------------------------
  // Authorizations (put-token, PLAIN, certificates)

  async #authorizeHub(token: string): Promise<void> {
    const granted = await this.#options.authorizeService(token)
    this.#auth.set(SERVICE_KEY, granted.expiresAtMs)
  }

  async #authorizeDevice(deviceId: string, token: string): Promise<string> {
    const admitted = await this.#options.api.authenticate({ hostName: this.#options.hostName, deviceId, sasToken: token })
    this.#auth.set(deviceKey(admitted.deviceId), admitted.expiresAtMs)
    return admitted.deviceId
  }

  /** Whether an authorization is present and not expired. */
  #authorized(key: string): boolean {
    if (!this.#auth.has(key)) return false
    const expiresAtMs = this.#auth.get(key)
    return expiresAtMs === undefined || expiresAtMs > this.#options.clock.now()
  }

  // ---------------------------------------------------------------------------------------------
  // Connection, sessions, links

  #amqp(channel: number, code: number, p: Performative, payload: Uint8Array | undefined): void {
    if (this.#phase === 'open-wait') {
      if (code !== OPEN) throw new AmqpCodecError('PROTOCOL_ERROR', `expected open, got performative 0x${code.toString(16)}`)
      return this.#open(p)
    }
    switch (code) {
      case OPEN:
        throw new AmqpCodecError('PROTOCOL_ERROR', 'second open on one connection')
      case BEGIN:
        return this.#begin(channel, p)
      case CLOSE:
        this.#send(frames.amqp_frame(0, frames.close({})))
        return this.#end({ code: 'peer-closed', reason: describeError(p['error']) ?? 'peer closed the connection' })
    }
    const session = this.#sessions.get(channel)
    if (session === undefined) throw new AmqpCodecError('PROTOCOL_ERROR', `performative 0x${code.toString(16)} on channel ${channel}, which has no session`)
    switch (code) {
      case ATTACH:
        return this.#attach(session, p)
      case FLOW:
        return this.#flow(session, p)
      case TRANSFER:
        return this.#transfer(session, p, payload)
      case DISPOSITION:
        return // Everything this session sends goes settled.
      case DETACH:
        return this.#detach(session, p)
      case END:
        this.#sessions.delete(channel)
        this.#send(frames.amqp_frame(session.localChannel, frames.end({})))
        for (const link of session.links.values()) this.#linkGone(link)
        return
    }
    throw new AmqpCodecError('PROTOCOL_ERROR', `unexpected performative 0x${code.toString(16)} on channel ${channel}`)
  }

  #open(p: Performative): void {
    const announced = typeof p['max_frame_size'] === 'number' ? (p['max_frame_size'] as number) : 0xffffffff
    if (announced < MIN_MAX_FRAME_SIZE) throw new AmqpCodecError('PROTOCOL_ERROR', `peer max-frame-size ${announced} is below ${MIN_MAX_FRAME_SIZE} (§2.7.1)`)
    this.#peerMaxFrame = Math.min(announced, this.#limits.maxFrameSize)
    this.#sendOpen()
    this.#phase = 'open'
    const idle = p['idle_time_out']
    if (typeof idle === 'number' && idle > 0) {
      this.#peerIdleMs = idle
      this.#options.onPeerIdleTimeout?.(idle)
    }
  }

  #sendOpen(): void {
    this.#sentOpen = true
    this.#send(frames.amqp_frame(0, frames.open({ container_id: this.#options.containerId ?? this.#options.hostName, max_frame_size: this.#limits.maxFrameSize, channel_max: this.#limits.maxSessions - 1 })))
  }

  #begin(channel: number, p: Performative): void {
    if (this.#sessions.has(channel)) throw new AmqpCodecError('PROTOCOL_ERROR', `begin on channel ${channel}, which already has a session`)
    if (this.#sessions.size >= this.#limits.maxSessions) throw new AmqpCodecError('RESOURCE_LIMIT', `more than ${this.#limits.maxSessions} sessions`)
    const localChannel = lowestFree(new Set([...this.#sessions.values()].map((s) => s.localChannel)))
    const session: HubSession = {
      remoteChannel: channel,
      localChannel,
      nextOutgoingId: 0,
      nextIncomingId: numberOr(p['next_outgoing_id'], 0),
      incomingWindowLeft: INCOMING_WINDOW,
      remoteIncomingWindow: numberOr(p['incoming_window'], 0),
      nextDeliveryId: 0,
      links: new Map(),
      refused: new Set(),
      outbox: [],
    }
    this.#sessions.set(channel, session)
    this.#send(
      frames.amqp_frame(
        localChannel,
        frames.begin({ remote_channel: channel, next_outgoing_id: 0, incoming_window: INCOMING_WINDOW, outgoing_window: OUTGOING_WINDOW, handle_max: this.#limits.maxLinksPerSession - 1 }),
      ),
    )
  }

  #attach(session: HubSession, p: Performative): void {
    const handle = numberOr(p['handle'], -1)
    const name = String(p['name'])
    if (handle < 0 || handle >= this.#limits.maxLinksPerSession) throw new AmqpCodecError('RESOURCE_LIMIT', `link handle ${handle} is above handle-max ${this.#limits.maxLinksPerSession - 1}`)
    if (session.links.has(handle) || session.refused.has(handle)) throw new AmqpCodecError('PROTOCOL_ERROR', `attach on handle ${handle}, which is in use`)
    const direction = p['role'] === true ? 'out' : 'in'
    const source = p['source']
    const target = p['target']
    const terminal = terminus.unwrap(direction === 'out' ? source : target)
    const address = parseHubAddress(terminal?.address)
    const localHandle = lowestFree(new Set([...session.links.values()].map((l) => l.localHandle)))
    if (localHandle >= this.#limits.maxLinksPerSession) throw new AmqpCodecError('RESOURCE_LIMIT', `more than ${this.#limits.maxLinksPerSession} links in one session`)
    const reply = { name, handle: localHandle, role: direction === 'in', source, target, ...(direction === 'out' ? { initial_delivery_count: 0 } : {}) }
    const refuse = (condition: string, description: string) => {
      this.#send(frames.amqp_frame(session.localChannel, frames.attach(reply)))
      this.#send(frames.amqp_frame(session.localChannel, frames.detach({ handle: localHandle, closed: true, error: { condition, description } })))
      session.refused.add(handle)
      this.#options.onEvent?.({ type: 'linkRefused', address: String(terminal?.address).slice(0, 80), reason: description })
    }
    const properties = p['properties'] as Record<string, unknown> | undefined
    const channel = typeof properties?.['com.microsoft:channel-correlation-id'] === 'string' ? (properties['com.microsoft:channel-correlation-id'] as string).slice(0, 200) : undefined
    const accept = (kind: HubLink['kind'], extra: { deviceId?: string; authKey?: string }) => {
      const link: HubLink = { name, remoteHandle: handle, localHandle, direction, kind, ...extra, ...(channel === undefined ? {} : { channel }), outbox: [], deliveryCount: 0, credit: 0 }
      if (direction === 'in') link.deliveryCount = numberOr(p['initial_delivery_count'], 0)
      session.links.set(handle, link)
      this.#send(frames.amqp_frame(session.localChannel, frames.attach(reply)))
      if (direction === 'in') {
        link.credit = this.#limits.linkCredit
        this.#sendFlow(session, link)
      }
      if (kind === 'methods' && direction === 'out' && extra.deviceId !== undefined) this.#options.onEvent?.({ type: 'methodsReady', deviceId: extra.deviceId })
    }
    switch (address.kind) {
      case 'cbs':
        return accept('cbs', {})
      case 'c2dSend':
        if (direction !== 'in') return refuse('amqp:not-allowed', '/messages/devicebound takes messages from the service; it cannot be received from')
        if (this.#options.c2d === undefined) return refuse('amqp:not-implemented', `cloud-to-device messages are not served by hub ${this.#options.hostName} yet`)
        if (!this.#authorized(SERVICE_KEY)) return refuse('amqp:unauthorized-access', `no valid hub token on this connection: put one with ServiceConnect on $cbs (audience ${this.#options.hostName})`)
        return accept('c2dSend', { authKey: SERVICE_KEY })
      case 'service':
        return refuse('amqp:not-implemented', `${address.path} is not served over AMQP by hub ${this.#options.hostName} yet (docs/protocol.md §12.3)`)
      case 'unknown':
        return refuse('amqp:not-found', `hub ${this.#options.hostName} has no link address ${JSON.stringify(address.text)} (docs/protocol.md §12.3)`)
      case 'deviceEvents':
      case 'deviceTwin':
      case 'deviceMethods': {
        if (address.kind === 'deviceEvents' && direction !== 'in') return refuse('amqp:not-allowed', `/devices/${address.deviceId}/messages/events takes messages from the device; it cannot be received from`)
        const kind = address.kind === 'deviceEvents' ? 'deviceEvents' : address.kind === 'deviceTwin' ? 'twin' : 'methods'
        const key = deviceKey(address.deviceId)
        if (this.#authorized(key)) return accept(kind, { deviceId: address.deviceId, authKey: key })
        const chain = this.#options.clientCertificates ?? []
        if (chain.length === 0) {
          return refuse('amqp:unauthorized-access', `no valid token for device ${JSON.stringify(address.deviceId)} on this connection: put one on $cbs (audience ${this.#options.hostName}/devices/${address.deviceId}) or connect with its certificate`)
        }
        // X.509 devices: the TLS client certificate is checked when the link attaches.
        this.#paused = true
        this.#options.api.authenticate({ hostName: this.#options.hostName, deviceId: address.deviceId, clientCertificates: chain }).then(
          (admitted) => this.#resume(() => accept(kind, { deviceId: admitted.deviceId })),
          (error: unknown) => this.#resume(() => refuse('amqp:unauthorized-access', `certificate of device ${JSON.stringify(address.deviceId)} refused: ${reasonOf(error)}`)),
        )
        return
      }
    }
  }

  #flow(session: HubSession, p: Performative): void {
    const nextIncoming = numberOr(p['next_incoming_id'], 0)
    session.remoteIncomingWindow = nextIncoming + numberOr(p['incoming_window'], 0) - session.nextOutgoingId
    const handle = p['handle']
    if (typeof handle !== 'number') return this.#flush(session)
    if (session.refused.has(handle)) return
    const link = this.#linkOf(session, handle)
    if (link.direction === 'out') {
      link.credit = Math.max(0, numberOr(p['delivery_count'], 0) + numberOr(p['link_credit'], 0) - link.deliveryCount)
      this.#flush(session)
      if (p['drain'] === true && link.credit > 0) {
        link.deliveryCount += link.credit
        link.credit = 0
        this.#sendFlow(session, link)
        return
      }
    }
    if (p['echo'] === true) this.#sendFlow(session, link)
  }

  #sendFlow(session: HubSession, link?: HubLink): void {
    session.incomingWindowLeft = INCOMING_WINDOW
    const fields: Record<string, unknown> = { next_incoming_id: session.nextIncomingId, incoming_window: INCOMING_WINDOW, next_outgoing_id: session.nextOutgoingId, outgoing_window: OUTGOING_WINDOW }
    if (link !== undefined) Object.assign(fields, { handle: link.localHandle, delivery_count: link.deliveryCount, link_credit: link.credit })
    this.#send(frames.amqp_frame(session.localChannel, frames.flow(fields)))
  }

  #linkOf(session: HubSession, handle: number): HubLink {
    const link = session.links.get(handle)
    if (link === undefined) throw new AmqpCodecError('PROTOCOL_ERROR', `handle ${handle} is not attached`)
    return link
  }

  #detach(session: HubSession, p: Performative): void {
    const handle = numberOr(p['handle'], -1)
    if (session.refused.delete(handle)) return
    const link = this.#linkOf(session, handle)
    session.links.delete(handle)
    this.#send(frames.amqp_frame(session.localChannel, frames.detach({ handle: link.localHandle, closed: p['closed'] === true })))
    this.#linkGone(link)
  }

  #transfer(session: HubSession, p: Performative, payload: Uint8Array | undefined): void {
    session.nextIncomingId = (session.nextIncomingId + 1) >>> 0
    if (--session.incomingWindowLeft < 0) throw new AmqpCodecError('PROTOCOL_ERROR', `transfer beyond the session incoming-window of ${INCOMING_WINDOW}`)
    if (session.incomingWindowLeft < INCOMING_WINDOW / 2) this.#sendFlow(session)
    const handle = numberOr(p['handle'], -1)
    // A transfer the peer sent before it saw our detach of an expired or refused link.
    if (session.refused.has(handle)) return
    const link = this.#linkOf(session, handle)
    if (link.direction !== 'in') throw new AmqpCodecError('PROTOCOL_ERROR', `transfer on handle ${link.remoteHandle}, a link the peer receives on`)
    if (p['aborted'] === true) {
      link.partial = undefined
      return
    }
    let partial = link.partial
    if (partial === undefined) {
      if (link.credit <= 0) throw new AmqpCodecError('PROTOCOL_ERROR', `transfer on link ${JSON.stringify(link.name)} without credit (§2.6.7)`)
      const deliveryId = p['delivery_id']
      if (typeof deliveryId !== 'number') throw new AmqpCodecError('PROTOCOL_ERROR', 'first transfer of a delivery without delivery-id')
      partial = { deliveryId, settled: p['settled'] === true, bytes: new Uint8Array(0), oversize: 0 }
      link.partial = partial
    }
    if (payload !== undefined) {
      // An oversized message is read to its end and refused, not kept: the connection lives on.
      if (partial.oversize > 0 || partial.bytes.length + payload.length > this.#limits.maxMessageBytes) {
        partial.oversize += partial.bytes.length + payload.length
        partial.bytes = new Uint8Array(0)
      } else partial.bytes = concat(partial.bytes, payload.slice())
    }
    if (p['more'] === true) return
    link.partial = undefined
    link.credit--
    link.deliveryCount = (link.deliveryCount + 1) >>> 0
    if (partial.oversize > 0) {
      this.#settle(session, partial, { condition: 'amqp:link:message-size-exceeded', description: `message of more than ${partial.oversize} bytes exceeds the hub's limit of ${MAX_HUB_MESSAGE_BODY_BYTES} bytes` })
    } else if (link.kind === 'cbs') this.#putToken(session, partial, partial.bytes)
    else if (link.kind === 'c2dSend') this.#c2dSend(session, partial, partial.bytes)
    else if (link.kind === 'twin') this.#twin(session, link, partial, partial.bytes)
    else if (link.kind === 'methods') this.#methodResponse(session, link, partial, partial.bytes)
    else this.#telemetry(session, link, partial, partial.bytes)
    this.#replenish(session)
  }

  /** Settles a received delivery: accepted, or rejected with `error`. */
  #settle(session: HubSession, delivery: { deliveryId: number; settled: boolean }, error?: { condition: string; description: string }): void {
    if (delivery.settled) return
    const state = error === undefined ? message.accepted().described() : message.rejected({ error }).described()
    this.#send(frames.amqp_frame(session.localChannel, frames.disposition({ role: true, first: delivery.deliveryId, settled: true, state })))
  }

  #replenish(session: HubSession): void {
    let queued = this.#requests.count
    for (const s of this.#sessions.values()) queued += s.outbox.length
    if (queued >= this.#limits.maxInFlight) return
    for (const link of session.links.values()) {
      if (link.direction === 'in' && link.credit <= this.#limits.linkCredit / 2) {
        link.credit = this.#limits.linkCredit
        this.#sendFlow(session, link)
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // $cbs and telemetry

  #putToken(session: HubSession, delivery: { deliveryId: number; settled: boolean }, bytes: Uint8Array): void {
    const request = readPutToken(decodeMessage(bytes))
    this.#settle(session, delivery)
    if (!request.ok) return this.#answer(session, request.messageId, 400, request.reason, undefined)
    const audience = readAudience(request.audience, this.#options.hostName)
    if ('refusal' in audience) return this.#answer(session, request.messageId, 401, audience.refusal, undefined)
    this.#requests.begin()
    const check = audience.kind === 'hub' ? this.#authorizeHub(request.token) : this.#authorizeDevice(audience.deviceId, request.token)
    Promise.resolve(check).then(
      () => {
        this.#requests.done()
        this.#answer(session, request.messageId, 200, 'OK', audience.kind === 'hub' ? 'hub' : 'device')
      },
      (error: unknown) => {
        this.#requests.done()
        const err = wrapUnknown(error)
        const status = err.code === 'INTERNAL_ERROR' || err.code === 'SERVICE_UNAVAILABLE' ? 500 : 401
        this.#answer(session, request.messageId, status, `${audience.kind === 'hub' ? `hub ${this.#options.hostName}` : `device ${JSON.stringify(audience.deviceId)}`}: ${err.reason}`, audience.kind === 'hub' ? 'hub' : 'device')
      },
    )
  }

  #answer(session: HubSession, messageId: unknown, status: number, description: string, audience: 'hub' | 'device' | undefined): void {
    if (this.#phase === 'closed' || this.#sessions.get(session.remoteChannel) !== session) return
    this.#options.onEvent?.({ type: 'token', audience: audience ?? 'hub', status, ...(status === 200 ? {} : { reason: description }) })
    try {
      session.outbox.push(encodeCbsAnswer(messageId, status, description))
      this.#flush(session)
      this.#replenish(session)
    } catch (error) {
      this.#fail(error)
    }
  }

  #telemetry(session: HubSession, link: HubLink, delivery: { deliveryId: number; settled: boolean }, bytes: Uint8Array): void {
    const deviceId = link.deviceId!
    const read = readTelemetry(decodeMessage(bytes))
    if (!read.ok) {
      this.#options.onEvent?.({ type: 'telemetryRefused', deviceId, reason: read.description })
      return this.#settle(session, delivery, { condition: read.condition, description: read.description })
    }
    // Accepted only once stored (the sink resolves after its commit): nothing acknowledged is lost.
    this.#requests.begin()
    Promise.resolve()
      .then(() => this.#options.api.telemetry(this.#options.hostName, deviceId, { body: read.body, properties: read.properties, systemProperties: read.systemProperties }))
      .then(
        () => {
          this.#settled(session, delivery)
          this.#options.onEvent?.({ type: 'telemetry', deviceId, bytes: read.body.length })
        },
        (error: unknown) => {
          // Not accepted: the device's SDK sees the refusal and may send again.
          const err = wrapUnknown(error)
          const condition = err.code === 'THROTTLED' ? 'com.microsoft:device-container-throttled' : 'amqp:internal-error'
          this.#options.onEvent?.({ type: 'telemetryRefused', deviceId, reason: `${err.code}: ${err.reason}` })
          this.#settled(session, delivery, { condition, description: `telemetry of device ${JSON.stringify(deviceId)} not stored: ${err.reason}` })
        },
      )
  }

  /** A service's cloud-to-device send: queued (accepted) or refused with the catalog's condition (rejected). */
  #c2dSend(session: HubSession, delivery: { deliveryId: number; settled: boolean }, bytes: Uint8Array): void {
    const read = readC2dSend(decodeMessage(bytes))
    if (!read.ok) return this.#settle(session, delivery, { condition: read.condition, description: read.description })
    this.#requests.begin()
    Promise.resolve()
      .then(() => this.#options.c2d!.send(this.#options.hostName, read.deviceId, read.input))
      .then(
        () => this.#settled(session, delivery),
        (error: unknown) => {
          const err = wrapUnknown(error)
          this.#settled(session, delivery, { condition: ERROR_CATALOG[err.code].amqpCondition, description: `${err.code}: ${err.reason}` })
        },
      )
  }

  /** A twin request (docs/protocol.md §12.6): answered on the device's twin receiver link of the same channel. */
  #twin(session: HubSession, link: HubLink, delivery: { deliveryId: number; settled: boolean }, bytes: Uint8Array): void {
    const deviceId = link.deviceId!
    const request = readTwinRequest(decodeMessage(bytes))
    if (!request.ok) {
      if (request.correlationId === undefined) {
        this.#options.onEvent?.({ type: 'twin', deviceId, operation: 'invalid', status: 400, reason: request.reason })
        return this.#settle(session, delivery, { condition: 'amqp:invalid-field', description: request.reason })
      }
      this.#settle(session, delivery)
      return this.#twinAnswer(session, link, request.correlationId, 'invalid', new ProvisioError('BAD_REQUEST', request.reason, { deviceMessage: request.reason }))
    }
    this.#settle(session, delivery)
    const { operation, correlationId } = request
    if (operation === 'subscribeDesired' || operation === 'unsubscribeDesired') {
      if (operation === 'subscribeDesired') this.#desired.add(deviceKey(deviceId))
      else this.#desired.delete(deviceKey(deviceId))
      return this.#twinAnswer(session, link, correlationId, operation, { status: 200, body: '' })
    }
    const hostName = this.#options.hostName
    let pending: Promise<{ status: number; body: string; version?: number }>
    try {
      if (operation === 'get') {
        pending = this.#options.api.getTwin(hostName, deviceId).then((twin) => ({ status: 200, body: JSON.stringify({ desired: twin.desired, reported: twin.reported }) }))
      } else {
        if (request.body.length > MAX_TWIN_BODY_BYTES) throw new ProvisioError('PAYLOAD_TOO_LARGE', `reported-properties patch of ${request.body.length} bytes exceeds ${MAX_TWIN_BODY_BYTES} bytes`)
        const json = parseJsonBody(request.body, { maxBytes: MAX_TWIN_BODY_BYTES })
        if (typeof json !== 'object' || json === null || Array.isArray(json)) {
          throw new ProvisioError('VALIDATION_FAILED', 'a reported-properties patch must be a JSON object', { deviceMessage: 'The reported properties patch must be a JSON object.' })
        }
        pending = this.#options.api.patchReported(hostName, deviceId, json as Record<string, unknown>).then((version) => ({ status: 204, body: '', version }))
      }
    } catch (error) {
      return this.#twinAnswer(session, link, correlationId, operation, error)
    }
    this.#requests.begin()
    pending.then(
      (result) => {
        this.#requests.done()
        this.#twinAnswer(session, link, correlationId, operation, result)
      },
      (error: unknown) => {
        this.#requests.done()
        this.#twinAnswer(session, link, correlationId, operation, error)
      },
    )
  }

  /** Sends a twin answer (or an error as a JSON body with its HTTP status) if the connection is still there. */
  #twinAnswer(session: HubSession, link: HubLink, correlationId: unknown, operation: TwinOperation | 'invalid', outcome: { status: number; body: string; version?: number } | unknown): void {
    if (this.#phase === 'closed') return
    const deviceId = link.deviceId!
    let answer: { status: number; body: string; version?: number }
    let reason: string | undefined
    if (outcome !== null && typeof outcome === 'object' && 'status' in outcome && 'body' in outcome) answer = outcome as { status: number; body: string; version?: number }
    else {
      // azure-iot-device reads an error answer's body as JSON and maps its status to an error type.
      const err = wrapUnknown(outcome)
      reason = `${err.code}: ${err.reason}`
      answer = { status: err.httpStatus, body: JSON.stringify({ errorCode: err.errorCode, message: err.deviceMessage ?? ERROR_CATALOG[err.code].defaultMessage }) }
    }
    this.#options.onEvent?.({ type: 'twin', deviceId, operation, status: answer.status, ...(reason === undefined ? {} : { reason }) })
    const sent = this.#enqueue('twin', deviceId, link.channel, () => encodeTwinResponse(correlationId, answer.status, answer.body, answer.version))
    if (sent && this.#sessions.get(session.remoteChannel) === session) this.#replenish(session)
  }

  /** A device's answer to a direct method request: handed to the adapter, which finds the call. */
  #methodResponse(session: HubSession, link: HubLink, delivery: { deliveryId: number; settled: boolean }, bytes: Uint8Array): void {
    const deviceId = link.deviceId!
    const read = readMethodResponse(decodeMessage(bytes), MAX_METHOD_PAYLOAD_BYTES)
    if (!read.ok) {
      this.#options.onEvent?.({ type: 'methodResponseRefused', deviceId, reason: read.description })
      return this.#settle(session, delivery, { condition: read.condition, description: read.description })
    }
    this.#settle(session, delivery)
    this.#options.onEvent?.({ type: 'methodResponse', deviceId, rid: read.rid, status: read.status, payload: read.payload })
  }

  /** Settles a delivery whose work finished asynchronously, if its session is still there. */
  #settled(session: HubSession, delivery: { deliveryId: number; settled: boolean }, error?: { condition: string; description: string }): void {
    this.#requests.done()
    if (this.#phase === 'closed' || this.#sessions.get(session.remoteChannel) !== session) return
    try {
      this.#settle(session, delivery, error)
      this.#replenish(session)
    } catch (failure) {
      this.#fail(failure)
    }
  }

  /**
   * Sends what waits for credit: CBS answers on the session's `$cbs` receiver link, twin answers,
   * desired pushes and method requests on their device links.
   */
  #flush(session: HubSession): void {
    let cbs: HubLink | undefined
    for (const l of session.links.values()) {
      if (l.direction !== 'out') continue
      if (l.kind === 'cbs') cbs = l
      else if (l.outbox.length > 0) this.#flushQueue(session, l, l.outbox)
    }
    this.#flushQueue(session, cbs, session.outbox)
  }

  #flushQueue(session: HubSession, link: HubLink | undefined, queue: Uint8Array[]): void {
    while (queue.length > 0) {
      const payload = queue[0]!
      const room = this.#peerMaxFrame - TRANSFER_OVERHEAD
      const frameCount = Math.max(1, Math.ceil(payload.length / room))
      if (link === undefined || link.credit <= 0 || session.remoteIncomingWindow < frameCount) return
      queue.shift()
      const deliveryId = session.nextDeliveryId
      session.nextDeliveryId = (session.nextDeliveryId + 1) >>> 0
      const tag = toRheaBytes(Uint8Array.of(deliveryId >>> 24, (deliveryId >>> 16) & 0xff, (deliveryId >>> 8) & 0xff, deliveryId & 0xff))
      for (let i = 0; i < frameCount; i++) {
        const slice = payload.subarray(i * room, Math.min(payload.length, (i + 1) * room))
        const fields: Record<string, unknown> = { handle: link.localHandle, more: i < frameCount - 1 }
        if (i === 0) Object.assign(fields, { delivery_id: deliveryId, delivery_tag: tag, message_format: 0, settled: true })
        this.#send(frames.amqp_frame(session.localChannel, frames.transfer(fields), slice))
        session.nextOutgoingId = (session.nextOutgoingId + 1) >>> 0
        session.remoteIncomingWindow--
      }
      link.credit--
      link.deliveryCount = (link.deliveryCount + 1) >>> 0
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Output and ending

  #send(frame: FrameSpec): void {
    this.#write(frames.write_frame(frame))
  }

  #fail(error: unknown): void {
    if (this.#phase === 'closed') return
    const err = error instanceof AmqpCodecError ? error : new AmqpCodecError('DECODE_ERROR', `frame could not be processed: ${reasonOf(error)}`)
    if (this.#phase === 'open' || this.#phase === 'open-wait') {
      try {
        if (!this.#sentOpen) this.#sendOpen()
        this.#send(frames.amqp_frame(0, frames.close({ error: { condition: err.condition, description: err.message.slice(0, 400) } })))
      } catch {
        // Nothing more can be said on this connection.
      }
    }
    this.#end({ code: err.code, reason: err.message, condition: err.condition })
  }

  #end(reason: AmqpCloseReason): void {
    if (this.#phase === 'closed') return
    this.#phase = 'closed'
    this.#input = new Uint8Array(0)
    this.#options.close(reason)
  }
}

/** PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd → [authcid, passwd], or undefined. */
function splitPlain(response: Uint8Array | undefined): [string, string] | undefined {
  if (response === undefined) return undefined
  const first = response.indexOf(0)
  const second = first < 0 ? -1 : response.indexOf(0, first + 1)
  if (second < 0) return undefined
  const user = decodeUtf8(response.subarray(first + 1, second))
  const password = decodeUtf8(response.subarray(second + 1))
  if (!user || !password) return undefined
  return [user, password]
}
