/**
 * AMQP performatives as the connection reads them: descriptor codes (AMQP 1.0 §2.7, §5.3.3), the
 * decoding of one structurally checked frame with rhea, and readers of performative fields.
 */
import frames, { type Performative } from 'rhea/lib/frames.js'
import { AmqpCodecError, reasonOf } from './errors.js'
import { toRheaBytes } from './wire.js'

// Performative descriptor codes (AMQP 1.0 §2.7, §5.3.3).
export const OPEN = 0x10, BEGIN = 0x11, ATTACH = 0x12, FLOW = 0x13, TRANSFER = 0x14, DISPOSITION = 0x15, DETACH = 0x16, END = 0x17, CLOSE = 0x18
export const SASL_INIT = 0x41, SASL_RESPONSE = 0x43

/** An AMQP frame with no body: size 8, doff 2, type 0, channel 0 (§2.4.5). */
export const EMPTY_FRAME = Uint8Array.of(0, 0, 0, 8, 2, 0, 0, 0)

export interface DecodedFrame {
  readonly code: number
  readonly performative: Performative
  readonly payload: Uint8Array | undefined
}

/** Decodes one structurally checked frame with rhea; unknown performatives are decode errors. */
export function decodeFrame(bytes: Uint8Array): DecodedFrame {
  let frame: ReturnType<typeof frames.read_frame>
  try {
    frame = frames.read_frame(toRheaBytes(bytes))
  } catch (error) {
    throw new AmqpCodecError('DECODE_ERROR', `frame does not decode: ${reasonOf(error)}`)
  }
  const performative = frame?.performative
  const descriptor = (performative?.constructor as { descriptor?: { numeric?: unknown } } | undefined)?.descriptor
  if (performative === undefined || typeof descriptor?.numeric !== 'number') {
    throw new AmqpCodecError('DECODE_ERROR', 'frame body is not a known AMQP performative (§2.7, §5.3.3)')
  }
  return { code: descriptor.numeric, performative, payload: frame!.payload }
}

export function asBytes(value: unknown): Uint8Array | undefined {
  return value instanceof Uint8Array ? value : undefined
}

export function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback
}

/** The error field of a peer's close frame, as a reason. */
export function describeError(error: unknown): string | undefined {
  if (error === undefined || error === null) return undefined
  const e = error as { condition?: unknown; description?: unknown }
  return `peer closed with ${String(e.condition)}${e.description === undefined ? '' : `: ${String(e.description)}`}`
}
