/**
 * IoT Hub registry shapes as the service REST API (api-version 2021-04-12) and azure-iothub
 * return them: a device identity and its twin. Only what provisioning and the embedded hub use.
 */

/** How a device authenticates to the hub. */
export type AuthenticationType = 'sas' | 'selfSigned' | 'certificateAuthority' | 'none'

export interface DeviceAuthentication {
  type: AuthenticationType
  symmetricKey?: { primaryKey: string | null; secondaryKey: string | null }
  x509Thumbprint?: { primaryThumbprint: string | null; secondaryThumbprint: string | null }
}

/** A device identity in the registry. */
export interface DeviceIdentity {
  deviceId: string
  generationId: string
  etag: string
  status: 'enabled' | 'disabled'
  statusReason?: string
  statusUpdatedTime: string
  connectionState: 'Connected' | 'Disconnected'
  connectionStateUpdatedTime: string
  lastActivityTime: string
  cloudToDeviceMessageCount: number
  authentication: DeviceAuthentication
  capabilities: { iotEdge: boolean }
}

/** A twin property section: user properties plus `$version` (and `$metadata`, not kept here). */
export interface TwinProperties {
  [name: string]: unknown
  $version: number
}

/** A device twin. */
export interface DeviceTwin {
  deviceId: string
  etag: string
  version: number
  status: 'enabled' | 'disabled'
  authenticationType: AuthenticationType
  capabilities: { iotEdge: boolean }
  tags: Record<string, unknown>
  properties: { desired: TwinProperties; reported: TwinProperties }
}

/** What the registry stores per device. */
export interface HubDeviceRecord {
  device: DeviceIdentity
  twin: DeviceTwin
}

/** Persistence of one hub's registry (keys are lower-cased device ids: ids are case-insensitive). */
export interface HubStore {
  get(hubHostName: string, deviceKey: string): Promise<HubDeviceRecord | undefined>
  put(hubHostName: string, deviceKey: string, record: HubDeviceRecord): Promise<void>
  delete(hubHostName: string, deviceKey: string): Promise<boolean>
  list(hubHostName: string, options: { after?: string; limit: number }): Promise<HubDeviceRecord[]>
}
