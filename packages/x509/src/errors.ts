/**
 * Typed errors of @provisio/x509. Every refusal names the certificate (by position and subject)
 * and the rule it broke, so the engine can put the reason in events and registration records
 * while the device only sees 401002 (docs/protocol.md §1.5, §6).
 */

/** Stable codes of X.509 failures. */
export type X509ErrorCode =
  | 'X509_MALFORMED'
  | 'X509_TOO_LARGE'
  | 'X509_UNSUPPORTED_ALGORITHM'
  | 'X509_BAD_SIGNATURE'
  | 'X509_NOT_YET_VALID'
  | 'X509_EXPIRED'
  | 'X509_NAME_CHAIN'
  | 'X509_NOT_CA'
  | 'X509_PATH_LENGTH'
  | 'X509_KEY_USAGE'
  | 'X509_EXTENDED_KEY_USAGE'
  | 'X509_CRITICAL_EXTENSION'
  | 'X509_BAD_EXTENSION'
  | 'X509_NO_PATH'
  | 'X509_CN_MISMATCH'
  | 'X509_NAME_CONSTRAINTS'

/** An X.509 parse or validation failure with a stable `code` and a reason that says why. */
export class X509Error extends Error {
  override readonly name = 'X509Error'
  readonly code: X509ErrorCode
  constructor(code: X509ErrorCode, reason: string, options?: { cause?: unknown }) {
    super(reason, options)
    this.code = code
  }
}
