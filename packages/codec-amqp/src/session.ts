// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- rhea ships no typings for lib/*.js; every project compiling this source (server, tests) needs these ambient declarations
/// <reference path="./rhea-internals.d.ts" />
/**
 * Sans-IO AMQP 1.0 connection of the DPS device dialect (docs/protocol.md §4, §5.3, §11).
 *
 * One {@link AmqpDeviceSession} per transport connection (TLS socket or WebSocket): the adapter
 * feeds received bytes to {@link AmqpDeviceSession.push}; the session writes its bytes through
 * `options.write` and ends through `options.close` with a reason. It owns no socket and no timer:
 * the adapter calls `tick()` as time passes (open timeout, heartbeats) — the TransportSession
 * contract of @provisio/protocol. The DeviceApi calls it makes are the only asynchronous work,
 * and their answers are written when they resolve.
 *
 * Layers, as the SDKs use them:
 * - SASL (AMQP 1.0 §5.3): PLAIN carries the SAS of symmetric-key devices with authcid
 *   `{idScope}/registrations/{registrationId}`; the custom `TPM` mechanism runs the multi-step
 *   activation exchange of §5.3; EXTERNAL/ANONYMOUS are accepted for certificate devices. X.509
 *   devices usually skip SASL entirely and send the plain AMQP header after TLS (§4).
 * - Connection/session/link (AMQP 1.0 §2): one receiver and one sender link at
 *   `{idScope}/registrations/{registrationId}` (relative or `amqps://host/...`).
 * - Messages (§4): requests carry `iotdps-operation-type`; each answer goes out on the link the
 *   device receives on, with the request's correlation-id, one data section holding the
 *   RegistrationOperationStatus JSON, and both `retry-after` and `Retry-After`. Refusals reject the
 *   request delivery with the catalog's AMQP condition and the JSON error body as description:
 *   Microsoft's Node client parses every response body as a RegistrationOperationStatus (§11), so
 *   an error body must never travel as a response message.
 *
 * Built on rhea's frame and type codecs; every frame is checked structurally first (wire.ts).
 *
 * This file is the connection's state machine: protocol headers, the SASL exchange, the
 * connection/session/link performatives, delivery, credit and settlement. What it reads and
 * builds lives beside it: options.ts (limits, callbacks), performatives.ts (frame decoding),
 * sasl.ts (SASL payloads, identity), links.ts (session and link state, link rules),
 * dps-messages.ts (DPS requests, answers and rejections as messages), address.ts.
 */
import { InFlightCounter, acceptApiVersion, type DeviceResponse, type Evidence, type RegistrationOperationStatus, type TransportSession } from '@provisio/protocol'
import frames, { type FrameSpec, type Performative } from 'rhea/lib/frames.js'
import message from 'rhea/lib/message.js'
import terminus from 'rhea/lib/terminus.js'
import { parseRegistrationAddress } from './address.js'
import { answerRequest, decodeRequest, encodeAnswer, evidenceOf, rejectionOf, type DpsRequestMessage } from './dps-messages.js'
import { AmqpCodecError, reasonOf } from './errors.js'
import { INCOMING_WINDOW, OUTGOING_WINDOW, TRANSFER_OVERHEAD, flowFields, linkRefusal, lowestFree, registrationKey, type Link, type Session } from './links.js'
import { DEFAULT_AMQP_LIMITS, MIN_MAX_FRAME_SIZE, type AmqpAuthenticate, type AmqpCloseReason, type AmqpLimits, type AmqpSessionOptions } from './options.js'
import {
  ATTACH,
  BEGIN,
  CLOSE,
  DETACH,
  DISPOSITION,
  EMPTY_FRAME,
  END,
  FLOW,
  OPEN,
  SASL_INIT,
  SASL_RESPONSE,
  TRANSFER,
  asBytes,
  decodeFrame,
  describeError,
  numberOr,
} from './performatives.js'
import {
  SASL_AUTH,
  SASL_MECHANISMS,
  SASL_OK,
  SASL_SYS,
  SASL_SYS_TEMP,
  activationChunks,
  decodeUtf8,
  readPlainResponse,
  readTpmInit,
  tpmChunkChallenge,
  type Identity,
  type TpmExchange,
} from './sasl.js'
import { AMQP_HEADER, FRAME_TYPE_SASL, SASL_HEADER, base64Encode, checkValue, concat, readFrameHeader, readProtocolHeader, toRheaBytes } from './wire.js'

