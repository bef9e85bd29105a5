/**
 * Direct methods as IoT Hub's service REST API takes them (`POST /twins/{id}/methods`, api-version
 * 2021-04-12, what azure-iothub's `Client.invokeDeviceMethod` sends) and the limits IoT Hub sets:
 * a JSON payload of at most 128 KB each way, a response timeout of 5-300 s (default 30), a connect
 * timeout of 0-300 s (default 0), method names of US-ASCII printable characters without
 * `$()<>@,;:\"/[]?={}`, space and tab. The device answers with any integer status and a JSON body.
 */
import { ProvisioError } from './errors.js'

/** Largest method payload, request or response, as JSON text in UTF-8 (IoT Hub's limit). */
export const MAX_METHOD_PAYLOAD_BYTES = 128 * 1024
/** Longest method name served (IoT Hub documents no limit; a topic level and a log field). */
export const MAX_METHOD_NAME_LENGTH = 128
export const METHOD_RESPONSE_TIMEOUT_SECONDS = Object.freeze({ min: 5, max: 300, default: 30 })
export const METHOD_CONNECT_TIMEOUT_SECONDS = Object.freeze({ min: 0, max: 300, default: 0 })

/** A direct method call, checked. */
export interface DirectMethodCall {
  readonly methodName: string
  /** Any JSON value (null when absent). */
  readonly payload: unknown
  readonly responseTimeoutInSeconds: number
  readonly connectTimeoutInSeconds: number
}

/** What the caller is answered with: the device's status and payload. */
export interface DirectMethodResult {
  readonly status: number
  readonly payload: unknown
}

// IoT Hub's excluded set, plus "+" and "#": the name is an MQTT topic level, where they are wildcards (MQTT-4.7.1-1).
const EXCLUDED = new Set('$()<>@,;:\\"/[]?={}+#')

/** Why a method name is refused, or undefined when it is fine. */
export function methodNameError(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'methodName must be a non-empty string'
  if (name.length > MAX_METHOD_NAME_LENGTH) return `methodName is ${name.length} characters, over the limit of ${MAX_METHOD_NAME_LENGTH}`
  for (const ch of name) {
    const code = ch.charCodeAt(0)
    if (code <= 0x20 || code >= 0x7f || EXCLUDED.has(ch)) {
      return `methodName ${JSON.stringify(name.slice(0, 40))} holds ${JSON.stringify(ch)}: names are US-ASCII printable characters without $()<>@,;:\\"/[]?={}+#, space or tab`
    }
  }
  return undefined
}

const utf8 = new TextEncoder()

/** Bytes of `text` in UTF-8. */
export function utf8Length(text: string): number {
  return utf8.encode(text).length
}

function refuse(reason: string, field: string): ProvisioError {
  return new ProvisioError('VALIDATION_FAILED', reason, { deviceMessage: reason, info: { field } })
}

function seconds(value: unknown, field: string, range: { min: number; max: number; default: number }): number {
  if (value === undefined || value === null) return range.default
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
    throw refuse(`${field} must be an integer from ${range.min} to ${range.max} (seconds)`, field)
  }
  return value
}

/**
 * Checks a `POST /twins/{id}/methods` body: `methodName`, optional `payload`,
 * `responseTimeoutInSeconds`, `connectTimeoutInSeconds`. Throws VALIDATION_FAILED naming the
 * field, or PAYLOAD_TOO_LARGE past 128 KB of payload.
 */
export function validateDirectMethodCall(json: unknown): DirectMethodCall {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw refuse('the body must be a JSON object with methodName', '(body)')
  const body = json as Record<string, unknown>
  const nameError = methodNameError(body.methodName)
  if (nameError !== undefined) throw refuse(nameError, 'methodName')
  const payload = body.payload === undefined ? null : body.payload
  const bytes = utf8Length(JSON.stringify(payload))
  if (bytes > MAX_METHOD_PAYLOAD_BYTES) {
    const reason = `payload is ${bytes} bytes of JSON, over IoT Hub's limit of ${MAX_METHOD_PAYLOAD_BYTES} bytes`
    throw new ProvisioError('PAYLOAD_TOO_LARGE', reason, { deviceMessage: reason })
  }
  return {
    methodName: body.methodName as string,
    payload,
    responseTimeoutInSeconds: seconds(body.responseTimeoutInSeconds, 'responseTimeoutInSeconds', METHOD_RESPONSE_TIMEOUT_SECONDS),
    connectTimeoutInSeconds: seconds(body.connectTimeoutInSeconds, 'connectTimeoutInSeconds', METHOD_CONNECT_TIMEOUT_SECONDS),
  }
}
