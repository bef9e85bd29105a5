/**
 * Runtime validators of the custom allocation webhook shapes (docs/protocol.md §8). DPS builds
 * the request and validates the response; a webhook written against this package does the
 * reverse. Same conventions as `validate-service.ts`.
 */
import { validationFailed } from './_errors.js'
import { array, base64, child, get, item, object, put, string } from './_check.js'
import { HOST_NAME, MAX_LINKED_HUBS, deviceIdMember, registrationIdMember } from './_rules.js'
import { validateSymmetricKeyRegistrationResult, validateX509RegistrationResult } from './validate-device.js'
import {
  TPM_PUBLIC_MAX_BYTES,
  validateEnrollmentGroup,
  validateIndividualEnrollment,
  validateInitialTwin,
  validateJsonObject,
  type ValidateOptions,
} from './validate-service.js'
import type { AllocationRequest, AllocationResponse, DeviceRuntimeContext, DeviceRuntimeTpm } from './types.js'

function validateRuntimeTpm(json: unknown, path: string): DeviceRuntimeTpm {
  const o = object(json, path)
  const out: DeviceRuntimeTpm = {}
  for (const key of ['endorsementKey', 'storageRootKey'] as const) {
    const v = get(o, key)
    if (v !== undefined) out[key] = base64(v, child(path, key), 1, TPM_PUBLIC_MAX_BYTES)
  }
  return out
}

/**
 * `deviceRuntimeContext` (§8). The docs' table spells `currentIoTHubHostName` while their JSON
 * sample spells `currentIotHubHostName` ([UNCERTAIN] in §8): both are read, the sample's casing
 * is what the typed value (and so our requests) carry.
 */
export function validateDeviceRuntimeContext(json: unknown, options?: ValidateOptions): DeviceRuntimeContext {
  const path = options?.path ?? ''
  const o = object(json, path)
  const id = get(o, 'registrationId')
  if (id === undefined) throw validationFailed(child(path, 'registrationId'), 'is required')
  const out: DeviceRuntimeContext = { registrationId: registrationIdMember(id, child(path, 'registrationId')) }
  const hubKey = get(o, 'currentIotHubHostName') !== undefined ? 'currentIotHubHostName' : 'currentIoTHubHostName'
  const hub = get(o, hubKey)
  if (hub !== undefined) out.currentIotHubHostName = string(hub, child(path, hubKey), HOST_NAME)
  const deviceId = get(o, 'currentDeviceId')
  if (deviceId !== undefined) out.currentDeviceId = deviceIdMember(deviceId, child(path, 'currentDeviceId'))
  const x509 = get(o, 'x509')
  if (x509 !== undefined) out.x509 = validateX509RegistrationResult(x509, { path: child(path, 'x509') })
  const sym = get(o, 'symmetricKey')
  if (sym !== undefined) out.symmetricKey = validateSymmetricKeyRegistrationResult(sym, { path: child(path, 'symmetricKey') })
  const tpm = get(o, 'tpm')
  if (tpm !== undefined) out.tpm = validateRuntimeTpm(tpm, child(path, 'tpm'))
  const payload = get(o, 'payload')
  if (payload !== undefined) out.payload = validateJsonObject(payload, { path: child(path, 'payload') })
  return out
}

/**
 * AllocationRequest (§8): exactly one of `individualEnrollment` / `enrollmentGroup`, the
 * `deviceRuntimeContext` and 0 to 50 `linkedHubs`.
 */
export function validateAllocationRequest(json: unknown, options?: ValidateOptions): AllocationRequest {
  const path = options?.path ?? ''
  const o = object(json, path)
  const individual = get(o, 'individualEnrollment')
  const group = get(o, 'enrollmentGroup')
  if ((individual === undefined) === (group === undefined)) {
    throw validationFailed(path, 'must have exactly one of individualEnrollment, enrollmentGroup')
  }
  const ctx = get(o, 'deviceRuntimeContext')
  if (ctx === undefined) throw validationFailed(child(path, 'deviceRuntimeContext'), 'is required')
  const hubs = get(o, 'linkedHubs')
  if (hubs === undefined) throw validationFailed(child(path, 'linkedHubs'), 'is required')
  const hp = child(path, 'linkedHubs')
  const out: AllocationRequest = {
    deviceRuntimeContext: validateDeviceRuntimeContext(ctx, { path: child(path, 'deviceRuntimeContext') }),
    linkedHubs: array(hubs, hp, 0, MAX_LINKED_HUBS).map((h, i) => string(h, item(hp, i), HOST_NAME)),
  }
  if (individual !== undefined) {
    out.individualEnrollment = validateIndividualEnrollment(individual, { path: child(path, 'individualEnrollment') })
  } else {
    out.enrollmentGroup = validateEnrollmentGroup(group, { path: child(path, 'enrollmentGroup') })
  }
  return out
}

/**
 * AllocationResponse (§8): `iotHubHostName` (required), optional `initialTwin` and `payload`.
 * Whether the hub is one of the linked hubs is checked by the caller, which knows them
 * (`@provisio/allocation` turns that into errorCode 400207).
 */
export function validateAllocationResponse(json: unknown, options?: ValidateOptions): AllocationResponse {
  const path = options?.path ?? ''
  const o = object(json, path)
  const hub = get(o, 'iotHubHostName')
  if (hub === undefined) throw validationFailed(child(path, 'iotHubHostName'), 'is required')
  const out: AllocationResponse = { iotHubHostName: string(hub, child(path, 'iotHubHostName'), HOST_NAME) }
  const twin = get(o, 'initialTwin')
  if (twin !== undefined) out.initialTwin = validateInitialTwin(twin, { path: child(path, 'initialTwin') })
  const payload = get(o, 'payload')
  put(out, 'payload', payload === undefined ? undefined : validateJsonObject(payload, { path: child(path, 'payload') }))
  return out
}
