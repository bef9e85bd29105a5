/**
 * The error catalog: the one error vocabulary of Provisio (docs/architecture.md §1).
 *
 * Every failure the service can report is a {@link ProvisioError} with a stable string `code`.
 * The code selects one row of {@link ERROR_CATALOG}, which fixes everything each transport needs:
 *
 * - the DPS `errorCode`, a 6-digit "extended" code whose first three digits are the HTTP status
 *   (docs/protocol.md §1.5; .NET computes `errorCode / 1000`);
 * - the HTTP status, which is also the MQTT response-topic status (`$dps/registrations/res/{status}/…`,
 *   docs/protocol.md §3);
 * - the AMQP error condition put on the rejected delivery (docs/protocol.md §4);
 * - whether clients treat it as transient (429 and every 5xx, docs/protocol.md §1.4);
 * - the message the device sees. It is deliberately generic ("Unauthorized"): the detailed
 *   `reason` (which field, which key, which rule) stays server-side, in logs and events, so an
 *   attacker learns nothing from a refusal.
 *
 * Only 401002, 400207, 400208, 400209 and 409203 are codes observed from real DPS. Where real DPS
 * sub-codes are not known (docs/protocol.md §1.5 lists the known ones; 400xxx, 404xxx, 412xxx, 429xxx,
 * 500xxx) the sub-codes below are our own choice; clients only ever look at the first three digits.
 *
 * | code | errorCode | HTTP/MQTT | AMQP condition | transient | device message | meaning |
 * |---|---|---|---|---|---|---|
 * | BAD_REQUEST | 400001 | 400 | com.microsoft:argument-error | no | Bad request. | request malformed in a way no finer code names |
 * | INVALID_JSON | 400002 | 400 | com.microsoft:argument-error | no | The request body is not valid JSON. | body did not parse as JSON |
 * | VALIDATION_FAILED | 400003 | 400 | com.microsoft:argument-error | no | The request body is invalid. | JSON parsed but broke a model rule |
 * | INVALID_REGISTRATION_ID | 400004 | 400 | com.microsoft:argument-error | no | The registration id is invalid. | registrationId grammar (§0) |
 * | INVALID_DEVICE_ID | 400005 | 400 | com.microsoft:argument-error | no | The device id is invalid. | IoT Hub deviceId/moduleId grammar |
 * | INVALID_ID_SCOPE | 400006 | 400 | com.microsoft:argument-error | no | The ID scope is invalid. | ID scope format |
 * | UNSUPPORTED_API_VERSION | 400007 | 400 | com.microsoft:argument-error | no | The api-version is not supported. | api-version query/property unknown |
 * | CONNECTION_STRING_MALFORMED | 400010 | 400 | com.microsoft:argument-error | no | The connection string is invalid. | syntax, size or value of a connection string |
 * | CONNECTION_STRING_MISSING_KEY | 400011 | 400 | com.microsoft:argument-error | no | The connection string is invalid. | a required key is absent or empty |
 * | CONNECTION_STRING_DUPLICATE_KEY | 400012 | 400 | com.microsoft:argument-error | no | The connection string is invalid. | a key appears twice |
 * | CSR_INVALID | 400040 | 400 | com.microsoft:argument-error | no | The certificate signing request is invalid. | `csr` undecodable, bad self-signature, CN ≠ registrationId, key type refused, or not allowed here (§1.7) |
 * | CUSTOM_ALLOCATION_FAILED | 400207 | 400 | com.microsoft:argument-error | no | Custom allocation failed. | webhook failed (real DPS code, AZC) |
 * | NO_HUB_ASSIGNABLE | 400208 | 400 | com.microsoft:argument-error | no | No IoT hub could be assigned. | `DPS_HUB_ERROR_NO_HUB` (C-ll) |
 * | HUB_UNAUTHORIZED | 400209 | 400 | com.microsoft:argument-error | no | The IoT hub refused the provisioning service. | `DPS_HUB_ERROR_UNAUTH` (C-ll) |
 * | CREDENTIALS_MISSING | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | no token / certificate presented |
 * | SAS_MALFORMED | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | SAS token syntax, size or field rules |
 * | SAS_EXPIRED | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | `se` (plus skew) is in the past |
 * | SAS_BAD_SIGNATURE | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | HMAC matches none of the candidate keys |
 * | SAS_WRONG_RESOURCE | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | signed `sr` names another resource |
 * | SAS_WRONG_KEY_NAME | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | `skn` absent, unexpected or not the expected one |
 * | SAS_PERMISSION_DENIED | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | policy lacks the permission the call needs |
 * | ID_SCOPE_UNKNOWN | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | no DPS instance with that ID scope |
 * | ENROLLMENT_NOT_FOUND | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | device not enrolled (device API: a 401, not a 404) |
 * | ENROLLMENT_DISABLED | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | enrollment or group has provisioningStatus=disabled |
 * | ATTESTATION_MISMATCH | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | credential type differs from the enrollment's mechanism |
 * | CERTIFICATE_INVALID | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | X.509 chain refused: signature, validity, CA rules, CN ≠ registrationId (§6) |
 * | DEVICE_DISABLED | 401002 | 401 | amqp:unauthorized-access | no | Unauthorized | hub device identity has status disabled |
 * | NOT_FOUND | 404001 | 404 | amqp:not-found | no | Not found. | route or resource unknown |
 * | REGISTRATION_NOT_FOUND | 404201 | 404 | amqp:not-found | no | Registration not found. | no registration record for the id |
 * | OPERATION_NOT_FOUND | 404202 | 404 | amqp:not-found | no | Operation not found. | operationId unknown or of another device |
 * | ENROLLMENT_RECORD_NOT_FOUND | 404203 | 404 | amqp:not-found | no | Enrollment not found. | service API: individual enrollment absent |
 * | ENROLLMENT_GROUP_NOT_FOUND | 404204 | 404 | amqp:not-found | no | Enrollment group not found. | service API: group absent |
 * | DEVICE_NOT_ONLINE | 404103 | 404 | amqp:not-found | no | Timed out waiting for device to connect. | direct method: the device was not connected and subscribed to methods within connectTimeoutInSeconds (IoT Hub's code) |
 * | DEVICE_QUEUE_FULL | 403004 | 403 | amqp:resource-limit-exceeded | no | Total number of messages on IotHub Device Queue exceeds maximum allowed. | cloud-to-device: the device's queue holds its maximum of messages (IoT Hub's code, DeviceMaximumQueueDepthExceeded) |
 * | MESSAGE_LOCK_LOST | 412020 | 412 | com.microsoft:message-lock-lost | no | The message lock is lost or the lock token is unknown. | cloud-to-device: settling with a lock token that names no message locked now (IoT Hub's code, DeviceMessageLockLost) |
 * | METHOD_NOT_ALLOWED | 405001 | 405 | amqp:not-allowed | no | Method not allowed. | HTTP verb not served on the route |
 * | CONFLICT | 409001 | 409 | amqp:not-allowed | no | Conflict. | resource already exists / state conflict |
 * | CONCURRENT_REGISTRATION | 409203 | 409 | com.microsoft:precondition-failed | no | Precondition failed. | same device registering twice at once (C e2e) |
 * | REQUEST_TIMEOUT | 408001 | 408 | com.microsoft:argument-error | no | Request timeout. | request headers or body not received within the server's timeout |
 * | PRECONDITION_FAILED | 412001 | 412 | com.microsoft:precondition-failed | no | Precondition failed. | If-Match ETag does not match |
 * | PAYLOAD_TOO_LARGE | 413001 | 413 | amqp:link:message-size-exceeded | no | Payload too large. | body over the 96 KB limit (§9) or a parser limit |
 * | UNSUPPORTED_MEDIA_TYPE | 415001 | 415 | com.microsoft:argument-error | no | Unsupported media type. | content-type not JSON |
 * | HEADERS_TOO_LARGE | 431001 | 431 | com.microsoft:argument-error | no | Request header fields too large. | HTTP header block over the server's limit |
 * | THROTTLED | 429001 | 429 | com.microsoft:device-container-throttled | yes | Too many requests. | device registration rate (§9) |
 * | POLL_THROTTLED | 429002 | 429 | com.microsoft:device-container-throttled | yes | Too many requests. | operation-status polling rate (§9) |
 * | SERVICE_THROTTLED | 429003 | 429 | com.microsoft:device-container-throttled | yes | Too many requests. | service API operations rate (§9) |
 * | INTERNAL_ERROR | 500001 | 500 | amqp:internal-error | yes | Internal server error. | unexpected failure (bug, store error) |
 * | SERVICE_UNAVAILABLE | 503001 | 503 | amqp:internal-error | yes | Service unavailable. | overloaded, shutting down, dependency down |
 * | GATEWAY_TIMEOUT | 504101 | 504 | amqp:internal-error | yes | Timed out waiting for the response from device. | direct method: the device did not answer within responseTimeoutInSeconds (IoT Hub's code) |
 *
 * Adding a code is a one-line change in {@link ERROR_CATALOG} (plus its row in this table).
 *
 * @module
 */

