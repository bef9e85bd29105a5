// CA-certificate routes: dispatch, methods, authorization (ServiceConfig), If-Match, bodies.
import { describe, expect, it } from 'vitest'
import { ProvisioError, type CaCertificateApi, type CaCertificateView, type DeviceApi, type ServiceApi, type ServicePermission } from '@provisio/protocol'
import { createDpsHttpHandler, type HttpRequest } from '../src/index.js'

const VIEW: CaCertificateView = {
  name: 'root',
  etag: '"e1"',
  properties: { subject: 'CN=Root', expiry: '2030-01-01T00:00:00Z', thumbprint: 'AA', sha256Thumbprint: 'BB', isVerified: false, created: 'c', updated: 'u', certificate: 'PEM' },
}

function setup() {
  const calls: unknown[][] = []
  const permissions: ServicePermission[] = []
  const service = {
    authorizeService(token: string, permission: ServicePermission) {
      permissions.push(permission)
      if (token !== 'good') throw new ProvisioError('SAS_BAD_SIGNATURE', 'bad token')
      return { idScope: 'scope1', policy: 'provisioningserviceowner', keyIndex: 0 }
    },
  } as unknown as ServiceApi
  const record = (name: string) => async (...args: unknown[]) => {
    calls.push([name, ...args])
    return VIEW
  }
  const certificates: CaCertificateApi = {
    createOrUpdateCaCertificate: record('put'),
    getCaCertificate: record('get'),
    deleteCaCertificate: async (...args: unknown[]) => void calls.push(['delete', ...args]),
    listCaCertificates: async () => [VIEW],
    generateVerificationCode: record('code'),
    verifyCaCertificate: record('verify'),
  }
  const handler = createDpsHttpHandler({ device: {} as DeviceApi, service, certificates, clock: { now: () => 0 }, trackingId: () => 'trk' })
  return { handler, calls, permissions }
}

const req = (method: string, target: string, body = '', headers: Record<string, string> = { authorization: 'good' }): HttpRequest => ({
  method,
  target,
  headers: { 'content-type': 'application/json', ...headers },
  body: new TextEncoder().encode(body),
})

describe('/certificates routes', () => {
  it('serves PUT/GET/DELETE, list, generateVerificationCode and verify with ServiceConfig', async () => {
    const { handler, calls, permissions } = setup()
    const put = await handler(req('PUT', '/certificates/root?api-version=2021-10-01', '{"certificate":"PEM"}', { authorization: 'good', 'if-match': '"e0"' }))
    expect(put.status).toBe(200)
    expect(put.headers.etag).toBe('"e1"')
    expect((await handler(req('GET', '/certificates/root'))).status).toBe(200)
    expect(JSON.parse((await handler(req('GET', '/certificates'))).body)).toEqual([VIEW])
    expect((await handler(req('POST', '/certificates/root/generateVerificationCode'))).status).toBe(200)
    expect((await handler(req('POST', '/certificates/root/verify', '{"certificate":"PROOF"}'))).status).toBe(200)
    expect((await handler(req('DELETE', '/certificates/root'))).status).toBe(204)
    expect(calls).toEqual([
      ['put', 'scope1', 'root', { certificate: 'PEM' }, { ifMatch: '"e0"' }],
      ['get', 'scope1', 'root'],
      ['code', 'scope1', 'root', {}],
      ['verify', 'scope1', 'root', { certificate: 'PROOF' }, {}],
      ['delete', 'scope1', 'root', {}],
    ])
    expect(new Set(permissions)).toEqual(new Set(['ServiceConfig']))
  })

  it('refuses bad tokens, unknown actions, wrong methods and non-JSON bodies', async () => {
    const { handler, calls } = setup()
    expect((await handler(req('GET', '/certificates/root', '', {}))).status).toBe(401)
    expect((await handler(req('GET', '/certificates/root', '', { authorization: 'bad' }))).status).toBe(401)
    expect((await handler(req('POST', '/certificates/root/frobnicate'))).status).toBe(404)
    expect((await handler(req('GET', '/certificates/root/verify'))).status).toBe(405)
    expect((await handler(req('POST', '/certificates'))).status).toBe(405)
    expect((await handler(req('PUT', '/certificates/root', '{not json'))).status).toBe(400)
    expect(calls).toEqual([])
  })
})
