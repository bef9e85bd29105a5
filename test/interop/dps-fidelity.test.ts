// What Azure DPS accepts, accepted here too, proven with Microsoft's npm clients over real TLS on
// loopback (docs/protocol.md §13.2-13.4):
// - enrollment certificates written by azure-iot-provisioning-service as base64 of the PEM text
//   (what the Azure portal uploads and Microsoft's Node e2e tests send), for a group's
//   signingCertificates and an individual enrollment's clientCertificates; the devices then
//   register with azure-iot-security-x509 on all five transports. A certificate that does not
//   parse is a 400 at the write, naming the member.
// - Microsoft's provisioning e2e sequence on the five transports, one registration id: create the
//   enrollment with an initial twin, register, read the twin (azure-iothub), delete the enrollment
//   and the hub device, create the enrollment again with another initial twin, register on the
//   next transport: the new twin applies.
// - a group with allocationPolicy static and no iotHubs is accepted, and its devices land on the
//   one linked hub.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningServiceClient } from 'azure-iot-provisioning-service'
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key'
import { X509Security } from 'azure-iot-security-x509'
import type { Registry } from 'azure-iothub'
import { deriveDeviceKey } from '@provisio/crypto'
import { PROVISIONING_TRANSPORTS, registerOver } from '../lib/provisioning-transports.js'
import { registryOn } from '../lib/registry.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { trustCaOnPort } from '../lib/tls-plumbing.js'
import { OpensslPki, type Issued } from './x509-openssl.js'

let server: TestServer & { logs: string[] }
let service: ProvisioningServiceClient
let registry: Registry
let pki: OpensslPki
let restoreTls: () => void
let groupCa: Issued

const base64OfPem = (pem: string): string => Buffer.from(pem, 'utf8').toString('base64')

beforeAll(async () => {
  server = (await startTestServer()) as typeof server
  server.useAsDefaultHttpsAgent()
  restoreTls = trustCaOnPort(server.endpoints.ports.amqp, server.caPem)
  service = ProvisioningServiceClient.fromConnectionString(server.endpoints.serviceConnectionString)
  registry = registryOn(server, server.endpoints.hubs[0]!.connectionString)
  pki = new OpensslPki()
  const root = pki.root('Fidelity Root', 'ec')
  groupCa = pki.issue('Fidelity Intermediate', 'ec', root, { ca: true })
  await service.createOrUpdateEnrollmentGroup({
    enrollmentGroupId: 'fidelity-b64pem-group',
    attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: base64OfPem(groupCa.pem) } } } },
  } as never)
}, 60_000)

afterAll(async () => {
  restoreTls?.()
  await server?.stop()
  pki?.dispose()
})

