/** DeviceRegistrationState (§7), shared with the device-API result (validate-device.ts). */
import {
  child,
  enumValue,
  get,
  object,
  optInt,
  optString,
  put,
  type Obj,
} from './_check.js'
import { validationFailed } from './_errors.js'
import {
  DATE_TIME,
  ETAG,
  HOST_NAME,
  TEXT,
  deviceIdMember,
  registrationIdMember,
} from './_rules.js'
import type { DeviceRegistrationState } from './types.js'
import { ENROLLMENT_STATUS_TABLE, ENROLLMENT_STATUSES, REGISTRATION_SUBSTATUSES, SUBSTATUS_TABLE } from './validate-enums.js'
import type { ValidateOptions } from './validate-options.js'
import { validateJsonObject } from './validate-twin.js'

/**
 * Fills the DeviceRegistrationState members of `out` from `o` (shared with the device result).
 * @internal not re-exported from the package root
 */
export function readRegistrationState(o: Obj, path: string, out: DeviceRegistrationState): void {
  put(out, 'createdDateTimeUtc', optString(o, 'createdDateTimeUtc', path, DATE_TIME))
  put(out, 'assignedHub', optString(o, 'assignedHub', path, HOST_NAME))
  const deviceId = get(o, 'deviceId')
  if (deviceId !== undefined) out.deviceId = deviceIdMember(deviceId, child(path, 'deviceId'))
  const substatus = get(o, 'substatus')
  if (substatus !== undefined) {
    out.substatus = enumValue(substatus, child(path, 'substatus'), SUBSTATUS_TABLE, REGISTRATION_SUBSTATUSES)
  }
  put(out, 'errorCode', optInt(o, 'errorCode', path, -2147483648, 2147483647))
  put(out, 'errorMessage', optString(o, 'errorMessage', path, { ...TEXT, min: 0 }))
  put(out, 'lastUpdatedDateTimeUtc', optString(o, 'lastUpdatedDateTimeUtc', path, DATE_TIME))
  put(out, 'etag', optString(o, 'etag', path, ETAG))
  const payload = get(o, 'payload')
  if (payload !== undefined) out.payload = validateJsonObject(payload, { path: child(path, 'payload') })
}

/**
 * Reads the required `registrationId` and `status` of a registration record.
 * @internal not re-exported from the package root
 */
export function readRegistrationHead(o: Obj, path: string): DeviceRegistrationState {
  const id = get(o, 'registrationId')
  if (id === undefined) throw validationFailed(child(path, 'registrationId'), 'is required')
  const status = get(o, 'status')
  if (status === undefined) throw validationFailed(child(path, 'status'), 'is required')
  return {
    registrationId: registrationIdMember(id, child(path, 'registrationId')),
    status: enumValue(status, child(path, 'status'), ENROLLMENT_STATUS_TABLE, ENROLLMENT_STATUSES),
  }
}

/** DeviceRegistrationState (§7): registrationId and status required. */
export function validateDeviceRegistrationState(json: unknown, options?: ValidateOptions): DeviceRegistrationState {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out = readRegistrationHead(o, path)
  readRegistrationState(o, path, out)
  return out
}
