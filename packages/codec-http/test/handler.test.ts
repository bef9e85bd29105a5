import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import type { DeviceApi, ServiceApi, ServicePermission } from '@provisio/protocol'
import { createDpsHttpHandler, type HttpRequest } from '../src/index.js'

const enc = new TextEncoder()

/** A recording DeviceApi/ServiceApi: the codec's unit seam (the engine has its own suites). */
function recorder() {
  const calls: { name: string; args: unknown[] }[] = []
  const granted: ServicePermission[] = []
  let failWith: unknown
  const record =
    (name: string, result: unknown) =>
    async (...args: unknown[]) => {
      calls.push({ name, args })
      if (failWith !== undefined) throw failWith
      return result
    }
  const device: DeviceApi = {
    register: record('register', { status: 202, body: { operationId: 'op-1', status: 'assigning' }, retryAfterSeconds: 3 }) as never,
    operationStatus: record('operationStatus', { status: 200, body: { operationId: 'op-1', status: 'assigned' } }) as never,
    registrationStatus: record('registrationStatus', { status: 200, body: { registrationId: 'dev-1', status: 'assigned' } }) as never,
  }
  const service: ServiceApi = {
    authorizeService(token, permission) {
      if (token !== 'good-token') throw new ProvisioError('SAS_BAD_SIGNATURE', 'test: bad token')
      granted.push(permission)
      return { idScope: '0ne00000001', policy: 'owner', keyIndex: 0 }
    },
    createOrUpdateEnrollment: record('createOrUpdateEnrollment', { registrationId: 'dev-1', etag: '"e1"' }) as never,
    getEnrollment: record('getEnrollment', { registrationId: 'dev-1', etag: '"e1"' }) as never,
    deleteEnrollment: record('deleteEnrollment', undefined) as never,
    getEnrollmentAttestationMechanism: record('getEnrollmentAttestationMechanism', { type: 'symmetricKey' }) as never,
    queryEnrollments: record('queryEnrollments', { items: [{ registrationId: 'a' }], itemType: 'Enrollment', continuationToken: 'next' }) as never,
    runBulkEnrollmentOperation: record('runBulkEnrollmentOperation', { isSuccessful: true }) as never,
    createOrUpdateEnrollmentGroup: record('createOrUpdateEnrollmentGroup', { enrollmentGroupId: 'g', etag: '"g1"' }) as never,
    getEnrollmentGroup: record('getEnrollmentGroup', { enrollmentGroupId: 'g' }) as never,
    deleteEnrollmentGroup: record('deleteEnrollmentGroup', undefined) as never,
    getEnrollmentGroupAttestationMechanism: record('getEnrollmentGroupAttestationMechanism', { type: 'x509' }) as never,
    queryEnrollmentGroups: record('queryEnrollmentGroups', { items: [], itemType: 'EnrollmentGroup' }) as never,
    runBulkEnrollmentGroupOperation: record('runBulkEnrollmentGroupOperation', { isSuccessful: true }) as never,
    getRegistrationState: record('getRegistrationState', { registrationId: 'dev-1', etag: '"r1"' }) as never,
    deleteRegistrationState: record('deleteRegistrationState', undefined) as never,
    queryRegistrationStates: record('queryRegistrationStates', { items: [], itemType: 'DeviceRegistration' }) as never,
  }
  let n = 0
  const handler = createDpsHttpHandler({ device, service, clock: { now: () => 1_700_000_000_000 }, trackingId: () => `t-${++n}` })
  return {
    calls,
    granted,
    handler,
    fail(e: unknown) {
      failWith = e
    },
  }
}

function req(method: string, target: string, init: { headers?: Record<string, string>; body?: string | Uint8Array; certs?: Uint8Array[] } = {}): HttpRequest {
  const body = typeof init.body === 'string' ? enc.encode(init.body) : (init.body ?? new Uint8Array(0))
  return {
    method,
    target,
    headers: { 'content-type': 'application/json; charset=utf-8', ...init.headers },
    body,
    ...(init.certs ? { clientCertificates: init.certs } : {}),
  }
}

const SCOPE = '0ne00000001'

