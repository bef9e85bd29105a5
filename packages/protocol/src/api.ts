/**
 * The contract between transports and the service (docs/architecture.md §3): every codec (HTTP,
 * MQTT, AMQP) turns what arrives on its wire into these calls, and turns their answers (or the
 * ProvisioError they throw) back into its wire. The engine implements both interfaces; codecs
 * depend only on this file, never on the engine.
 */
import type {
  AttestationMechanism,
  BulkEnrollmentGroupOperation,
  BulkEnrollmentGroupOperationResult,
  BulkEnrollmentOperation,
  BulkEnrollmentOperationResult,
  DeviceRegistrationResult,
  DeviceRegistrationState,
  EnrollmentGroup,
  IndividualEnrollment,
  JsonObject,
  QueryItemType,
  QuerySpecification,
  RegistrationOperationStatus,
} from './models/index.js'

/** What a device presents to prove who it is. */
export type Evidence =
  /** SAS token (symmetric-key devices; docs/protocol.md §2.1). */
  | { readonly type: 'sas'; readonly token: string }
  /** TLS client certificate chain, DER, leaf first (§6). */
  | { readonly type: 'x509'; readonly chain: readonly Uint8Array[] }
  /** TPM: public EK/SRK from the request body, and the SAS token of the second leg when present (§5). */
  | { readonly type: 'tpm'; readonly endorsementKey: string; readonly storageRootKey?: string; readonly token?: string }

/** A register call (§1.1; what every codec extracts from its transport). */
export interface RegisterRequest {
  readonly idScope: string
  /** From the URL / MQTT username / AMQP link, never only from the body (§1.2, §10 item 1). */
  readonly registrationId: string
  readonly evidence: Evidence
  /** Device payload for custom allocation (§1.2). */
  readonly payload?: JsonObject
  readonly forceRegistration?: boolean
  readonly apiVersion: string
  /** Base64 DER PKCS#10 the device wants a certificate for (api-version 2025-07-01-preview and later, §1.7). */
  readonly csr?: string
}

/** An operation-status poll. */
export interface OperationStatusRequest {
  readonly idScope: string
  readonly registrationId: string
  readonly operationId: string
  /** The poll's credentials (HTTP re-sends them); omit when the transport session already proved them. */
  readonly evidence?: Evidence
}

/** A registration status lookup (POST /{idScope}/registrations/{id}, §1.1). */
export interface RegistrationStatusRequest {
  readonly idScope: string
  readonly registrationId: string
  readonly evidence: Evidence
}

/** A device API answer: HTTP/MQTT status, body, and Retry-After when the client should poll. */
export interface DeviceResponse<T> {
  readonly status: 200 | 202
  readonly body: T
  readonly retryAfterSeconds?: number
}

/**
 * The first leg of TPM attestation (§5.2, §5.3): the activation blob the device must activate
 * before it can sign a SAS. HTTP answers it as a 401 whose body has no `status`.
 */
export interface TpmChallengeResponse {
  readonly status: 401
  readonly challenge: { readonly authenticationKey: string; readonly keyName: string }
}

/** The device API (§1). Refusals are thrown as ProvisioError. */
export interface DeviceApi {
  register(request: RegisterRequest): Promise<DeviceResponse<RegistrationOperationStatus> | TpmChallengeResponse>
  operationStatus(request: OperationStatusRequest): Promise<DeviceResponse<RegistrationOperationStatus>>
  registrationStatus(request: RegistrationStatusRequest): Promise<DeviceResponse<DeviceRegistrationResult>>
  /**
   * The credential check alone: resolves when the evidence attests for the device, throws the
   * refusal otherwise; reads no registration and changes nothing. MQTT CONNECT and AMQP SASL use
   * it when present (else `registrationStatus`, which also reads the device's record).
   */
  authenticate?(request: RegistrationStatusRequest): Promise<void>
}

/** Permissions of a service access policy (§2.3, D-access). */
export type ServicePermission =
  | 'ServiceConfig'
  | 'EnrollmentRead'
  | 'EnrollmentWrite'
  | 'RegistrationStatusRead'
  | 'RegistrationStatusWrite'
  | 'DeviceConnect'

/** Who a service token belongs to. */
export interface ServiceAuthorization {
  readonly idScope: string
  readonly policy: string
  /** 0 primary, 1 secondary. */
  readonly keyIndex: number
}

/** Options of writes that honour `If-Match`. */
export interface ConditionalOptions {
  /** The `If-Match` header (an etag, or `*`). */
  readonly ifMatch?: string
}

/** Paging options of a query call (`x-ms-max-item-count`, `x-ms-continuation`). */
export interface QueryOptions {
  readonly pageSize?: number
  readonly continuationToken?: string
}

