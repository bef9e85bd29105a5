/**
 * @provisio/hub — the embedded IoT hub core: identity registry and twins with versions and ETags,
 * desired-property change events, device authentication (SAS, X.509), the telemetry buffer, the
 * registry API and device API over the hubs a server embeds, and the engine's gateway to them.
 * The wire dialects live in the codecs (registry REST: codec-http; device MQTT: codec-mqtt).
 */
export { EmbeddedHub, mergePatch, edgeScope, parseEdgeScope, type HubPorts, type DesiredChange, type IdentityRevoked } from './hub.js'
export { HubDirectory } from './directory.js'
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
export { checkLinkedHubRights, createRestHubGateway, toAuthentication, type RestHubGatewayOptions, type RegistryFetch } from './rest-gateway.js'
export { createLocalHubGateway } from './local-gateway.js'
export { createHubRegistryApi, type HubAccessPolicy } from './registry-api.js'
export { createHubDevices, type HubDevices } from './device-api.js'
export { ClientTable, hubClientKey, dpsClientKey, sniChecked, type ClaimableConnection } from './connections.js'
export { MemoryHubSessions, DEFAULT_HUB_SESSION_LIMITS, type HubSessionLimits } from './sessions.js'
export { DirectMethods, DEFAULT_DIRECT_METHODS_LIMITS, type DirectMethodsLimits, type MethodPorts, type MethodTimers, type MethodRelayMessage, type MethodEvent } from './methods.js'
export { checkIssuedDeviceCertificate, type IssuedCertificateTrust } from './issued-auth.js'
