/**
 * Runtime validators of the device-API models (docs/protocol.md §1.2, §1.3). Same conventions as
 * `validate-service.ts`. The server uses {@link validateDeviceRegistration} on request bodies; the
 * device SDK uses the result validators on responses.
 */
import { ProvisioError } from '../errors.js'
import { validationFailed } from './_errors.js'
import { parseJsonBody } from './json.js'
import { array, base64, child, get, item, object, reqString } from './_check.js'
import { MAX_MESSAGE_BYTES, registrationIdMember } from './_rules.js'
import {
  readRegistrationHead,
  readRegistrationState,
  validateEnrollmentStatus,
  validateJsonObject,
  validateTpmAttestation,
  validateX509CertificateInfo,
  type ValidateOptions,
} from './validate-service.js'
import type {
  DeviceRegistration,
  DeviceRegistrationResult,
  RegistrationOperationStatus,
  SymmetricKeyRegistrationResult,
  TpmRegistrationResult,
  X509RegistrationResult,
} from './types.js'

/** A PKCS#10 CSR in DER is rarely above 2 KB (RSA-4096 key); 8 KB leaves room for extensions. */
export const CSR_MAX_BYTES = 8 * 1024
/** The TPM activation blob (§5.4) for RSA-2048 EKs is about 0.5 KB; RSA-4096 about 1 KB. */
export const AUTHENTICATION_KEY_MAX_BYTES = 4096
/** Issued chains: leaf, intermediates, root. */
export const MAX_ISSUED_CHAIN = 10
/** Opaque operationId: real ones are `<digit>.<16 hex>.<guid>`, ~60 characters. */
export const OPERATION_ID_MAX_CHARS = 256

/** Options of {@link validateDeviceRegistration}. */
export interface DeviceRegistrationOptions extends ValidateOptions {
  /** Serialised size limit of `payload` (default 96 KB, the DPS message limit). */
  maxPayloadBytes?: number
}

/**
 * Register / status-lookup body (§1.2). Every member is optional: .NET sends no body (or only
 * `payload`) on MQTT/AMQP, so `undefined` / `null` (an empty body) validate as `{}`; the
 * registrationId then comes from the URL, username or link address.
 */
export function validateDeviceRegistration(json: unknown, options?: DeviceRegistrationOptions): DeviceRegistration {
  const path = options?.path ?? ''
  if (json === undefined || json === null) return {}
  const o = object(json, path)
  const out: DeviceRegistration = {}
  const id = get(o, 'registrationId')
  if (id !== undefined) out.registrationId = registrationIdMember(id, child(path, 'registrationId'))
  const tpm = get(o, 'tpm')
  if (tpm !== undefined) out.tpm = validateTpmAttestation(tpm, { path: child(path, 'tpm') })
  const payload = get(o, 'payload')
  if (payload !== undefined) {
    out.payload = validateJsonObject(payload, {
      path: child(path, 'payload'),
      maxBytes: options?.maxPayloadBytes ?? MAX_MESSAGE_BYTES,
    })
  }
  const csr = get(o, 'csr')
  if (csr !== undefined) out.csr = base64(csr, child(path, 'csr'), 1, CSR_MAX_BYTES)
  return out
}

/** Options of {@link readRegisterBody}. */
export interface RegisterBodyOptions {
  /**
   * Where the transport read the registrationId from, for the mismatch reason: `'URL'`,
   * `'MQTT username'`, `'link address'`.
   */
  readonly idFrom: string
  /** Size limit of the body in bytes; default {@link MAX_REGISTER_BODY_BYTES} on every transport. */
  readonly maxBytes?: number
}

/** Size limit of a register body, the same on HTTP, MQTT and AMQP: the DPS message limit (§9). */
export const MAX_REGISTER_BODY_BYTES = MAX_MESSAGE_BYTES

/**
 * The register body of any transport (§1.2), read one way by all three codecs: bounded JSON (an
 * empty body is `{}`: .NET sends none on MQTT and AMQP), validated, and a `registrationId` in it
 * must name the device the transport already named (case-insensitively).
 *
 * @example
 * ```ts
 * const registration = readRegisterBody(payload, identity.registrationId, { idFrom: 'MQTT username' })
 * ```
 * @throws ProvisioError PAYLOAD_TOO_LARGE, INVALID_JSON or VALIDATION_FAILED saying why
 */
