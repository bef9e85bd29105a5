/**
 * IoT Hub registry shapes as the service REST API (api-version 2021-04-12) and azure-iothub
 * return them: a device identity and its twin. Only what provisioning and the embedded hub use.
 */

import type { DeviceIdentity, DeviceTwin, ModuleIdentity, ModuleTwin } from '@provisio/protocol'

export type { AuthenticationType, DeviceAuthentication, DeviceIdentity, DeviceTwin, ModuleIdentity, ModuleTwin, TwinProperties } from '@provisio/protocol'

/** One module of a device: its identity and its twin. */
export interface HubModuleRecord {
  module: ModuleIdentity
  twin: ModuleTwin
}

/**
 * What the registry stores per device. Modules live inside their device's record (keys are
 * lower-cased module ids), so deleting the device deletes them, and every store keeps them without
 * a table of their own; `modulesEtag` changes on every module write (see HubWriteCondition).
 */
export interface HubDeviceRecord {
  device: DeviceIdentity
  twin: DeviceTwin
  modules?: Record<string, HubModuleRecord>
  modulesEtag?: string
}

/**
 * When a write may happen: only if no record exists (`absent`), or only if the stored record still
 * carries these etags (both change on every write of their part). Lets read-modify-write callers
 * (a device patching reported properties while the service patches desired ones, possibly on
 * another instance, or two module writes) detect that they lost a race and retry instead of overwriting.
 */
export type HubWriteCondition =
  | { readonly absent: true }
  /** `modulesEtag`: the record's `modulesEtag`, `''` when it has none. */
  | { readonly deviceEtag: string; readonly twinEtag: string; readonly modulesEtag: string }

/** Persistence of one hub's registry (keys are lower-cased device ids: ids are case-insensitive). */
export interface HubStore {
  get(hubHostName: string, deviceKey: string): Promise<HubDeviceRecord | undefined>
  /** Writes the record (unconditionally, or only when `condition` holds); returns whether it was written. */
  put(hubHostName: string, deviceKey: string, record: HubDeviceRecord, condition?: HubWriteCondition): Promise<boolean>
  delete(hubHostName: string, deviceKey: string): Promise<boolean>
  list(hubHostName: string, options: { after?: string; limit: number }): Promise<HubDeviceRecord[]>
}