/** One page of a query. */
export interface QueryPage<T> {
  readonly items: T[]
  /** `x-ms-item-type` of the page. */
  readonly itemType: QueryItemType
  /** Present when more items may follow; sent back as `x-ms-continuation`. */
  readonly continuationToken?: string
}

/** The service API (§7) of the instance an authorized token names. Refusals throw ProvisioError. */
export interface ServiceApi {
  /**
   * Checks a service SAS token (`sr` = the instance's service host name, §2.3) and that its policy
   * grants `permission`; resolves the instance from `sr`.
   */
  authorizeService(token: string, permission: ServicePermission): ServiceAuthorization

  createOrUpdateEnrollment(idScope: string, enrollment: unknown, options?: ConditionalOptions): Promise<IndividualEnrollment>
  getEnrollment(idScope: string, registrationId: string): Promise<IndividualEnrollment>
  deleteEnrollment(idScope: string, registrationId: string, options?: ConditionalOptions): Promise<void>
  getEnrollmentAttestationMechanism(idScope: string, registrationId: string): Promise<AttestationMechanism>
  queryEnrollments(idScope: string, spec?: QuerySpecification, options?: QueryOptions): Promise<QueryPage<IndividualEnrollment>>
  runBulkEnrollmentOperation(idScope: string, operation: BulkEnrollmentOperation | unknown): Promise<BulkEnrollmentOperationResult>

  createOrUpdateEnrollmentGroup(idScope: string, group: unknown, options?: ConditionalOptions): Promise<EnrollmentGroup>
  getEnrollmentGroup(idScope: string, enrollmentGroupId: string): Promise<EnrollmentGroup>
  deleteEnrollmentGroup(idScope: string, enrollmentGroupId: string, options?: ConditionalOptions): Promise<void>
  getEnrollmentGroupAttestationMechanism(idScope: string, enrollmentGroupId: string): Promise<AttestationMechanism>
  queryEnrollmentGroups(idScope: string, spec?: QuerySpecification, options?: QueryOptions): Promise<QueryPage<EnrollmentGroup>>
  runBulkEnrollmentGroupOperation(
    idScope: string,
    operation: BulkEnrollmentGroupOperation | unknown,
  ): Promise<BulkEnrollmentGroupOperationResult>

  getRegistrationState(idScope: string, registrationId: string): Promise<DeviceRegistrationState>
  deleteRegistrationState(idScope: string, registrationId: string, options?: ConditionalOptions): Promise<void>
  queryRegistrationStates(idScope: string, enrollmentGroupId: string, options?: QueryOptions): Promise<QueryPage<DeviceRegistrationState>>
}

/**
 * A CA certificate registered at an instance, as our CA-certificate routes return it (§6 proof of
 * possession; the shape follows ARM's `CertificateResponse`: name, etag, properties).
 */
export interface CaCertificateView {
  readonly name: string
  readonly etag: string
  readonly properties: {
    readonly subject: string
    /** notAfter, ISO-8601 UTC. */
    readonly expiry: string
    /** SHA-1 thumbprint, upper-case hex (as ARM prints it). */
    readonly thumbprint: string
    readonly sha256Thumbprint: string
    readonly isVerified: boolean
    readonly created: string
    readonly updated: string
    /** PEM. */
    readonly certificate: string
    /** Present after generateVerificationCode until the CA is verified. */
    readonly verificationCode?: string
  }
}

/**
 * CA certificates of an instance (§6, D-pop): upload, read, delete, list, generate a
 * verification code, verify with a certificate whose subject CN is the code, signed by the CA's
 * key. Served by our own routes (`/certificates/{name}`, codec-http), authorized by a service
 * token with `ServiceConfig`. Refusals throw ProvisioError.
 */
export interface CaCertificateApi {
  /** Body: `{certificate: PEM | base64 DER, isVerified?: boolean}` (or ARM's `{properties: {…}}`). */
  createOrUpdateCaCertificate(idScope: string, name: string, body: unknown, options?: ConditionalOptions): Promise<CaCertificateView>
  getCaCertificate(idScope: string, name: string): Promise<CaCertificateView>
  deleteCaCertificate(idScope: string, name: string, options?: ConditionalOptions): Promise<void>
  listCaCertificates(idScope: string): Promise<CaCertificateView[]>
  generateVerificationCode(idScope: string, name: string, options?: ConditionalOptions): Promise<CaCertificateView>
  /** Body: `{certificate: PEM | base64 DER}` of the proof-of-possession certificate. */
  verifyCaCertificate(idScope: string, name: string, body: unknown, options?: ConditionalOptions): Promise<CaCertificateView>
}
