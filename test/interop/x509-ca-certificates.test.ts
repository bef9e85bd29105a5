// CA certificates with proof of possession over our service routes (§6, D-pop), then a group by
// `caReferences`: upload → generateVerificationCode → openssl issues CN=<code> with the CA key →
// verify → azure-iot-security-x509 over HTTP registers through the group. An unverified CA, a
// proof signed by another key and a proof with the wrong CN are refused with reasons.
import type * as HttpsModule from 'node:https'
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { X509Security } from 'azure-iot-security-x509'
import { ProvisioningServiceClient } from 'azure-iot-provisioning-service'
import { buildSasToken, parseSharedAccessKeyConnectionString } from '@provisio/protocol'
import { startTestServer, type TestServer } from '../lib/server.js'
import { OpensslPki } from './x509-openssl.js'

const https = createRequire(import.meta.url)('node:https') as typeof HttpsModule

let server: TestServer
let service: ProvisioningServiceClient
let pki: OpensslPki
const failures: { registrationId: string; reason: string }[] = []

interface Reply {
  status: number
  body: { etag?: string; message?: string; properties?: { isVerified: boolean; verificationCode?: string; subject: string } }
}

function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const cs = parseSharedAccessKeyConnectionString(server.endpoints.serviceConnectionString, 'service connection string')
  const token = buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt: Math.floor(Date.now() / 1000) + 600 })
  const payload = body === undefined ? '' : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: 'localhost', port: server.port, ca: server.caPem, method, path: `${path}?api-version=2021-10-01`, agent: false,
        headers: { authorization: token, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } },
      (res) => {
        let text = ''
        res.on('data', (c: Buffer) => (text += c.toString('utf8')))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text === '' ? {} : (JSON.parse(text) as Reply['body']) }))
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

function register(registrationId: string, cert: string, key: string): Promise<{ assignedHub: string }> {
  const client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(), new X509Security(registrationId, { cert, key }) as never)
  return new Promise((resolve, reject) => {
    client.register((err?: Error, result?: unknown) => (err ? reject(err) : resolve(result as { assignedHub: string })))
  })
}

beforeAll(async () => {
  server = await startTestServer()
  server.useAsDefaultHttpsAgent()
  service = ProvisioningServiceClient.fromConnectionString(server.endpoints.serviceConnectionString)
  server.engine.on('registrationFailed', (e) => void failures.push(e))
  pki = new OpensslPki()
}, 60_000)

afterAll(async () => {
  await server?.stop()
  pki?.dispose()
})

describe('CA certificates: proof of possession, then a group by caReferences', () => {
  it('refuses devices while the CA is unverified, admits them once proven', async () => {
    const root = pki.root('Provisio PoP Root', 'rsa')
    const uploaded = await call('PUT', '/certificates/pop-root', { certificate: root.pem })
    expect(uploaded.status).toBe(200)
    expect(uploaded.body.properties?.isVerified).toBe(false)
    await service.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: 'x509-by-ca-reference',
      attestation: { type: 'x509', x509: { caReferences: { primary: 'pop-root' } } },
    } as never)
    const leaf = pki.issue('x509-pop-device-1', 'rsa', root)

    await expect(register('x509-pop-device-1', leaf.pem, leaf.keyPem)).rejects.toThrow()
    expect(failures.at(-1)?.reason).toMatch(/caReferences.primary \('pop-root'\) names a CA certificate that is not verified/)

    const generated = await call('POST', '/certificates/pop-root/generateVerificationCode', undefined, { 'if-match': uploaded.body.etag! })
    expect(generated.status).toBe(200)
    const code = generated.body.properties!.verificationCode!
    expect(code).toMatch(/^[0-9A-F]{48}$/)

    // A proof with the right CN but signed by another key is refused.
    const other = pki.root('Provisio PoP Root', 'rsa')
    const forged = await call('POST', '/certificates/pop-root/verify', { certificate: pki.proofOfPossession(code, other).pem })
    expect(forged.status).toBe(400)
    expect(forged.body.message).toBeDefined()
    // A proof signed by the CA but for another code is refused.
    const wrongCn = await call('POST', '/certificates/pop-root/verify', { certificate: pki.proofOfPossession('not-the-code', root).pem })
    expect(wrongCn.status).toBe(400)

    const verified = await call('POST', '/certificates/pop-root/verify', { certificate: pki.proofOfPossession(code, root).pem })
    expect(verified.status).toBe(200)
    expect(verified.body.properties?.isVerified).toBe(true)

    const result = await register('x509-pop-device-1', leaf.pem, leaf.keyPem)
    expect(result.assignedHub).toBe('localhost')
  })

  it('lists, reads and deletes CA certificates; a leaf certificate is not accepted as a CA', async () => {
    const root = pki.root('Provisio Listed Root', 'ec')
    expect((await call('PUT', '/certificates/listed', { certificate: root.pem, isVerified: true })).body.properties?.isVerified).toBe(true)
    const list = (await call('GET', '/certificates')) as unknown as { status: number; body: { name: string }[] }
    expect(list.body.map((c) => c.name)).toContain('listed')
    expect((await call('GET', '/certificates/listed')).body.properties?.subject).toBe('CN=Provisio Listed Root')
    const leaf = pki.issue('not-a-ca', 'ec', root)
    const refused = await call('PUT', '/certificates/leaf', { certificate: leaf.pem })
    expect(refused.status).toBe(400)
    expect((await call('DELETE', '/certificates/listed')).status).toBe(204)
    expect((await call('GET', '/certificates/listed')).status).toBe(404)
  })
})
