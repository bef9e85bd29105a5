// Certificate issuance (docs/protocol.md §1.7): a device registers with its onboarding credential
// (here a symmetric key) plus a PKCS#10 CSR and gets `issuedCertificateChain` (leaf, the
// instance's issuing CA, the server's root) in the assigned result — over every DPS transport with
// @provisio/device (CSR made with WebCrypto) and with raw HTTPS requests (CSR made by the openssl
// command line). `openssl verify` accepts the chain against the server's root; the leaf's subject,
// validity and key are the requested ones. azure-iot-device then connects to the assigned hub with
// the issued certificate over Mqtt and MqttWs, although the hub identity DPS made is a SAS one.
// Refusals: a CSR at an api-version without `csr`, wrong CN, a bad CSR signature, a key size the
// policy refuses, and an expired onboarding credential, each with the reason.
import { execFileSync } from 'node:child_process'
import { X509Certificate, createHmac, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, X509AuthenticationProvider } from 'azure-iot-device'
import { Mqtt as DeviceMqtt, MqttWs as DeviceMqttWs } from 'azure-iot-device-mqtt'
import { NoRetry } from 'azure-iot-common'
import { ProvisioningClient, certificateChainPem, createCertificateRequest, symmetricKey, type TransportName } from '@provisio/device'
import { clientOptions } from '../lib/device.js'
import { httpsRequest } from '../lib/https-client.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { loopbackHttpsAgent, redirectMqtts } from '../lib/tls-plumbing.js'

const GROUP_KEY = randomBytes(64).toString('base64')
const DAY_MS = 86_400_000
const ISSUANCE_API = '2025-07-01-preview'
let server: TestServer & { logs: string[] }
let dir: string
let undoRedirect: () => void
const clients: Client[] = []

function deviceKey(registrationId: string): string {
  return createHmac('sha256', Buffer.from(GROUP_KEY, 'base64')).update(registrationId).digest('base64')
}

function sasToken(registrationId: string, expirySeconds: number): string {
  const sr = `${server.endpoints.idScope}/registrations/${registrationId}`
  const sig = createHmac('sha256', Buffer.from(deviceKey(registrationId), 'base64')).update(`${sr}\n${expirySeconds}`).digest('base64')
  return `SharedAccessSignature sr=${encodeURIComponent(sr)}&sig=${encodeURIComponent(sig)}&se=${expirySeconds}&skn=registration`
}

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** A CSR made by the openssl command line: DER bytes and the key's PEM. */
function opensslCsr(cn: string, keyArgs: string[]): { der: Buffer; keyPem: string } {
  const name = `csr-${randomBytes(4).toString('hex')}`
  openssl(['req', '-new', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-subj', `/CN=${cn}`, '-outform', 'DER', '-out', `${name}.der`])
  return { der: readFileSync(join(dir, `${name}.der`)), keyPem: readFileSync(join(dir, `${name}.key`), 'utf8') }
}
const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']

/** `openssl verify` of the chain (leaf, issuing CA, root) against the server's root alone. */
function opensslVerify(chain: readonly string[]): string {
  const name = randomBytes(4).toString('hex')
  const pem = (b64: string) => certificateChainPem([b64])
  writeFileSync(join(dir, `${name}-leaf.pem`), pem(chain[0]!))
  writeFileSync(join(dir, `${name}-ica.pem`), chain.slice(1, -1).map(pem).join(''))
  writeFileSync(join(dir, `${name}-root.pem`), server.caPem)
  return openssl(['verify', '-CAfile', `${name}-root.pem`, '-untrusted', `${name}-ica.pem`, '-purpose', 'sslclient', `${name}-leaf.pem`])
}

function rawRegister(registrationId: string, body: object, options: { apiVersion?: string; expirySeconds?: number } = {}) {
  return httpsRequest(server.port, server.caPem, 'PUT', `/${server.endpoints.idScope}/registrations/${registrationId}/register?api-version=${options.apiVersion ?? ISSUANCE_API}`, {
    headers: {
      'content-type': 'application/json; charset=utf-8',
      authorization: sasToken(registrationId, options.expirySeconds ?? Math.floor(Date.now() / 1000) + 600),
    },
    body: JSON.stringify({ registrationId, ...body }),
  })
}

function expectLeaf(chain: readonly string[], registrationId: string, keyPem: string): X509Certificate {
  expect(chain).toHaveLength(3)
  const leaf = new X509Certificate(Buffer.from(chain[0]!, 'base64'))
  expect(leaf.subject).toBe(`CN=${registrationId}`)
  expect(leaf.ca).toBe(false)
  expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2'])
  const days = (new Date(leaf.validTo).getTime() - Date.now()) / DAY_MS
  expect(days).toBeGreaterThan(29.9)
  expect(days).toBeLessThan(30.1)
  expect(leaf.publicKey.export({ type: 'spki', format: 'der' })).toEqual(createPublicKey(keyPem).export({ type: 'spki', format: 'der' }))
  expect(leaf.checkPrivateKey(createPrivateKey(keyPem))).toBe(true)
  // The last certificate is the server's root, the middle one the instance's issuing CA.
  expect(Buffer.from(chain[2]!, 'base64')).toEqual(new X509Certificate(server.caPem).raw)
  expect(leaf.checkIssued(new X509Certificate(Buffer.from(chain[1]!, 'base64')))).toBe(true)
  expect(opensslVerify(chain)).toMatch(/: OK\s*$/)
  return leaf
}

async function hubClient(transport: 'Mqtt' | 'MqttWs', hub: string, deviceId: string, cert: string, key: string): Promise<Client> {
  const client = Client.fromAuthenticationProvider(X509AuthenticationProvider.fromX509Options(deviceId, hub, { cert, key }), transport === 'Mqtt' ? DeviceMqtt : DeviceMqttWs)
  clients.push(client)
  client.setRetryPolicy(new NoRetry())
  await client.setOptions(transport === 'Mqtt' ? { ca: server.caPem } : ({ ca: server.caPem, mqtt: { webSocketAgent: loopbackHttpsAgent(server) } } as never))
  await client.open()
  return client
}

beforeAll(async () => {
  server = (await startTestServer()) as typeof server
  undoRedirect = redirectMqtts(server)
  dir = mkdtempSync(join(tmpdir(), 'provisio-issuance-'))
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'issuance-fleet',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: randomBytes(64).toString('base64') } },
  })
}, 60_000)

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
  undoRedirect?.()
  await server?.stop()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