/** Where the connection is: protocol header, SASL, AMQP header after SASL, open, or ended. */
type Phase = 'header' | 'sasl' | 'sasl-done' | 'open-wait' | 'open' | 'closed'

/** One AMQP connection of a device. */
/** Default of `AmqpSessionOptions.openTimeoutMs`. */
const DEFAULT_OPEN_TIMEOUT_MS = 10_000

export class AmqpDeviceSession implements TransportSession {
  readonly #options: AmqpSessionOptions
  readonly #limits: AmqpLimits
  #phase: Phase = 'header'
  #input: Uint8Array = new Uint8Array(0)
  /** Input processing waits while an asynchronous SASL verdict or request backlog is pending. */
  #paused = false
  #identity: Identity | undefined
  #tpm: TpmExchange | undefined
  #peerMaxFrame = MIN_MAX_FRAME_SIZE
  #sentOpen = false
  readonly #sessions = new Map<number, Session>()
  readonly #requests = new InFlightCounter()
  readonly #openedAtMs: number
  #lastWriteAtMs: number
  /** The peer's idle-time-out (ms), once its open announced one. */
  #peerIdleMs: number | undefined

  constructor(options: AmqpSessionOptions) {
    this.#options = options
    this.#limits = { ...DEFAULT_AMQP_LIMITS, ...options.limits }
    this.#openedAtMs = options.clock.now()
    this.#lastWriteAtMs = this.#openedAtMs
  }

  /** DPS requests awaiting the service. */
  get inFlight(): number {
    return this.#requests.count
  }

  idle(): Promise<void> {
    return this.#requests.idle()
  }

