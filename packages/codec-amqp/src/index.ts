/**
 * @provisio/codec-amqp — Sans-IO AMQP 1.0 sessions on rhea's types and framing: the DPS device
 * dialect (SASL PLAIN/TPM/none, registration links; docs/protocol.md §4, §5.3), the embedded hubs'
 * endpoint (CBS, device telemetry, cloud-to-device sends; §12), and the front that routes a
 * connection of the shared port to one of them (§12.1).
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
export { AmqpHubSession, DEFAULT_HUB_AMQP_LIMITS, type AmqpHubEvent, type AmqpHubSessionOptions } from './hub-session.js'
export { AmqpConnection, routeAmqp, type AmqpConnectionOptions, type AmqpEndpoint, type AmqpRoute, type AmqpRouteHint } from './connection.js'
export { parseHubAddress, readAudience, readC2dSend, MAX_HUB_MESSAGE_BODY_BYTES, type C2dSendInput, type HubAddress } from './hub-messages.js'