describe.each(['http', 'mqtt', 'mqtt-ws', 'amqp', 'amqp-ws'] as const satisfies readonly TransportName[])('@provisio/device over %s', (transport) => {
  it('registers with a symmetric key and a P-256 CSR; the issued chain verifies and matches the request', async () => {
    const id = `issued-${transport}`
    const request = await createCertificateRequest(id, 'P-256')
    const result = await new ProvisioningClient(clientOptions(server, transport, symmetricKey({ registrationId: id, groupKey: GROUP_KEY }))).register({ csr: request.csr })
    expect(result.deviceId).toBe(id)
    expectLeaf(result.issuedCertificateChain!, id, request.keyPem)
  })
})

describe('raw HTTPS requests with CSRs from openssl', () => {
  it('a P-256 and an RSA-2048 CSR each get a chain; the status lookup never carries it', async () => {
    for (const [id, keyArgs] of [['issued-openssl-p256', P256], ['issued-openssl-rsa', ['-newkey', 'rsa:2048']]] as const) {
      const csr = opensslCsr(id, [...keyArgs])
      const answer = await rawRegister(id, { csr: csr.der.toString('base64') })
      expect(answer.status).toBe(200)
      const body = JSON.parse(answer.body) as { status: string; registrationState: { issuedCertificateChain: string[]; assignedHub: string } }
      expect(body.status).toBe('assigned')
      expectLeaf(body.registrationState.issuedCertificateChain, id, csr.keyPem)

      const lookup = await httpsRequest(server.port, server.caPem, 'POST', `/${server.endpoints.idScope}/registrations/${id}?api-version=${ISSUANCE_API}`, {
        headers: { 'content-type': 'application/json; charset=utf-8', authorization: sasToken(id, Math.floor(Date.now() / 1000) + 600) },
        body: JSON.stringify({ registrationId: id }),
      })
      expect(lookup.status).toBe(200)
      const state = JSON.parse(lookup.body) as Record<string, unknown>
      expect(state).toMatchObject({ registrationId: id, status: 'assigned', assignedHub: body.registrationState.assignedHub })
      expect(state).not.toHaveProperty('issuedCertificateChain')
    }
  })

  it('refusals carry 400040 and the reason: old api-version, wrong CN, bad signature, refused key size; an expired SAS is a 401', async () => {
    const id = 'issued-refusals'
    const good = opensslCsr(id, P256)
    const cases: { body: object; apiVersion?: string; reason: RegExp; errorCode?: number }[] = [
      { body: { csr: good.der.toString('base64') }, apiVersion: '2021-10-01', reason: /api-version 2025-07-01-preview/ },
      { body: { csr: opensslCsr('someone-else', P256).der.toString('base64') }, reason: /CN is 'someone-else', but the registration id is 'issued-refusals'/ },
      { body: { csr: Buffer.concat([good.der.subarray(0, -1), Buffer.from([good.der.at(-1)! ^ 0x01])]).toString('base64') }, reason: /self-signature/ },
      { body: { csr: opensslCsr(id, ['-newkey', 'rsa:1024']).der.toString('base64') }, reason: /RSA|1024/ },
      // Not base64 at all: the body's model rule refuses it before the CSR checks (400003).
      { body: { csr: 'not base64!' }, reason: /csr: must be base64/, errorCode: 400003 },
    ]
    for (const c of cases) {
      const answer = await rawRegister(id, c.body, c.apiVersion === undefined ? {} : { apiVersion: c.apiVersion })
      expect(answer.status, answer.body).toBe(400)
      const error = JSON.parse(answer.body) as { errorCode: number; message: string }
      expect(error.errorCode, answer.body).toBe(c.errorCode ?? 400040)
      expect(error.message).toMatch(c.reason)
    }
    const expired = await rawRegister(id, { csr: good.der.toString('base64') }, { expirySeconds: Math.floor(Date.now() / 1000) - 3600 })
    expect(expired.status).toBe(401)
    expect(JSON.parse(expired.body)).toMatchObject({ errorCode: 401002 })
    // The device sees the generic 401002; the reason is in the server's log (docs/protocol.md §1.5).
    expect(server.logs.some((l) => l.includes('registration refused') && l.includes(id) && /expired/i.test(l))).toBe(true)
    // None of them issued anything: the device was never assigned.
    await expect(server.engine.getRegistrationState(server.endpoints.idScope, id)).rejects.toMatchObject({ code: 'REGISTRATION_NOT_FOUND' })
  })
})

