/**
 * Invoking a direct method on a device from the page: `POST /twins/{deviceId}/methods` on the hub's
 * service API, as `azure-iothub`'s Client.invokeDeviceMethod sends it, signed with the hub
 * connection string the user typed for desired edits (hub-service.ts). The form's input is checked
 * with the rules the hub applies (protocol's validateDirectMethodCall) before anything is sent; the
 * hub's refusals (404103 device not online, 504101 no answer in time, …) are read out of IoT Hub's
 * error body into their code and message.
 */
import { ProvisioError, validateDirectMethodCall } from '@provisio/protocol'
import { HubServiceError, hubServiceRequest, type FetchForHub } from './hub-service.js'

export interface MethodInvocation {
  readonly connectionString: string
  readonly deviceId: string
  readonly methodName: string
  /** The payload as typed: JSON, empty for none (null). */
  readonly payloadText: string
  /** The timeouts as typed, seconds; empty for the hub's defaults (30 and 0). */
  readonly responseTimeoutText: string
  readonly connectTimeoutText: string
  readonly host: string
  readonly port: number
  readonly nowSeconds: number
}

/** What the device answered. */
export interface MethodAnswer {
  readonly status: number
  readonly payload: unknown
}

/** A fault of the form (`methodName`, `payload`, `responseTimeout`, `connectTimeout`, `connectionString`) or the hub's refusal (`hub`, with its status and IoT Hub error code). */
export class MethodCallError extends HubServiceError {
  override readonly name = 'MethodCallError'
  constructor(
    field: string,
    message: string,
    readonly status?: number,
    readonly errorCode?: number,
  ) {
    super(field, message)
  }
}

/** The JSON body of the call, checked as the hub checks it; throws MethodCallError naming the input. */
export function methodCallBody(input: Pick<MethodInvocation, 'methodName' | 'payloadText' | 'responseTimeoutText' | 'connectTimeoutText'>): Record<string, unknown> {
  let payload: unknown = null
  if (input.payloadText.trim() !== '') {
    try {
      payload = JSON.parse(input.payloadText)
    } catch (error) {
      throw new MethodCallError('payload', `the payload is not JSON: ${(error as Error).message}`)
    }
  }
  const seconds = (text: string, field: string): number | undefined => {
    if (text.trim() === '') return undefined
    const n = Number(text)
    if (!Number.isInteger(n)) throw new MethodCallError(field, `${field === 'responseTimeout' ? 'the response' : 'the connect'} timeout must be a whole number of seconds, got ${JSON.stringify(text.slice(0, 20))}`)
    return n
  }
  const body = {
    methodName: input.methodName.trim(),
    payload,
    responseTimeoutInSeconds: seconds(input.responseTimeoutText, 'responseTimeout'),
    connectTimeoutInSeconds: seconds(input.connectTimeoutText, 'connectTimeout'),
  }
  try {
    const call = validateDirectMethodCall(body)
    return { ...call }
  } catch (error) {
    if (!(error instanceof ProvisioError)) throw error
    const field = typeof error.info?.field === 'string' ? error.info.field : 'payload'
    const input = field === 'responseTimeoutInSeconds' ? 'responseTimeout' : field === 'connectTimeoutInSeconds' ? 'connectTimeout' : field === 'methodName' ? 'methodName' : 'payload'
    throw new MethodCallError(input, error.message)
  }
}

/** The status devices answer with, from the page's input: a whole number, else 200. */
export function answerStatus(text: string): number {
  const n = Number(text.trim())
  return text.trim() !== '' && Number.isInteger(n) ? n : 200
}

/** IoT Hub's error body (`{"Message": "{\"errorCode\":404103,…,\"message\":…}"}` or the inner object itself): its code and message. */
export function hubErrorOf(text: string): { errorCode?: number; message?: string } {
  try {
    let body = JSON.parse(text) as { Message?: unknown; errorCode?: unknown; message?: unknown }
    if (typeof body.Message === 'string' && body.Message.startsWith('{')) body = JSON.parse(body.Message) as typeof body
    const message = typeof body.message === 'string' ? body.message : typeof body.Message === 'string' ? body.Message : undefined
    return { ...(typeof body.errorCode === 'number' ? { errorCode: body.errorCode } : {}), ...(message === undefined ? {} : { message }) }
  } catch {
    return {}
  }
}

/** Invokes the method; resolves with the device's answer. Call after `ready()` (WebAssembly HMAC). */
export async function invokeMethod(fetchImpl: FetchForHub, call: MethodInvocation): Promise<MethodAnswer> {
  const body = methodCallBody(call)
  const res = await hubServiceRequest(fetchImpl, { ...call, method: 'POST', path: `/twins/${encodeURIComponent(call.deviceId)}/methods`, body: JSON.stringify(body) })
  if (!res.ok) {
    const { errorCode, message } = hubErrorOf(res.text)
    const said = errorCode !== undefined ? `${errorCode}${message === undefined ? '' : ` ${message}`}` : res.text.slice(0, 300)
    throw new MethodCallError('hub', `the hub answered ${res.status}: ${said}`, res.status, errorCode)
  }
  let answer: { status?: unknown; payload?: unknown }
  try {
    answer = JSON.parse(res.text) as typeof answer
  } catch {
    throw new MethodCallError('hub', `the hub answered ${res.status} with a body that is not JSON: ${res.text.slice(0, 100)}`, res.status)
  }
  if (typeof answer.status !== 'number') throw new MethodCallError('hub', `the hub answered ${res.status} without the device's status`, res.status)
  return { status: answer.status, payload: answer.payload ?? null }
}