describe('device API routes (docs/protocol.md §1.1)', () => {
  it('register: SAS evidence, payload, forceRegistration, 202 with Retry-After', async () => {
    const r = recorder()
    const res = await r.handler(
      req('PUT', `/${SCOPE}/registrations/dev-1/register?api-version=2019-03-31&forceRegistration=true`, {
        headers: { authorization: 'SharedAccessSignature sr=x&sig=y&se=1&skn=registration' },
        body: JSON.stringify({ registrationId: 'dev-1', payload: { modelId: 'dtmi:x;1' } }),
      }),
    )
    expect(res.status).toBe(202)
    expect(res.headers['retry-after']).toBe('3')
    expect(res.headers['content-type']).toMatch(/^application\/json/)
    expect(JSON.parse(res.body)).toEqual({ operationId: 'op-1', status: 'assigning' })
    expect(r.calls).toEqual([
      {
        name: 'register',
        args: [
          {
            idScope: SCOPE,
            registrationId: 'dev-1',
            evidence: { type: 'sas', token: 'SharedAccessSignature sr=x&sig=y&se=1&skn=registration' },
            apiVersion: '2019-03-31',
            payload: { modelId: 'dtmi:x;1' },
            forceRegistration: true,
          },
        ],
      },
    ])
  })

  it('register: the registration id comes from the URL even when the body has none (.NET)', async () => {
    const r = recorder()
    const res = await r.handler(req('PUT', `/${SCOPE}/registrations/Dev%2D1/register?api-version=2021-06-01`, { headers: { authorization: 't' } }))
    expect(res.status).toBe(202)
    expect((r.calls[0]!.args[0] as { registrationId: string }).registrationId).toBe('Dev-1')
  })

  it('register: TPM keys in the body make TPM evidence, with the second-leg token when sent', async () => {
    const r = recorder()
    const tpm = { endorsementKey: 'AToAAQALAAMAsgAg', storageRootKey: 'ARgAAQALAAMAcgAA' }
    await r.handler(req('PUT', `/${SCOPE}/registrations/dev-1/register?api-version=2019-03-31`, { body: JSON.stringify({ registrationId: 'dev-1', tpm }) }))
    await r.handler(req('PUT', `/${SCOPE}/registrations/dev-1/register?api-version=2019-03-31`, { headers: { authorization: 'sas' }, body: JSON.stringify({ tpm }) }))
    expect((r.calls[0]!.args[0] as { evidence: unknown }).evidence).toEqual({ type: 'tpm', ...tpm })
    expect((r.calls[1]!.args[0] as { evidence: unknown }).evidence).toEqual({ type: 'tpm', ...tpm, token: 'sas' })
  })

  it('register: the TLS client chain is the evidence of an X.509 device', async () => {
    const r = recorder()
    const leaf = new Uint8Array([0x30, 1, 2])
    await r.handler(req('PUT', `/${SCOPE}/registrations/dev-1/register?api-version=2019-03-31`, { body: '{"registrationId":"dev-1"}', certs: [leaf] }))
    expect((r.calls[0]!.args[0] as { evidence: unknown }).evidence).toEqual({ type: 'x509', chain: [leaf] })
  })

  it('register without any credential is 401002 and never reaches the API', async () => {
    const r = recorder()
    const res = await r.handler(req('PUT', `/${SCOPE}/registrations/dev-1/register?api-version=2019-03-31`, { body: '{}' }))
    expect(res.status).toBe(401)
    expect(res.headers['x-ms-error-code']).toBe('401002')
    expect(r.calls).toHaveLength(0)
  })

  it('a body registrationId that differs from the URL is refused with the reason', async () => {
    const r = recorder()
    const res = await r.handler(
      req('PUT', `/${SCOPE}/registrations/dev-1/register?api-version=2019-03-31`, { headers: { authorization: 't' }, body: '{"registrationId":"dev-2"}' }),
    )
    expect(res.status).toBe(400)
    expect(JSON.parse(res.body).message).toMatch(/differs from the one in the URL/)
    expect(r.calls).toHaveLength(0)
  })

  it('operation status poll: GET with the Node client\'s `{}` body', async () => {
    const r = recorder()
    const res = await r.handler(req('GET', `/${SCOPE}/registrations/dev-1/operations/4.abc.def?api-version=2019-03-31`, { headers: { authorization: 't' }, body: '{}' }))
    expect(res.status).toBe(200)
    expect(r.calls[0]).toEqual({ name: 'operationStatus', args: [{ idScope: SCOPE, registrationId: 'dev-1', operationId: '4.abc.def', evidence: { type: 'sas', token: 't' } }] })
  })

  it('registration status lookup: POST, and csr is refused (§1.1)', async () => {
    const r = recorder()
    const ok = await r.handler(req('POST', `/${SCOPE}/registrations/dev-1?api-version=2021-10-01`, { headers: { authorization: 't' }, body: '{"registrationId":"dev-1"}' }))
    expect(ok.status).toBe(200)
    expect(r.calls[0]!.name).toBe('registrationStatus')
    const bad = await r.handler(req('POST', `/${SCOPE}/registrations/dev-1?api-version=2021-10-01`, { headers: { authorization: 't' }, body: '{"csr":"MIIB"}' }))
    expect(bad.status).toBe(400)
    expect(r.calls).toHaveLength(1)
  })
})