/**
 * AMQP error conditions used on rejected deliveries (AMQP 1.0 §2.8.15 `amqp:*`, Microsoft's
 * `com.microsoft:*` extensions). Node's AMQP client treats `amqp:internal-error` and
 * `com.microsoft:device-container-throttled` as transient and the rest as fatal (docs/protocol.md §4).
 */
export type AmqpCondition =
  | 'amqp:unauthorized-access'
  | 'amqp:not-found'
  | 'amqp:not-allowed'
  | 'amqp:internal-error'
  | 'amqp:resource-limit-exceeded'
  | 'amqp:link:message-size-exceeded'
  | 'com.microsoft:argument-error'
  | 'com.microsoft:precondition-failed'
  | 'com.microsoft:device-container-throttled'
  | 'com.microsoft:message-lock-lost'

/** One row of the catalog: how one error code looks on every transport. */
export interface ErrorCatalogEntry {
  /** DPS extended code; `Math.floor(errorCode / 1000) === httpStatus`. */
  readonly errorCode: number
  /** HTTP status; also the MQTT response-topic status. */
  readonly httpStatus: number
  /** Condition symbol on the AMQP `rejected` outcome. */
  readonly amqpCondition: AmqpCondition
  /** Clients retry it after Retry-After (429 and 5xx, docs/protocol.md §1.4). */
  readonly transient: boolean
  /** The generic message the device sees; never carries request data or secrets. */
  readonly defaultMessage: string
}

