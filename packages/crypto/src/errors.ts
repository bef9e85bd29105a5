/**
 * Typed errors of @provisio/crypto. Cryptographic *verdicts* (a signature that does not verify,
 * a MAC that does not match) are never errors: they are `false`. Errors are for misuse: wrong
 * argument types or lengths, a module that is not ready, an input the core cannot take.
 */

/** Stable codes; never renamed once published. */
export type CryptoErrorCode =
  | 'CRYPTO_INVALID_ARGUMENT'
  | 'CRYPTO_INVALID_LENGTH'
  | 'CRYPTO_INVALID_BASE64'
  | 'CRYPTO_UNSUPPORTED'
  | 'CRYPTO_NOT_READY'
  | 'CRYPTO_WASM_FAILURE'

const BRAND = Symbol.for('provisio.crypto.error')

export class CryptoError extends Error {
  override readonly name = 'CryptoError'
  readonly code: CryptoErrorCode
  /** For parse errors (CRYPTO_INVALID_BASE64): index of the offending character in the input. */
  readonly position: number | undefined
  readonly [BRAND] = true

  constructor(code: CryptoErrorCode, message: string, options?: { cause?: unknown; position?: number }) {
    super(message, options)
    this.code = code
    this.position = options?.position
  }

  /** `instanceof` that also works across two copies of this package in one bundle. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
  }
}

/** Throws CRYPTO_INVALID_ARGUMENT unless `value` is a Uint8Array. Message built only on failure. */
export function assertBytes(value: unknown, name: string, length?: number): asserts value is Uint8Array {
  if (value instanceof Uint8Array && (length === undefined || value.length === length)) return
  if (!(value instanceof Uint8Array)) {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `${name} must be a Uint8Array, got ${describe(value)}`)
  }
  throw new CryptoError('CRYPTO_INVALID_LENGTH', `${name} must be ${length} bytes, got ${value.length}`)
}

/** Throws CRYPTO_INVALID_ARGUMENT unless `value` is a string. */
export function assertString(value: unknown, name: string): asserts value is string {
  if (typeof value === 'string') return
  throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `${name} must be a string, got ${describe(value)}`)
}

export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'an object'
  return typeof value
}
