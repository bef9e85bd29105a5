// Shared access policies with Azure's rights, proved with Microsoft's service clients over real
// TLS: azure-iot-provisioning-service with DPS policies of one right each, azure-iothub's Registry
// with the hub policies IoT Hub creates, and key regeneration by `provisio policies` while the
// server runs (packages/server/src/policies.ts, state.ts).
import { request } from 'node:https'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningServiceClient } from 'azure-iot-provisioning-service'
import { Client } from 'azure-iot-device'
import { Mqtt as DeviceMqtt } from 'azure-iot-device-mqtt'
import { NoRetry } from 'azure-iot-common'
import { buildSasToken, parseDpsServiceConnectionString } from '@provisio/protocol'
import { runPolicies, type PolicyEndpoint } from '@provisio/server'
import { registryOn } from '../lib/registry.js'
import { redirectMqtts } from '../lib/tls-plumbing.js'
import { startTestServer, type TestServer } from '../lib/server.js'

let server: TestServer & { logs?: string[] }

beforeAll(async () => {
  server = await startTestServer({
    servicePolicies: [
      { name: 'reader', rights: ['EnrollmentRead', 'RegistrationStatusRead'] },
      { name: 'writer', rights: ['EnrollmentWrite'] },
      { name: 'statuswriter', rights: ['RegistrationStatusWrite'] },
    ],
  })
  server.useAsDefaultHttpsAgent()
})

afterAll(async () => {
  await server?.stop()
})

function servicePolicy(name: string): PolicyEndpoint {
  const p = server.endpoints.servicePolicies.find((x) => x.name === name)
  if (p === undefined) throw new Error(`endpoints.json lists no DPS policy ${name}`)
  return p
}

function hubPolicy(name: string): PolicyEndpoint {
  const p = server.endpoints.hubs[0]!.policies.find((x) => x.name === name)
  if (p === undefined) throw new Error(`endpoints.json lists no hub policy ${name}`)
  return p
}

const dps = (name: string, which: 'primary' | 'secondary' = 'primary') =>
  ProvisioningServiceClient.fromConnectionString(servicePolicy(name)[`${which}ConnectionString`])

const unauthorized = { name: 'UnauthorizedError', response: expect.objectContaining({ statusCode: 401 }) }

