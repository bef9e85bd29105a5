/**
 * The custom allocation policy: DPS POSTs an AllocationRequest to the enrollment's webhook and
 * assigns the hub the AllocationResponse names (docs/protocol.md §8). Network access is the
 * injected `fetch` port; the timeout is an injected abort-signal factory (no timers here).
 * @module
 */
import {
  ProvisioError,
  isProvisioError,
  parseJsonBody,
  validateAllocationResponse,
  type AllocationRequest,
  type AllocationResponse,
  type AttestationMechanism,
  type CustomAllocationDefinition,
  type DeviceRuntimeContext,
  type EnrollmentGroup,
  type IndividualEnrollment,
  type GroupAttestationMechanism,
} from '@provisio/protocol'
import { DEFAULT_WEBHOOK_TIMEOUT_MS, type AllocationInput, type AllocationPorts, type AbortSignalLike } from './types.js'

/** Largest webhook response accepted by default: the DPS message limit (§9). */
export const DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES = 96 * 1024

/**
 * 400207: custom allocation failed. The device-visible message follows real DPS
 * ("Custom allocation failed with status code: N", AZC test data, §1.3/§8); the `reason`
 * (logs, events) says exactly what went wrong.
 */
export function customAllocationFailed(reason: string, deviceMessage: string, cause?: unknown): ProvisioError {
  return new ProvisioError('CUSTOM_ALLOCATION_FAILED', reason, { deviceMessage, cause })
}

/** Attestation without secrets: symmetric keys removed, everything else is public material. */
function stripAttestation<T extends AttestationMechanism>(att: T): T {
  if (att.type === 'symmetricKey') return { type: 'symmetricKey', symmetricKey: {} } as T
  return att
}

/**
 * The webhook URL without its query: Azure Functions carry their key there (`?code=…`), and the
 * webhook has no business receiving its own key back inside the enrollment.
 */
function stripDefinition<T extends { customAllocationDefinition?: CustomAllocationDefinition }>(e: T): T {
  const d = e.customAllocationDefinition
  return d === undefined ? e : { ...e, customAllocationDefinition: { ...d, webhookUrl: redactUrl(d.webhookUrl) } }
}

function stripIndividual(e: IndividualEnrollment): IndividualEnrollment {
  return stripDefinition({ ...e, attestation: stripAttestation(e.attestation) })
}

function stripGroup(e: EnrollmentGroup): EnrollmentGroup {
  return stripDefinition({ ...e, attestation: stripAttestation<GroupAttestationMechanism>(e.attestation) })
}

/**
 * Builds the AllocationRequest (§8) for the webhook: the enrollment with its secrets stripped
 * (the symmetric-key sub-object becomes `{}` as in the docs' example; the webhook URL loses its
 * query, which holds the function key), the device runtime context
 * (`currentIotHubHostName` / `currentDeviceId` only on re-registration, the docs' JSON casing) and
 * the candidate hubs as `linkedHubs`.
 *
 * @param linkedHubs hubs the webhook may choose from (the eligible candidates)
 */
export function buildAllocationRequest(input: AllocationInput, linkedHubs: readonly string[]): AllocationRequest {
  const custom = input.custom
  if (custom === undefined) throw new TypeError('buildAllocationRequest: input.custom is required for the custom policy')
  const ctx: DeviceRuntimeContext = { registrationId: input.registrationId }
  if (input.currentHub !== undefined) ctx.currentIotHubHostName = input.currentHub
  if (input.currentDeviceId !== undefined) ctx.currentDeviceId = input.currentDeviceId
  const rt = custom.runtime
  if (rt?.x509 !== undefined) ctx.x509 = rt.x509
  if (rt?.symmetricKey !== undefined) ctx.symmetricKey = { ...(rt.symmetricKey.enrollmentGroupId !== undefined ? { enrollmentGroupId: rt.symmetricKey.enrollmentGroupId } : {}) }
  if (rt?.tpm !== undefined) ctx.tpm = rt.tpm
  if (rt?.payload !== undefined) ctx.payload = rt.payload
  const request: AllocationRequest = { deviceRuntimeContext: ctx, linkedHubs: [...linkedHubs] }
  if ('individualEnrollment' in custom.enrollment) request.individualEnrollment = stripIndividual(custom.enrollment.individualEnrollment)
  else request.enrollmentGroup = stripGroup(custom.enrollment.enrollmentGroup)
  return request
}

