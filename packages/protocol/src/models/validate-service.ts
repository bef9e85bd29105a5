/**
 * Runtime validators of the service-API models (docs/protocol.md §7).
 *
 * Each `validateX(json, {path})` takes parsed JSON (`unknown`) and returns the typed value with
 * DPS's defaults applied, or throws a `ProvisioError` (`VALIDATION_FAILED`) whose message and
 * `info` name the member's JSON path and the rule it broke. Shared behaviour (null = absent,
 * unknown members dropped, free-form JSON kept verbatim) is described in `_check.ts`.
 *
 * Read-only members (`createdDateTimeUtc`, `registrationState`, …) are checked and kept when
 * present, so the same validators parse service responses; the engine overwrites them on write.
 */
import { validationFailed } from './_errors.js'
import {
  array,
  base64,
  child,
  enumTable,
  enumValue,
  get,
  item,
  object,
  optBool,
  optInt,
  optString,
  put,
  reqBool,
  reqInt,
  reqString,
  string,
  type Obj,
} from './_check.js'
import {
  API_VERSION,
  CERT_FIELD,
  DATE_TIME,
  ETAG,
  HOST_NAME,
  MAX_BULK_ITEMS,
  MAX_JSON_DEPTH,
  MAX_LINKED_HUBS,
  MAX_MESSAGE_BYTES,
  MAX_TWIN_SECTION_BYTES,
  TEXT,
  WEBHOOK_URL,
  checkFreeForm,
  checkSize,
  checkTwinKey,
  deviceIdMember,
  registrationIdMember,
} from './_rules.js'
import type {
  AllocationPolicy,
  AttestationMechanism,
  AttestationType,
  BulkEnrollmentGroupOperation,
  BulkEnrollmentGroupOperationResult,
  BulkEnrollmentOperation,
  BulkEnrollmentOperationMode,
  BulkEnrollmentOperationResult,
  CustomAllocationDefinition,
  DeviceCapabilities,
  DeviceRegistrationState,
  EnrollmentCommon,
  EnrollmentGroup,
  EnrollmentGroupReference,
  EnrollmentStatus,
  GroupAttestationMechanism,
  IndividualEnrollment,
  IndividualEnrollmentReference,
  InitialTwin,
  JsonObject,
  ProvisioningStatus,
  QuerySpecification,
  RegistrationSubstatus,
  ReprovisionPolicy,
  SymmetricKeyAttestation,
  TpmAttestation,
  TwinCollection,
  TwinMetadata,
  X509Attestation,
  X509CAReferences,
  X509CertificateInfo,
  X509CertificateWithInfo,
  X509Certificates,
} from './types.js'

/** Options every validator takes. */
export interface ValidateOptions {
  /** JSON path of the value inside a larger document, prefixed to error paths (default ''). */
  path?: string
}

/** Options of validators of free-form JSON. */
export interface FreeFormOptions extends ValidateOptions {
  /** Serialised size limit in bytes. */
  maxBytes?: number
}

// ---------------------------------------------------------------------------------------------
// Limits specific to these models
// ---------------------------------------------------------------------------------------------

/** Symmetric keys: base64 of 16 to 64 bytes (DPS generates 64; D-sym). */
export const SYMMETRIC_KEY_MIN_BYTES = 16
/** Upper bound of a symmetric key, bytes. */
export const SYMMETRIC_KEY_MAX_BYTES = 64
/** TPM2B_PUBLIC of an EK/SRK: an RSA-2048 EK is about 0.3 KB, RSA-4096 about 0.6 KB. */
export const TPM_PUBLIC_MAX_BYTES = 2048
/** A certificate in PEM or base64 DER; chains of real deployments stay well below 16 KB. */
export const CERTIFICATE_MAX_CHARS = 16 * 1024
/** Query text: SDKs send `*`; we accept short SQL-ish text only. */
export const QUERY_MAX_CHARS = 4096
/** Oldest webhook schema version DPS accepts (§7 CustomAllocationDefinition). */
export const MIN_WEBHOOK_API_VERSION = '2018-09-01-preview'

// ---------------------------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------------------------

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

const ALLOCATION_POLICY_TABLE = enumTable(ALLOCATION_POLICIES)
const ATTESTATION_TYPE_TABLE = enumTable(ATTESTATION_TYPES)
const PROVISIONING_STATUS_TABLE = enumTable(PROVISIONING_STATUSES)
const ENROLLMENT_STATUS_TABLE = enumTable(ENROLLMENT_STATUSES)
const SUBSTATUS_TABLE = enumTable(REGISTRATION_SUBSTATUSES)
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