const ARG: AmqpCondition = 'com.microsoft:argument-error'
const UNAUTH: AmqpCondition = 'amqp:unauthorized-access'
const NOT_FOUND: AmqpCondition = 'amqp:not-found'
const PRECONDITION: AmqpCondition = 'com.microsoft:precondition-failed'
const THROTTLE: AmqpCondition = 'com.microsoft:device-container-throttled'
const INTERNAL: AmqpCondition = 'amqp:internal-error'

/** Builds one catalog row; the HTTP status and transience follow from the DPS errorCode. */
function row(errorCode: number, amqpCondition: AmqpCondition, defaultMessage: string): ErrorCatalogEntry {
  const httpStatus = Math.floor(errorCode / 1000)
  // Same split every Microsoft client applies (docs/protocol.md §1.4): >= 429 is transient.
  const transient = httpStatus === 429 || httpStatus >= 500
  return Object.freeze({ errorCode, httpStatus, amqpCondition, transient, defaultMessage })
}

/**
 * The catalog, keyed by stable code. See the module documentation for the table with meanings.
 * Codes are never renamed or renumbered once published; add new rows instead.
 */
export const ERROR_CATALOG = /* @__PURE__ */ Object.freeze({
  // 400: the request itself is wrong.
  BAD_REQUEST: row(400001, ARG, 'Bad request.'),
  INVALID_JSON: row(400002, ARG, 'The request body is not valid JSON.'),
  VALIDATION_FAILED: row(400003, ARG, 'The request body is invalid.'),
  INVALID_REGISTRATION_ID: row(400004, ARG, 'The registration id is invalid.'),
  INVALID_DEVICE_ID: row(400005, ARG, 'The device id is invalid.'),
  INVALID_ID_SCOPE: row(400006, ARG, 'The ID scope is invalid.'),
  UNSUPPORTED_API_VERSION: row(400007, ARG, 'The api-version is not supported.'),
  CONNECTION_STRING_MALFORMED: row(400010, ARG, 'The connection string is invalid.'),
  CONNECTION_STRING_MISSING_KEY: row(400011, ARG, 'The connection string is invalid.'),
  CONNECTION_STRING_DUPLICATE_KEY: row(400012, ARG, 'The connection string is invalid.'),
  CSR_INVALID: row(400040, ARG, 'The certificate signing request is invalid.'),
  CUSTOM_ALLOCATION_FAILED: row(400207, ARG, 'Custom allocation failed.'),
  NO_HUB_ASSIGNABLE: row(400208, ARG, 'No IoT hub could be assigned.'),
  HUB_UNAUTHORIZED: row(400209, ARG, 'The IoT hub refused the provisioning service.'),
  // 401002: every authentication failure looks the same to the device (observed from real DPS).
  CREDENTIALS_MISSING: row(401002, UNAUTH, 'Unauthorized'),
  SAS_MALFORMED: row(401002, UNAUTH, 'Unauthorized'),
  SAS_EXPIRED: row(401002, UNAUTH, 'Unauthorized'),
  SAS_BAD_SIGNATURE: row(401002, UNAUTH, 'Unauthorized'),
  SAS_WRONG_RESOURCE: row(401002, UNAUTH, 'Unauthorized'),
  SAS_WRONG_KEY_NAME: row(401002, UNAUTH, 'Unauthorized'),
  SAS_PERMISSION_DENIED: row(401002, UNAUTH, 'Unauthorized'),
  ID_SCOPE_UNKNOWN: row(401002, UNAUTH, 'Unauthorized'),
  ENROLLMENT_NOT_FOUND: row(401002, UNAUTH, 'Unauthorized'),
  ENROLLMENT_DISABLED: row(401002, UNAUTH, 'Unauthorized'),
  ATTESTATION_MISMATCH: row(401002, UNAUTH, 'Unauthorized'),
  CERTIFICATE_INVALID: row(401002, UNAUTH, 'Unauthorized'),
  DEVICE_DISABLED: row(401002, UNAUTH, 'Unauthorized'),
  // 404
  NOT_FOUND: row(404001, NOT_FOUND, 'Not found.'),
  REGISTRATION_NOT_FOUND: row(404201, NOT_FOUND, 'Registration not found.'),
  OPERATION_NOT_FOUND: row(404202, NOT_FOUND, 'Operation not found.'),
  ENROLLMENT_RECORD_NOT_FOUND: row(404203, NOT_FOUND, 'Enrollment not found.'),
  ENROLLMENT_GROUP_NOT_FOUND: row(404204, NOT_FOUND, 'Enrollment group not found.'),
  DEVICE_NOT_ONLINE: row(404103, NOT_FOUND, 'Timed out waiting for device to connect.'),
  // Cloud-to-device (IoT Hub's codes).
  DEVICE_QUEUE_FULL: row(403004, 'amqp:resource-limit-exceeded', 'Total number of messages on IotHub Device Queue exceeds maximum allowed.'),
  MESSAGE_LOCK_LOST: row(412020, 'com.microsoft:message-lock-lost', 'The message lock is lost or the lock token is unknown.'),
  // 405, 409, 412, 413, 415
  METHOD_NOT_ALLOWED: row(405001, 'amqp:not-allowed', 'Method not allowed.'),
  CONFLICT: row(409001, 'amqp:not-allowed', 'Conflict.'),
  CONCURRENT_REGISTRATION: row(409203, PRECONDITION, 'Precondition failed.'),
  REQUEST_TIMEOUT: row(408001, ARG, 'Request timeout.'),
  PRECONDITION_FAILED: row(412001, PRECONDITION, 'Precondition failed.'),
  PAYLOAD_TOO_LARGE: row(413001, 'amqp:link:message-size-exceeded', 'Payload too large.'),
  UNSUPPORTED_MEDIA_TYPE: row(415001, ARG, 'Unsupported media type.'),
  // 429: transient; sub-codes are our choice (real ones not known, docs/protocol.md §1.5).
  HEADERS_TOO_LARGE: row(431001, ARG, 'Request header fields too large.'),
  THROTTLED: row(429001, THROTTLE, 'Too many requests.'),
  POLL_THROTTLED: row(429002, THROTTLE, 'Too many requests.'),
  SERVICE_THROTTLED: row(429003, THROTTLE, 'Too many requests.'),
  // 5xx: transient.
  INTERNAL_ERROR: row(500001, INTERNAL, 'Internal server error.'),
  SERVICE_UNAVAILABLE: row(503001, INTERNAL, 'Service unavailable.'),
  GATEWAY_TIMEOUT: row(504101, INTERNAL, 'Timed out waiting for the response from device.'),
})

