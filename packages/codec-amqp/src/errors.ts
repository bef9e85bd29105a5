/**
 * Typed errors of the AMQP codec. Each carries a stable `code` and the AMQP error condition the
 * connection is closed with (AMQP 1.0 §2.8.15 amqp-error, §2.8.16 connection-error).
 */
import { ProvisioError } from '@provisio/protocol'

/** Stable codes of {@link AmqpCodecError}. */
export type AmqpCodecErrorCode =
  /** Not an AMQP 1.0 protocol header, or a protocol id this server does not serve (§2.2). */
  | 'BAD_PROTOCOL_HEADER'
  /** Frame header broken: size below 8, data offset out of range, unknown frame type (§2.3). */
  | 'FRAMING_ERROR'
  /** A frame larger than the negotiated max-frame-size (§2.4.1, §2.7.1). */
  | 'FRAME_TOO_LARGE'
  /** A value inside a frame is not valid AMQP type encoding (§1.6) or breaks a size/depth limit. */
  | 'DECODE_ERROR'
  /** A well-formed frame that is out of place (wrong state, unknown channel or handle). */
  | 'PROTOCOL_ERROR'
  /** A message larger than the codec accepts, or too many sessions/links. */
  | 'RESOURCE_LIMIT'
  /** The peer did not finish opening (header, SASL, open) within the adapter's connect timeout. */
  | 'OPEN_TIMEOUT'

/** AMQP error conditions the codec closes connections with. */
export type AmqpCondition =
  | 'amqp:decode-error'
  | 'amqp:connection:framing-error'
  | 'amqp:frame-size-too-small'
  | 'amqp:not-allowed'
  | 'amqp:internal-error'
  | 'amqp:resource-limit-exceeded'
  | 'amqp:illegal-state'
  | 'amqp:not-implemented'

const CONDITIONS: Record<AmqpCodecErrorCode, AmqpCondition> = {
  BAD_PROTOCOL_HEADER: 'amqp:connection:framing-error',
  FRAMING_ERROR: 'amqp:connection:framing-error',
  // §2.7.1: a frame over max-frame-size is a framing error of the connection.
  FRAME_TOO_LARGE: 'amqp:connection:framing-error',
  DECODE_ERROR: 'amqp:decode-error',
  PROTOCOL_ERROR: 'amqp:illegal-state',
  RESOURCE_LIMIT: 'amqp:resource-limit-exceeded',
  // A connection held open without opening ties up server resources.
  OPEN_TIMEOUT: 'amqp:resource-limit-exceeded',
}

/** A wire-level fault of one connection; the session closes that connection with `condition`. */
export class AmqpCodecError extends Error {
  override readonly name = 'AmqpCodecError'
  readonly code: AmqpCodecErrorCode
  readonly condition: AmqpCondition

  constructor(code: AmqpCodecErrorCode, reason: string) {
    super(reason)
    this.code = code
    this.condition = CONDITIONS[code]
  }
}

/** A failure as one line of a reason: the ProvisioError code and reason, or the error's message. */
export function reasonOf(error: unknown): string {
  if (error instanceof ProvisioError) return `${error.code}: ${error.reason}`
  if (error instanceof Error) return error.message
  return String(error)
}