// ---------------------------------------------------------------------------------------------
// Twin
// ---------------------------------------------------------------------------------------------

function validateTwinMetadata(json: unknown, path: string): TwinMetadata {
  const o = object(json, path)
  const out: TwinMetadata = {}
  put(out, 'lastUpdated', optString(o, 'lastUpdated', path, DATE_TIME))
  put(out, 'lastUpdatedVersion', optInt(o, 'lastUpdatedVersion', path, 0, Number.MAX_SAFE_INTEGER))
  return out
}

/**
 * A TwinCollection (tags, desired properties, optionalDeviceInformation): `version`, `count`
 * (non-negative integers) and `metadata` are typed; every other member is free-form JSON held to
 * the IoT Hub twin rules (keys ≤ 1 KB without control characters, `.`, `$` or spaces; strings
 * ≤ 4 KB; nesting ≤ {@link MAX_JSON_DEPTH}; whole collection ≤ `maxBytes`, default 32 KB).
 * Free-form members are kept by reference.
 */
export function validateTwinCollection(json: unknown, options?: FreeFormOptions): TwinCollection {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: TwinCollection = {}
  for (const key of Object.keys(o)) {
    const v = o[key]
    const p = child(path, key)
    if (key === 'version' || key === 'count') {
      if (v !== null) out[key] = optInt(o, key, path, 0, Number.MAX_SAFE_INTEGER)
      continue
    }
    if (key === 'metadata') {
      if (v !== null) out.metadata = validateTwinMetadata(v, p)
      continue
    }
    checkTwinKey(key, p)
    checkFreeForm(v, p, 1, { maxDepth: MAX_JSON_DEPTH, twin: true })
    // defineProperty: a member named "__proto__" (legal JSON) must stay a member.
    Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true })
  }
  checkSize(out, path, options?.maxBytes ?? MAX_TWIN_SECTION_BYTES)
  return out
}

/**
 * Initial twin (§7): `tags` and `properties.desired`, each a TwinCollection of at most 32 KB.
 * Other members of `properties` (e.g. `reported`) are not settable through DPS and are dropped.
 */
export function validateInitialTwin(json: unknown, options?: ValidateOptions): InitialTwin {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: InitialTwin = {}
  const tags = get(o, 'tags')
  if (tags !== undefined) out.tags = validateTwinCollection(tags, { path: child(path, 'tags') })
  const props = get(o, 'properties')
  if (props !== undefined) {
    const pp = child(path, 'properties')
    const po = object(props, pp)
    out.properties = {}
    const desired = get(po, 'desired')
    if (desired !== undefined) {
      out.properties.desired = validateTwinCollection(desired, { path: child(pp, 'desired') })
    }
  }
  return out
}

/**
 * A free-form JSON object (device / webhook `payload`, D-payload): any members, nesting at most
 * {@link MAX_JSON_DEPTH}, serialised size at most `maxBytes` (default 96 KB, the DPS message
 * limit). Returned as is (not copied).
 */
export function validateJsonObject(json: unknown, options?: FreeFormOptions): JsonObject {
  const path = options?.path ?? ''
  const o = object(json, path)
  checkFreeForm(o, path, 0, { maxDepth: MAX_JSON_DEPTH, twin: false })
  checkSize(o, path, options?.maxBytes ?? MAX_MESSAGE_BYTES)
  return o as JsonObject
}

// ---------------------------------------------------------------------------------------------
// Small enrollment members
// ---------------------------------------------------------------------------------------------

/** Device capabilities (§7); `iotEdge` defaults to false. */
export function validateDeviceCapabilities(json: unknown, options?: ValidateOptions): DeviceCapabilities {
  const path = options?.path ?? ''
  return { iotEdge: optBool(object(json, path), 'iotEdge', path, false) }
}

/** Reprovision policy (§7); both members default to true. */
export function validateReprovisionPolicy(json: unknown, options?: ValidateOptions): ReprovisionPolicy {
  const path = options?.path ?? ''
  const o = object(json, path)
  return {
    updateHubAssignment: optBool(o, 'updateHubAssignment', path, true),
    migrateDeviceData: optBool(o, 'migrateDeviceData', path, true),
  }
}

/**
 * Custom allocation definition (§7, §8): an absolute http(s) `webhookUrl` and an `apiVersion`
 * no older than `2018-09-01-preview`.
 */
