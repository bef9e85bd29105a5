// X.509 attestation over HTTPS with Microsoft's clients: azure-iot-security-x509 with the HTTP
// transport registers through an individual enrollment and through enrollment groups on a root
// and on an intermediate (RSA-2048 and P-256 chains made by openssl), and each refusal case is
// refused with the right reason in the engine's registrationFailed event.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { X509Security } from 'azure-iot-security-x509'
import { ProvisioningServiceClient } from 'azure-iot-provisioning-service'
import { startTestServer, type TestServer } from '../lib/server.js'
import { OpensslPki, type Issued } from './x509-openssl.js'

let server: TestServer
let service: ProvisioningServiceClient
let pki: OpensslPki
const failures: { registrationId: string; reason: string; errorCode: number; enrollment?: { kind: string; id: string } }[] = []

// Chains shared by the cases.
let rsaRoot: Issued
let rsaIntermediate: Issued
let ecRoot: Issued
let ecIntermediate: Issued

interface RegistrationResult {
  assignedHub: string
  deviceId: string
  x509?: { certificateInfo?: { subjectName: string; sha256Thumbprint: string }; enrollmentGroupId?: string; signingCertificateInfo?: { subjectName: string } }
}

function register(registrationId: string, cert: string, key: string): Promise<RegistrationResult> {
  const client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(), new X509Security(registrationId, { cert, key }) as never)
  return new Promise((resolve, reject) => {
    client.register((err?: Error, result?: unknown) => (err ? reject(err) : resolve(result as RegistrationResult)))
  })
}

function lastFailure(registrationId: string) {
  return failures.filter((f) => f.registrationId === registrationId).at(-1)
}

async function group(enrollmentGroupId: string, signing: string, status: 'enabled' | 'disabled' = 'enabled') {
  await service.createOrUpdateEnrollmentGroup({
    enrollmentGroupId,
    attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: signing } } } },
    provisioningStatus: status,
  } as never)
}

beforeAll(async () => {
  server = await startTestServer()
  server.useAsDefaultHttpsAgent()
  service = ProvisioningServiceClient.fromConnectionString(server.endpoints.serviceConnectionString)
  server.engine.on('registrationFailed', (e) => void failures.push(e))
  pki = new OpensslPki()
  rsaRoot = pki.root('Provisio Test Root RSA', 'rsa')
  rsaIntermediate = pki.issue('Provisio Test Intermediate RSA', 'rsa', rsaRoot, { ca: true })
  ecRoot = pki.root('Provisio Test Root P-256', 'ec')
  ecIntermediate = pki.issue('Provisio Test Intermediate P-256', 'ec', ecRoot, { ca: true })
  await group('x509-rsa-root', rsaRoot.pem)
  await group('x509-ec-intermediate', ecIntermediate.pem)
}, 60_000)

afterAll(async () => {
  await server?.stop()
  pki?.dispose()
})

