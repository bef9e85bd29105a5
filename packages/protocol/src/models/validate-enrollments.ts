/** Individual enrollments and enrollment groups (§7): their common members and the attestation each may use. */
import {
  array,
  child,
  enumValue,
  get,
  item,
  object,
  optString,
  put,
  string,
  type Obj,
} from './_check.js'
import { validationFailed } from './_errors.js'
import {
  DATE_TIME,
  ETAG,
  HOST_NAME,
  MAX_LINKED_HUBS,
  deviceIdMember,
  registrationIdMember,
} from './_rules.js'
import type { EnrollmentCommon, EnrollmentGroup, GroupAttestationMechanism, IndividualEnrollment } from './types.js'
import { validateAttestationMechanism } from './validate-attestation.js'
import { validateCustomAllocationDefinition, validateDeviceCapabilities, validateReprovisionPolicy } from './validate-enrollment-members.js'
import { ALLOCATION_POLICIES, ALLOCATION_POLICY_TABLE, PROVISIONING_STATUS_TABLE, PROVISIONING_STATUSES } from './validate-enums.js'
import type { ValidateOptions } from './validate-options.js'
import { validateDeviceRegistrationState } from './validate-registration-state.js'
import { validateInitialTwin, validateTwinCollection } from './validate-twin.js'

function readHubList(o: Obj, path: string): string[] | undefined {
  const v = get(o, 'iotHubs')
  if (v === undefined) return undefined
  const p = child(path, 'iotHubs')
  const list = array(v, p, 0, MAX_LINKED_HUBS)
  const seen = new Set<string>()
  const out: string[] = []
  for (let i = 0; i < list.length; i++) {
    const host = string(list[i], item(p, i), HOST_NAME)
    // Host names are case-insensitive (RFC 4343); a hub listed twice is a mistake, not a weight.
    const key = host.toLowerCase()
    if (seen.has(key)) throw validationFailed(item(p, i), 'must not repeat a hub')
    seen.add(key)
    out.push(host)
  }
  return out
}

/** Members common to individual enrollments and groups, with DPS's defaults. */
function readCommon(o: Obj, path: string): EnrollmentCommon {
  const caps = get(o, 'capabilities')
  const status = get(o, 'provisioningStatus')
  const reprovision = get(o, 'reprovisionPolicy')
  const out: EnrollmentCommon = {
    capabilities:
      caps === undefined ? { iotEdge: false } : validateDeviceCapabilities(caps, { path: child(path, 'capabilities') }),
    provisioningStatus:
      status === undefined
        ? 'enabled'
        : enumValue(status, child(path, 'provisioningStatus'), PROVISIONING_STATUS_TABLE, PROVISIONING_STATUSES),
    reprovisionPolicy:
      reprovision === undefined
        ? { updateHubAssignment: true, migrateDeviceData: true }
        : validateReprovisionPolicy(reprovision, { path: child(path, 'reprovisionPolicy') }),
  }
  put(out, 'iotHubHostName', optString(o, 'iotHubHostName', path, HOST_NAME))
  const twin = get(o, 'initialTwin')
  if (twin !== undefined) out.initialTwin = validateInitialTwin(twin, { path: child(path, 'initialTwin') })
  put(out, 'etag', optString(o, 'etag', path, ETAG))
  put(out, 'createdDateTimeUtc', optString(o, 'createdDateTimeUtc', path, DATE_TIME))
  put(out, 'lastUpdatedDateTimeUtc', optString(o, 'lastUpdatedDateTimeUtc', path, DATE_TIME))
  const policy = get(o, 'allocationPolicy')
  if (policy !== undefined) {
    out.allocationPolicy = enumValue(policy, child(path, 'allocationPolicy'), ALLOCATION_POLICY_TABLE, ALLOCATION_POLICIES)
  }
  put(out, 'iotHubs', readHubList(o, path))
  const custom = get(o, 'customAllocationDefinition')
  if (custom !== undefined) {
    out.customAllocationDefinition = validateCustomAllocationDefinition(custom, {
      path: child(path, 'customAllocationDefinition'),
    })
  }
  // Cross-member rules (§7): custom needs its webhook; static names at most one hub. Static with
  // no hub named is accepted as Azure accepts it (docs/protocol.md §13.4); register then uses the instance's
  // one linked hub, or refuses saying why when it links several (@provisio/allocation allocateStatic).
  if (out.allocationPolicy === 'custom' && out.customAllocationDefinition === undefined) {
    throw validationFailed(child(path, 'customAllocationDefinition'), 'is required when allocationPolicy is custom')
  }
  if (out.allocationPolicy === 'static') {
    const hubs = out.iotHubs ?? []
    if (hubs.length > 1) throw validationFailed(child(path, 'iotHubs'), 'must list at most one hub when allocationPolicy is static')
    if (
      hubs.length === 1 &&
      out.iotHubHostName !== undefined &&
      hubs[0].toLowerCase() !== out.iotHubHostName.toLowerCase()
    ) {
      throw validationFailed(child(path, 'iotHubHostName'), 'must equal the one hub in iotHubs when allocationPolicy is static')
    }
  }
  return out
}

