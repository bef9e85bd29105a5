// X.509 attestation on the other transports: azure-iot-security-x509 with Microsoft's Mqtt, MqttWs,
// Amqp and AmqpWs provisioning transports registers through an individual enrollment and through
// groups on a root (RSA-2048) and on an intermediate (P-256), all made by openssl; an expired
// device certificate is refused on each with the reason in the engine's registrationFailed event.
// The client certificate rides in TLS on every transport (docs/protocol.md §6); the unmodified
// clients are pointed at the test server as in mqtt-symmetric-key / amqp-symmetric-key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { X509Security } from 'azure-iot-security-x509'
import { startTestServer, type TestServer } from '../lib/server.js'
import { OpensslPki, type Issued } from './x509-openssl.js'
import { trustCaOnPort } from '../lib/tls-plumbing.js'
import { registerOver, type ProvisioningTransport } from '../lib/provisioning-transports.js'


let server: TestServer
let pki: OpensslPki
let restoreTls: () => void
let rsaRoot: Issued
let rsaIntermediate: Issued
let ecRoot: Issued
let ecIntermediate: Issued
const failures: { registrationId: string; reason: string; errorCode: number }[] = []

const TRANSPORTS: ProvisioningTransport[] = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws']
type Transport = ProvisioningTransport

function register(transport: Transport, registrationId: string, cert: string, key: string): Promise<{ assignedHub: string; deviceId: string }> {
  return registerOver(server, transport, new X509Security(registrationId, { cert, key }))
}

beforeAll(async () => {
  server = await startTestServer()
  server.engine.on('registrationFailed', (e) => void failures.push(e))
  restoreTls = trustCaOnPort(server.endpoints.ports.amqp, server.caPem)
  pki = new OpensslPki()
  rsaRoot = pki.root('Transport Root RSA', 'rsa')
  rsaIntermediate = pki.issue('Transport Intermediate RSA', 'rsa', rsaRoot, { ca: true })
  ecRoot = pki.root('Transport Root P-256', 'ec')
  ecIntermediate = pki.issue('Transport Intermediate P-256', 'ec', ecRoot, { ca: true })
  const idScope = server.endpoints.idScope
  await server.engine.createOrUpdateEnrollmentGroup(idScope, { enrollmentGroupId: 'transport-rsa-root', attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: rsaRoot.pem } } } } })
  await server.engine.createOrUpdateEnrollmentGroup(idScope, { enrollmentGroupId: 'transport-ec-intermediate', attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: ecIntermediate.pem } } } } })
}, 60_000)

afterAll(async () => {
  restoreTls?.()
  await server?.stop()
  pki?.dispose()
})

describe.each(TRANSPORTS)('azure-iot-security-x509 over %s', (transport) => {
  it('registers through an individual enrollment (self-signed P-256)', async () => {
    const id = `x509-${transport}-individual`
    const device = pki.selfSignedDevice(id, 'ec')
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, { registrationId: id, attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: device.pem } } } } })
    const result = await register(transport, id, device.pem, device.keyPem)
    expect(result).toMatchObject({ assignedHub: 'localhost', deviceId: id })
    expect((await server.hubs.get('localhost')!.getDevice(id))?.authentication.type).toBe('selfSigned')
  })

  it('registers through a group on the root (RSA-2048, leaf + intermediate sent)', async () => {
    const id = `x509-${transport}-rsa`
    const leaf = pki.issue(id, 'rsa', rsaIntermediate)
    expect((await register(transport, id, leaf.pem + rsaIntermediate.pem, leaf.keyPem)).assignedHub).toBe('localhost')
    expect((await server.engine.getRegistrationState(server.endpoints.idScope, id)).status).toBe('assigned')
  })

  it('registers through a group on an intermediate (P-256)', async () => {
    const id = `x509-${transport}-ec`
    const leaf = pki.issue(id, 'ec', ecIntermediate)
    expect((await register(transport, id, leaf.pem + ecIntermediate.pem, leaf.keyPem)).assignedHub).toBe('localhost')
    expect((await server.hubs.get('localhost')!.getDevice(id))?.authentication.type).toBe('certificateAuthority')
  })

  it('refuses an expired device certificate with the reason', async () => {
    const id = `x509-${transport}-expired`
    const leaf = pki.issue(id, 'ec', ecIntermediate, { days: -1 })
    await expect(register(transport, id, leaf.pem + ecIntermediate.pem, leaf.keyPem)).rejects.toBeDefined()
    const f = failures.filter((e) => e.registrationId === id).at(-1)
    expect(f?.errorCode).toBe(401002)
    expect(f?.reason).toMatch(/certificate 0 \('CN=x509-[a-z-]+-expired'.*expired at/)
  })
})
