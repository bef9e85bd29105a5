/**
 * @provisio/hub — the embedded IoT hub core: identity registry and twins with versions and ETags,
 * desired-property change events, device authentication (SAS, X.509), the telemetry buffer, the
 * registry API and device API over the hubs a server embeds, and the engine's gateway to them.
 * The wire dialects live in the codecs (registry REST: codec-http; device MQTT: codec-mqtt).
 */
export { EmbeddedHub, MAX_MODULES_PER_DEVICE, mergePatch, edgeScope, parseEdgeScope, type HubPorts, type DesiredChange, type IdentityRevoked } from './hub.js'
export { HubDirectory } from './directory.js'
export { authenticateHubDevice, type HubDeviceCredentials, type HubDeviceAuthContext } from './device-auth.js'
export { TelemetryBuffer, DEFAULT_TELEMETRY_LIMITS, type TelemetryLimits, type TelemetryMessage, type TelemetryPage } from './telemetry.js'
export {
  createTelemetrySink,
  telemetryPartition,
  telemetryMessageOf,
  telemetryReaderOf,
  MAX_TELEMETRY_BYTES,
  MAX_TELEMETRY_PARTITIONS,
  type TelemetryInput,
  type TelemetryRecord,
  type TelemetryPosition,
  type TelemetryPartitionInfo,
  type TelemetryStore,
  type TelemetrySink,
  type TelemetrySinkMessage,
} from './telemetry-store.js'
export type { DeviceSpec, TwinPatch } from '@provisio/protocol'
export { MemoryHubStore } from './memory-store.js'
export type {
  AuthenticationType,
  DeviceAuthentication,
  DeviceIdentity,
  DeviceTwin,
  TwinProperties,
  HubDeviceRecord,
  HubModuleRecord,
  HubStore,
  HubWriteCondition,
} from './types.js'
export { checkLinkedHubRights, createRestHubGateway, toAuthentication, type RestHubGatewayOptions, type RegistryFetch } from './rest-gateway.js'
export { createLocalHubGateway } from './local-gateway.js'
export { createHubRegistryApi, type HubAccessPolicy } from './registry-api.js'
export { createHubDevices, type HubDevices, type HubTelemetryReader } from './device-api.js'
export { ClientTable, hubClientKey, dpsClientKey, sniChecked, type ClaimableConnection } from './connections.js'
export { MemoryHubSessions, DEFAULT_HUB_SESSION_LIMITS, type HubSessionLimits } from './sessions.js'
export { DirectMethods, DEFAULT_DIRECT_METHODS_LIMITS, type DirectMethodsLimits, type MethodPorts, type MethodTimers, type MethodRelayMessage, type MethodEvent } from './methods.js'
export {
  CloudToDevice,
  C2D_ACK_VALUES,
  DEFAULT_C2D_SETTINGS,
  c2dMessageSize,
  feedbackRecord,
  parseLockToken,
  wantsFeedback,
  type C2dAck,
  type C2dContext,
  type C2dDelivery,
  type C2dEvent,
  type C2dFeedbackBatch,
  type C2dFeedbackRecord,
  type C2dFeedbackStatus,
  type C2dMessage,
  type C2dMessageInput,
  type C2dNotice,
  type C2dOutcome,
  type C2dPorts,
  type C2dSettings,
  type C2dSettleResult,
  type C2dStore,
} from './c2d.js'
export { MemoryC2dStore } from './c2d-memory.js'
export { checkIssuedDeviceCertificate, type IssuedCertificateTrust } from './issued-auth.js'
