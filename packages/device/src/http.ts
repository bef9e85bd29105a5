/**
 * DPS over HTTPS (docs/protocol.md §1): `PUT /{idScope}/registrations/{id}/register`, then
 * `GET …/operations/{operationId}`, each with `Authorization: <SAS>` (symmetric key, TPM second
 * leg) or a TLS client certificate (X.509). Statuses and `retry-after` are returned as they are;
 * the flow decides what to retry.
 */
import { DeviceError } from './errors.js'
import { parseJsonBody, parseRetryAfter, type DpsReply, type DpsSession, type HttpRequester, type HttpResponse, type RegistrationBody, type SessionParams, type FetchLike } from './transport.js'

function origin(host: string, port: number): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  return port === 443 ? `https://${h}` : `https://${h}:${port}`
}

/** Opens an HTTP "session" (a requester with the session's TLS settings). */
export function openHttpSession(params: SessionParams, fetchOverride: FetchLike | undefined): DpsSession {
  const http = params.platform.http(params.tls, fetchOverride)
  const request: HttpRequester = http.request
  const base = `${origin(params.host, params.port)}/${encodeURIComponent(params.idScope)}/registrations/${encodeURIComponent(params.registrationId)}`
  const query = `api-version=${encodeURIComponent(params.apiVersion)}`
  const headers = (authorization: string | undefined): Record<string, string> => {
    const h: Record<string, string> = {
      accept: 'application/json',
      'content-type': 'application/json; charset=utf-8',
    }
    if (params.platform.name === 'node') h['user-agent'] = params.userAgent
    if (authorization !== undefined) h['authorization'] = authorization
    return h
  }
  const send = async (method: 'PUT' | 'GET', url: string, authorization: string | undefined, body: string | undefined, what: string): Promise<DpsReply> => {
    let response: HttpResponse
    try {
      response = await request({ method, url, headers: headers(authorization), ...(body === undefined ? {} : { body }), signal: params.signal })
    } catch (cause) {
      if (params.signal.aborted || cause instanceof DeviceError) throw cause
      throw new DeviceError('TRANSPORT', `${what}: HTTPS request to ${params.host}:${params.port} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause, transient: true })
    }
    return { status: response.status, body: parseJsonBody(response.text, what), retryAfterMs: parseRetryAfter(response.header('retry-after')) }
  }
  return {
    register(body: RegistrationBody, authorization, forceRegistration) {
      const url = `${base}/register?${query}${forceRegistration ? '&forceRegistration=true' : ''}`
      return send('PUT', url, authorization, JSON.stringify(body), 'register')
    },
    poll(operationId, authorization) {
      return send('GET', `${base}/operations/${encodeURIComponent(operationId)}?${query}`, authorization, undefined, 'operation status')
    },
    close() {
      http.close()
      return Promise.resolve()
    },
  }
}
