/**
 * @provisio/codec-amqp — Sans-IO AMQP 1.0 session of the DPS device dialect: SASL PLAIN/TPM/none,
 * links, request/response, on rhea's types and framing (docs/protocol.md §4, §5.3).
 */
export { AmqpDeviceSession } from './session.js'
export {
  DEFAULT_AMQP_LIMITS,
  MIN_MAX_FRAME_SIZE,
  type AmqpAuthenticate,
  type AmqpCloseReason,
  type AmqpLimits,
  type AmqpSessionOptions,
} from './options.js'
export { parseRegistrationAddress } from './address.js'
export { AmqpCodecError, type AmqpCodecErrorCode, type AmqpCondition } from './errors.js'
export { AMQP_HEADER, SASL_HEADER, MAX_ENCODING_DEPTH, checkEncoding, checkValue, readFrameHeader, readProtocolHeader } from './wire.js'
