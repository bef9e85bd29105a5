// X.509 devices on the embedded hub: provisioned with azure-iot-security-x509 (Mqtt provisioning
// transport), then connected with azure-iot-device's X509AuthenticationProvider over the `Mqtt`
// transport, presenting the same certificate in TLS. An individual enrollment makes a `selfSigned`
// identity (thumbprint pinned); a group on an intermediate makes a `certificateAuthority` identity
// (the chain must reach the group's signing certificate and the CN be the device id). Another
// certificate for the same device is refused at CONNECT with the reason in the log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, Message, X509AuthenticationProvider } from 'azure-iot-device'
import { Mqtt as DeviceMqtt } from 'azure-iot-device-mqtt'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Mqtt } from 'azure-iot-provisioning-device-mqtt'
import { MqttBase } from 'azure-iot-mqtt-base'
import { X509Security } from 'azure-iot-security-x509'
import { startTestServer, type TestServer } from '../lib/server.js'
import { redirectMqtts } from '../lib/tls-plumbing.js'
import { OpensslPki, type Issued } from './x509-openssl.js'

let server: TestServer & { logs: string[] }
let pki: OpensslPki
let undoRedirect: () => void
let root: Issued
let intermediate: Issued
const clients: Client[] = []

function provision(registrationId: string, cert: string, key: string): Promise<{ assignedHub: string; deviceId: string }> {
  const base = new MqttBase()
  base.setOptions({ ca: server.caPem } as never)
  const client = ProvisioningDeviceClient.create(`localhost:${server.endpoints.ports.mqtt}`, server.endpoints.idScope, new Mqtt(base as never) as never, new X509Security(registrationId, { cert, key }) as never)
  return new Promise((resolve, reject) => client.register((err?: Error, r?: unknown) => (err ? reject(err) : resolve(r as { assignedHub: string; deviceId: string }))))
}

async function connect(deviceId: string, hub: string, cert: string, key: string): Promise<Client> {
  const client = Client.fromAuthenticationProvider(X509AuthenticationProvider.fromX509Options(deviceId, hub, { cert, key }), DeviceMqtt)
  clients.push(client)
  await client.setOptions({ ca: server.caPem })
  await client.open()
  return client
}

beforeAll(async () => {
  server = (await startTestServer()) as typeof server
  undoRedirect = redirectMqtts(server)
  pki = new OpensslPki()
  root = pki.root('Hub Root P-256', 'ec')
  intermediate = pki.issue('Hub Intermediate P-256', 'ec', root, { ca: true })
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'hub-x509-intermediate',
    attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: intermediate.pem } } } },
    initialTwin: { properties: { desired: { group: 'x509' } } },
  })
}, 60_000)

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
  undoRedirect?.()
  await server?.stop()
  pki?.dispose()
})

describe('azure-iot-device with X.509 on the embedded hub', () => {
  it('an individually enrolled device connects with its certificate (selfSigned thumbprint); another certificate is refused', async () => {
    const id = 'hub-x509-individual'
    const device = pki.selfSignedDevice(id, 'ec')
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId: id,
      attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: device.pem } } } },
      initialTwin: { properties: { desired: { mode: 'pinned' } } },
    })
    const assignment = await provision(id, device.pem, device.keyPem)
    expect(assignment).toEqual(expect.objectContaining({ assignedHub: 'localhost', deviceId: id }))
    expect((await server.hubs.get('localhost')!.getDevice(id))?.authentication.type).toBe('selfSigned')

    const client = await connect(id, assignment.assignedHub, device.pem, device.keyPem)
    const twin = await client.getTwin()
    expect(twin.properties.desired).toMatchObject({ mode: 'pinned' })
    await client.sendEvent(new Message('x509 hello'))
    await client.close()

    const impostor = pki.selfSignedDevice(id, 'ec')
    await expect(connect(id, assignment.assignedHub, impostor.pem, impostor.keyPem)).rejects.toMatchObject({ name: 'UnauthorizedError' })
    const refusal = server.logs.map((l) => JSON.parse(l) as { msg?: string; message?: string; deviceId?: string; reason?: string; returnCode?: number }).find((l) => l.deviceId === id && typeof l.reason === 'string' && l.reason.includes('CERTIFICATE_INVALID'))
    expect(refusal).toMatchObject({ returnCode: 5, reason: expect.stringMatching(/matches neither thumbprint/) })
  })

  it('a device of a group on an intermediate connects with its chain (certificateAuthority)', async () => {
    const id = 'hub-x509-group'
    const leaf = pki.issue(id, 'ec', intermediate)
    const assignment = await provision(id, leaf.pem + intermediate.pem, leaf.keyPem)
    expect((await server.hubs.get('localhost')!.getDevice(id))?.authentication.type).toBe('certificateAuthority')
    const client = await connect(id, assignment.assignedHub, leaf.pem + intermediate.pem, leaf.keyPem)
    expect((await client.getTwin()).properties.desired).toMatchObject({ group: 'x509' })
    await client.close()

    // A certificate from an unrelated CA, with the right CN, is refused.
    const stranger = pki.root('Stranger Root', 'ec')
    const forged = pki.issue(id, 'ec', stranger)
    await expect(connect(id, assignment.assignedHub, forged.pem, forged.keyPem)).rejects.toMatchObject({ name: 'UnauthorizedError' })
  })
})