  /**
   * Time passed: refuses a connection not open within `openTimeoutMs`, and keeps the peer's idle
   * timer from expiring with an empty frame when nothing was written for half its idle-time-out.
   */
  tick(): void {
    const now = this.#options.clock.now()
    const openTimeoutMs = this.#options.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS
    if (this.opening) {
      if (now - this.#openedAtMs >= openTimeoutMs) this.openTimedOut(openTimeoutMs)
      return
    }
    if (this.#peerIdleMs !== undefined && now - this.#lastWriteAtMs >= Math.max(1000, Math.floor(this.#peerIdleMs / 2))) this.heartbeat()
  }

  /** True once the connection ended (further input is ignored). */
  get closed(): boolean {
    return this.#phase === 'closed'
  }

  /** Feeds bytes received from the peer, in any split. */
  push(bytes: Uint8Array): void {
    if (this.#phase === 'closed') return
    this.#input = concat(this.#input, bytes)
    // While paused only a bounded backlog is kept (a frame in flight plus its neighbours).
    if (this.#paused && this.#input.length > 2 * this.#limits.maxFrameSize + 8) {
      this.#fail(new AmqpCodecError('RESOURCE_LIMIT', `${this.#input.length} bytes queued while a verdict was pending`))
      return
    }
    this.#drain()
  }

  /** Ends the connection from the server side (shutdown): close frame `amqp:connection:forced`. */
  shutdown(reason = 'server shutting down'): void {
    if (this.#phase === 'closed') return
    if (this.#phase === 'open') this.#send(frames.amqp_frame(0, frames.close({ error: { condition: 'amqp:connection:forced', description: reason } })))
    this.#end({ code: 'shutdown', reason })
  }

  /**
   * Writes an empty frame (AMQP 1.0 §2.4.5) so the peer's idle timer does not expire; a no-op
   * unless the connection is open.
   */
  heartbeat(): void {
    if (this.#phase === 'open') this.#write(EMPTY_FRAME)
  }

  /** True until the peer's open frame arrived (protocol header, SASL and open still under way). */
  get opening(): boolean {
    return this.#phase !== 'open' && this.#phase !== 'closed'
  }

  /**
   * The adapter's connect timeout expired before the peer opened the connection: during SASL the
   * device gets sasl-outcome `sys-temp`, after the AMQP header an open and a close with
   * `amqp:resource-limit-exceeded` and the reason; before any header the connection just ends.
   * A no-op once the connection is open or closed.
   */
  openTimedOut(timeoutMs: number): void {
    if (!this.opening) return
    const error = new AmqpCodecError('OPEN_TIMEOUT', `the connection did not open within ${timeoutMs} ms (stuck at ${this.#phase})`)
    if (this.#phase === 'sasl') {
      this.#outcome(SASL_SYS_TEMP)
      this.#end({ code: error.code, reason: error.message, condition: error.condition })
      return
    }
    this.#fail(error)
  }

  /** The peer went away without a close frame; stops answering (nothing is reported). */
  abandon(_reason?: string): void {
    this.#phase = 'closed'
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
        // Heartbeat / empty frame (§2.4.5): header and nothing else.
        if (header.size === header.doff * 4) continue
        // Only the performative: a transfer's payload may be one fragment of a multi-frame message.
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

  /** Handles a protocol header; false when more bytes are needed. */
  #header(): boolean {
    const have = Math.min(4, this.#input.length)
    for (let i = 0; i < have; i++) {
      if (this.#input[i] !== AMQP_HEADER[i]) throw this.#badHeader()
    }
    if (this.#input.length < 8) return false
    const kind = readProtocolHeader(this.#input)
    if (kind === undefined || (this.#phase === 'sasl-done' && kind !== 'amqp')) throw this.#badHeader()
    this.#input = this.#input.subarray(8)
    if (this.#phase === 'sasl-done') {
      this.#write(AMQP_HEADER)
      this.#phase = 'open-wait'
      return true
    }
    if (kind === 'sasl') {
      this.#write(SASL_HEADER)
      this.#send(frames.sasl_frame(frames.sasl_mechanisms({ sasl_server_mechanisms: SASL_MECHANISMS })))
      this.#phase = 'sasl'
    } else {
      // X.509 devices: no SASL layer at all (§4); identity from the TLS client certificate.
      this.#identity = { kind: 'certificate' }
      this.#write(AMQP_HEADER)
      this.#phase = 'open-wait'
    }
    return true
  }

  #badHeader(): AmqpCodecError {
    // §2.2: answer an unsupported header with the one we support, then close.
    this.#write(this.#phase === 'sasl-done' ? AMQP_HEADER : SASL_HEADER)
    const shown = [...this.#input.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('')
    return new AmqpCodecError('BAD_PROTOCOL_HEADER', `protocol header ${shown} is not AMQP 1.0 (AMQP0100) or SASL (AMQP3100)`)
  }

  // ---------------------------------------------------------------------------------------------
  // SASL (AMQP 1.0 §5.3; docs/protocol.md §4, §5.3)

  #sasl(code: number, p: Performative): void {
    if (code === SASL_INIT) {
      if (this.#tpm !== undefined || this.#identity !== undefined) throw new AmqpCodecError('PROTOCOL_ERROR', 'second sasl-init')
      const mechanism = String(p['mechanism'])
      const response = asBytes(p['initial_response'])
      if (mechanism === 'PLAIN') return this.#plain(response)
      if (mechanism === 'TPM') return this.#tpmInit(response)
      if (mechanism === 'EXTERNAL' || mechanism === 'ANONYMOUS') {
        this.#identity = { kind: 'certificate' }
        return this.#outcome(SASL_OK)
      }
      return this.#refuse(`SASL mechanism ${JSON.stringify(mechanism.slice(0, 40))} is not offered`)
    }
    if (code === SASL_RESPONSE && this.#tpm !== undefined) return this.#tpmStep(asBytes(p['response']))
    throw new AmqpCodecError('PROTOCOL_ERROR', `unexpected SASL performative 0x${code.toString(16)}`)
  }

  /** PLAIN (RFC 4616): the SAS of a symmetric-key device, checked before the outcome (§4). */
  #plain(response: Uint8Array | undefined): void {
    const credential = readPlainResponse(response)
    if ('refusal' in credential) return this.#refuse(credential.refusal)
    this.#verify(credential.evidence, credential.idScope, credential.registrationId)
  }

  /** TPM step 1 (§5.3): the init names the registration and carries the EK; challenge 0x00. */
  #tpmInit(response: Uint8Array | undefined): void {
    const exchange = readTpmInit(response)
    if ('refusal' in exchange) return this.#refuse(exchange.refusal)
    this.#tpm = exchange
    this.#send(frames.sasl_frame(frames.sasl_challenge({ challenge: toRheaBytes(Uint8Array.of(0)) })))
  }

  #tpmStep(response: Uint8Array | undefined): void {
    const tpm = this.#tpm!
    if (response === undefined || response.length === 0 || response[0] !== 0) return this.#refuse('TPM response without its 0x00 control byte')
    if (tpm.storageRootKey === undefined) {
      // Step 3: 0x00 ‖ SRK. Ask the device API for the activation blob (TPM first leg, §5.2).
      tpm.storageRootKey = response.slice(1)
      if (tpm.storageRootKey.length === 0) return this.#refuse('TPM response carries no storage root key')
      this.#paused = true
      const request = {
        idScope: tpm.idScope,
        registrationId: tpm.registrationId,
        evidence: { type: 'tpm' as const, endorsementKey: base64Encode(tpm.endorsementKey), storageRootKey: base64Encode(tpm.storageRootKey) },
        apiVersion: acceptApiVersion(undefined, 'device').version,
      }
      this.#options.device.register(request).then(
        (answer) => {
          if (this.#phase === 'closed') return
          if (answer.status !== 401) return this.#resume(() => this.#refuse('TPM first leg did not produce a challenge'))
          const chunks = activationChunks(answer.challenge.authenticationKey, this.#limits.tpmChunkBytes)
          if (chunks === undefined) {
            // The sequence number has 2 bits (§5.3): at most 4 chunks.
            return this.#resume(() => this.#refuse('activation blob is empty, not base64, or needs more than 4 chunks', SASL_SYS))
          }
          tpm.chunks = chunks
          this.#resume(() => this.#sendTpmChunk())
        },
        (error: unknown) => this.#resume(() => this.#refuse(`TPM first leg refused: ${reasonOf(error)}`)),
      )
      return
    }
    if (tpm.chunks === undefined) return this.#refuse('TPM response before the activation blob')
    if (tpm.sent < tpm.chunks.length) {
      // Step 4: the device acknowledges an interim chunk with a lone 0x00.
      return this.#sendTpmChunk()
    }
    // Step 5: 0x00 ‖ SAS signed with the activated key.
    const token = decodeUtf8(response.subarray(1))
    if (!token) return this.#refuse('TPM final response carries no SAS token')
    const evidence: Evidence = {
      type: 'tpm',
      endorsementKey: base64Encode(tpm.endorsementKey),
      storageRootKey: base64Encode(tpm.storageRootKey),
      token,
    }
    this.#verify(evidence, tpm.idScope, tpm.registrationId)
  }

  #sendTpmChunk(): void {
    const tpm = this.#tpm!
    const challenge = tpmChunkChallenge(tpm.chunks!, tpm.sent)
    tpm.sent++
    this.#send(frames.sasl_frame(frames.sasl_challenge({ challenge: toRheaBytes(challenge) })))
  }

  #verify(evidence: Evidence, idScope: string, registrationId: string): void {
    this.#paused = true
    const authenticate: AmqpAuthenticate =
      this.#options.authenticate ??
      (async (e, scope, id) => {
        const device = this.#options.device
        const check = { idScope: scope, registrationId: id, evidence: e }
        await (device.authenticate !== undefined ? device.authenticate(check) : device.registrationStatus(check))
      })
    // Through a promise, so a verifier that throws synchronously is a refusal like any other.
    Promise.resolve()
      .then(() => authenticate(evidence, idScope, registrationId))
      .then(
      () =>
        this.#resume(() => {
          this.#identity = { kind: 'credential', idScope, registrationId, evidence }
          this.#outcome(SASL_OK)
        }),
      (error: unknown) => this.#resume(() => this.#refuse(`credentials of ${idScope}/registrations/${registrationId} refused: ${reasonOf(error)}`)),
    )
  }

  #outcome(code: number): void {
    this.#send(frames.sasl_frame(frames.sasl_outcome({ code })))
    if (code === SASL_OK) this.#phase = 'sasl-done'
  }

  /** sasl-outcome auth (or sys), then the connection ends (§5.3.2). */
  #refuse(reason: string, code = SASL_AUTH): void {
    this.#outcome(code)
    this.#end({ code: 'sasl-refused', reason })
  }

  /** Runs `step` after an asynchronous verdict, then continues with queued input. */
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
  // Connection, sessions, links (AMQP 1.0 §2.4-§2.7)

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
        return // We send settled deliveries only; the device's dispositions settle nothing here.
      case DETACH:
        return this.#detach(session, p)
      case END:
        this.#sessions.delete(channel)
        this.#send(frames.amqp_frame(session.localChannel, frames.end({})))
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
    this.#send(
      frames.amqp_frame(
        0,
        frames.open({
          container_id: this.#options.containerId ?? 'provisio',
          max_frame_size: this.#limits.maxFrameSize,
          channel_max: this.#limits.maxSessions - 1,
        }),
      ),
    )
  }

  #begin(channel: number, p: Performative): void {
    if (this.#sessions.has(channel)) throw new AmqpCodecError('PROTOCOL_ERROR', `begin on channel ${channel}, which already has a session`)
    if (this.#sessions.size >= this.#limits.maxSessions) throw new AmqpCodecError('RESOURCE_LIMIT', `more than ${this.#limits.maxSessions} sessions`)
    const localChannel = lowestFree(new Set([...this.#sessions.values()].map((s) => s.localChannel)))
    const session: Session = {
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
        frames.begin({
          remote_channel: channel,
          next_outgoing_id: 0,
          incoming_window: INCOMING_WINDOW,
          outgoing_window: OUTGOING_WINDOW,
          handle_max: this.#limits.maxLinksPerSession - 1,
        }),
      ),
    )
  }

  #attach(session: Session, p: Performative): void {
    const handle = numberOr(p['handle'], -1)
    const name = String(p['name'])
    if (handle < 0 || handle >= this.#limits.maxLinksPerSession) throw new AmqpCodecError('RESOURCE_LIMIT', `link handle ${handle} is above handle-max ${this.#limits.maxLinksPerSession - 1}`)
    if (session.links.has(handle) || session.refused.has(handle)) throw new AmqpCodecError('PROTOCOL_ERROR', `attach on handle ${handle}, which is in use`)
    // role true = the device receives, so we send on this link (§2.8.1).
    const direction = p['role'] === true ? 'out' : 'in'
    const source = p['source']
    const target = p['target']
    const terminal = terminus.unwrap(direction === 'out' ? source : target)
    const address = parseRegistrationAddress(terminal?.address)
    const properties = p['properties'] as Record<string, unknown> | undefined
    const apiVersion = typeof properties?.['com.microsoft:api-version'] === 'string' ? (properties['com.microsoft:api-version'] as string) : undefined
    const localHandle = lowestFree(new Set([...session.links.values()].map((l) => l.localHandle)))
    if (localHandle >= this.#limits.maxLinksPerSession) throw new AmqpCodecError('RESOURCE_LIMIT', `more than ${this.#limits.maxLinksPerSession} links in one session`)

    const reply = {
      name,
      handle: localHandle,
      role: direction === 'in',
      source,
      target,
      ...(direction === 'out' ? { initial_delivery_count: 0 } : {}),
    }
    const refusal = linkRefusal(this.#identity, this.#sessions.values(), address, terminal?.address)
    if (refusal !== undefined) {
      // §2.6.3: attach, then detach at once with the reason.
      this.#send(frames.amqp_frame(session.localChannel, frames.attach(reply)))
      this.#send(frames.amqp_frame(session.localChannel, frames.detach({ handle: localHandle, closed: true, error: refusal })))
      session.refused.add(handle)
      return
    }
    const link: Link = {
      name,
      remoteHandle: handle,
      localHandle,
      direction,
      idScope: address!.idScope,
      registrationId: address!.registrationId,
      apiVersion,
      deliveryCount: 0,
      credit: 0,
    }
    if (direction === 'in') link.deliveryCount = numberOr(p['initial_delivery_count'], 0)
    session.links.set(handle, link)
    this.#send(frames.amqp_frame(session.localChannel, frames.attach(reply)))
    if (direction === 'in') {
      link.credit = this.#limits.linkCredit
      this.#sendFlow(session, link)
    }
  }

  #flow(session: Session, p: Performative): void {
    const nextIncoming = numberOr(p['next_incoming_id'], 0)
    session.remoteIncomingWindow = nextIncoming + numberOr(p['incoming_window'], 0) - session.nextOutgoingId
    const handle = p['handle']
    if (typeof handle !== 'number') return this.#flush(session)
    // Credit the device granted before it saw our detach of a refused link.
    if (session.refused.has(handle)) return
    const link = this.#linkOf(session, handle)
    if (link.direction === 'out') {
      // §2.6.7: credit = delivery-count(receiver) + link-credit(receiver) - delivery-count(sender).
      link.credit = Math.max(0, numberOr(p['delivery_count'], 0) + numberOr(p['link_credit'], 0) - link.deliveryCount)
      this.#flush(session)
      this.#replenish(session)
      if (p['drain'] === true && link.credit > 0) {
        // Nothing more to send: use up the credit and tell the receiver (§2.6.7 drain).
        link.deliveryCount += link.credit
        link.credit = 0
        this.#sendFlow(session, link)
        return
      }
    }
    if (p['echo'] === true) this.#sendFlow(session, link)
  }

  /** A flow frame: session window (re-opened to INCOMING_WINDOW) and, with `link`, its credit (§2.7.4). */
  #sendFlow(session: Session, link?: Link): void {
    session.incomingWindowLeft = INCOMING_WINDOW
    this.#send(frames.amqp_frame(session.localChannel, frames.flow(flowFields(session, link))))
  }

  #linkOf(session: Session, handle: number): Link {
    const link = session.links.get(handle)
    if (link === undefined) throw new AmqpCodecError('PROTOCOL_ERROR', `handle ${handle} is not attached`)
    return link
  }

  #detach(session: Session, p: Performative): void {
    const handle = numberOr(p['handle'], -1)
    // The device's answer to our detach of a refused link: nothing more to say.
    if (session.refused.delete(handle)) return
    const link = this.#linkOf(session, handle)
    session.links.delete(handle)
    this.#send(frames.amqp_frame(session.localChannel, frames.detach({ handle: link.localHandle, closed: p['closed'] === true })))
  }

  #transfer(session: Session, p: Performative, payload: Uint8Array | undefined): void {
    session.nextIncomingId = (session.nextIncomingId + 1) >>> 0
    // §2.5.6: a transfer beyond our incoming-window is a session error; re-open the window at half
    // so multi-frame messages (a 128 KiB request in 512-byte frames) never stall on it.
    if (--session.incomingWindowLeft < 0) throw new AmqpCodecError('PROTOCOL_ERROR', `transfer beyond the session incoming-window of ${INCOMING_WINDOW}`)
    if (session.incomingWindowLeft < INCOMING_WINDOW / 2) this.#sendFlow(session)
    const link = this.#linkOf(session, numberOr(p['handle'], -1))
    if (link.direction !== 'in') throw new AmqpCodecError('PROTOCOL_ERROR', `transfer on handle ${link.remoteHandle}, a link the device receives on`)
    if (p['aborted'] === true) {
      link.partial = undefined
      return
    }
    let partial = link.partial
    if (partial === undefined) {
      if (link.credit <= 0) throw new AmqpCodecError('PROTOCOL_ERROR', `transfer on link ${JSON.stringify(link.name)} without credit (§2.6.7)`)
      const deliveryId = p['delivery_id']
      if (typeof deliveryId !== 'number') throw new AmqpCodecError('PROTOCOL_ERROR', 'first transfer of a delivery without delivery-id')
      partial = { deliveryId, settled: p['settled'] === true, bytes: new Uint8Array(0) }
      link.partial = partial
    }
    if (payload !== undefined) {
      if (partial.bytes.length + payload.length > this.#limits.maxMessageBytes) {
        throw new AmqpCodecError('RESOURCE_LIMIT', `message on link ${JSON.stringify(link.name)} exceeds ${this.#limits.maxMessageBytes} bytes`)
      }
      partial.bytes = concat(partial.bytes, payload.slice())
    }
    if (p['more'] === true) return
    link.partial = undefined
    link.credit--
    link.deliveryCount = (link.deliveryCount + 1) >>> 0
    this.#request(session, link, partial.deliveryId, partial.settled, partial.bytes)
    this.#replenish(session)
  }

  // ---------------------------------------------------------------------------------------------
  // DPS requests (docs/protocol.md §4)

  #request(session: Session, link: Link, deliveryId: number, settled: boolean, bytes: Uint8Array): void {
    const decoded = decodeRequest(bytes)
    const correlationId = decoded.correlation_id
    this.#requests.begin()
    this.#answer(link, decoded).then(
      (response) => this.#complete(session, link, deliveryId, settled, correlationId, response, undefined),
      (error: unknown) => this.#complete(session, link, deliveryId, settled, correlationId, undefined, error),
    )
  }

  async #answer(link: Link, msg: DpsRequestMessage): Promise<DeviceResponse<RegistrationOperationStatus>> {
    return answerRequest(this.#options.device, link, evidenceOf(this.#identity, this.#options.clientCertificates, link), msg)
  }

  #complete(
    session: Session,
    link: Link,
    deliveryId: number,
    settled: boolean,
    correlationId: unknown,
    response: DeviceResponse<RegistrationOperationStatus> | undefined,
    error: unknown,
  ): void {
    this.#requests.done()
    if (this.#phase === 'closed') return
    if (this.#sessions.get(session.remoteChannel) === session) {
      try {
        if (response !== undefined) {
          if (!settled) this.#disposition(session, deliveryId, message.accepted().described())
          this.#queueAnswer(session, link, correlationId, response)
        } else if (!settled) {
          this.#disposition(session, deliveryId, message.rejected({ error: rejectionOf(error, this.#options.trackingId(), this.#options.clock.now()) }).described())
        }
      } catch (failure) {
        this.#fail(failure)
        return
      }
    }
    for (const s of this.#sessions.values()) this.#replenish(s)
  }

  /** Requests being answered plus answers waiting for credit on the device's receiver link. */
  #backlog(): number {
    let queued = 0
    for (const s of this.#sessions.values()) queued += s.outbox.length
    return this.#requests.count + queued
  }

  /**
   * Tops up credit on the device's sender links once half is used, but only while the backlog is
   * under maxInFlight: AMQP flow control (§2.6.7) is what bounds the work a device can queue — one
   * that sends requests and never grants credit for the answers simply gets no more credit.
   */
  #replenish(session: Session): void {
    if (this.#backlog() >= this.#limits.maxInFlight) return
    for (const link of session.links.values()) {
      if (link.direction === 'in' && link.credit <= this.#limits.linkCredit / 2) {
        link.credit = this.#limits.linkCredit
        this.#sendFlow(session, link)
      }
    }
  }

  #disposition(session: Session, deliveryId: number, state: unknown): void {
    this.#send(frames.amqp_frame(session.localChannel, frames.disposition({ role: true, first: deliveryId, settled: true, state })))
  }

  #queueAnswer(session: Session, link: Link, correlationId: unknown, response: DeviceResponse<RegistrationOperationStatus>): void {
    session.outbox.push({ registrationKey: registrationKey(link.idScope, link.registrationId), payload: encodeAnswer(correlationId, response) })
    this.#flush(session)
  }

