/**
 * MQTT 3.1.1 packets on the wire: a framing decoder with size limits in front of mqtt-packet's
 * parser, and an encoder over mqtt-packet's generator (parser and generator kept apart,
 * the packet a plain object discriminated on `cmd`).
 *
 * Why our own framing: mqtt-packet buffers a packet of any announced length (up to the 256 MB
 * the 4-byte Remaining Length allows, MQTT 3.1.1 §2.2.3) before it looks at it. We read the fixed
 * header ourselves, refuse an oversized packet as soon as its length is known, and hand
 * mqtt-packet exactly one complete frame at a time, so its output is one packet or one error.
 *
 * Runtime note: mqtt-packet uses Node's `Buffer` (through `bl`) and `events` internally; in a
 * browser it needs the usual `buffer`/`events` shims. Our code only sees `Uint8Array`s — the
 * Buffers it returns are Uint8Array subclasses — and touches no Node global itself.
 */
import mqttPacket from 'mqtt-packet'

/** A subscription request of a SUBSCRIBE packet. */
export interface MqttSubscription {
  readonly topic: string
  readonly qos: 0 | 1 | 2
}

/** CONNECT (MQTT 3.1.1 §3.1). `password` is raw bytes, as on the wire. */
export interface MqttConnectPacket {
  readonly cmd: 'connect'
  readonly protocolId: string
  readonly protocolVersion: number
  readonly clean: boolean
  readonly keepalive: number
  readonly clientId: string
  readonly username?: string
  readonly password?: Uint8Array
  readonly will?: { readonly topic: string; readonly payload: Uint8Array; readonly qos: 0 | 1 | 2; readonly retain: boolean }
}

/** CONNACK (§3.2). Return codes: 0 accepted, 1 protocol, 2 identifier, 3 unavailable, 4 credentials malformed, 5 not authorized. */
export interface MqttConnackPacket {
  readonly cmd: 'connack'
  readonly returnCode: 0 | 1 | 2 | 3 | 4 | 5
  readonly sessionPresent: boolean
}

/** PUBLISH (§3.3). `messageId` is present exactly when qos > 0. */
export interface MqttPublishPacket {
  readonly cmd: 'publish'
  readonly topic: string
  readonly payload: Uint8Array
  readonly qos: 0 | 1 | 2
  readonly retain: boolean
  readonly dup: boolean
  readonly messageId?: number
}

/** PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: a packet identifier only. */
export interface MqttAckPacket {
  readonly cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp' | 'unsuback'
  readonly messageId: number
}

/** SUBSCRIBE (§3.8). */
export interface MqttSubscribePacket {
  readonly cmd: 'subscribe'
  readonly messageId: number
  readonly subscriptions: readonly MqttSubscription[]
}

/** SUBACK (§3.9): one granted QoS (0, 1, 2) or 0x80 (failure) per requested filter. */
export interface MqttSubackPacket {
  readonly cmd: 'suback'
  readonly messageId: number
  readonly granted: readonly number[]
}

/** UNSUBSCRIBE (§3.10). */
export interface MqttUnsubscribePacket {
  readonly cmd: 'unsubscribe'
  readonly messageId: number
  readonly unsubscriptions: readonly string[]
}

/** PINGREQ, PINGRESP, DISCONNECT: no body. */
export interface MqttEmptyPacket {
  readonly cmd: 'pingreq' | 'pingresp' | 'disconnect'
}

/** Every MQTT 3.1.1 control packet. */
export type MqttPacket =
  | MqttConnectPacket
  | MqttConnackPacket
  | MqttPublishPacket
  | MqttAckPacket
  | MqttSubscribePacket
  | MqttSubackPacket
  | MqttUnsubscribePacket
  | MqttEmptyPacket

/** Stable codes of {@link MqttCodecError}. */
export type MqttCodecErrorCode =
  /** Bytes that are not an MQTT 3.1.1 packet (bad flags, lengths, strings, unknown type). */
  | 'MQTT_MALFORMED'
  /** A CONNECT naming a protocol or level other than MQTT 3.1.1 (§3.1.2.2). */
  | 'MQTT_UNSUPPORTED_PROTOCOL'
  /** A packet larger than the configured maximum. */
  | 'MQTT_PACKET_TOO_LARGE'
  /** A packet object that cannot be encoded (a programming error on our side). */
  | 'MQTT_ENCODE_FAILED'

/** A typed MQTT codec failure; `message` says which rule was broken. */
export class MqttCodecError extends Error {
  override readonly name = 'MqttCodecError'
  constructor(
    readonly code: MqttCodecErrorCode,
    message: string,
  ) {
    super(message)
  }
}