describe('azure-iot-provisioning-device-http + azure-iot-security-x509', () => {
  it('registers through an individual enrollment (self-signed P-256); the hub pins its thumbprint', async () => {
    const device = pki.selfSignedDevice('x509-individual-1', 'ec')
    await service.createOrUpdateIndividualEnrollment({
      registrationId: 'x509-individual-1',
      attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: device.pem } } } },
    } as never)
    const result = await register('x509-individual-1', device.pem, device.keyPem)
    expect(result.assignedHub).toBe('localhost')
    expect(result.deviceId).toBe('x509-individual-1')
    const record = await server.engine.getRegistrationState(server.endpoints.idScope, 'x509-individual-1')
    expect(record.status).toBe('assigned')
    const identity = await server.hubs.get('localhost')!.getDevice('x509-individual-1')
    expect(identity?.authentication.type).toBe('selfSigned')
    expect(identity?.authentication.x509Thumbprint?.primaryThumbprint).toMatch(/^[0-9A-F]{64}$/)
  })

  it('registers through a group on the root (RSA-2048 chain: device sends leaf + intermediate)', async () => {
    const leaf = pki.issue('x509-rsa-device-1', 'rsa', rsaIntermediate)
    const result = await register('x509-rsa-device-1', leaf.pem + rsaIntermediate.pem, leaf.keyPem)
    expect(result.assignedHub).toBe('localhost')
    const identity = await server.hubs.get('localhost')!.getDevice('x509-rsa-device-1')
    expect(identity?.authentication.type).toBe('certificateAuthority')
  })

  it('registers through a group on an intermediate (P-256 chain); registrationState.x509 names the group and both certificates', async () => {
    const leaf = pki.issue('x509-ec-device-1', 'ec', ecIntermediate)
    const result = await register('x509-ec-device-1', leaf.pem + ecIntermediate.pem, leaf.keyPem)
    expect(result.assignedHub).toBe('localhost')
    const op = await server.engine.registrationStatus({ idScope: server.endpoints.idScope, registrationId: 'x509-ec-device-1', evidence: { type: 'x509', chain: [pemToDer(leaf.pem), pemToDer(ecIntermediate.pem)] } })
    expect(op.body.x509?.enrollmentGroupId).toBe('x509-ec-intermediate')
    expect(op.body.x509?.certificateInfo?.subjectName).toBe('CN=x509-ec-device-1')
    expect(op.body.x509?.signingCertificateInfo?.subjectName).toBe('CN=Provisio Test Intermediate P-256')
  })

  it('refuses a device whose CN differs from its registrationId', async () => {
    const leaf = pki.issue('x509-cn-is-this', 'rsa', rsaIntermediate)
    await expect(register('x509-but-registers-as-that', leaf.pem + rsaIntermediate.pem, leaf.keyPem)).rejects.toThrow()
    const f = lastFailure('x509-but-registers-as-that')
    expect(f?.errorCode).toBe(401002)
    expect(f?.reason).toMatch(/subject CN 'x509-cn-is-this', but the registrationId is 'x509-but-registers-as-that'/)
  })

  it('refuses an expired device certificate, naming it', async () => {
    const leaf = pki.issue('x509-expired-1', 'rsa', rsaIntermediate, { days: -1 })
    await expect(register('x509-expired-1', leaf.pem + rsaIntermediate.pem, leaf.keyPem)).rejects.toThrow()
    const f = lastFailure('x509-expired-1')
    expect(f?.errorCode).toBe(401002)
    expect(f?.enrollment).toEqual({ kind: 'group', id: 'x509-rsa-root' })
    expect(f?.reason).toMatch(/certificate 0 \('CN=x509-expired-1'.*expired at/)
  })

  it('refuses a chain from the wrong CA (same name as the group root, other key)', async () => {
    const impostorRoot = pki.root('Provisio Test Root RSA', 'rsa')
    const leaf = pki.issue('x509-wrong-ca-1', 'rsa', impostorRoot)
    await expect(register('x509-wrong-ca-1', leaf.pem, leaf.keyPem)).rejects.toThrow()
    const f = lastFailure('x509-wrong-ca-1')
    expect(f?.errorCode).toBe(401002)
    expect(f?.reason).toMatch(/signature of 'CN=x509-wrong-ca-1' does not verify with the public key of 'CN=Provisio Test Root RSA'/)
  })

  it('refuses a chain with the intermediate missing', async () => {
    const leaf = pki.issue('x509-no-intermediate-1', 'rsa', rsaIntermediate)
    await expect(register('x509-no-intermediate-1', leaf.pem, leaf.keyPem)).rejects.toThrow()
    const f = lastFailure('x509-no-intermediate-1')
    expect(f?.errorCode).toBe(401002)
    expect(f?.reason).toMatch(/issuer 'CN=Provisio Test Intermediate RSA' was not sent and is no group's certificate \(a missing intermediate\?\)/)
  })

  it('refuses a device of a disabled group; its registration record says disabled', async () => {
    const root = pki.root('Provisio Test Root Disabled', 'ec')
    await group('x509-disabled', root.pem, 'disabled')
    const leaf = pki.issue('x509-disabled-1', 'ec', root)
    await expect(register('x509-disabled-1', leaf.pem, leaf.keyPem)).rejects.toThrow()
    const f = lastFailure('x509-disabled-1')
    expect(f?.errorCode).toBe(401002)
    expect(f?.reason).toMatch(/enrollment group 'x509-disabled'.* is disabled/)
    const record = await server.engine.getRegistrationState(server.endpoints.idScope, 'x509-disabled-1')
    expect(record.status).toBe('disabled')
  })
})

function pemToDer(pem: string): Uint8Array {
  return new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64'))
}
