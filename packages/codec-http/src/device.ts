/**
 * The DPS device API over HTTPS (docs/protocol.md §1.1):
 *
 * | route | call |
 * |---|---|
 * | `PUT /{idScope}/registrations/{registrationId}/register?api-version=V[&forceRegistration=true]` | register |
 * | `GET /{idScope}/registrations/{registrationId}/operations/{operationId}?api-version=V` | operation status |
 * | `POST /{idScope}/registrations/{registrationId}?api-version=V` | registration status lookup |
 *
 * The registrationId comes from the URL, never only from the body (§1.2, §10 item 1).
 * Credentials: the `tpm` member of the body makes a TPM request (with the SAS of the second leg
 * in `Authorization` when present, §5.2); otherwise `Authorization` carries a device SAS (§2.1);
 * otherwise the TLS client certificate chain is the evidence (§6).
 */
import { ProvisioError, acceptApiVersion, readRegisterBody } from '@provisio/protocol'
import type { DeviceApi, DeviceRegistration, DeviceResponse, Evidence, TpmChallengeResponse } from '@provisio/protocol'
import { assertJsonContent, header, type HttpLimits, type HttpRequest, type ParsedTarget } from './message.js'
import { jsonResponse } from './response.js'

/** Evidence of a request: TPM body keys, SAS header, or client certificates, in that order. */
export function deviceEvidence(request: HttpRequest, registration: DeviceRegistration | undefined, required: true): Evidence
export function deviceEvidence(request: HttpRequest, registration: DeviceRegistration | undefined, required: false): Evidence | undefined
export function deviceEvidence(request: HttpRequest, registration: DeviceRegistration | undefined, required: boolean): Evidence | undefined {
  const token = header(request, 'authorization')
  if (registration?.tpm !== undefined) {
    const { endorsementKey, storageRootKey } = registration.tpm
    return {
      type: 'tpm',
      endorsementKey,
      ...(storageRootKey === undefined ? {} : { storageRootKey }),
      ...(token === undefined ? {} : { token }),
    }
  }
  if (token !== undefined) return { type: 'sas', token }
  const chain = request.clientCertificates
  if (chain !== undefined && chain.length > 0) return { type: 'x509', chain }
  if (!required) return undefined
  throw new ProvisioError('CREDENTIALS_MISSING', 'request carries no Authorization header, no TPM keys and no client certificate')
}

function readRegistration(request: HttpRequest, limits: HttpLimits, registrationId: string): DeviceRegistration {
  assertJsonContent(request)
  return readRegisterBody(request.body, registrationId, { idFrom: 'URL', maxBytes: limits.maxBodyBytes })
}

function deviceResponse(result: DeviceResponse<unknown> | TpmChallengeResponse) {
  if (result.status === 401) {
    // §5.2: C needs keyName and treats a 401 body without `status` as the challenge; Node reads
    // authenticationKey.
    const { authenticationKey, keyName } = result.challenge
    return jsonResponse(401, { message: 'Activate the authentication key and sign with it.', authenticationKey, keyName })
  }
  const headers: Record<string, string> = {}
  if (result.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(result.retryAfterSeconds)))
  return jsonResponse(result.status, result.body, headers)
}

/**
 * Serves a device API request whose path has the shape `/{idScope}/registrations/{id}/…`.
 * Returns undefined when the path is not a device route (the caller answers 404).
 */
export async function serveDevice(
  api: DeviceApi,
  request: HttpRequest,
  target: ParsedTarget,
  limits: HttpLimits,
): Promise<{ status: number; headers: Record<string, string>; body: string } | undefined | 'method'> {
  const s = target.segments
  if (s.length < 3 || s[1]!.toLowerCase() !== 'registrations') return undefined
  const idScope = s[0]!
  const registrationId = s[2]!
  const method = request.method

  if (s.length === 4 && s[3]!.toLowerCase() === 'register') {
    if (method !== 'PUT') return 'method'
    const apiVersion = acceptApiVersion(target.query.get('api-version'), 'device').version
    const registration = readRegistration(request, limits, registrationId)
    const force = target.query.get('forceregistration')
    const result = await api.register({
      idScope,
      registrationId,
      evidence: deviceEvidence(request, registration, true),
      apiVersion,
      ...(registration.payload === undefined ? {} : { payload: registration.payload }),
      ...(registration.csr === undefined ? {} : { csr: registration.csr }),
      ...(force === undefined ? {} : { forceRegistration: force.toLowerCase() === 'true' }),
    })
    return deviceResponse(result)
  }

  if (s.length === 5 && s[3]!.toLowerCase() === 'operations') {
    if (method !== 'GET') return 'method'
    acceptApiVersion(target.query.get('api-version'), 'device')
    // Node's client sends `{}` with its GET; C repeats the register JSON: neither matters (§3).
    const evidence = deviceEvidence(request, undefined, false)
    const result = await api.operationStatus({
      idScope,
      registrationId,
      operationId: s[4]!,
      ...(evidence === undefined ? {} : { evidence }),
    })
    return deviceResponse(result)
  }

  if (s.length === 3) {
    if (method !== 'POST') return 'method'
    acceptApiVersion(target.query.get('api-version'), 'device')
    const registration = readRegistration(request, limits, registrationId)
    if (registration.csr !== undefined) {
      throw new ProvisioError('VALIDATION_FAILED', 'csr is not allowed on a registration status lookup (§1.1)', {
        deviceMessage: 'csr is not allowed on a registration status lookup',
      })
    }
    const result = await api.registrationStatus({ idScope, registrationId, evidence: deviceEvidence(request, registration, true) })
    return deviceResponse(result)
  }
  return undefined
}