/** Default largest packet accepted: a 96 KB DPS body (docs/protocol.md §9) plus topic and headers. */
export const DEFAULT_MAX_PACKET_BYTES = 128 * 1024

// The slice of mqtt-packet we use, typed here with Uint8Array so that no Node type leaks in.
interface RawParser {
  on(event: 'packet', listener: (packet: Record<string, unknown>) => void): unknown
  on(event: 'error', listener: (error: Error) => void): unknown
  parse(bytes: Uint8Array): number
}
interface RawModule {
  parser(options?: { protocolVersion?: number }): RawParser
  generate(packet: Record<string, unknown>, options?: { protocolVersion?: number }): Uint8Array
}
const raw = mqttPacket as unknown as RawModule

// Control packet type in the high nibble of byte 0 (§2.2.1); 0 and 15 are reserved in 3.1.1.
const TYPE_NAMES = ['reserved', 'connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect', 'reserved']

/** Result of {@link MqttDecoder.push}: the packets completed by the chunk, then at most one error. */
export interface DecodeResult {
  readonly packets: MqttPacket[]
  /** Set when the stream is broken; the decoder then ignores further input. */
  readonly error?: MqttCodecError
}

/**
 * Incremental decoder: feed it bytes as they arrive, in chunks of any size; it returns every
 * packet the bytes complete. It never throws: broken input ends in a {@link MqttCodecError}
 * and the decoder stays failed (MQTT closes the connection on any malformed packet, §4.8).
 */
/**
 * One mqtt-packet parser shared by every decoder. Decoders frame the stream themselves and hand
 * the parser exactly one whole packet per call, which it parses synchronously and completely, so
 * it carries nothing from one call to the next — except what a CONNECT writes into its settings
 * (protocol level, bridge mode): after a CONNECT that is not plain 3.1.1, or a call that failed
 * or left bytes behind, the shared parser is dropped and the next call makes a fresh one. Making
 * one (an EventEmitter and a BufferList stream) was 4 % of the server's time per MQTT connection.
 */
interface SharedParser {
  readonly parser: RawParser
  parsed: Record<string, unknown> | undefined
  error: Error | undefined
}
let shared: SharedParser | undefined

function sharedParser(): SharedParser {
  if (shared !== undefined) return shared
  const parser = raw.parser({ protocolVersion: 4 })
  const made: SharedParser = { parser, parsed: undefined, error: undefined }
  parser.on('packet', (p) => void (made.parsed = p))
  parser.on('error', (e) => void (made.error = e))
  shared = made
  return made
}

/** Parses one whole frame: the raw packet, or the parser's error. */
function parseFrame(frame: Uint8Array): { packet?: Record<string, unknown>; error?: Error } {
  const s = sharedParser()
  s.parsed = undefined
  s.error = undefined
  let left: number
  try {
    left = s.parser.parse(frame)
  } catch (error) {
    shared = undefined
    return { error: error as Error }
  }
  // Set by the parser's listeners during parse() (TypeScript still sees the undefined set above).
  const parsed = s.parsed as Record<string, unknown> | undefined
  const error = s.error as Error | undefined
  s.parsed = undefined
  s.error = undefined
  if (error !== undefined || left !== 0 || parsed === undefined) shared = undefined
  else if (parsed.cmd === 'connect' && (parsed.protocolVersion !== 4 || parsed.bridgeMode === true)) shared = undefined
  return error !== undefined ? { error } : parsed === undefined ? {} : { packet: parsed }
}

export class MqttDecoder {
  #buf = new Uint8Array(256)
  #start = 0
  #end = 0
  #failed: MqttCodecError | undefined
  readonly #maxPacketBytes: number

  constructor(options: { readonly maxPacketBytes?: number } = {}) {
    this.#maxPacketBytes = options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES
  }

  /** The error the decoder failed with, if any. */
  get error(): MqttCodecError | undefined {
    return this.#failed
  }

  /** Bytes received but not yet part of a complete packet. */
  get buffered(): number {
    return this.#end - this.#start
  }

  push(chunk: Uint8Array): DecodeResult {
    const packets: MqttPacket[] = []
    if (this.#failed) return { packets, error: this.#failed }
    this.#append(chunk)
    for (;;) {
      const frame = this.#nextFrame()
      if (frame === undefined) break
      if (frame instanceof MqttCodecError) return this.#fail(packets, frame)
      const decoded = this.#decodeFrame(frame)
      if (decoded instanceof MqttCodecError) return this.#fail(packets, decoded)
      packets.push(decoded)
    }
    return { packets }
  }

  #fail(packets: MqttPacket[], error: MqttCodecError): DecodeResult {
    this.#failed = error
    this.#buf = new Uint8Array(0)
    this.#start = this.#end = 0
    return { packets, error }
  }