/** Successful webhook answer, with the hub spelled as in `linkedHubs`. */
export interface WebhookOutcome {
  readonly response: AllocationResponse
  readonly hostName: string
  readonly status: number
}

/**
 * Calls the webhook and validates its answer. Every failure is a 400207 ProvisioError:
 * non-2xx status, network failure, timeout (the injected signal aborted), a body over the limit,
 * a body that is not JSON or not an AllocationResponse, or a hub that is not among `linkedHubs`.
 *
 * @param linkedHubs hubs the webhook may choose from (sent in the request too)
 */
export async function callAllocationWebhook<S extends AbortSignalLike>(
  input: AllocationInput,
  linkedHubs: readonly string[],
  ports: AllocationPorts<S>,
): Promise<WebhookOutcome> {
  const custom = input.custom
  if (custom === undefined) throw new TypeError('callAllocationWebhook: input.custom is required for the custom policy')
  const fetch = ports.fetch
  if (fetch === undefined) {
    throw customAllocationFailed('no fetch port was configured for custom allocation', 'Custom allocation failed: webhook unreachable')
  }
  const url = custom.definition.webhookUrl
  const where = redactUrl(url)
  const timeoutMs = ports.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS
  const signal: S | undefined = ports.timeoutSignal?.(timeoutMs)
  const body = JSON.stringify(buildAllocationRequest(input, linkedHubs))
  const init = {
    method: 'POST' as const,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      accept: 'application/json',
    },
    body,
    ...(signal !== undefined ? { signal } : {}),
  }
  let status: number
  let text: string
  try {
    const res = await fetch(url, init)
    status = res.status
    if (status < 200 || status > 299) {
      throw customAllocationFailed(
        `webhook ${where} answered HTTP ${status}`,
        `Custom allocation failed with status code: ${status}`,
      )
    }
    text = await res.text()
  } catch (error) {
    if (isProvisioError(error)) throw error
    if (signal?.aborted === true) {
      throw customAllocationFailed(
        `webhook ${where} did not answer within ${timeoutMs} ms`,
        'Custom allocation failed: the webhook timed out',
        error,
      )
    }
    const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
    throw customAllocationFailed(`webhook ${where} could not be reached (${what})`, 'Custom allocation failed: webhook unreachable', error)
  }
  const limit = ports.maxResponseBytes ?? DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES
  let response: AllocationResponse
  try {
    response = validateAllocationResponse(parseJsonBody(text, { maxBytes: limit }))
  } catch (error) {
    const why = isProvisioError(error) ? error.reason : String(error)
    throw customAllocationFailed(
      `webhook ${where} answered HTTP ${status} with an invalid AllocationResponse: ${why}`,
      'Custom allocation failed: invalid webhook response',
      error,
    )
  }
  const key = response.iotHubHostName.toLowerCase()
  const hostName = linkedHubs.find((h) => h.toLowerCase() === key)
  if (hostName === undefined) {
    throw customAllocationFailed(
      `webhook ${where} chose ${response.iotHubHostName}, which is not one of the linked hubs (${linkedHubs.join(', ')})`,
      'Custom allocation failed: the webhook chose a hub that is not linked',
    )
  }
  return { response, hostName, status }
}

/**
 * The URL for logs without its query (Azure Functions put their key in `?code=…`) or userinfo.
 */
export function redactUrl(url: string): string {
  const cut = url.search(/[?#]/)
  const base = cut < 0 ? url : url.slice(0, cut)
  return base.replace(/^(https?:\/\/)[^/@]*@/i, '$1')
}