/**
 * Individual enrollment (§7). Required: `registrationId` (DPS grammar) and `attestation`.
 * Defaults: `provisioningStatus: 'enabled'`, `capabilities: {iotEdge: false}`,
 * `reprovisionPolicy: {updateHubAssignment: true, migrateDeviceData: true}`.
 *
 * @example
 * ```ts
 * const e = validateIndividualEnrollment(parseJsonBody(body))
 * e.attestation.type // 'symmetricKey' | …
 * ```
 * @throws ProvisioError VALIDATION_FAILED naming the member and the rule
 */
export function validateIndividualEnrollment(json: unknown, options?: ValidateOptions): IndividualEnrollment {
  const path = options?.path ?? ''
  const o = object(json, path)
  const id = get(o, 'registrationId')
  if (id === undefined) throw validationFailed(child(path, 'registrationId'), 'is required')
  const registrationId = registrationIdMember(id, child(path, 'registrationId'))
  const att = get(o, 'attestation')
  if (att === undefined) throw validationFailed(child(path, 'attestation'), 'is required')
  const attestation = validateAttestationMechanism(att, { path: child(path, 'attestation'), owner: 'individual' })
  const out: IndividualEnrollment = { registrationId, attestation, ...readCommon(o, path) }
  const deviceId = get(o, 'deviceId')
  if (deviceId !== undefined) out.deviceId = deviceIdMember(deviceId, child(path, 'deviceId'))
  const state = get(o, 'registrationState')
  if (state !== undefined) {
    out.registrationState = validateDeviceRegistrationState(state, { path: child(path, 'registrationState') })
  }
  const info = get(o, 'optionalDeviceInformation')
  if (info !== undefined) {
    out.optionalDeviceInformation = validateTwinCollection(info, { path: child(path, 'optionalDeviceInformation') })
  }
  return out
}

/**
 * Enrollment group (§7). Required: `enrollmentGroupId` (registrationId grammar) and an
 * `attestation` of type `x509` (signingCertificates or caReferences) or `symmetricKey`.
 * Defaults as for {@link validateIndividualEnrollment}.
 */
export function validateEnrollmentGroup(json: unknown, options?: ValidateOptions): EnrollmentGroup {
  const path = options?.path ?? ''
  const o = object(json, path)
  const id = get(o, 'enrollmentGroupId')
  if (id === undefined) throw validationFailed(child(path, 'enrollmentGroupId'), 'is required')
  const enrollmentGroupId = registrationIdMember(id, child(path, 'enrollmentGroupId'))
  const att = get(o, 'attestation')
  if (att === undefined) throw validationFailed(child(path, 'attestation'), 'is required')
  const attestation = validateAttestationMechanism(att, {
    path: child(path, 'attestation'),
    owner: 'group',
  }) as GroupAttestationMechanism
  return { enrollmentGroupId, attestation, ...readCommon(o, path) }
}