export function validateCustomAllocationDefinition(
  json: unknown,
  options?: ValidateOptions,
): CustomAllocationDefinition {
  const path = options?.path ?? ''
  const o = object(json, path)
  const webhookUrl = reqString(o, 'webhookUrl', path, WEBHOOK_URL)
  const apiVersion = reqString(o, 'apiVersion', path, API_VERSION)
  if (apiVersion < MIN_WEBHOOK_API_VERSION) {
    throw validationFailed(child(path, 'apiVersion'), `must be ${MIN_WEBHOOK_API_VERSION} or later`)
  }
  return { webhookUrl, apiVersion }
}

// ---------------------------------------------------------------------------------------------
// Attestation
// ---------------------------------------------------------------------------------------------

/** X509CertificateInfo (§1.3): all eight members required. */
export function validateX509CertificateInfo(json: unknown, options?: ValidateOptions): X509CertificateInfo {
  const path = options?.path ?? ''
  const o = object(json, path)
  return {
    subjectName: reqString(o, 'subjectName', path, CERT_FIELD),
    sha1Thumbprint: reqString(o, 'sha1Thumbprint', path, CERT_FIELD),
    sha256Thumbprint: reqString(o, 'sha256Thumbprint', path, CERT_FIELD),
    issuerName: reqString(o, 'issuerName', path, CERT_FIELD),
    notBeforeUtc: reqString(o, 'notBeforeUtc', path, DATE_TIME),
    notAfterUtc: reqString(o, 'notAfterUtc', path, DATE_TIME),
    serialNumber: reqString(o, 'serialNumber', path, CERT_FIELD),
    version: reqInt(o, 'version', path, 0, 255),
  }
}

const PEM_OR_BASE64 = /^(?:-----BEGIN [A-Z0-9 ]+-----[\s\S]+-----END [A-Z0-9 ]+-----\s*|[A-Za-z0-9+/]+={0,2})$/

/** One certificate slot: `certificate` (PEM, base64 of DER or base64 of PEM) and/or `info`; at least one of them. */
export function validateX509CertificateWithInfo(json: unknown, options?: ValidateOptions): X509CertificateWithInfo {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: X509CertificateWithInfo = {}
  put(
    out,
    'certificate',
    optString(o, 'certificate', path, {
      max: CERTIFICATE_MAX_CHARS,
      pattern: PEM_OR_BASE64,
      patternRule: 'must be PEM, base64 of DER or base64 of PEM',
    }),
  )
  const info = get(o, 'info')
  if (info !== undefined) out.info = validateX509CertificateInfo(info, { path: child(path, 'info') })
  if (out.certificate === undefined && out.info === undefined) {
    throw validationFailed(child(path, 'certificate'), 'is required')
  }
  return out
}

function validateX509Certificates(json: unknown, path: string): X509Certificates {
  const o = object(json, path)
  const primary = get(o, 'primary')
  if (primary === undefined) throw validationFailed(child(path, 'primary'), 'is required')
  const out: X509Certificates = { primary: validateX509CertificateWithInfo(primary, { path: child(path, 'primary') }) }
  const secondary = get(o, 'secondary')
  if (secondary !== undefined) {
    out.secondary = validateX509CertificateWithInfo(secondary, { path: child(path, 'secondary') })
  }
  return out
}

function validateCaReferences(json: unknown, path: string): X509CAReferences {
  const o = object(json, path)
  const out: X509CAReferences = { primary: reqString(o, 'primary', path, { max: 256 }) }
  put(out, 'secondary', optString(o, 'secondary', path, { max: 256 }))
  return out
}

/** Which enrollment kind an attestation belongs to; decides the allowed X.509 forms. */
export type AttestationOwner = 'individual' | 'group'

/**
 * X.509 attestation (§6, §7): exactly one of `clientCertificates` (individual enrollments),
 * `signingCertificates` or `caReferences` (groups).
 */
export function validateX509Attestation(
  json: unknown,
  options?: ValidateOptions & { owner?: AttestationOwner },
): X509Attestation {
  const path = options?.path ?? ''
  const o = object(json, path)
  const client = get(o, 'clientCertificates')
  const signing = get(o, 'signingCertificates')
  const ca = get(o, 'caReferences')
  const present = (client !== undefined ? 1 : 0) + (signing !== undefined ? 1 : 0) + (ca !== undefined ? 1 : 0)
  if (present !== 1) {
    throw validationFailed(path, 'must have exactly one of clientCertificates, signingCertificates, caReferences')
  }
  const owner = options?.owner
  if (client !== undefined) {
    if (owner === 'group') {
      throw validationFailed(child(path, 'clientCertificates'), 'is for individual enrollments; groups use signingCertificates or caReferences')
    }
    return { clientCertificates: validateX509Certificates(client, child(path, 'clientCertificates')) }
  }
  if (owner === 'individual') {
    throw validationFailed(
      child(path, signing !== undefined ? 'signingCertificates' : 'caReferences'),
      'is for enrollment groups; individual enrollments use clientCertificates',
    )
  }
  if (signing !== undefined) {
    return { signingCertificates: validateX509Certificates(signing, child(path, 'signingCertificates')) }
  }
  return { caReferences: validateCaReferences(ca, child(path, 'caReferences')) }
}

