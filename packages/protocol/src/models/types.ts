/**
 * TypeScript shapes of the DPS JSON models: the service API (docs/protocol.md §7), the device API
 * (§1.2, §1.3) and the custom allocation webhook (§8).
 *
 * These are the *validated* shapes: what `validate…()` in `./validate-*.ts` returns. Defaults that
 * DPS applies on create are already filled in (e.g. `provisioningStatus: 'enabled'`,
 * `reprovisionPolicy: {updateHubAssignment: true, migrateDeviceData: true}`), so code downstream
 * never has to repeat them. Field names and casing follow the wire exactly (SPEC-svc, SPEC-dev
 * 2021-10-01), so a validated value can be serialised with `JSON.stringify` unchanged.
 */

// ---------------------------------------------------------------------------------------------
// Free-form JSON
// ---------------------------------------------------------------------------------------------

/** Any JSON value (what `JSON.parse` can return). */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject

/** A JSON object with free-form members (device `payload`, webhook `payload`). */
export interface JsonObject {
  [key: string]: JsonValue
}

// ---------------------------------------------------------------------------------------------
// Shared enums (string unions, exactly as spelled on the wire)
// ---------------------------------------------------------------------------------------------

/** `provisioningStatus` of an enrollment (SPEC-svc); `enabled` is the default. */
export type ProvisioningStatus = 'enabled' | 'disabled'

/**
 * Enrollment-level allocation policy (§7). Input is accepted case-insensitively (ARM spells
 * `Hashed`, `GeoLatency`, `Static`) and normalised to this camelCase form.
 */
export type AllocationPolicy = 'hashed' | 'geoLatency' | 'static' | 'custom'

/** Attestation kinds (§7 AttestationMechanism.type). */
export type AttestationType = 'none' | 'tpm' | 'x509' | 'symmetricKey'

/** Status of a registration / operation (§1.3, SPEC-dev EnrollmentStatus). */
export type EnrollmentStatus = 'unassigned' | 'assigning' | 'assigned' | 'failed' | 'disabled'

/** `substatus` of a registration (§1.3, §7 ReprovisionPolicy). */
export type RegistrationSubstatus =
  | 'initialAssignment'
  | 'deviceDataMigrated'
  | 'deviceDataReset'
  | 'reprovisionedToInitialAssignment'

/**
 * Bulk operation mode (§7). Compared case-insensitively on input (the Node service SDK spells
 * `updateIfMatchEtag`) and normalised to the REST spelling.
 */
export type BulkEnrollmentOperationMode = 'create' | 'update' | 'updateIfMatchETag' | 'delete'

// ---------------------------------------------------------------------------------------------
// Twin
// ---------------------------------------------------------------------------------------------

/** `metadata` of a TwinCollection (SPEC-svc `Metadata`). */
export interface TwinMetadata {
  lastUpdated?: string
  lastUpdatedVersion?: number
}

/**
 * A twin collection (tags, desired properties, `optionalDeviceInformation`): free-form JSON
 * members plus the optional bookkeeping members `version`, `count` and `metadata` (SPEC-svc
 * `TwinCollection`). Free-form members are kept verbatim by the validator.
 */
export interface TwinCollection {
  version?: number
  count?: number
  metadata?: TwinMetadata
  [key: string]: unknown
}

/** The `properties` member of an initial twin: only `desired` is settable through DPS. */
export interface InitialTwinProperties {
  desired?: TwinCollection
}

/** Initial twin state applied to the device's twin on the assigned hub (§7 InitialTwin). */
export interface InitialTwin {
  tags?: TwinCollection
  properties?: InitialTwinProperties
}

// ---------------------------------------------------------------------------------------------
// Enrollment building blocks
// ---------------------------------------------------------------------------------------------

/** Device capabilities (§7); `iotEdge` defaults to false. */
export interface DeviceCapabilities {
  iotEdge: boolean
}

/** What happens on re-registration (§7); both default to true. */
export interface ReprovisionPolicy {
  updateHubAssignment: boolean
  migrateDeviceData: boolean
}

/** Custom allocation webhook of an enrollment (§7, §8). */
export interface CustomAllocationDefinition {
  /** Absolute http(s) URL; an Azure Functions key usually rides in the query (`?code=…`). */
  webhookUrl: string
  /** Schema version of the enrollment object sent to the webhook (min `2018-09-01-preview`). */
  apiVersion: string
}

/** Certificate summary, all members required (§1.3 X509CertificateInfo). */
export interface X509CertificateInfo {
  subjectName: string
  sha1Thumbprint: string
  sha256Thumbprint: string
  issuerName: string
  notBeforeUtc: string
  notAfterUtc: string
  serialNumber: string
  version: number
}

/**
 * One certificate slot: `certificate` (PEM or base64 DER) is what clients send; responses carry
 * `info` and may omit the body (§7, [UNCERTAIN] there), so both are optional, but a validated
 * value always has at least one of them.
 */
export interface X509CertificateWithInfo {
  certificate?: string
  info?: X509CertificateInfo
}

