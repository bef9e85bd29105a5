/**
 * One error type for everything the device SDK refuses or gives up on. `code` is stable (switch on
 * it); when the service answered, `errorCode` is the DPS extended code (first three digits = HTTP
 * status), `status` the HTTP-ish status (also the MQTT response-topic status), and `serverMessage`
 * / `trackingId` come from the service's error body (docs/protocol.md §1.5).
 */

/** Stable codes of {@link DeviceError}. */
export type DeviceErrorCode =
  /** The service refused the request (4xx other than 429): bad credentials, unknown enrollment, bad input. */
  | 'REFUSED'
  /** The registration ended with status `failed` (e.g. custom allocation failed, no hub assignable). */
  | 'REGISTRATION_FAILED'
  /** The enrollment is disabled (status `disabled`). */
  | 'REGISTRATION_DISABLED'
  /** Throttled or unavailable (429/5xx) and the retry budget or deadline ran out. */
  | 'RETRIES_EXHAUSTED'
  /** The deadline passed before the registration finished. */
  | 'DEADLINE_EXCEEDED'
  /** The caller's AbortSignal fired. */
  | 'ABORTED'
  /** Connecting or talking to the service failed (socket, TLS, WebSocket, MQTT/AMQP connection). */
  | 'TRANSPORT'
  /** The service answered something the DPS protocol does not allow. */
  | 'PROTOCOL'
  /** This combination is not available (e.g. X.509 in a browser, TPM over MQTT). */
  | 'UNSUPPORTED'
  /** A caller bug: a missing or malformed option. */
  | 'INVALID_ARGUMENT'
  /** The TPM failed (activation, signing, simulator connection). */
  | 'TPM'

/** Details of a {@link DeviceError}. */
export interface DeviceErrorOptions {
  readonly errorCode?: number
  readonly status?: number
  readonly trackingId?: string
  readonly serverMessage?: string
  readonly info?: Readonly<Record<string, string>>
  /** The wait the service asked for (retry-after), in milliseconds. */
  readonly retryAfterMs?: number
  /** Whether the SDK may retry it (429, 5xx, dropped connections). */
  readonly transient?: boolean
  readonly cause?: unknown
}

const BRAND = Symbol.for('provisio.device.error')

/** Thrown (or rejected with) by every API of @provisio/device. */
export class DeviceError extends Error {
  override readonly name = 'DeviceError'
  readonly code: DeviceErrorCode
  /** DPS extended error code, e.g. 401002, 429001 (when the service sent one). */
  readonly errorCode: number | undefined
  /** HTTP status; on MQTT the response-topic status; on AMQP derived from errorCode. */
  readonly status: number | undefined
  readonly trackingId: string | undefined
  /** The `message` of the service's error body. */
  readonly serverMessage: string | undefined
  readonly info: Readonly<Record<string, string>> | undefined
  readonly retryAfterMs: number | undefined
  readonly transient: boolean
  readonly [BRAND] = true

  constructor(code: DeviceErrorCode, message: string, options: DeviceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.errorCode = options.errorCode
    this.status = options.status
    this.trackingId = options.trackingId
    this.serverMessage = options.serverMessage
    this.info = options.info
    this.retryAfterMs = options.retryAfterMs
    this.transient = options.transient ?? false
  }

  /** `instanceof` that also matches a second copy of this package in one bundle. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
  }
}

/** True for a {@link DeviceError} (from any copy of this package). */
export function isDeviceError(value: unknown): value is DeviceError {
  return value instanceof DeviceError
}

/** Clients retry statuses >= 429 (429 and 5xx), like every Microsoft SDK (docs/protocol.md §1.4). */
export function isTransientStatus(status: number): boolean {
  return status >= 429
}

/**
 * The error for a service answer with status >= 300. `body` is the parsed JSON error body
 * (ProvisioningServiceErrorDetails) when there was one.
 */
export function errorFromReply(status: number, body: unknown, retryAfterMs: number | undefined, what: string): DeviceError {
  const details = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {}
  const errorCode = typeof details['errorCode'] === 'number' ? details['errorCode'] : undefined
  const serverMessage = typeof details['message'] === 'string' ? details['message'] : undefined
  const trackingId = typeof details['trackingId'] === 'string' ? details['trackingId'] : undefined
  let info: Record<string, string> | undefined
  if (typeof details['info'] === 'object' && details['info'] !== null) {
    info = {}
    for (const [k, v] of Object.entries(details['info'] as Record<string, unknown>)) info[k] = String(v)
  }
  const transient = isTransientStatus(status)
  const message = `${what}: the service answered ${status}${errorCode === undefined ? '' : ` (errorCode ${errorCode})`}${serverMessage === undefined ? '' : `: ${serverMessage}`}${trackingId === undefined ? '' : ` [trackingId ${trackingId}]`}`
  return new DeviceError(transient ? 'RETRIES_EXHAUSTED' : 'REFUSED', message, {
    status,
    ...(errorCode === undefined ? {} : { errorCode }),
    ...(serverMessage === undefined ? {} : { serverMessage }),
    ...(trackingId === undefined ? {} : { trackingId }),
    ...(info === undefined ? {} : { info }),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    transient,
  })
}

/** Wraps anything thrown into a DeviceError (DeviceErrors pass through). */
export function toDeviceError(error: unknown, code: DeviceErrorCode, what: string, transient = false): DeviceError {
  if (isDeviceError(error)) return error
  const text = error instanceof Error ? error.message : String(error)
  return new DeviceError(code, `${what}: ${text}`, { cause: error, transient })
}
