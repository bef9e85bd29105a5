/**
 * IoT Hub registry shapes as the service REST API (api-version 2021-04-12) and azure-iothub
 * return them: a device identity and its twin. Only what provisioning and the embedded hub use.
 */

import type { DeviceIdentity, DeviceTwin } from '@provisio/protocol'

export type { AuthenticationType, DeviceAuthentication, DeviceIdentity, DeviceTwin, TwinProperties } from '@provisio/protocol'

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
