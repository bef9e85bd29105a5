/**
 * The two error kinds the model layer raises. Kept in one place so the validators never build
 * error objects themselves: a rule violation names the JSON path of the offending member and the
 * rule it broke (`attestation.symmetricKey.primaryKey: must be base64 of 16 to 64 bytes`).
 */
import { ProvisioError } from '../errors.js'

/** Details carried by a validation error (also in `ProvisioError.info`). */
export interface ValidationDetails {
  /** JSON path of the offending member, e.g. `enrollments[2].attestation.type`; '' = the body. */
  readonly field: string
  /** The rule that was broken, in words. */
  readonly rule: string
}

/** Renders a path for messages: the empty path is the body itself. */
function where(path: string): string {
  return path === '' ? '(body)' : path
}

/**
 * A model member broke a rule: `VALIDATION_FAILED` (HTTP 400, DPS errorCode 400003).
 * @param path JSON path of the member (`attestation.symmetricKey.primaryKey`)
 * @param rule what the member must satisfy (`must be base64 of 16 to 64 bytes`)
 */
export function validationFailed(path: string, rule: string, cause?: unknown): ProvisioError {
  const message = `${where(path)}: ${rule}`
  // Rules never echo member values (they may be keys), so the message is safe to show callers.
  return new ProvisioError('VALIDATION_FAILED', message, { info: { field: path, rule }, deviceMessage: message, cause })
}

/**
 * A body is not JSON or not UTF-8: `INVALID_JSON` (HTTP 400, DPS errorCode 400002).
 * @param rule why, e.g. `must be valid JSON: Unexpected token } at line 1, column 13 (position 12)`
 */
export function invalidJson(rule: string, position?: number, cause?: unknown): ProvisioError {
  const info: Record<string, string> = { field: '', rule }
  if (position !== undefined) info.position = String(position)
  const message = `(body): ${rule}`
  return new ProvisioError('INVALID_JSON', message, { info, deviceMessage: message, cause })
}

/** A body exceeds its byte limit: `PAYLOAD_TOO_LARGE` (HTTP 413; DPS max message 96 KB, §9). */
export function bodyTooLarge(size: number, maxBytes: number): ProvisioError {
  const rule = `must be at most ${maxBytes} bytes, got ${size}`
  const message = `(body): ${rule}`
  return new ProvisioError('PAYLOAD_TOO_LARGE', message, { info: { field: '', rule }, deviceMessage: message })
}