/** Primary (required) and secondary certificate slots. */
export interface X509Certificates {
  primary: X509CertificateWithInfo
  secondary?: X509CertificateWithInfo
}

/** Names of CA certificates registered at the DPS instance (groups only). */
export interface X509CAReferences {
  primary: string
  secondary?: string
}

/**
 * X.509 attestation (§6, §7). An individual enrollment uses `clientCertificates`; a group uses
 * `signingCertificates` or `caReferences`. Exactly one of the three is present after validation.
 */
export interface X509Attestation {
  clientCertificates?: X509Certificates
  signingCertificates?: X509Certificates
  caReferences?: X509CAReferences
}

/** TPM attestation: base64 of the marshalled TPM2B_PUBLIC of EK (and SRK) (§1.2, §5). */
export interface TpmAttestation {
  endorsementKey: string
  storageRootKey?: string
}

/**
 * Symmetric-key attestation. Keys are base64 of 16..64 bytes. Both are optional: on PUT an
 * omitted key is generated by the service (64 bytes, §7), and GET responses hide them.
 */
export interface SymmetricKeyAttestation {
  primaryKey?: string
  secondaryKey?: string
}

/** `{type: 'none'}`: no attestation (only usable for test enrollments). */
export interface NoneAttestationMechanism {
  type: 'none'
}
/** TPM attestation mechanism. */
export interface TpmAttestationMechanism {
  type: 'tpm'
  tpm: TpmAttestation
}
/** X.509 attestation mechanism. */
export interface X509AttestationMechanism {
  type: 'x509'
  x509: X509Attestation
}
/** Symmetric-key attestation mechanism. */
export interface SymmetricKeyAttestationMechanism {
  type: 'symmetricKey'
  symmetricKey: SymmetricKeyAttestation
}

/**
 * How a device proves its identity (§7 AttestationMechanism), as a union discriminated by
 * `type`. On the wire DPS may carry sub-objects of other kinds; the validator keeps only the one
 * that `type` names (and creates an empty `symmetricKey: {}` when keys are to be generated).
 */
export type AttestationMechanism =
  | NoneAttestationMechanism
  | TpmAttestationMechanism
  | X509AttestationMechanism
  | SymmetricKeyAttestationMechanism

/** Enrollment groups support only X.509 and symmetric keys (D-terms). */
export type GroupAttestationMechanism = X509AttestationMechanism | SymmetricKeyAttestationMechanism

// ---------------------------------------------------------------------------------------------
// Registration state (service view) and enrollments
// ---------------------------------------------------------------------------------------------

/**
 * Registration record as the service API shows it (§7 DeviceRegistrationState): the device-API
 * DeviceRegistrationResult without the attestation sub-objects.
 */
export interface DeviceRegistrationState {
  registrationId: string
  createdDateTimeUtc?: string
  assignedHub?: string
  deviceId?: string
  status: EnrollmentStatus
  substatus?: RegistrationSubstatus
  errorCode?: number
  errorMessage?: string
  lastUpdatedDateTimeUtc?: string
  etag?: string
  payload?: JsonObject
}

/** Members shared by individual enrollments and enrollment groups (§7). */
export interface EnrollmentCommon {
  capabilities: DeviceCapabilities
  iotHubHostName?: string
  initialTwin?: InitialTwin
  etag?: string
  provisioningStatus: ProvisioningStatus
  reprovisionPolicy: ReprovisionPolicy
  /** Read-only, set by the service. */
  createdDateTimeUtc?: string
  /** Read-only, set by the service. */
  lastUpdatedDateTimeUtc?: string
  /** Overrides the DPS instance's default policy when present. */
  allocationPolicy?: AllocationPolicy
  /** Subset of the linked hubs this enrollment may be assigned to (host names). */
  iotHubs?: string[]
  /** Required when `allocationPolicy` is `custom`. */
  customAllocationDefinition?: CustomAllocationDefinition
}

/** Individual enrollment (§7 IndividualEnrollment). */
export interface IndividualEnrollment extends EnrollmentCommon {
  registrationId: string
  /** Device id on the hub; defaults to the registrationId when absent. */
  deviceId?: string
  /** Read-only, set by the service. */
  registrationState?: DeviceRegistrationState
  optionalDeviceInformation?: TwinCollection
  attestation: AttestationMechanism
}

/** Enrollment group (§7 EnrollmentGroup). */
export interface EnrollmentGroup extends EnrollmentCommon {
  enrollmentGroupId: string
  attestation: GroupAttestationMechanism
}

// ---------------------------------------------------------------------------------------------
// Bulk and query
// ---------------------------------------------------------------------------------------------

/**
 * Reference to an enrollment for bulk `delete`: DPS only needs the id (and an etag to match);
 * a full enrollment is accepted as well.
 */
export type IndividualEnrollmentReference = Pick<IndividualEnrollment, 'registrationId'> &
  Partial<Omit<IndividualEnrollment, 'registrationId'>>

