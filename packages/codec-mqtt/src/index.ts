/**
 * @provisio/codec-mqtt — sans-IO MQTT 3.1.1 sessions of the DPS device dialect
 * (docs/protocol.md §3) and of the IoT Hub device dialect, on mqtt-packet: bytes in, bytes and
 * API calls out; a router picks the dialect from the CONNECT. The Node adapter in
 * @provisio/server only moves bytes and calls `tick()`.
 *
 * The topic grammar (usernames, topics, property bags) lives in @provisio/protocol, shared with
 * the device SDK; it is re-exported here.
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
export type { HubDeviceApi } from '@provisio/protocol'
export {
  createHubMqttSession,
  HubMqttSession,
  DEFAULT_HUB_MQTT_LIMITS,
  type HubMqttEvent,
  type HubMqttLimits,
  type HubMqttSessionOptions,
  type HubMqttState,
} from './hub-session.js'
export {
  TWIN_RESPONSE_FILTER,
  TWIN_DESIRED_FILTER,
  METHODS_FILTER,
  parseHubUsername,
  parseHubRequestTopic,
  hubSubscriptionKinds,
  topicMatches,
  topicFilterError,
  formatTwinResponseTopic,
  formatDesiredTopic,
  mqttDialectOf,
  type HubUsername,
  type HubUsernameError,
  type HubRequestTopic,
  type HubTopicError,
  type HubSubscriptionKind,
} from '@provisio/protocol'
export { MqttRouter, type MqttRouterOptions, type MqttSessionLike } from './router.js'
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
} from '@provisio/protocol'
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