/** Every stable error code of the service. */
export type ProvisioErrorCode = keyof typeof ERROR_CATALOG

/** Options of {@link ProvisioError}. */
export interface ProvisioErrorOptions {
  /** Device-visible key/value details, sent as the error body's `info` (no secrets). */
  readonly info?: Readonly<Record<string, string>>
  /** For transient errors: seconds the client should wait (HTTP `Retry-After`, AMQP/MQTT property). */
  readonly retryAfterSeconds?: number
  /**
   * A device-safe message replacing the catalog's generic one, e.g. which field failed
   * validation. Never put secrets, tokens or other tenants' data here.
   */
  readonly deviceMessage?: string
  /** The underlying failure, kept for logs. */
  readonly cause?: unknown
}

const BRAND = Symbol.for('provisio.protocol.error')

/**
 * An error of the service's one vocabulary. `message` is the detailed `reason` (for logs and
 * events); what a device sees comes from {@link toErrorBody}.
 *
 * @example
 * ```ts
 * throw new ProvisioError('SAS_EXPIRED', 'token expired at 1700000000, now 1700000400 (skew 300 s)')
 * ```
 */
export class ProvisioError extends Error {
  override readonly name = 'ProvisioError'
  /** Stable string code, a key of {@link ERROR_CATALOG}. */
  readonly code: ProvisioErrorCode
  /** DPS extended error code (first three digits = HTTP status). */
  readonly errorCode: number
  /** HTTP status, and the MQTT response-topic status. */
  readonly httpStatus: number
  /** Why it failed: which field, which key, which rule. Server-side only. */
  readonly reason: string
  /** Device-visible details. */
  readonly info: Readonly<Record<string, string>> | undefined
  /** Seconds to wait before retrying (transient errors). */
  readonly retryAfterSeconds: number | undefined
  /** Device-safe message override; see {@link ProvisioErrorOptions.deviceMessage}. */
  readonly deviceMessage: string | undefined
  readonly [BRAND] = true

