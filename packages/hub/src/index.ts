/**
 * @provisio/hub — the embedded IoT hub core: identity registry and twins with versions and ETags,
 * desired-property change events, device authentication (SAS, X.509) and the telemetry buffer.
 * The wire dialects live in the codecs (registry REST: codec-http; device MQTT: codec-mqtt).
 */
export { EmbeddedHub, mergePatch, type HubPorts, type DesiredChange, type IdentityRevoked } from './hub.js'
export { authenticateHubDevice, type HubDeviceCredentials, type HubDeviceAuthContext } from './device-auth.js'
export { TelemetryBuffer, DEFAULT_TELEMETRY_LIMITS, type TelemetryLimits, type TelemetryMessage, type TelemetryPage } from './telemetry.js'
export type { DeviceSpec, TwinPatch } from '@provisio/protocol'
export { MemoryHubStore } from './memory-store.js'
export type {
  AuthenticationType,
  DeviceAuthentication,
  DeviceIdentity,
  DeviceTwin,
  TwinProperties,
  HubDeviceRecord,
  HubStore,
  HubWriteCondition,
} from './types.js'
export { createRestHubGateway, toAuthentication, type RestHubGatewayOptions, type RegistryFetch } from './rest-gateway.js'