  #append(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    if (this.#end + chunk.length > this.#buf.length) {
      const live = this.#end - this.#start
      let size = this.#buf.length
      while (size < live + chunk.length) size *= 2
      const next = size === this.#buf.length ? this.#buf : new Uint8Array(size)
      next.set(this.#buf.subarray(this.#start, this.#end), 0)
      this.#buf = next
      this.#end = live
      this.#start = 0
    }
    this.#buf.set(chunk, this.#end)
    this.#end += chunk.length
  }

  /** The next complete frame (a copy), undefined when more bytes are needed. */
  #nextFrame(): Uint8Array | MqttCodecError | undefined {
    const available = this.#end - this.#start
    if (available < 2) return undefined
    const b = this.#buf
    const type = b[this.#start]! >> 4
    if (type === 0 || type === 15) {
      return new MqttCodecError('MQTT_MALFORMED', `control packet type ${type} is reserved in MQTT 3.1.1 (§2.2.1)`)
    }
    // Remaining Length: 1 to 4 bytes, 7 bits each, high bit = continuation (§2.2.3).
    let remaining = 0
    let multiplier = 1
    let i = 1
    for (;;) {
      if (i >= available) return undefined
      const byte = b[this.#start + i]!
      remaining += (byte & 0x7f) * multiplier
      i++
      if ((byte & 0x80) === 0) break
      if (i > 4) return new MqttCodecError('MQTT_MALFORMED', 'Remaining Length uses more than 4 bytes (§2.2.3)')
      multiplier *= 128
    }
    const total = i + remaining
    if (total > this.#maxPacketBytes) {
      return new MqttCodecError('MQTT_PACKET_TOO_LARGE', `${TYPE_NAMES[type]} packet of ${total} bytes exceeds the limit of ${this.#maxPacketBytes} bytes`)
    }
    if (available < total) return undefined
    const frame = b.slice(this.#start, this.#start + total)
    this.#start += total
    if (this.#start === this.#end) this.#start = this.#end = 0
    return frame
  }

  #decodeFrame(frame: Uint8Array): MqttPacket | MqttCodecError {
    const type = TYPE_NAMES[frame[0]! >> 4]!
    const { packet, error } = parseFrame(frame)
    if (error !== undefined) {
      const message = error.message
      if (type === 'connect' && /protocol ?(version|id)/i.test(message)) {
        return new MqttCodecError('MQTT_UNSUPPORTED_PROTOCOL', `CONNECT: ${message} (only MQTT 3.1.1, level 4, is served)`)
      }
      return new MqttCodecError('MQTT_MALFORMED', `${type} packet: ${message}`)
    }
    if (packet === undefined) return new MqttCodecError('MQTT_MALFORMED', `${type} packet did not parse into a packet`)
    return fromRaw(packet)
  }
}

/** Maps mqtt-packet's object onto our packet types (copying only what 3.1.1 defines). */
function fromRaw(p: Record<string, unknown>): MqttPacket | MqttCodecError {
  const id = p.messageId as number
  switch (p.cmd) {
    case 'connect': {
      const will = p.will as { topic: string; payload: Uint8Array; qos: 0 | 1 | 2; retain: boolean } | undefined
      return {
        cmd: 'connect',
        protocolId: p.protocolId as string,
        protocolVersion: p.protocolVersion as number,
        clean: p.clean as boolean,
        keepalive: p.keepalive as number,
        clientId: p.clientId as string,
        ...(typeof p.username === 'string' ? { username: p.username } : {}),
        ...(p.password instanceof Uint8Array ? { password: p.password } : {}),
        ...(will !== undefined && will !== null ? { will: { topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain } } : {}),
      }
    }
    case 'connack':
      return { cmd: 'connack', returnCode: p.returnCode as 0, sessionPresent: p.sessionPresent as boolean }
    case 'publish':
      return {
        cmd: 'publish',
        topic: p.topic as string,
        payload: p.payload as Uint8Array,
        qos: p.qos as 0 | 1 | 2,
        retain: p.retain as boolean,
        dup: p.dup as boolean,
        ...((p.qos as number) > 0 ? { messageId: id } : {}),
      }
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
    case 'unsuback':
      return { cmd: p.cmd, messageId: id }
    case 'subscribe':
      return {
        cmd: 'subscribe',
        messageId: id,
        subscriptions: (p.subscriptions as { topic: string; qos: 0 | 1 | 2 }[]).map((s) => ({ topic: s.topic, qos: s.qos })),
      }
    case 'suback':
      return { cmd: 'suback', messageId: id, granted: [...(p.granted as number[])] }
    case 'unsubscribe':
      return { cmd: 'unsubscribe', messageId: id, unsubscriptions: [...(p.unsubscriptions as string[])] }
    case 'pingreq':
    case 'pingresp':
    case 'disconnect':
      return { cmd: p.cmd }
    default:
      return new MqttCodecError('MQTT_MALFORMED', `packet type ${JSON.stringify(String(p.cmd))} does not exist in MQTT 3.1.1`)
  }
}

/**
 * Serializes one packet (MQTT 3.1.1). Payload strings are written as UTF-8.
 * @throws MqttCodecError `MQTT_ENCODE_FAILED` when the object breaks a wire rule (e.g. a
 *   messageId outside 1..65535, a QoS > 0 publish without one)
 */
export function encodePacket(packet: MqttPacket | (Omit<MqttPublishPacket, 'payload'> & { readonly payload: Uint8Array | string })): Uint8Array {
  try {
    if (packet.cmd === 'publish' && typeof packet.payload !== 'string' && !isNodeBuffer(packet.payload)) {
      return appendPayload(raw.generate({ ...packet, payload: '' }, { protocolVersion: 4 }), packet.payload)
    }
    return raw.generate(toRaw(packet), { protocolVersion: 4 })
  } catch (error) {
    throw new MqttCodecError('MQTT_ENCODE_FAILED', `${packet.cmd} packet cannot be encoded: ${(error as Error).message}`)
  }
}

// mqtt-packet writes binary fields with Buffer#copy; a plain Uint8Array has none.
function isNodeBuffer(bytes: Uint8Array): boolean {
  return typeof (bytes as unknown as { copy?: unknown }).copy === 'function'
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Text of a binary field that mqtt-packet can only take as a Buffer or a string. */
function asText(bytes: Uint8Array | undefined, field: string): string | Uint8Array | undefined {
  if (bytes === undefined || isNodeBuffer(bytes)) return bytes
  try {
    return strictUtf8.decode(bytes)
  } catch {
    throw new Error(`${field} is not UTF-8; pass it as a Buffer`)
  }
}

/**
 * Appends a payload to a PUBLISH generated with an empty one: the payload is the last field
 * (§3.3.3), so only the Remaining Length (§2.2.3) changes.
 */
function appendPayload(head: Uint8Array, payload: Uint8Array): Uint8Array {
  let i = 1
  let remaining = 0
  let multiplier = 1
  for (;;) {
    const byte = head[i++]!
    remaining += (byte & 0x7f) * multiplier
    multiplier *= 128
    if ((byte & 0x80) === 0) break
  }
  let length = remaining + payload.length
  if (length > 268_435_455) throw new Error(`payload of ${payload.length} bytes makes the packet exceed the MQTT maximum`)
  const varint: number[] = []
  do {
    let byte = length % 128
    length = Math.floor(length / 128)
    if (length > 0) byte |= 0x80
    varint.push(byte)
  } while (length > 0)
  const body = head.subarray(i)
  const out = new Uint8Array(1 + varint.length + body.length + payload.length)
  out[0] = head[0]!
  out.set(varint, 1)
  out.set(body, 1 + varint.length)
  out.set(payload, 1 + varint.length + body.length)
  return out
}

function toRaw(packet: MqttPacket | (Omit<MqttPublishPacket, 'payload'> & { readonly payload: Uint8Array | string })): Record<string, unknown> {
  switch (packet.cmd) {
    case 'connect': {
      const { will, password, ...rest } = packet
      return {
        ...rest,
        ...(password === undefined ? {} : { password: asText(password, 'password') }),
        ...(will === undefined ? {} : { will: { ...will, payload: asText(will.payload, 'will payload') } }),
      }
    }
    case 'subscribe':
      return { cmd: 'subscribe', messageId: packet.messageId, subscriptions: packet.subscriptions.map((s) => ({ ...s })) }
    case 'suback':
      return { cmd: 'suback', messageId: packet.messageId, granted: [...packet.granted] }
    case 'unsubscribe':
      return { cmd: 'unsubscribe', messageId: packet.messageId, unsubscriptions: [...packet.unsubscriptions] }
    default:
      return { ...packet }
  }
}