  /**
   * @param code stable code; must be a key of {@link ERROR_CATALOG}
   * @param reason why, for logs: which field, which key, which rule
   * @throws TypeError if `code` is not in the catalog (a programming error)
   */
  constructor(code: ProvisioErrorCode, reason: string, options?: ProvisioErrorOptions) {
    super(reason, options?.cause === undefined ? undefined : { cause: options.cause })
    const entry = ERROR_CATALOG[code] as ErrorCatalogEntry | undefined
    if (entry === undefined) throw new TypeError(`unknown ProvisioError code ${JSON.stringify(code)}`)
    this.code = code
    this.errorCode = entry.errorCode
    this.httpStatus = entry.httpStatus
    this.reason = reason
    this.info = options?.info
    this.retryAfterSeconds = options?.retryAfterSeconds
    this.deviceMessage = options?.deviceMessage
  }

  /** The catalog row of this error's code. */
  get entry(): ErrorCatalogEntry {
    return ERROR_CATALOG[this.code]
  }

  /** Status in the MQTT response topic `$dps/registrations/res/{status}/…`: the HTTP status. */
  get mqttStatus(): number {
    return this.httpStatus
  }

  /** AMQP condition for the rejected delivery. */
  get amqpCondition(): AmqpCondition {
    return ERROR_CATALOG[this.code].amqpCondition
  }

