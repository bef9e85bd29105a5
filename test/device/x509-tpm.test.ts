// @provisio/device with X.509 and TPM attestation against a real `provisio serve`, on every
// transport: X.509 through an individual enrollment (self-signed P-256) and an intermediate-signed
// RSA leaf through a group on the root (the chain rides in TLS, docs/protocol.md §6); TPM with our
// software TPM over http (401 challenge), amqp and amqp-ws (SASL TPM), whose TPM then holds the
// hub key; TPM over MQTT is refused as UNSUPPORTED (DPS offers none, §3).
import { createHmac, randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningClient, x509, tpm, softwareTpm, DeviceError, TRANSPORTS, type TransportName, type SecurityProvider } from '@provisio/device'
import { clientOptions } from '../lib/device.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { OpensslPki, type Issued } from '../interop/x509-openssl.js'

let server: TestServer
let pki: OpensslPki
let rsaRoot: Issued
let rsaIntermediate: Issued

function client(transport: TransportName, security: SecurityProvider): ProvisioningClient {
  return new ProvisioningClient(clientOptions(server, transport, security, { timeoutMs: 60_000 }))
}

const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as DeviceError)

beforeAll(async () => {
  server = await startTestServer()
  pki = new OpensslPki()
  rsaRoot = pki.root('Device SDK Root RSA', 'rsa')
  rsaIntermediate = pki.issue('Device SDK Intermediate RSA', 'rsa', rsaRoot, { ca: true })
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'sdk-rsa-root',
    attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: rsaRoot.pem } } } },
  })
}, 60_000)

afterAll(async () => {
  await server?.stop()
  pki?.dispose()
})

describe.each(TRANSPORTS)('@provisio/device X.509 over %s', (transport) => {
  it('registers through an individual enrollment (self-signed P-256, registrationId from the CN)', async () => {
    const id = `sdk-x509-${transport}-individual`
    const device = pki.selfSignedDevice(id, 'ec')
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, { registrationId: id, attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: device.pem } } } } })
    const result = await client(transport, x509({ cert: device.pem, key: device.keyPem })).register()
    expect(result).toMatchObject({ status: 'assigned', assignedHub: 'localhost', deviceId: id, registrationId: id })
    expect((await server.hubs.get('localhost')!.getDevice(id))?.authentication.type).toBe('selfSigned')
  })

  it('registers through a group on the root with leaf + intermediate in TLS', async () => {
    const id = `sdk-x509-${transport}-rsa`
    const leaf = pki.issue(id, 'rsa', rsaIntermediate)
    const result = await client(transport, x509({ cert: leaf.pem + rsaIntermediate.pem, key: leaf.keyPem })).register()
    expect(result.deviceId).toBe(id)
    expect((await server.engine.getRegistrationState(server.endpoints.idScope, id)).status).toBe('assigned')
  })

  it('refuses a certificate no enrollment knows', async () => {
    const id = `sdk-x509-${transport}-stranger`
    const device = pki.selfSignedDevice(id, 'ec')
    const err = await failure(client(transport, x509({ cert: device.pem, key: device.keyPem })).register())
    expect(err).toBeInstanceOf(DeviceError)
    expect(err!.code).toBe('REFUSED')
    expect(err!.status).toBe(401)
  })
})

describe.each(TRANSPORTS)('@provisio/device TPM (software TPM) over %s', (transport) => {
  const seedByte = 0x40 + TRANSPORTS.indexOf(transport)
  if (transport === 'mqtt' || transport === 'mqtt-ws') {
    it('is refused as UNSUPPORTED before anything is sent (DPS has no TPM over MQTT)', async () => {
      const t = softwareTpm(new Uint8Array(32).fill(seedByte))
      const err = await failure(client(transport, tpm({ tpm: t, registrationId: `sdk-tpm-${transport}` })).register())
      expect(err).toBeInstanceOf(DeviceError)
      expect(err!.code).toBe('UNSUPPORTED')
      expect(err!.message).toMatch(/MQTT/)
    })
    return
  }

  it('registers with the default registrationId and the TPM then holds the hub key', async () => {
    const t = softwareTpm(new Uint8Array(32).fill(seedByte))
    const ek = Buffer.from(await t.endorsementKey()).toString('base64')
    const security = tpm({ tpm: t })
    const c = client(transport, security)
    // The registrationId the SDKs derive: lowercase base32 of SHA-256(EK).
    const { defaultRegistrationId } = await import('@provisio/tpm')
    const registrationId = defaultRegistrationId(await t.endorsementKey())
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, { registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: ek } } })
    const before = await server.metrics.attempts.get([transport === 'http' ? 'https' : transport, 'tpm'])
    const result = await c.register()
    expect(result).toMatchObject({ status: 'assigned', assignedHub: 'localhost', deviceId: registrationId, registrationId })
    expect(await server.metrics.attempts.get([transport === 'http' ? 'https' : transport, 'tpm'])).toBeGreaterThan(before)
    const primaryKey = (await server.hubs.get('localhost')!.getDevice(registrationId))?.authentication.symmetricKey?.primaryKey
    expect(primaryKey).toBeTruthy()
    const data = new TextEncoder().encode(`localhost%2Fdevices%2F${registrationId}\n1800000000`)
    expect(Buffer.from(await t.sign(data)).toString('base64')).toBe(createHmac('sha256', Buffer.from(primaryKey!, 'base64')).update(data).digest('base64'))
  })

  it('is refused for an EK no enrollment has', async () => {
    const t = softwareTpm(randomBytes(32))
    const err = await failure(client(transport, tpm({ tpm: t, registrationId: `sdk-tpm-${transport}-stranger` })).register())
    expect(err).toBeInstanceOf(DeviceError)
    expect(err!.code).toBe('REFUSED')
    expect(err!.status).toBe(401)
  })
})