describe('errors (docs/protocol.md §1.4, §1.5)', () => {
  it('maps a ProvisioError to its status, errorCode header, body and tracking id', async () => {
    const r = recorder()
    r.fail(new ProvisioError('THROTTLED', 'test: 1000/min exceeded', { retryAfterSeconds: 7.2 }))
    const res = await r.handler(req('PUT', `/${SCOPE}/registrations/dev-1/register?api-version=2019-03-31`, { headers: { authorization: 't' } }))
    expect(res.status).toBe(429)
    expect(res.headers['retry-after']).toBe('8')
    expect(res.headers['x-ms-error-code']).toBe('429001')
    const body = JSON.parse(res.body)
    expect(body).toMatchObject({ errorCode: 429001, trackingId: res.headers['x-ms-request-id'] })
    expect(body.timestampUtc).toBe('2023-11-14T22:13:20.0000000Z')
    // The internal reason never reaches the device.
    expect(res.body).not.toContain('1000/min')
  })

  it('turns an unexpected throw into a 500 without leaking it', async () => {
    const r = recorder()
    r.fail(new Error('secret database password in message'))
    const res = await r.handler(req('GET', `/${SCOPE}/registrations/dev-1/operations/x?api-version=2019-03-31`))
    expect(res.status).toBe(500)
    expect(res.body).not.toContain('secret')
  })

  it.each([
    ['an unknown path', req('GET', '/nothing-here'), 404],
    ['the root', req('GET', '/'), 404],
    ['a wrong method on a device route', req('DELETE', `/${SCOPE}/registrations/dev-1/register`), 405],
    ['an unknown method', req('PATCH', `/${SCOPE}/registrations/dev-1/register`), 405],
    ['a body over 96 KB', req('PUT', `/${SCOPE}/registrations/d/register`, { headers: { authorization: 't' }, body: new Uint8Array(96 * 1024 + 1) }), 413],
    ['a target over 8 KB', req('GET', `/${'a'.repeat(9000)}`), 400],
    ['bad percent-encoding', req('GET', `/${SCOPE}/registrations/%zz/operations/1`), 400],
    ['a ".." segment', req('GET', `/${SCOPE}/registrations/../operations/1`), 400],
    ['invalid JSON', req('PUT', `/${SCOPE}/registrations/d/register`, { headers: { authorization: 't' }, body: '{"registrationId":' }), 400],
    ['a non-JSON content type', req('PUT', `/${SCOPE}/registrations/d/register`, { headers: { authorization: 't', 'content-type': 'text/plain' }, body: 'hi' }), 415],
    ['a malformed api-version', req('PUT', `/${SCOPE}/registrations/d/register?api-version=yesterday`, { headers: { authorization: 't' } }), 400],
  ])('refuses %s with a clear error body', async (_name, request, status) => {
    const r = recorder()
    const res = await r.handler(request)
    expect(res.status).toBe(status)
    const body = JSON.parse(res.body)
    expect(Math.floor(body.errorCode / 1000)).toBe(status)
    expect(typeof body.message).toBe('string')
    expect(body.message.length).toBeGreaterThan(0)
    expect(r.calls).toHaveLength(0)
  })

  it.each([
    ['a target over 8 KB', req('GET', `/${'a'.repeat(9000)}`), /over the limit of/],
    ['bad percent-encoding', req('GET', `/${SCOPE}/registrations/%zz/operations/1`), /invalid percent-encoding/],
    ['a method the route does not serve', req('DELETE', `/${SCOPE}/registrations/dev-1/register`), /DELETE is not served/],
    ['a body over 96 KB', req('PUT', `/${SCOPE}/registrations/d/register`, { headers: { authorization: 't' }, body: new Uint8Array(96 * 1024 + 1) }), /over the limit of 98304/],
    ['a compressed body', req('PUT', `/${SCOPE}/registrations/d/register`, { headers: { authorization: 't', 'content-encoding': 'gzip' }, body: '{}' }), /content-encoding "gzip" is not supported/],
    ['a non-JSON content type', req('PUT', `/${SCOPE}/registrations/d/register`, { headers: { authorization: 't', 'content-type': 'text/plain' }, body: 'hi' }), /content-type "text\/plain" is not JSON/],
  ])('says why it refuses %s (the reason names only the request itself)', async (_name, request, message) => {
    const res = await recorder().handler(request)
    expect(JSON.parse(res.body).message).toMatch(message)
  })

  it('a content-encoding of identity is accepted', async () => {
    const r = recorder()
    const res = await r.handler(req('PUT', `/${SCOPE}/registrations/dev-1/register`, { headers: { authorization: 't', 'content-encoding': 'identity' }, body: '{"registrationId":"dev-1"}' }))
    expect(res.status).toBe(202)
  })

  it('service routes show the reason of a 400 about the caller\'s body; device refusals stay generic', async () => {
    const r = recorder()
    r.fail(new ProvisioError('VALIDATION_FAILED', 'enrollment.attestation.type must be tpm, x509 or symmetricKey'))
    const service = await r.handler(req('PUT', '/enrollments/dev-1?api-version=2021-10-01', { headers: { authorization: 'good-token' }, body: '{"registrationId":"dev-1","attestation":{}}' }))
    expect(service.status).toBe(400)
    expect(JSON.parse(service.body).message).toBe('enrollment.attestation.type must be tpm, x509 or symmetricKey')
    r.fail(new ProvisioError('ENROLLMENT_NOT_FOUND', 'no enrollment for dev-1'))
    const device = await r.handler(req('PUT', `/${SCOPE}/registrations/dev-1/register`, { headers: { authorization: 't' }, body: '{"registrationId":"dev-1"}' }))
    expect(device.status).toBe(401)
    expect(JSON.parse(device.body).message).toBe('Unauthorized')
  })

  it('never rejects and always answers a status, whatever arrives (fast-check)', async () => {
    const r = recorder()
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'get', ''),
        fc.oneof(fc.string(), fc.constant(`/${SCOPE}/registrations/`).chain((p) => fc.string().map((s) => p + s)), fc.constant('/enrollments/').chain((p) => fc.string().map((s) => p + s))),
        fc.uint8Array({ maxLength: 256 }),
        fc.dictionary(fc.constantFrom('authorization', 'content-type', 'if-match', 'x-ms-max-item-count'), fc.string()),
        async (method, target, body, headers) => {
          const res = await r.handler({ method, target, headers, body })
          expect(res.status).toBeGreaterThanOrEqual(200)
          expect(res.status).toBeLessThan(600)
          expect(typeof res.body).toBe('string')
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('service API routes (docs/protocol.md §7)', () => {
  const auth = { authorization: 'good-token' }

  it.each([
    ['GET', '/enrollments/dev-1', undefined, 'getEnrollment', 'EnrollmentRead', 200],
    ['PUT', '/enrollments/dev-1', '{"registrationId":"dev-1","attestation":{"type":"symmetricKey"}}', 'createOrUpdateEnrollment', 'EnrollmentWrite', 200],
    ['DELETE', '/enrollments/dev-1', undefined, 'deleteEnrollment', 'EnrollmentWrite', 204],
    ['POST', '/enrollments/dev-1/attestationmechanism', undefined, 'getEnrollmentAttestationMechanism', 'EnrollmentRead', 200],
    ['POST', '/enrollments', '{"mode":"create","enrollments":[]}', 'runBulkEnrollmentOperation', 'EnrollmentWrite', 200],
    ['POST', '/enrollments/query', '{"query":"*"}', 'queryEnrollments', 'EnrollmentRead', 200],
    ['GET', '/enrollmentGroups/g', undefined, 'getEnrollmentGroup', 'EnrollmentRead', 200],
    ['PUT', '/enrollmentGroups/g', '{"attestation":{"type":"x509"}}', 'createOrUpdateEnrollmentGroup', 'EnrollmentWrite', 200],
    ['DELETE', '/enrollmentGroups/g', undefined, 'deleteEnrollmentGroup', 'EnrollmentWrite', 204],
    ['POST', '/enrollmentGroups/g/attestationmechanism', undefined, 'getEnrollmentGroupAttestationMechanism', 'EnrollmentRead', 200],
    ['POST', '/enrollmentGroups', '{"mode":"delete","enrollmentGroups":[]}', 'runBulkEnrollmentGroupOperation', 'EnrollmentWrite', 200],
    ['POST', '/enrollmentGroups/query', '{"query":"*"}', 'queryEnrollmentGroups', 'EnrollmentRead', 200],
    ['GET', '/registrations/dev-1', undefined, 'getRegistrationState', 'RegistrationStatusRead', 200],
    ['DELETE', '/registrations/dev-1', undefined, 'deleteRegistrationState', 'RegistrationStatusWrite', 204],
    ['POST', '/registrations/g/query', '{"query":"*"}', 'queryRegistrationStates', 'RegistrationStatusRead', 200],
  ])('%s %s calls %s with permission %s', async (method, path, body, call, permission, status) => {
    const r = recorder()
    const res = await r.handler(req(method, `${path}?api-version=2021-10-01`, { headers: auth, ...(body ? { body } : {}) }))
    expect(res.status).toBe(status)
    expect(r.granted).toEqual([permission])
    expect(r.calls.map((c) => c.name)).toEqual([call])
    expect(r.calls[0]!.args[0]).toBe('0ne00000001')
    if (status === 204) expect(res.body).toBe('')
  })

  it('refuses a bad or missing service token before any call', async () => {
    const r = recorder()
    expect((await r.handler(req('GET', '/enrollments/dev-1', { headers: { authorization: 'forged' } }))).status).toBe(401)
    expect((await r.handler(req('GET', '/enrollments/dev-1'))).status).toBe(401)
    expect(r.calls).toHaveLength(0)
  })

  it('passes If-Match and fills the URL id into a PUT body that omits it', async () => {
    const r = recorder()
    const res = await r.handler(req('PUT', '/enrollments/dev-9', { headers: { ...auth, 'if-match': '"e0"' }, body: '{"attestation":{"type":"tpm"}}' }))
    expect(res.status).toBe(200)
    expect(res.headers.etag).toBe('"e1"')
    expect(r.calls[0]!.args).toEqual(['0ne00000001', { attestation: { type: 'tpm' }, registrationId: 'dev-9' }, { ifMatch: '"e0"' }])
    const mismatch = await r.handler(req('PUT', '/enrollments/dev-9', { headers: auth, body: '{"registrationId":"other"}' }))
    expect(mismatch.status).toBe(400)
  })

  it('query paging travels in x-ms headers both ways', async () => {
    const r = recorder()
    const res = await r.handler(req('POST', '/enrollments/query', { headers: { ...auth, 'x-ms-max-item-count': '5', 'x-ms-continuation': 'tok' }, body: '{"query":"*"}' }))
    expect(r.calls[0]!.args).toEqual(['0ne00000001', { query: '*' }, { pageSize: 5, continuationToken: 'tok' }])
    expect(res.headers['x-ms-item-type']).toBe('Enrollment')
    expect(res.headers['x-ms-continuation']).toBe('next')
    expect(res.headers['x-ms-max-item-count']).toBe('5')
    expect(JSON.parse(res.body)).toEqual([{ registrationId: 'a' }])
    const bad = await r.handler(req('POST', '/enrollments/query', { headers: { ...auth, 'x-ms-max-item-count': 'lots' }, body: '{}' }))
    expect(bad.status).toBe(400)
  })
})

describe('TPM challenge (docs/protocol.md §5.2)', () => {
  it('answers the first TPM leg with 401, authenticationKey and keyName, and no status member', async () => {
    const device: DeviceApi = {
      register: async () => ({ status: 401, challenge: { authenticationKey: 'AAEC', keyName: 'registration' } }),
      operationStatus: async () => ({ status: 200, body: { operationId: 'x', status: 'assigned' } }),
      registrationStatus: async () => ({ status: 200, body: { registrationId: 'd', status: 'assigned' } }),
    }
    const handler = createDpsHttpHandler({ device, service: {} as ServiceApi, clock: { now: () => 0 }, trackingId: () => 't' })
    const res = await handler(
      req('PUT', `/${SCOPE}/registrations/d/register?api-version=2019-03-31`, { body: JSON.stringify({ registrationId: 'd', tpm: { endorsementKey: 'AToAAQALAAMAsgAg' } }) }),
    )
    expect(res.status).toBe(401)
    const body = JSON.parse(res.body)
    expect(body).toMatchObject({ authenticationKey: 'AAEC', keyName: 'registration' })
    expect(body).not.toHaveProperty('status')
    expect(body).not.toHaveProperty('errorCode')
  })
})