export function readRegisterBody(body: string | Uint8Array, registrationId: string, options: RegisterBodyOptions): DeviceRegistration {
  const json = parseJsonBody(body, { maxBytes: options.maxBytes ?? MAX_REGISTER_BODY_BYTES, allowEmpty: true })
  const registration = validateDeviceRegistration(json)
  if (registration.registrationId !== undefined && registration.registrationId.toLowerCase() !== registrationId.toLowerCase()) {
    throw new ProvisioError(
      'VALIDATION_FAILED',
      `body registrationId ${JSON.stringify(registration.registrationId)} differs from the one in the ${options.idFrom} (${JSON.stringify(registrationId)})`,
      { deviceMessage: `registrationId in the body differs from the one in the ${options.idFrom}` },
    )
  }
  return registration
}

function validateTpmResult(json: unknown, path: string): TpmRegistrationResult {
  const o = object(json, path)
  const key = get(o, 'authenticationKey')
  if (key === undefined) throw validationFailed(child(path, 'authenticationKey'), 'is required')
  return { authenticationKey: base64(key, child(path, 'authenticationKey'), 1, AUTHENTICATION_KEY_MAX_BYTES) }
}

/** `registrationState.x509` (§1.3); every member optional (`"x509":{}` occurs). */
export function validateX509RegistrationResult(json: unknown, options?: ValidateOptions): X509RegistrationResult {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: X509RegistrationResult = {}
  const info = get(o, 'certificateInfo')
  if (info !== undefined) out.certificateInfo = validateX509CertificateInfo(info, { path: child(path, 'certificateInfo') })
  const groupId = get(o, 'enrollmentGroupId')
  if (groupId !== undefined) out.enrollmentGroupId = registrationIdMember(groupId, child(path, 'enrollmentGroupId'))
  const signing = get(o, 'signingCertificateInfo')
  if (signing !== undefined) {
    out.signingCertificateInfo = validateX509CertificateInfo(signing, { path: child(path, 'signingCertificateInfo') })
  }
  return out
}

/** `registrationState.symmetricKey` (§1.3); may be `{}`. */
export function validateSymmetricKeyRegistrationResult(
  json: unknown,
  options?: ValidateOptions,
): SymmetricKeyRegistrationResult {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: SymmetricKeyRegistrationResult = {}
  const groupId = get(o, 'enrollmentGroupId')
  if (groupId !== undefined) out.enrollmentGroupId = registrationIdMember(groupId, child(path, 'enrollmentGroupId'))
  return out
}

/**
 * DeviceRegistrationResult (§1.3): the registration record plus the attestation sub-objects
 * and `issuedCertificateChain`. `registrationId` and `status` are required.
 */
export function validateDeviceRegistrationResult(json: unknown, options?: ValidateOptions): DeviceRegistrationResult {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: DeviceRegistrationResult = readRegistrationHead(o, path)
  readRegistrationState(o, path, out)
  const tpm = get(o, 'tpm')
  if (tpm !== undefined) out.tpm = validateTpmResult(tpm, child(path, 'tpm'))
  const x509 = get(o, 'x509')
  if (x509 !== undefined) out.x509 = validateX509RegistrationResult(x509, { path: child(path, 'x509') })
  const sym = get(o, 'symmetricKey')
  if (sym !== undefined) out.symmetricKey = validateSymmetricKeyRegistrationResult(sym, { path: child(path, 'symmetricKey') })
  const chain = get(o, 'issuedCertificateChain')
  if (chain !== undefined) {
    const p = child(path, 'issuedCertificateChain')
    out.issuedCertificateChain = array(chain, p, 1, MAX_ISSUED_CHAIN).map((c, i) => base64(c, item(p, i), 1, 16 * 1024))
  }
  return out
}

/**
 * RegistrationOperationStatus (§1.3): `operationId` (may be empty: disabled enrollments answer
 * `"operationId":""` in AZC test data), `status`, optional `registrationState`.
 */
export function validateRegistrationOperationStatus(
  json: unknown,
  options?: ValidateOptions,
): RegistrationOperationStatus {
  const path = options?.path ?? ''
  const o = object(json, path)
  const operationId = reqString(o, 'operationId', path, { min: 0, max: OPERATION_ID_MAX_CHARS })
  const status = get(o, 'status')
  if (status === undefined) throw validationFailed(child(path, 'status'), 'is required')
  const out: RegistrationOperationStatus = {
    operationId,
    status: validateEnrollmentStatus(status, { path: child(path, 'status') }),
  }
  const state = get(o, 'registrationState')
  if (state !== undefined) {
    out.registrationState = validateDeviceRegistrationResult(state, { path: child(path, 'registrationState') })
  }
  return out
}