describe('DPS shared access policies (azure-iot-provisioning-service)', () => {
  it('lists every policy with its rights and both connection strings, as the portal does', () => {
    expect(server.endpoints.servicePolicies.map((p) => [p.name, p.rights])).toEqual([
      ['provisioningserviceowner', ['ServiceConfig', 'EnrollmentRead', 'EnrollmentWrite', 'RegistrationStatusRead', 'RegistrationStatusWrite', 'DeviceConnect']],
      ['reader', ['EnrollmentRead', 'RegistrationStatusRead']],
      ['writer', ['EnrollmentWrite']],
      ['statuswriter', ['RegistrationStatusWrite']],
    ])
    expect(servicePolicy('reader').secondaryConnectionString).toMatch(/;SharedAccessKeyName=reader;SharedAccessKey=/)
    expect(server.endpoints.serviceConnectionString).toBe(servicePolicy('provisioningserviceowner').primaryConnectionString)
  })

  it('a read-only policy gets and queries but cannot create, update or delete (401); a write policy can', async () => {
    const enrollment = { registrationId: 'acl-e1', attestation: { type: 'symmetricKey' } } as never
    await expect(dps('reader').createOrUpdateIndividualEnrollment(enrollment)).rejects.toMatchObject(unauthorized)
    const created = (await dps('writer').createOrUpdateIndividualEnrollment(enrollment)).responseBody
    const read = (await dps('reader').getIndividualEnrollment('acl-e1')).responseBody
    expect(read.etag).toBe(created.etag)
    const page = await dps('reader').createIndividualEnrollmentQuery({ query: '*' }).next()
    expect((page.responseBody as unknown as { registrationId: string }[]).map((e) => e.registrationId)).toContain('acl-e1')
    await expect(dps('reader').createOrUpdateIndividualEnrollment({ ...read, deviceId: 'x' } as never)).rejects.toMatchObject(unauthorized)
    await expect(dps('reader').deleteIndividualEnrollment('acl-e1')).rejects.toMatchObject(unauthorized)
    // A write includes the read, as in Azure.
    const updated = (await dps('writer').createOrUpdateIndividualEnrollment({ ...read, deviceId: 'renamed' } as never)).responseBody
    expect(updated.deviceId).toBe('renamed')
    await dps('writer').deleteIndividualEnrollment('acl-e1')
    await expect(dps('reader').getIndividualEnrollment('acl-e1')).rejects.toMatchObject({ response: expect.objectContaining({ statusCode: 404 }) })
  })

  it('registration-state routes need RegistrationStatusRead / RegistrationStatusWrite', async () => {
    await expect(dps('writer').getDeviceRegistrationState('nobody')).rejects.toMatchObject(unauthorized)
    await expect(dps('writer').createEnrollmentGroupDeviceRegistrationStateQuery({ query: '*' }, 'g').next()).rejects.toMatchObject(unauthorized)
    await expect(dps('reader').deleteDeviceRegistrationState('nobody')).rejects.toMatchObject(unauthorized)
    // With the right the call gets past authorization: the state does not exist.
    await expect(dps('reader').getDeviceRegistrationState('nobody')).rejects.toMatchObject({ response: expect.objectContaining({ statusCode: 404 }) })
    await expect(dps('statuswriter').deleteDeviceRegistrationState('nobody')).rejects.toMatchObject({ response: expect.objectContaining({ statusCode: 404 }) })
  })

  it('the log names the policy and the right it lacked; the client sees only Unauthorized', async () => {
    const error = await dps('reader').deleteIndividualEnrollment('acl-logged').then(
      () => undefined,
      (e: { responseBody?: string }) => e,
    )
    expect(error?.responseBody).toContain('401002')
    expect(error?.responseBody).not.toContain('EnrollmentWrite')
    expect(server.logs!.some((line) => line.includes('policy reader of ID scope') && line.includes('lacks the right EnrollmentWrite'))).toBe(true)
  })

  it('expired, wrong-audience and unknown-policy tokens are refused with 401; the log says why', async () => {
    const cs = parseDpsServiceConnectionString(servicePolicy('reader').secondaryConnectionString)
    const now = Math.floor(Date.now() / 1000)
    const statusWith = (token: string) =>
      new Promise<number>((resolve, reject) => {
        // The default agent points at the test server (useAsDefaultHttpsAgent).
        const req = request({ host: 'localhost', path: '/enrollments/nobody?api-version=2021-10-01', headers: { authorization: token } }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        })
        req.on('error', reject)
        req.end()
      })
    const sign = (resource: string, keyName: string, expiresAt: number) => buildSasToken({ resource, key: cs.sharedAccessKey, keyName, expiresAt })
    expect(await statusWith(sign(cs.hostName, 'reader', now + 600))).toBe(404)
    expect(await statusWith(sign(cs.hostName, 'reader', now - 3600))).toBe(401)
    expect(await statusWith(sign('elsewhere.example', 'reader', now + 600))).toBe(401)
    expect(await statusWith(sign(cs.hostName, 'nosuchpolicy', now + 600))).toBe(401)
    const refusals = server.logs!.filter((line) => line.includes('service request refused'))
    expect(refusals.some((line) => line.includes('SAS_EXPIRED') && line.includes('policy reader'))).toBe(true)
    expect(refusals.some((line) => line.includes('SAS_WRONG_RESOURCE') && line.includes('elsewhere.example'))).toBe(true)
    expect(refusals.some((line) => line.includes('SAS_WRONG_KEY_NAME') && line.includes('nosuchpolicy'))).toBe(true)
  })

  it('a regenerated key is refused at once while the other key keeps working, without a restart', async () => {
    const before = servicePolicy('reader')
    await dps('reader').createIndividualEnrollmentQuery({ query: '*' }).next()
    const [done] = runPolicies({ dataDir: server.dataDir, action: 'regenerate', name: 'reader', key: 'primary' })
    expect(done).toMatch(/regenerated the primary key of policy reader/)
    // Fresh tokens signed with the old primary key: refused on the next request.
    await expect(ProvisioningServiceClient.fromConnectionString(before.primaryConnectionString).createIndividualEnrollmentQuery({ query: '*' }).next()).rejects.toMatchObject(unauthorized)
    // The secondary key was not touched.
    const page = await ProvisioningServiceClient.fromConnectionString(before.secondaryConnectionString).createIndividualEnrollmentQuery({ query: '*' }).next()
    expect(Array.isArray(page.responseBody)).toBe(true)
  })

  it('a policy added by provisio policies works at once, with the rights it was given', async () => {
    runPolicies({ dataDir: server.dataDir, action: 'add', name: 'late', rights: 'EnrollmentRead' })
    const listed = runPolicies({ dataDir: server.dataDir, action: 'list', host: server.endpoints.deviceEndpoint }).join('\n')
    const cs = /primary {4}(HostName=[^\n]*SharedAccessKeyName=late;[^\n]*)/.exec(listed)?.[1]
    expect(cs).toBeDefined()
    const late = ProvisioningServiceClient.fromConnectionString(cs!)
    await expect(late.createIndividualEnrollmentQuery({ query: '*' }).next()).resolves.toBeDefined()
    await expect(late.createOrUpdateIndividualEnrollment({ registrationId: 'acl-late', attestation: { type: 'symmetricKey' } } as never)).rejects.toMatchObject(unauthorized)
    runPolicies({ dataDir: server.dataDir, action: 'remove', name: 'late' })
    await expect(late.createIndividualEnrollmentQuery({ query: '*' }).next()).rejects.toMatchObject(unauthorized)
  })

  it('refuses bad arguments with the reason', () => {
    expect(() => runPolicies({ dataDir: server.dataDir, action: 'add', name: 'bad', rights: 'EnrollmentRaed' })).toThrow(/unknown right "EnrollmentRaed"/)
    expect(() => runPolicies({ dataDir: server.dataDir, action: 'remove', name: 'provisioningserviceowner' })).toThrow(/cannot be removed/)
    expect(() => runPolicies({ dataDir: server.dataDir, action: 'regenerate', name: 'reader', key: 'tertiary' })).toThrow(/--key primary or --key secondary/)
    expect(() => runPolicies({ dataDir: server.dataDir, action: 'add', name: 'x', rights: 'RegistryRead', hub: 'nohub.example' })).toThrow(/no embedded hub nohub.example/)
  })
})

