/**
 * Turning results and errors into HTTP responses (docs/protocol.md §1.4, §1.5): JSON bodies with
 * `Content-Type: application/json; charset=utf-8`, `Retry-After` in integer seconds, and for
 * errors the ProvisioningServiceErrorDetails body plus `x-ms-error-code` and `x-ms-request-id`.
 */
import { ERROR_CATALOG, formatDpsTimestamp, toErrorBody, wrapUnknown } from '@provisio/protocol'

const JSON_TYPE = 'application/json; charset=utf-8'

/** A JSON response. */
export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): {
  status: number
  headers: Record<string, string>
  body: string
} {
  return { status, headers: { 'content-type': JSON_TYPE, ...headers }, body: JSON.stringify(body) }
}

/** A response without a body (204). */
export function emptyResponse(status: number, headers: Record<string, string> = {}) {
  return { status, headers, body: '' }
}

/**
 * The error response for anything thrown while serving a request. Unknown throws become
 * INTERNAL_ERROR; the device sees the catalog's generic message, never the internal reason.
 */
export function errorResponse(error: unknown, trackingId: string, nowMs: number, extraHeaders: Record<string, string> = {}) {
  const err = wrapUnknown(error)
  const entry = ERROR_CATALOG[err.code]
  const headers: Record<string, string> = {
    'x-ms-error-code': String(err.errorCode),
    'x-ms-request-id': trackingId,
    ...extraHeaders,
  }
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(err.retryAfterSeconds)))
  else if (entry.transient) headers['retry-after'] = '1'
  return jsonResponse(err.httpStatus, toErrorBody(err, trackingId, formatDpsTimestamp(nowMs)), headers)
}
