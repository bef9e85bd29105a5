/** Options every service-model validator takes, and the limits specific to these models (docs/protocol.md §7). */
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