/** TPM attestation: EK (required) and SRK, base64 of a TPM2B_PUBLIC (§1.2, §5). */
export function validateTpmAttestation(json: unknown, options?: ValidateOptions): TpmAttestation {
  const path = options?.path ?? ''
  const o = object(json, path)
  const ek = get(o, 'endorsementKey')
  if (ek === undefined) throw validationFailed(child(path, 'endorsementKey'), 'is required')
  const out: TpmAttestation = { endorsementKey: base64(ek, child(path, 'endorsementKey'), 1, TPM_PUBLIC_MAX_BYTES) }
  const srk = get(o, 'storageRootKey')
  if (srk !== undefined) out.storageRootKey = base64(srk, child(path, 'storageRootKey'), 1, TPM_PUBLIC_MAX_BYTES)
  return out
}

/** Symmetric keys: each optional, base64 of 16..64 bytes (omitted keys are generated, §7). */
export function validateSymmetricKeyAttestation(json: unknown, options?: ValidateOptions): SymmetricKeyAttestation {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: SymmetricKeyAttestation = {}
  for (const key of ['primaryKey', 'secondaryKey'] as const) {
    const v = get(o, key)
    if (v !== undefined) out[key] = base64(v, child(path, key), SYMMETRIC_KEY_MIN_BYTES, SYMMETRIC_KEY_MAX_BYTES)
  }
  return out
}

/**
 * Attestation mechanism (§7). `type` is compared case-insensitively; only the sub-object that
 * `type` names is kept. `symmetricKey` may be omitted (keys to be generated) and becomes `{}`.
 * With `owner: 'group'` only `x509` and `symmetricKey` are allowed (D-terms).
 */
export function validateAttestationMechanism(
  json: unknown,
  options?: ValidateOptions & { owner?: AttestationOwner },
): AttestationMechanism {
  const path = options?.path ?? ''
  const o = object(json, path)
  const t = get(o, 'type')
  if (t === undefined) throw validationFailed(child(path, 'type'), 'is required')
  const type = enumValue(t, child(path, 'type'), ATTESTATION_TYPE_TABLE, ATTESTATION_TYPES)
  const owner = options?.owner
  if (owner === 'group' && type !== 'x509' && type !== 'symmetricKey') {
    throw validationFailed(child(path, 'type'), 'enrollment groups support only x509 and symmetricKey')
  }
  const sub = get(o, type)
  const subPath = child(path, type)
  switch (type) {
    case 'none':
      return { type }
    case 'tpm':
      if (sub === undefined) throw validationFailed(subPath, 'is required when type is tpm')
      return { type, tpm: validateTpmAttestation(sub, { path: subPath }) }
    case 'x509':
      if (sub === undefined) throw validationFailed(subPath, 'is required when type is x509')
      return { type, x509: validateX509Attestation(sub, { path: subPath, owner }) }
    case 'symmetricKey':
      return {
        type,
        symmetricKey: sub === undefined ? {} : validateSymmetricKeyAttestation(sub, { path: subPath }),
      }
  }
}

// ---------------------------------------------------------------------------------------------
// Registration state
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Enrollments
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Bulk and query
// ---------------------------------------------------------------------------------------------

/**
 * Bulk enrollment operation (§7): `mode` (case-insensitive) and 1 to 10 `enrollments`. For
 * `delete` an item needs only `registrationId` (and optionally `etag`); a full enrollment is
 * validated in full.
 */
