// DPS over HTTPS, proven with Microsoft's own clients over real TLS on loopback: the Node device SDK's
// HTTP transport with the symmetric-key security client registers against `provisio serve`, and
// the provisioning service client manages enrollments with the printed connection string.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key'
import { ProvisioningServiceClient } from 'azure-iot-provisioning-service'
import { deriveDeviceKey } from '@provisio/crypto'
import { startTestServer, type TestServer } from '../lib/server.js'
import { startEchoWebhook } from '../lib/webhook.js'

let server: TestServer
let service: ProvisioningServiceClient

const key = (seed: number) => Buffer.alloc(32, seed).toString('base64')

interface RegistrationResult {
  assignedHub: string
  deviceId: string
  status?: string
  payload?: unknown
}

function register(registrationId: string, deviceKey: string, payload?: object): Promise<RegistrationResult> {
  const client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(), // Two copies of azure-iot-common in node_modules make the SDK's own types disagree; the objects fit.
    new SymmetricKeySecurityClient(registrationId, deviceKey) as never)
  if (payload !== undefined) client.setProvisioningPayload(payload as never)
  return new Promise((resolve, reject) => {
    client.register((err?: Error, result?: unknown) => (err ? reject(err) : resolve(result as RegistrationResult)))
  })
}

beforeAll(async () => {
  server = await startTestServer()
  server.useAsDefaultHttpsAgent()
  service = ProvisioningServiceClient.fromConnectionString(server.endpoints.serviceConnectionString)
})

afterAll(async () => {
  await server?.stop()
})

describe('azure-iot-provisioning-device-http + azure-iot-security-symmetric-key', () => {
  it('registers an individual enrollment, lands on the embedded hub with its initial twin', async () => {
    await service.createOrUpdateIndividualEnrollment({
      registrationId: 'sk-individual-1',
      deviceId: 'sk-device-1',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(1), secondaryKey: key(2) } },
      initialTwin: { tags: { site: 'lab' }, properties: { desired: { interval: 30 } } },
    } as never)
    const result = await register('sk-individual-1', key(1))
    expect(result.assignedHub).toBe('localhost')
    expect(result.deviceId).toBe('sk-device-1')
    const hub = server.hubs.get('localhost')!
    const device = await hub.getDevice('sk-device-1')
    expect(device?.authentication.symmetricKey?.primaryKey).toBe(key(1))
    const twin = await hub.getTwin('sk-device-1')
    expect(twin?.tags).toEqual({ site: 'lab' })
    expect(twin?.properties.desired).toMatchObject({ interval: 30 })
  })

  it('registers with the secondary key too', async () => {
    await service.createOrUpdateIndividualEnrollment({
      registrationId: 'sk-individual-2',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(3), secondaryKey: key(4) } },
    } as never)
    const result = await register('sk-individual-2', key(4))
    expect(result.deviceId).toBe('sk-individual-2')
  })

  it('registers through a group enrollment with a derived key and a custom payload', async () => {
    const groupKey = Buffer.alloc(64, 7).toString('base64')
    await service.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: 'sk-group',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: Buffer.alloc(64, 8).toString('base64') } },
      initialTwin: { properties: { desired: { fleet: 'blue' } } },
    } as never)
    const result = await register('sk-group-member-42', deriveDeviceKey(groupKey, 'sk-group-member-42'), { modelId: 'dtmi:provisio:test;1' })
    expect(result.deviceId).toBe('sk-group-member-42')
    const state = await service.getDeviceRegistrationState('sk-group-member-42')
    expect(state.responseBody.status).toBe('assigned')
    expect(state.responseBody.assignedHub).toBe('localhost')
    expect((await server.hubs.get('localhost')!.getTwin('sk-group-member-42'))?.properties.desired).toMatchObject({ fleet: 'blue' })
  })

  it('carries the device payload to a custom allocation webhook and its answer back to the device', async () => {
    const webhook = await startEchoWebhook()
    const seen = webhook.seen
    try {
      const url = `${webhook.url}?code=secret`
      await service.createOrUpdateIndividualEnrollment({
        registrationId: 'sk-custom',
        allocationPolicy: 'custom',
        customAllocationDefinition: { webhookUrl: url, apiVersion: '2021-10-01' },
        attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(11), secondaryKey: key(12) } },
      } as never)
      const result = await register('sk-custom', key(11), { modelId: 'dtmi:provisio:test;1', region: 'lab' })
      expect(seen).toEqual([{ modelId: 'dtmi:provisio:test;1', region: 'lab' }])
      expect(result.payload).toEqual({ echo: { modelId: 'dtmi:provisio:test;1', region: 'lab' } })
    } finally {
      await webhook.close()
    }
  })

  it('refuses a wrong key', async () => {
    await expect(register('sk-individual-1', key(9))).rejects.toThrow()
    expect(await server.hubs.get('localhost')!.getDevice('sk-individual-1')).toBeUndefined()
  })

  it('refuses a disabled enrollment', async () => {
    await service.createOrUpdateIndividualEnrollment({
      registrationId: 'sk-disabled',
      provisioningStatus: 'disabled',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(5), secondaryKey: key(6) } },
    } as never)
    await expect(register('sk-disabled', key(5))).rejects.toThrow()
    expect(await server.hubs.get('localhost')!.getDevice('sk-disabled')).toBeUndefined()
  })
})

