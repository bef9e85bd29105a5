/**
 * CA-certificate routes of the service API (our own, documented here; DPS manages CA
 * certificates through ARM, docs/protocol.md §6 D-pop). Authorized by a service SAS token whose
 * policy grants `ServiceConfig` (§2.3). Reads take the api-version leniently like §7 routes.
 *
 * | route | method | answer |
 * |---|---|---|
 * | `/certificates` | GET | 200 `CaCertificateView[]` |
 * | `/certificates/{name}` | PUT `{certificate, isVerified?}` (If-Match optional) | 200 view + `etag` header |
 * | `/certificates/{name}` | GET | 200 view |
 * | `/certificates/{name}` | DELETE (If-Match optional) | 204 |
 * | `/certificates/{name}/generateVerificationCode` | POST (If-Match optional) | 200 view with `properties.verificationCode` |
 * | `/certificates/{name}/verify` | POST `{certificate}` (If-Match optional) | 200 view, `isVerified: true` |
 */
import { ProvisioError, acceptApiVersion, parseJsonBody } from '@provisio/protocol'
import type { CaCertificateApi, ConditionalOptions, ServiceApi } from '@provisio/protocol'
import { assertJsonContent, header, type HttpLimits, type HttpRequest, type ParsedTarget } from './message.js'
import { emptyResponse, jsonResponse } from './response.js'

type Reply = { status: number; headers: Record<string, string>; body: string }

/** First path segment of the CA-certificate routes. */
export const CERTIFICATES_ROOT = 'certificates'

function conditional(request: HttpRequest): ConditionalOptions {
  const ifMatch = header(request, 'if-match')
  return ifMatch === undefined ? {} : { ifMatch }
}

/**
 * Serves a CA-certificate request. Returns undefined for an unknown route and 'method' for a
 * known route with a method it does not serve.
 */
export async function serveCertificates(
  service: ServiceApi,
  certificates: CaCertificateApi,
  request: HttpRequest,
  target: ParsedTarget,
  limits: HttpLimits,
): Promise<Reply | undefined | 'method'> {
  const s = target.segments
  if (s[0]!.toLowerCase() !== CERTIFICATES_ROOT || s.length > 3) return undefined
  acceptApiVersion(target.query.get('api-version'), 'service')
  const authorize = () => {
    const token = header(request, 'authorization')
    if (token === undefined) throw new ProvisioError('CREDENTIALS_MISSING', 'service request carries no Authorization header')
    return service.authorizeService(token, 'ServiceConfig').idScope
  }
  const body = () => {
    assertJsonContent(request)
    return parseJsonBody(request.body, { maxBytes: limits.maxBodyBytes })
  }
  const method = request.method
  if (s.length === 1) {
    if (method !== 'GET') return 'method'
    return jsonResponse(200, await certificates.listCaCertificates(authorize()))
  }
  const name = s[1]!
  if (s.length === 2) {
    if (method === 'GET') return withEtag(await certificates.getCaCertificate(authorize(), name))
    if (method === 'PUT') {
      const idScope = authorize()
      return withEtag(await certificates.createOrUpdateCaCertificate(idScope, name, body(), conditional(request)))
    }
    if (method === 'DELETE') {
      await certificates.deleteCaCertificate(authorize(), name, conditional(request))
      return emptyResponse(204)
    }
    return 'method'
  }
  const action = s[2]!.toLowerCase()
  if (action === 'generateverificationcode') {
    if (method !== 'POST') return 'method'
    return withEtag(await certificates.generateVerificationCode(authorize(), name, conditional(request)))
  }
  if (action === 'verify') {
    if (method !== 'POST') return 'method'
    const idScope = authorize()
    return withEtag(await certificates.verifyCaCertificate(idScope, name, body(), conditional(request)))
  }
  return undefined
}

function withEtag(view: { etag: string }): Reply {
  return jsonResponse(200, view, { etag: view.etag })
}