export function validateBulkEnrollmentOperation(json: unknown, options?: ValidateOptions): BulkEnrollmentOperation {
  const path = options?.path ?? ''
  const o = object(json, path)
  const m = get(o, 'mode')
  if (m === undefined) throw validationFailed(child(path, 'mode'), 'is required')
  const mode = validateBulkOperationMode(m, { path: child(path, 'mode') })
  const items = get(o, 'enrollments')
  const p = child(path, 'enrollments')
  if (items === undefined) throw validationFailed(p, 'is required')
  const list = array(items, p, 1, MAX_BULK_ITEMS)
  if (mode === 'delete') {
    return {
      mode,
      enrollments: list.map((x, i): IndividualEnrollmentReference => {
        const ip = item(p, i)
        const io = object(x, ip)
        if (get(io, 'attestation') !== undefined) return validateIndividualEnrollment(io, { path: ip })
        const id = get(io, 'registrationId')
        if (id === undefined) throw validationFailed(child(ip, 'registrationId'), 'is required')
        const ref: IndividualEnrollmentReference = { registrationId: registrationIdMember(id, child(ip, 'registrationId')) }
        put(ref, 'etag', optString(io, 'etag', ip, ETAG))
        return ref
      }),
    }
  }
  return { mode, enrollments: list.map((x, i) => validateIndividualEnrollment(x, { path: item(p, i) })) }
}

/** Bulk group operation (§7): as {@link validateBulkEnrollmentOperation} over `enrollmentGroups`. */
export function validateBulkEnrollmentGroupOperation(
  json: unknown,
  options?: ValidateOptions,
): BulkEnrollmentGroupOperation {
  const path = options?.path ?? ''
  const o = object(json, path)
  const m = get(o, 'mode')
  if (m === undefined) throw validationFailed(child(path, 'mode'), 'is required')
  const mode = validateBulkOperationMode(m, { path: child(path, 'mode') })
  const items = get(o, 'enrollmentGroups')
  const p = child(path, 'enrollmentGroups')
  if (items === undefined) throw validationFailed(p, 'is required')
  const list = array(items, p, 1, MAX_BULK_ITEMS)
  if (mode === 'delete') {
    return {
      mode,
      enrollmentGroups: list.map((x, i): EnrollmentGroupReference => {
        const ip = item(p, i)
        const io = object(x, ip)
        if (get(io, 'attestation') !== undefined) return validateEnrollmentGroup(io, { path: ip })
        const id = get(io, 'enrollmentGroupId')
        if (id === undefined) throw validationFailed(child(ip, 'enrollmentGroupId'), 'is required')
        const ref: EnrollmentGroupReference = {
          enrollmentGroupId: registrationIdMember(id, child(ip, 'enrollmentGroupId')),
        }
        put(ref, 'etag', optString(io, 'etag', ip, ETAG))
        return ref
      }),
    }
  }
  return { mode, enrollmentGroups: list.map((x, i) => validateEnrollmentGroup(x, { path: item(p, i) })) }
}

function readBulkErrors<K extends 'registrationId' | 'enrollmentGroupId'>(
  o: Obj,
  path: string,
  idKey: K,
): Array<Record<K, string> & { errorCode: number; errorStatus: string }> | undefined {
  const v = get(o, 'errors')
  if (v === undefined) return undefined
  const p = child(path, 'errors')
  // One error per item at most, so never more than the bulk limit.
  return array(v, p, 0, MAX_BULK_ITEMS).map((x, i) => {
    const ip = item(p, i)
    const io = object(x, ip)
    return {
      [idKey]: reqString(io, idKey, ip, { max: 128 }),
      errorCode: reqInt(io, 'errorCode', ip, -2147483648, 2147483647),
      errorStatus: reqString(io, 'errorStatus', ip, { ...TEXT, min: 0 }),
    } as Record<K, string> & { errorCode: number; errorStatus: string }
  })
}

/** Bulk enrollment result (§7): `isSuccessful` and per-item `errors`. */
export function validateBulkEnrollmentOperationResult(
  json: unknown,
  options?: ValidateOptions,
): BulkEnrollmentOperationResult {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: BulkEnrollmentOperationResult = { isSuccessful: reqBool(o, 'isSuccessful', path) }
  put(out, 'errors', readBulkErrors(o, path, 'registrationId'))
  return out
}

/** Bulk group result (§7). */
export function validateBulkEnrollmentGroupOperationResult(
  json: unknown,
  options?: ValidateOptions,
): BulkEnrollmentGroupOperationResult {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: BulkEnrollmentGroupOperationResult = { isSuccessful: reqBool(o, 'isSuccessful', path) }
  put(out, 'errors', readBulkErrors(o, path, 'enrollmentGroupId'))
  return out
}

/**
 * Query specification (§7): `{query}` of 1 to 4096 characters. The query grammar itself is
 * [UNCERTAIN] in §7; interpreting it (`*`, `SELECT * FROM enrollments`) is the engine's job.
 */
export function validateQuerySpecification(json: unknown, options?: ValidateOptions): QuerySpecification {
  const path = options?.path ?? ''
  return { query: reqString(object(json, path), 'query', path, { ...TEXT, max: QUERY_MAX_CHARS }) }
}
