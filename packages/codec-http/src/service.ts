/**
 * The DPS service API over HTTPS (docs/protocol.md §7), authorized by a service SAS token whose
 * policy must grant the route's permission (§2.3). Query paging travels in the headers
 * `x-ms-max-item-count` and `x-ms-continuation`; pages answer with `x-ms-item-type` (§7).
 *
 * | route | methods | permission |
 * |---|---|---|
 * | `/enrollments/{id}` | GET / PUT / DELETE | EnrollmentRead / EnrollmentWrite |
 * | `/enrollments` | POST (bulk) | EnrollmentWrite |
 * | `/enrollments/query` | POST | EnrollmentRead |
 * | `/enrollments/{id}/attestationmechanism` | POST | EnrollmentRead |
 * | `/enrollmentGroups/…` | the same four shapes | the same |
 * | `/registrations/{id}` | GET / DELETE | RegistrationStatusRead / RegistrationStatusWrite |
 * | `/registrations/{groupId}/query` | POST | RegistrationStatusRead |
 */
import { ProvisioError, acceptApiVersion, parseJsonBody } from '@provisio/protocol'
import type { ConditionalOptions, QueryOptions, QueryPage, ServiceApi, ServicePermission } from '@provisio/protocol'
import { assertJsonContent, header, type HttpLimits, type HttpRequest, type ParsedTarget } from './message.js'
import { emptyResponse, jsonResponse } from './response.js'

type Reply = { status: number; headers: Record<string, string>; body: string }

/** First path segments that make a request a service API request. */
export const SERVICE_ROOTS: ReadonlySet<string> = new Set(['enrollments', 'enrollmentgroups', 'registrations'])

const MAX_PAGE_SIZE_HEADER = 10_000

function authorize(api: ServiceApi, request: HttpRequest, permission: ServicePermission): string {
  const token = header(request, 'authorization')
  if (token === undefined) throw new ProvisioError('CREDENTIALS_MISSING', 'service request carries no Authorization header')
  return api.authorizeService(token, permission).idScope
}

function readJson(request: HttpRequest, limits: HttpLimits, allowEmpty = false): unknown {
  assertJsonContent(request)
  return parseJsonBody(request.body, { maxBytes: limits.maxBodyBytes, allowEmpty })
}

function conditional(request: HttpRequest): ConditionalOptions {
  const ifMatch = header(request, 'if-match')
  return ifMatch === undefined ? {} : { ifMatch }
}

function paging(request: HttpRequest): QueryOptions {
  const size = header(request, 'x-ms-max-item-count')
  const token = header(request, 'x-ms-continuation')
  const out: { pageSize?: number; continuationToken?: string } = {}
  if (size !== undefined && size !== '') {
    const n = Number(size)
    if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE_HEADER) {
      throw new ProvisioError('BAD_REQUEST', `x-ms-max-item-count must be an integer from 1 to ${MAX_PAGE_SIZE_HEADER}`, {
        deviceMessage: `x-ms-max-item-count must be an integer from 1 to ${MAX_PAGE_SIZE_HEADER}`,
      })
    }
    out.pageSize = n
  }
  if (token !== undefined && token !== '') out.continuationToken = token
  return out
}

function pageResponse<T>(page: QueryPage<T>, options: QueryOptions): Reply {
  const headers: Record<string, string> = { 'x-ms-item-type': page.itemType }
  if (page.continuationToken !== undefined) headers['x-ms-continuation'] = page.continuationToken
  if (options.pageSize !== undefined) headers['x-ms-max-item-count'] = String(options.pageSize)
  return jsonResponse(200, page.items, headers)
}

function withEtag(body: { etag?: string }): Reply {
  return jsonResponse(200, body, body.etag === undefined ? {} : { etag: body.etag })
}

/** The enrollment-like collections: individual enrollments and groups share route shapes. */
interface Collection {
  get(idScope: string, id: string): Promise<{ etag?: string }>
  put(idScope: string, body: unknown, options: ConditionalOptions): Promise<{ etag?: string }>
  delete(idScope: string, id: string, options: ConditionalOptions): Promise<void>
  attestation(idScope: string, id: string): Promise<unknown>
  query(idScope: string, spec: unknown, options: QueryOptions): Promise<QueryPage<unknown>>
  bulk(idScope: string, body: unknown): Promise<unknown>
  /** Name of the id member in the body, which must agree with the URL. */
  idMember: 'registrationId' | 'enrollmentGroupId'
}

