/**
 * @provisio/codec-mqtt — the sans-IO MQTT 3.1.1 session of the DPS device dialect
 * (dps-protocol.md §3), on mqtt-packet: bytes in, bytes and DeviceApi calls out. The Node
 * adapter in @provisio/server only moves bytes and calls `tick()`.
 *
 * Runtime note: mqtt-packet uses Node's `Buffer` and `events` internally (browsers need the
 * usual shims); this package's own code uses no Node global.
 */
export {
  createDpsMqttSession,
  DpsMqttSession,
  DEFAULT_MQTT_LIMITS,
  type DpsMqttSessionOptions,
  type DpsMqttState,
  type DpsMqttEvent,
  type MqttLimits,
  type MqttCloseCode,
  type MqttCloseReason,
} from './session.js'
export {
  DPS_RESPONSE_FILTER,
  MAX_RID_LENGTH,
  MAX_USERNAME_LENGTH,
  parseDpsUsername,
  parseDpsRequestTopic,
  formatDpsResponseTopic,
  type DpsUsername,
  type DpsUsernameError,
  type DpsRequestTopic,
  type DpsTopicError,
} from './dps-topics.js'
export {
  MqttDecoder,
  MqttCodecError,
  encodePacket,
  DEFAULT_MAX_PACKET_BYTES,
  type DecodeResult,
  type MqttCodecErrorCode,
  type MqttPacket,
  type MqttConnectPacket,
  type MqttConnackPacket,
  type MqttPublishPacket,
  type MqttAckPacket,
  type MqttSubscribePacket,
  type MqttSubackPacket,
  type MqttUnsubscribePacket,
  type MqttEmptyPacket,
  type MqttSubscription,
} from './wire.js'