describe('enrollment certificates as base64 of PEM (azure-iot-provisioning-service), devices on every transport', () => {
  describe.each(PROVISIONING_TRANSPORTS)('azure-iot-security-x509 over %s', (transport) => {
    it('registers through a group whose signing certificate was written as base64 of PEM', async () => {
      const id = `b64pem-group-${transport}`
      const leaf = pki.issue(id, 'ec', groupCa)
      const result = await registerOver(server, transport, new X509Security(id, { cert: leaf.pem + groupCa.pem, key: leaf.keyPem }))
      expect(result).toMatchObject({ assignedHub: 'localhost', deviceId: id })
      expect((await server.engine.getRegistrationState(server.endpoints.idScope, id)).status).toBe('assigned')
    })

    it('registers through an individual enrollment whose client certificate was written as base64 of PEM', async () => {
      const id = `b64pem-individual-${transport}`
      const device = pki.selfSignedDevice(id, 'ec')
      await service.createOrUpdateIndividualEnrollment({
        registrationId: id,
        attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: base64OfPem(device.pem) } } } },
      } as never)
      const result = await registerOver(server, transport, new X509Security(id, { cert: device.pem, key: device.keyPem }))
      expect(result).toMatchObject({ assignedHub: 'localhost', deviceId: id })
      expect((await server.hubs.get('localhost')!.getDevice(id))?.authentication.type).toBe('selfSigned')
    })
  })

  it('refuses a certificate that does not parse at the write: 400 naming the member, nothing stored', async () => {
    const broken = base64OfPem('-----BEGIN CERTIFICATE-----\nMIIBbroken=\n-----END CERTIFICATE-----\n')
    const group = await service
      .createOrUpdateEnrollmentGroup({ enrollmentGroupId: 'fidelity-broken', attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: broken } } } } } as never)
      .then(() => undefined, (e: unknown) => e as { response?: { statusCode?: number }; responseBody?: string })
    expect(group?.response?.statusCode).toBe(400)
    expect(group?.responseBody).toMatch(/attestation\.x509\.signingCertificates\.primary\.certificate does not parse: certificate is malformed/)
    const individual = await service
      .createOrUpdateIndividualEnrollment({ registrationId: 'fidelity-broken', attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: 'bm90IGEgY2VydGlmaWNhdGU=' } } } } } as never)
      .then(() => undefined, (e: unknown) => e as { response?: { statusCode?: number }; responseBody?: string })
    expect(individual?.response?.statusCode).toBe(400)
    expect(individual?.responseBody).toMatch(/attestation\.x509\.clientCertificates\.primary\.certificate does not parse: certificate is malformed/)
    await expect(service.getEnrollmentGroup('fidelity-broken')).rejects.toMatchObject({ response: { statusCode: 404 } })
    await expect(service.getIndividualEnrollment('fidelity-broken')).rejects.toMatchObject({ response: { statusCode: 404 } })
  })
})

describe('delete, create again, register again: the new initial twin applies (Microsoft\'s provisioning e2e sequence)', () => {
  const id = 'fidelity-recreated'
  const deviceKey = Buffer.alloc(32, 0x61).toString('base64')

  it('on http, mqtt, mqtt-ws, amqp and amqp-ws in turn, one registration id', async () => {
    for (const transport of PROVISIONING_TRANSPORTS) {
      const created = (
        await service.createOrUpdateIndividualEnrollment({
          registrationId: id,
          attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: deviceKey, secondaryKey: Buffer.alloc(32, 0x62).toString('base64') } },
          initialTwin: { tags: { transport }, properties: { desired: { testProp: `value-${transport}` } } },
        } as never)
      ).responseBody
      const result = await registerOver(server, transport, new SymmetricKeySecurityClient(id, deviceKey))
      expect(result, transport).toMatchObject({ assignedHub: 'localhost', deviceId: id })
      const twin = (await registry.getTwin(id)).responseBody as unknown as { tags: Record<string, unknown>; properties: { desired: Record<string, unknown> } }
      expect(twin.tags, transport).toEqual({ transport })
      expect(twin.properties.desired.testProp, transport).toBe(`value-${transport}`)
      // As the e2e test cleans up: the enrollment (with its etag) and the hub device.
      await service.deleteIndividualEnrollment(created as never)
      await registry.delete(id)
      // The registration record went with the enrollment.
      await expect(service.getDeviceRegistrationState(id)).rejects.toMatchObject({ response: { statusCode: 404 } })
    }
  }, 60_000)
})

describe('allocationPolicy static without iotHubs (azure-iot-provisioning-service)', () => {
  it('is accepted for a group, and its devices land on the one linked hub', async () => {
    const groupKey = Buffer.alloc(64, 0x63).toString('base64')
    const written = (
      await service.createOrUpdateEnrollmentGroup({
        enrollmentGroupId: 'fidelity-static',
        allocationPolicy: 'static',
        attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: Buffer.alloc(64, 0x64).toString('base64') } },
      } as never)
    ).responseBody as unknown as { allocationPolicy?: string; iotHubs?: string[] }
    expect(written.allocationPolicy).toBe('static')
    const id = 'fidelity-static-device'
    const result = await registerOver(server, 'mqtt', new SymmetricKeySecurityClient(id, deriveDeviceKey(groupKey, id)))
    expect(result).toMatchObject({ assignedHub: 'localhost', deviceId: id })
  })
})