describe('hub shared access policies (azure-iothub Registry)', () => {
  it('the hub has the policies IoT Hub creates', () => {
    expect(server.endpoints.hubs[0]!.policies.map((p) => [p.name, p.rights])).toEqual([
      ['iothubowner', ['RegistryWrite', 'ServiceConnect', 'DeviceConnect']],
      ['service', ['ServiceConnect']],
      ['device', ['DeviceConnect']],
      ['registryRead', ['RegistryRead']],
      ['registryReadWrite', ['RegistryWrite']],
    ])
  })

  it('registryRead reads but cannot create devices; registryReadWrite can; service and device cannot read the registry', async () => {
    const reader = registryOn(server, hubPolicy('registryRead').primaryConnectionString)
    await expect(reader.create({ deviceId: 'acl-d1' })).rejects.toMatchObject(unauthorized)
    const writer = registryOn(server, hubPolicy('registryReadWrite').secondaryConnectionString)
    await writer.create({ deviceId: 'acl-d1' })
    expect((await reader.get('acl-d1')).responseBody.deviceId).toBe('acl-d1')
    expect((await reader.getTwin('acl-d1')).responseBody.deviceId).toBe('acl-d1')
    await expect(reader.updateTwin('acl-d1', { tags: { a: 1 } }, '*')).rejects.toMatchObject(unauthorized)
    await expect(reader.delete('acl-d1')).rejects.toMatchObject(unauthorized)
    for (const name of ['service', 'device']) {
      await expect(registryOn(server, hubPolicy(name).primaryConnectionString).list()).rejects.toMatchObject(unauthorized)
    }
    await writer.delete('acl-d1')
  })

  it('a regenerated hub key is refused at once; the other key keeps working', async () => {
    const before = hubPolicy('registryReadWrite')
    runPolicies({ dataDir: server.dataDir, action: 'regenerate', name: 'registryReadWrite', key: 'secondary', hub: server.endpoints.hubs[0]!.hostName })
    await expect(registryOn(server, before.secondaryConnectionString).list()).rejects.toMatchObject(unauthorized)
    await expect(registryOn(server, before.primaryConnectionString).list()).resolves.toBeDefined()
  })

  it('a device connects with a token of a policy granting DeviceConnect (device), not with one lacking it (registryRead)', async () => {
    const owner = registryOn(server, hubPolicy('iothubowner').primaryConnectionString)
    await owner.create({ deviceId: 'acl-dev' })
    const hostName = server.endpoints.hubs[0]!.hostName
    const undo = redirectMqtts(server)
    const open = async (policy: string) => {
      const key = /SharedAccessKey=([^;]+)/.exec(hubPolicy(policy).primaryConnectionString)![1]!
      // azure-iot-device signs `{hub}/devices/{id}` with the key name the connection string gives.
      const client = Client.fromConnectionString(`HostName=${hostName};DeviceId=acl-dev;SharedAccessKeyName=${policy};SharedAccessKey=${key}`, DeviceMqtt)
      client.setRetryPolicy(new NoRetry())
      try {
        await client.open()
        return 'open'
      } catch (error) {
        return `refused ${(error as Error).name}`
      } finally {
        await client.close()
      }
    }
    try {
      expect(await open('device')).toBe('open')
      expect(await open('registryRead')).toMatch(/^refused /)
      expect(server.logs!.some((line) => line.includes('policy registryRead of hub') && line.includes('lacks the right DeviceConnect'))).toBe(true)
    } finally {
      undo()
      await owner.delete('acl-dev')
    }
  })

})
