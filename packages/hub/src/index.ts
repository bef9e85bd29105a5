/**
 * @provisio/hub — the embedded IoT hub core: identity registry and twins (this issue), the
 * registry REST API and the device MQTT dialect (the hub issue).
 */
export { EmbeddedHub, mergePatch, type HubPorts } from './hub.js'
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
} from './types.js'
export { createRestHubGateway, toAuthentication, type RestHubGatewayOptions, type RegistryFetch } from './rest-gateway.js'