describe('azure-iot-provisioning-service ProvisioningServiceClient', () => {
  it('creates, reads, updates with ETag, queries and deletes individual enrollments', async () => {
    const created = (await service.createOrUpdateIndividualEnrollment({ registrationId: 'svc-e1', attestation: { type: 'symmetricKey' } } as never)).responseBody
    expect(created.etag).toBeTruthy()
    const read = (await service.getIndividualEnrollment('svc-e1')).responseBody
    expect(read.registrationId).toBe('svc-e1')
    // GET hides keys; attestationmechanism returns the generated 64-byte keys.
    expect((read.attestation as { symmetricKey?: { primaryKey?: string } }).symmetricKey?.primaryKey).toBeUndefined()
    const mechanism = (await service.getIndividualEnrollmentAttestationMechanism('svc-e1')).responseBody
    expect(Buffer.from(mechanism.symmetricKey!.primaryKey, 'base64')).toHaveLength(64)

    const updated = (await service.createOrUpdateIndividualEnrollment({ ...read, deviceId: 'renamed' } as never)).responseBody
    expect(updated.deviceId).toBe('renamed')
    expect(updated.etag).not.toBe(read.etag)
    // A write carrying the stale etag is refused with 412.
    await expect(service.createOrUpdateIndividualEnrollment({ ...read, deviceId: 'stale' } as never)).rejects.toMatchObject({ responseBody: expect.stringContaining('412') })

    const query = service.createIndividualEnrollmentQuery({ query: '*' }, 100)
    const page = await query.next()
    expect((page.responseBody as unknown as { registrationId: string }[]).map((e) => e.registrationId)).toContain('svc-e1')

    await service.deleteIndividualEnrollment('svc-e1', updated.etag!)
    await expect(service.getIndividualEnrollment('svc-e1')).rejects.toThrow()
  })

  it('creates, reads, updates with ETag, queries and deletes enrollment groups', async () => {
    const created = (await service.createOrUpdateEnrollmentGroup({ enrollmentGroupId: 'svc-g1', attestation: { type: 'symmetricKey' } } as never)).responseBody
    const updated = (await service.createOrUpdateEnrollmentGroup({ ...created, provisioningStatus: 'disabled' } as never)).responseBody
    expect(updated.provisioningStatus).toBe('disabled')
    await expect(service.createOrUpdateEnrollmentGroup({ ...created } as never)).rejects.toThrow()
    const page = await service.createEnrollmentGroupQuery({ query: '*' }).next()
    expect((page.responseBody as unknown as { enrollmentGroupId: string }[]).map((g) => g.enrollmentGroupId)).toContain('svc-g1')
    await service.deleteEnrollmentGroup('svc-g1', updated.etag!)
    await expect(service.getEnrollmentGroup('svc-g1')).rejects.toThrow()
  })

  it('reads and deletes registration states, and queries them by group', async () => {
    const states = await service.createEnrollmentGroupDeviceRegistrationStateQuery({ query: '*' }, 'sk-group').next()
    expect((states.responseBody as unknown as { registrationId: string }[]).map((s) => s.registrationId)).toContain('sk-group-member-42')
    const state = (await service.getDeviceRegistrationState('sk-individual-2')).responseBody
    expect(state.status).toBe('assigned')
    await service.deleteDeviceRegistrationState('sk-individual-2')
    await expect(service.getDeviceRegistrationState('sk-individual-2')).rejects.toThrow()
  })

  it('a connection string with a forged key is refused', async () => {
    const forged = server.endpoints.serviceConnectionString.replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${key(77)}`)
    await expect(ProvisioningServiceClient.fromConnectionString(forged).getIndividualEnrollment('sk-individual-1')).rejects.toThrow()
  })
})
