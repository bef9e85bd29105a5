/** The enumerations of the service API (§7) in their REST spelling, and their validators. */
import { enumTable, enumValue } from './_check.js'
import type {
  AllocationPolicy,
  AttestationType,
  BulkEnrollmentOperationMode,
  EnrollmentStatus,
  ProvisioningStatus,
  RegistrationSubstatus,
} from './types.js'
import type { ValidateOptions } from './validate-options.js'

/** Allocation policies in their REST spelling (§7). */
export const ALLOCATION_POLICIES: readonly AllocationPolicy[] = ['hashed', 'geoLatency', 'static', 'custom']
/** Attestation types (§7 AttestationMechanism.type). */
export const ATTESTATION_TYPES: readonly AttestationType[] = ['none', 'tpm', 'x509', 'symmetricKey']
/** Enrollment provisioning statuses (§7). */
export const PROVISIONING_STATUSES: readonly ProvisioningStatus[] = ['enabled', 'disabled']
/** Registration / operation statuses (§1.3 EnrollmentStatus). */
export const ENROLLMENT_STATUSES: readonly EnrollmentStatus[] = [
  'unassigned',
  'assigning',
  'assigned',
  'failed',
  'disabled',
]
/** Registration substatus values (§1.3). */
export const REGISTRATION_SUBSTATUSES: readonly RegistrationSubstatus[] = [
  'initialAssignment',
  'deviceDataMigrated',
  'deviceDataReset',
  'reprovisionedToInitialAssignment',
]
/** Bulk operation modes in the REST spelling (§7). */
export const BULK_OPERATION_MODES: readonly BulkEnrollmentOperationMode[] = [
  'create',
  'update',
  'updateIfMatchETag',
  'delete',
]

export const ALLOCATION_POLICY_TABLE = enumTable(ALLOCATION_POLICIES)
export const ATTESTATION_TYPE_TABLE = enumTable(ATTESTATION_TYPES)
export const PROVISIONING_STATUS_TABLE = enumTable(PROVISIONING_STATUSES)
export const ENROLLMENT_STATUS_TABLE = enumTable(ENROLLMENT_STATUSES)
export const SUBSTATUS_TABLE = enumTable(REGISTRATION_SUBSTATUSES)
const BULK_MODE_TABLE = enumTable(BULK_OPERATION_MODES)

/**
 * Allocation policy, compared case-insensitively (ARM spells `Hashed`, `GeoLatency`, `Static`)
 * and returned in the REST spelling.
 * @example validateAllocationPolicy('GeoLatency') // 'geoLatency'
 */
export function validateAllocationPolicy(json: unknown, options?: ValidateOptions): AllocationPolicy {
  return enumValue(json, options?.path ?? '', ALLOCATION_POLICY_TABLE, ALLOCATION_POLICIES)
}

/** `enabled` | `disabled`, case-insensitive. */
export function validateProvisioningStatus(json: unknown, options?: ValidateOptions): ProvisioningStatus {
  return enumValue(json, options?.path ?? '', PROVISIONING_STATUS_TABLE, PROVISIONING_STATUSES)
}

/** EnrollmentStatus (§1.3), case-insensitive. */
export function validateEnrollmentStatus(json: unknown, options?: ValidateOptions): EnrollmentStatus {
  return enumValue(json, options?.path ?? '', ENROLLMENT_STATUS_TABLE, ENROLLMENT_STATUSES)
}

/**
 * Bulk mode, compared case-insensitively (the Node SDK spells `updateIfMatchEtag`, §7).
 * @example validateBulkOperationMode('updateIfMatchEtag') // 'updateIfMatchETag'
 */
export function validateBulkOperationMode(json: unknown, options?: ValidateOptions): BulkEnrollmentOperationMode {
  return enumValue(json, options?.path ?? '', BULK_MODE_TABLE, BULK_OPERATION_MODES)
}
