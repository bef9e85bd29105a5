/**
 * Typed errors of @provisio/tpm. Parsers throw TpmError with a stable `code` and a message that
 * names the structure, the field and the rule that failed; cryptographic verdicts (an HMAC that
 * does not verify) are results, never errors.
 */

/** Stable codes; never renamed once published. */
export type TpmErrorCode =
  /** Input ended before a field was complete. */
  | 'TPM_TRUNCATED'
  /** A size field or a whole structure exceeds its limit (TPM 2.0 Part 2 size bounds). */
  | 'TPM_TOO_LARGE'
  /** Bytes left over after a structure that must be consumed completely. */
  | 'TPM_TRAILING_BYTES'
  /** A field holds a value this implementation does not accept (algorithm, type, attribute). */
  | 'TPM_UNSUPPORTED'
  /** A field holds a value the TPM specification forbids. */
  | 'TPM_INVALID'
  /** A public key is not an acceptable endorsement key (template check, §5.1). */
  | 'TPM_EK_TEMPLATE'
  /** Base64 text did not decode. */
  | 'TPM_BAD_BASE64'
  /** An integrity check (HMAC, unique binding) failed while unwrapping. */
  | 'TPM_INTEGRITY'
  /** A software TPM command failed; the error carries the TPM response code. */
  | 'TPM_COMMAND_FAILED'

const BRAND = Symbol.for('provisio.tpm.error')

/** Error thrown by the TPM structure parsers and the software TPM's helpers. */
export class TpmError extends Error {
  override readonly name = 'TpmError'
  readonly code: TpmErrorCode
  readonly [BRAND] = true

  constructor(code: TpmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }

  /** `instanceof` that also works across two copies of this package in one bundle. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
  }
}

/** True when `value` is a TpmError. */
export function isTpmError(value: unknown): value is TpmError {
  return value instanceof TpmError
}