function collections(api: ServiceApi): Record<'enrollments' | 'enrollmentgroups', Collection> {
  return {
    enrollments: {
      get: (s, id) => api.getEnrollment(s, id),
      put: (s, body, o) => api.createOrUpdateEnrollment(s, body, o),
      delete: (s, id, o) => api.deleteEnrollment(s, id, o),
      attestation: (s, id) => api.getEnrollmentAttestationMechanism(s, id),
      query: (s, spec, o) => api.queryEnrollments(s, spec as never, o),
      bulk: (s, body) => api.runBulkEnrollmentOperation(s, body),
      idMember: 'registrationId',
    },
    enrollmentgroups: {
      get: (s, id) => api.getEnrollmentGroup(s, id),
      put: (s, body, o) => api.createOrUpdateEnrollmentGroup(s, body, o),
      delete: (s, id, o) => api.deleteEnrollmentGroup(s, id, o),
      attestation: (s, id) => api.getEnrollmentGroupAttestationMechanism(s, id),
      query: (s, spec, o) => api.queryEnrollmentGroups(s, spec as never, o),
      bulk: (s, body) => api.runBulkEnrollmentGroupOperation(s, body),
      idMember: 'enrollmentGroupId',
    },
  }
}

/** The body of a PUT must name the same resource as the URL (the URL wins when the body omits it). */
function bodyForPut(json: unknown, member: Collection['idMember'], id: string): unknown {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return json // the validator explains
  const named = (json as Record<string, unknown>)[member]
  if (named === undefined || named === null) return { ...json, [member]: id }
  if (typeof named === 'string' && named.toLowerCase() === id.toLowerCase()) return json
  throw new ProvisioError('VALIDATION_FAILED', `${member} in the body (${JSON.stringify(String(named).slice(0, 130))}) differs from the URL's ${JSON.stringify(id)}`, {
    deviceMessage: `${member} in the body differs from the one in the URL`,
    info: { field: member, rule: 'must equal the id in the URL' },
  })
}

/**
 * Serves a service API request. Returns undefined for an unknown route and 'method' for a known
 * route with a method it does not serve.
 */
export async function serveService(
  api: ServiceApi,
  request: HttpRequest,
  target: ParsedTarget,
  limits: HttpLimits,
): Promise<Reply | undefined | 'method'> {
  const s = target.segments
  const root = s[0]!.toLowerCase()
  if (!SERVICE_ROOTS.has(root)) return undefined
  const method = request.method
  // The service API takes its api-version leniently; a malformed one is still refused.
  acceptApiVersion(target.query.get('api-version'), 'service')

  if (root === 'registrations') {
    if (s.length === 2) {
      if (method === 'GET') {
        const idScope = authorize(api, request, 'RegistrationStatusRead')
        return withEtag(await api.getRegistrationState(idScope, s[1]!))
      }
      if (method === 'DELETE') {
        const idScope = authorize(api, request, 'RegistrationStatusWrite')
        await api.deleteRegistrationState(idScope, s[1]!, conditional(request))
        return emptyResponse(204)
      }
      return 'method'
    }
    if (s.length === 3 && s[2]!.toLowerCase() === 'query') {
      if (method !== 'POST') return 'method'
      const idScope = authorize(api, request, 'RegistrationStatusRead')
      // Node sends a QuerySpecification body; the REST spec has none. Either way it is ignored
      // beyond being well-formed JSON.
      readJson(request, limits, true)
      const options = paging(request)
      return pageResponse(await api.queryRegistrationStates(idScope, s[1]!, options), options)
    }
    return undefined
  }

  const c = collections(api)[root as 'enrollments' | 'enrollmentgroups']
  if (s.length === 1) {
    if (method !== 'POST') return 'method'
    const idScope = authorize(api, request, 'EnrollmentWrite')
    return jsonResponse(200, await c.bulk(idScope, readJson(request, limits)))
  }
  if (s.length === 2 && s[1]!.toLowerCase() === 'query' && method === 'POST') {
    const idScope = authorize(api, request, 'EnrollmentRead')
    const options = paging(request)
    return pageResponse(await c.query(idScope, readJson(request, limits, true), options), options)
  }
  if (s.length === 2) {
    const id = s[1]!
    if (method === 'GET') {
      const idScope = authorize(api, request, 'EnrollmentRead')
      return withEtag(await c.get(idScope, id))
    }
    if (method === 'PUT') {
      const idScope = authorize(api, request, 'EnrollmentWrite')
      const body = bodyForPut(readJson(request, limits), c.idMember, id)
      return withEtag(await c.put(idScope, body, conditional(request)))
    }
    if (method === 'DELETE') {
      const idScope = authorize(api, request, 'EnrollmentWrite')
      await c.delete(idScope, id, conditional(request))
      return emptyResponse(204)
    }
    return 'method'
  }
  if (s.length === 3 && s[2]!.toLowerCase() === 'attestationmechanism') {
    if (method !== 'POST') return 'method'
    const idScope = authorize(api, request, 'EnrollmentRead')
    return jsonResponse(200, await c.attestation(idScope, s[1]!))
  }
  return undefined
}
