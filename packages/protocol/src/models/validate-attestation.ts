/** Attestation mechanisms of enrollments and groups (§7): X.509 certificates and CA references, TPM, symmetric keys. */
import {
  base64,
  child,
  enumValue,
  get,
  object,
  optString,
  put,
  reqInt,
  reqString,
} from './_check.js'
import { validationFailed } from './_errors.js'
import { CERT_FIELD, DATE_TIME } from './_rules.js'
import type {
  AttestationMechanism,
  SymmetricKeyAttestation,
  TpmAttestation,
  X509Attestation,
  X509CAReferences,
  X509CertificateInfo,
  X509CertificateWithInfo,
  X509Certificates,
} from './types.js'
import { ATTESTATION_TYPE_TABLE, ATTESTATION_TYPES } from './validate-enums.js'
import { CERTIFICATE_MAX_CHARS, SYMMETRIC_KEY_MAX_BYTES, SYMMETRIC_KEY_MIN_BYTES, TPM_PUBLIC_MAX_BYTES, type ValidateOptions } from './validate-options.js'

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