  /** Whether clients retry it (429, 5xx). */
  get transient(): boolean {
    return ERROR_CATALOG[this.code].transient
  }

  /** `instanceof` that also matches a second copy of this package in the same bundle. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
  }
}

/** True for a {@link ProvisioError} from any copy of this package. */
export function isProvisioError(value: unknown): value is ProvisioError {
  return value instanceof ProvisioError
}

/** True when `code` is a key of {@link ERROR_CATALOG}. */
export function isProvisioErrorCode(code: unknown): code is ProvisioErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CATALOG, code)
}

/**
 * Turns anything thrown into a {@link ProvisioError}: ours pass through unchanged, anything
 * else becomes `INTERNAL_ERROR` keeping the original as `cause`.
 */
export function wrapUnknown(error: unknown): ProvisioError {
  if (isProvisioError(error)) return error
  let what: string
  if (error instanceof Error) what = `${error.name}: ${error.message}`
  else if (typeof error === 'string') what = error
  else what = `non-Error value of type ${error === null ? 'null' : typeof error}`
  return new ProvisioError('INTERNAL_ERROR', `unexpected failure: ${what}`, { cause: error })
}

/**
 * DPS error body, `ProvisioningServiceErrorDetails` of the device and service REST specs
 * (docs/protocol.md §1.5). Also the JSON in an AMQP rejection's `description`.
 */
export interface ProvisioningServiceErrorDetails {
  errorCode: number
  trackingId: string
  message: string
  info?: Record<string, string>
  /** ISO 8601 UTC timestamp. */
  timestampUtc: string
}

/**
 * The device-facing error body. The message is the catalog's generic text (or the error's
 * explicit `deviceMessage`), never the internal `reason`, so refusals leak no secrets.
 *
 * @param error any thrown value; non-Provisio errors become INTERNAL_ERROR
 * @param trackingId request id (also sent as `x-ms-request-id`)
 * @param timestampUtc ISO 8601 time from the caller's clock (pure package: no Date here)
 */
export function toErrorBody(error: unknown, trackingId: string, timestampUtc: string): ProvisioningServiceErrorDetails {
  const err = wrapUnknown(error)
  const body: ProvisioningServiceErrorDetails = {
    errorCode: err.errorCode,
    trackingId,
    message: err.deviceMessage ?? ERROR_CATALOG[err.code].defaultMessage,
    timestampUtc,
  }
  if (err.info !== undefined) body.info = { ...err.info }
  return body
}

/** Longest reason {@link withDeveloperReason} puts into a device-facing message. */
export const MAX_DEVELOPER_REASON_LENGTH = 1000

/**
 * The same error with its server-side `reason` appended to the message the device sees:
 * `Unauthorized (development reason: no individual enrollment …)`. The code, errorCode, status,
 * info and retry-after stay as they are, so every client parses the refusal as before. Only for a
 * development server (`provisio serve --dev-reasons`): reasons name enrollments and groups.
 */
export function withDeveloperReason(error: unknown): ProvisioError {
  const err = wrapUnknown(error)
  const base = err.deviceMessage ?? ERROR_CATALOG[err.code].defaultMessage
  const reason = err.reason.length > MAX_DEVELOPER_REASON_LENGTH ? `${err.reason.slice(0, MAX_DEVELOPER_REASON_LENGTH)}…` : err.reason
  if (reason === '' || base.includes(reason)) return err
  return new ProvisioError(err.code, err.reason, {
    ...(err.info === undefined ? {} : { info: err.info }),
    ...(err.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: err.retryAfterSeconds }),
    deviceMessage: `${base} (development reason: ${reason})`,
    cause: err.cause ?? err,
  })
}

/**
 * Client-side classification shared by every Microsoft SDK (docs/protocol.md §1.4): statuses
 * >= 429 are transient, 300-428 fatal.
 */
export function isTransientHttpStatus(status: number): boolean {
  return status >= 429
}