/** Group counterpart of {@link IndividualEnrollmentReference}. */
export type EnrollmentGroupReference = Pick<EnrollmentGroup, 'enrollmentGroupId'> &
  Partial<Omit<EnrollmentGroup, 'enrollmentGroupId'>>

/** Bulk operation over individual enrollments (§7), at most 10 items. */
export type BulkEnrollmentOperation =
  | { mode: 'create' | 'update' | 'updateIfMatchETag'; enrollments: IndividualEnrollment[] }
  | { mode: 'delete'; enrollments: IndividualEnrollmentReference[] }

/** Bulk operation over enrollment groups (§7), at most 10 items. */
export type BulkEnrollmentGroupOperation =
  | { mode: 'create' | 'update' | 'updateIfMatchETag'; enrollmentGroups: EnrollmentGroup[] }
  | { mode: 'delete'; enrollmentGroups: EnrollmentGroupReference[] }

/** One failed item of a bulk enrollment operation. */
export interface BulkEnrollmentOperationError {
  registrationId: string
  errorCode: number
  errorStatus: string
}

/** Result of a bulk enrollment operation. */
export interface BulkEnrollmentOperationResult {
  isSuccessful: boolean
  errors?: BulkEnrollmentOperationError[]
}

/** One failed item of a bulk group operation. */
export interface BulkEnrollmentGroupOperationError {
  enrollmentGroupId: string
  errorCode: number
  errorStatus: string
}

/** Result of a bulk group operation. */
export interface BulkEnrollmentGroupOperationResult {
  isSuccessful: boolean
  errors?: BulkEnrollmentGroupOperationError[]
}

/** Query body (§7); SDKs send `{"query":"*"}`. */
export interface QuerySpecification {
  query: string
}

/** `x-ms-item-type` of a query page (§7; exact strings the C service client switches on). */
export type QueryItemType = 'Enrollment' | 'EnrollmentGroup' | 'DeviceRegistration'

// ---------------------------------------------------------------------------------------------
// Device API
// ---------------------------------------------------------------------------------------------

/**
 * Register / status-lookup request body (§1.2). `registrationId` is optional because .NET sends
 * none on MQTT/AMQP; the server takes the id from the URL / username / link instead.
 */
export interface DeviceRegistration {
  registrationId?: string
  tpm?: TpmAttestation
  /** Any JSON object, passed to the custom allocation webhook. */
  payload?: JsonObject
  /** Base64 DER PKCS#10 (2025-07-01-preview and later). */
  csr?: string
}

/** `registrationState.tpm` (§1.3): the encrypted activation blob. */
export interface TpmRegistrationResult {
  authenticationKey: string
}

/** `registrationState.x509` (§1.3); may be `{}` (AZC sample). */
export interface X509RegistrationResult {
  certificateInfo?: X509CertificateInfo
  enrollmentGroupId?: string
  signingCertificateInfo?: X509CertificateInfo
}

/** `registrationState.symmetricKey` (§1.3); may be `{}`. */
export interface SymmetricKeyRegistrationResult {
  enrollmentGroupId?: string
}

/** Device-API registration result (§1.3). */
export interface DeviceRegistrationResult extends DeviceRegistrationState {
  tpm?: TpmRegistrationResult
  x509?: X509RegistrationResult
  symmetricKey?: SymmetricKeyRegistrationResult
  /** Base64 DER, leaf first (2025-07-01-preview+). */
  issuedCertificateChain?: string[]
}

/** Register / poll response body (§1.3). */
export interface RegistrationOperationStatus {
  operationId: string
  status: EnrollmentStatus
  registrationState?: DeviceRegistrationResult
}

// ---------------------------------------------------------------------------------------------
// Custom allocation webhook (§8)
// ---------------------------------------------------------------------------------------------

/** TPM details in the webhook's runtime context (public keys only). */
export interface DeviceRuntimeTpm {
  endorsementKey?: string
  storageRootKey?: string
}

/** What DPS tells the webhook about the registering device (§8). */
export interface DeviceRuntimeContext {
  registrationId: string
  /** Only on re-registration. */
  currentIotHubHostName?: string
  /** Only on re-registration. */
  currentDeviceId?: string
  x509?: X509RegistrationResult
  symmetricKey?: SymmetricKeyRegistrationResult
  tpm?: DeviceRuntimeTpm
  payload?: JsonObject
}

/**
 * DPS → webhook request (§8). Exactly one of `individualEnrollment` / `enrollmentGroup` is
 * present; the enrollment has its secrets stripped (no symmetric keys).
 */
export interface AllocationRequest {
  individualEnrollment?: IndividualEnrollment
  enrollmentGroup?: EnrollmentGroup
  deviceRuntimeContext: DeviceRuntimeContext
  linkedHubs: string[]
}

/** Webhook → DPS response (§8). */
export interface AllocationResponse {
  /** Must be one of the request's `linkedHubs`. */
  iotHubHostName: string
  initialTwin?: InitialTwin
  payload?: JsonObject
}