  /** Sends queued answers on the outgoing link of their registration while credit lasts. */
  #flush(session: Session): void {
    while (session.outbox.length > 0) {
      const next = session.outbox[0]!
      let link: Link | undefined
      for (const l of session.links.values()) {
        if (l.direction === 'out' && registrationKey(l.idScope, l.registrationId) === next.registrationKey) link = l
      }
      const room = this.#peerMaxFrame - TRANSFER_OVERHEAD
      const frameCount = Math.max(1, Math.ceil(next.payload.length / room))
      if (link === undefined || link.credit <= 0 || session.remoteIncomingWindow < frameCount) return
      session.outbox.shift()
      const deliveryId = session.nextDeliveryId
      session.nextDeliveryId = (session.nextDeliveryId + 1) >>> 0
      const tag = toRheaBytes(Uint8Array.of(deliveryId >>> 24, (deliveryId >>> 16) & 0xff, (deliveryId >>> 8) & 0xff, deliveryId & 0xff))
      for (let i = 0; i < frameCount; i++) {
        const slice = next.payload.subarray(i * room, Math.min(next.payload.length, (i + 1) * room))
        const first = i === 0
        const fields: Record<string, unknown> = { handle: link.localHandle, more: i < frameCount - 1 }
        if (first) Object.assign(fields, { delivery_id: deliveryId, delivery_tag: tag, message_format: 0, settled: true })
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

  #write(bytes: Uint8Array): void {
    this.#lastWriteAtMs = this.#options.clock.now()
    this.#options.write(bytes)
  }

  #send(frame: FrameSpec): void {
    this.#write(frames.write_frame(frame))
  }

  /** Closes the connection for a wire fault, with a close frame when the AMQP layer is up. */
  #fail(error: unknown): void {
    if (this.#phase === 'closed') return
    const err = error instanceof AmqpCodecError ? error : new AmqpCodecError('DECODE_ERROR', `frame could not be processed: ${reasonOf(error)}`)
    if (this.#phase === 'open' || this.#phase === 'open-wait') {
      try {
        // §2.4.1: a close must follow an open; send ours first when the peer's never came.
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
