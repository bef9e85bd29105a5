/**
 * DPS JSON models (docs/protocol.md §1, §7, §8): types, runtime validators, bounded JSON parsing.
 */
export type * from './types.js'
export type { ValidationDetails } from './_errors.js'
export {
  MAX_MESSAGE_BYTES,
  MAX_JSON_DEPTH,
  MAX_TWIN_SECTION_BYTES,
  MAX_TWIN_KEY_BYTES,
  MAX_TWIN_STRING_BYTES,
  MAX_LINKED_HUBS,
  MAX_BULK_ITEMS,
} from './_rules.js'
export {
  type ValidateOptions,
  type FreeFormOptions,
  type AttestationOwner,
  SYMMETRIC_KEY_MIN_BYTES,
  SYMMETRIC_KEY_MAX_BYTES,
  TPM_PUBLIC_MAX_BYTES,
  CERTIFICATE_MAX_CHARS,
  QUERY_MAX_CHARS,
  MIN_WEBHOOK_API_VERSION,
  ALLOCATION_POLICIES,
  ATTESTATION_TYPES,
  PROVISIONING_STATUSES,
  ENROLLMENT_STATUSES,
  REGISTRATION_SUBSTATUSES,
  BULK_OPERATION_MODES,
  validateAllocationPolicy,
  validateProvisioningStatus,
  validateEnrollmentStatus,
  validateBulkOperationMode,
  validateTwinCollection,
  validateInitialTwin,
  validateJsonObject,
  validateDeviceCapabilities,
  validateReprovisionPolicy,
  validateCustomAllocationDefinition,
  validateX509CertificateInfo,
  validateX509CertificateWithInfo,
  validateX509Attestation,
  validateTpmAttestation,
  validateSymmetricKeyAttestation,
  validateAttestationMechanism,
  validateDeviceRegistrationState,
  validateIndividualEnrollment,
  validateEnrollmentGroup,
  validateBulkEnrollmentOperation,
  validateBulkEnrollmentGroupOperation,
  validateBulkEnrollmentOperationResult,
  validateBulkEnrollmentGroupOperationResult,
  validateQuerySpecification,
} from './validate-service.js'
export * from './validate-device.js'
export * from './validate-webhook.js'
export { parseJsonBody, locateJsonError, type ParseJsonOptions } from './json.js'