describe('the hub trusts what the CA issued', () => {
  it('azure-iot-device connects over Mqtt and MqttWs with the issued certificate; re-registering renews, the old one still works; a disabled device is refused', async () => {
    const id = 'issued-hub-device'
    const security = symmetricKey({ registrationId: id, groupKey: GROUP_KEY })
    const first = await createCertificateRequest(id, 'P-256')
    const reg = await new ProvisioningClient(clientOptions(server, 'mqtt', security)).register({ csr: first.csr })
    const chainPem = certificateChainPem(reg.issuedCertificateChain!.slice(0, -1))
    // DPS made a SAS identity (the onboarding credential); the certificate is trusted through the issuing CA.
    expect((await server.hubs.get(reg.assignedHub)!.getDevice(id))?.authentication.type).toBe('sas')
    for (const transport of ['Mqtt', 'MqttWs'] as const) {
      const client = await hubClient(transport, reg.assignedHub, id, chainPem, first.keyPem)
      expect((await client.getTwin()).properties.reported).toBeDefined()
      await client.close()
    }

    // Renewal by registering again with a new key: a new certificate; the old one keeps working.
    const second = await createCertificateRequest(id, 'P-384')
    const renewed = await new ProvisioningClient(clientOptions(server, 'http', security)).register({ csr: second.csr })
    const newLeaf = expectLeaf(renewed.issuedCertificateChain!, id, second.keyPem)
    expect(newLeaf.serialNumber).not.toBe(new X509Certificate(Buffer.from(reg.issuedCertificateChain![0]!, 'base64')).serialNumber)
    await (await hubClient('Mqtt', reg.assignedHub, id, certificateChainPem(renewed.issuedCertificateChain!.slice(0, -1)), second.keyPem)).close()
    await (await hubClient('Mqtt', reg.assignedHub, id, chainPem, first.keyPem)).close()

    // Another device's issued certificate does not open this identity.
    const other = await createCertificateRequest('issued-hub-other', 'P-256')
    const otherReg = await new ProvisioningClient(clientOptions(server, 'http', symmetricKey({ registrationId: 'issued-hub-other', groupKey: GROUP_KEY }))).register({ csr: other.csr })
    await expect(hubClient('Mqtt', reg.assignedHub, id, certificateChainPem(otherReg.issuedCertificateChain!.slice(0, -1)), other.keyPem)).rejects.toMatchObject({ name: 'UnauthorizedError' })
    expect(server.logs.some((l) => l.includes("was issued to 'issued-hub-other', not to device 'issued-hub-device'"))).toBe(true)

    // A disabled device is refused with the reason, issued certificate or not.
    const hub = server.hubs.get(reg.assignedHub)!
    const device = (await hub.getDevice(id))!
    await hub.createOrUpdateDevice({ deviceId: device.deviceId, status: 'disabled', authentication: device.authentication })
    await expect(hubClient('Mqtt', reg.assignedHub, id, chainPem, first.keyPem)).rejects.toMatchObject({ name: 'UnauthorizedError' })
    expect(server.logs.some((l) => l.includes(`device \\"${id}\\" on hub ${reg.assignedHub} is disabled`))).toBe(true)
  })
})
