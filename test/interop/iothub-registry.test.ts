// The embedded hub's registry REST API proved with Microsoft's azure-iothub Registry client over
// real TLS, and our REST HubGateway (the one the engine uses for hubs that are not embedded)
// driven against the same API.
import { request } from 'node:https'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Registry } from 'azure-iothub'
import { checkLinkedHubRights, createRestHubGateway, type RegistryFetch } from '@provisio/hub'
import { registryOn } from '../lib/registry.js'
import { startTestServer, type TestServer } from '../lib/server.js'

let server: TestServer
let registry: Registry
let hubConnectionString: string

function registryFor(connectionString: string): Registry {
  return registryOn(server, connectionString)
}

beforeAll(async () => {
  server = await startTestServer()
  hubConnectionString = server.endpoints.hubs[0]!.connectionString
  registry = registryFor(hubConnectionString)
})

afterAll(async () => {
  await server?.stop()
})

describe('azure-iothub Registry against the embedded hub', () => {
  it('creates a SAS device with generated keys, reads, updates, lists and deletes it', async () => {
    const created = (await registry.create({ deviceId: 'reg-1' })).responseBody
    expect(created.deviceId).toBe('reg-1')
    expect(Buffer.from(created.authentication!.symmetricKey!.primaryKey!, 'base64')).toHaveLength(32)
    await expect(registry.create({ deviceId: 'reg-1' })).rejects.toMatchObject({ name: 'DeviceAlreadyExistsError' })

    const read = (await registry.get('reg-1')).responseBody
    expect(read.etag).toBe(created.etag)
    const updated = (await registry.update({ deviceId: 'reg-1', status: 'disabled', capabilities: { iotEdge: true } } as never)).responseBody
    expect(updated.status).toBe('disabled')
    expect(updated.capabilities?.iotEdge).toBe(true)

    await registry.create({ deviceId: 'reg-2', authentication: { x509Thumbprint: { primaryThumbprint: 'AB'.repeat(20) } } } as never)
    const list = (await registry.list()).responseBody
    expect(list.map((d) => d.deviceId)).toEqual(['reg-1', 'reg-2'])
    expect((list[1]!.authentication as { type?: string } | undefined)?.type).toBe('selfSigned')

    await registry.delete('reg-1')
    await expect(registry.get('reg-1')).rejects.toMatchObject({ name: 'DeviceNotFoundError' })
  })

  it('reads and patches twins with ETags', async () => {
    await registry.create({ deviceId: 'twin-1' })
    const twin = (await registry.getTwin('twin-1')).responseBody
    const patched = (await registry.updateTwin('twin-1', { tags: { site: 'lab' }, properties: { desired: { interval: 5 } } }, twin.etag)).responseBody
    expect(patched.tags).toEqual({ site: 'lab' })
    expect((patched.properties.desired as Record<string, unknown>).interval).toBe(5)
    await expect(registry.updateTwin('twin-1', { tags: { x: 1 } }, twin.etag)).rejects.toMatchObject({ name: 'InvalidEtagError' })
    const again = (await registry.updateTwin('twin-1', { properties: { desired: { interval: null } } }, '*')).responseBody
    expect((again.properties.desired as Record<string, unknown>).interval).toBeUndefined()
  })

  it('refuses a connection string with a forged key', async () => {
    const forged = registryFor(hubConnectionString.replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${Buffer.alloc(32, 1).toString('base64')}`))
    await expect(forged.get('twin-1')).rejects.toMatchObject({ name: 'UnauthorizedError' })
  })
})

describe('createRestHubGateway over the registry API', () => {
  const fetchViaTls: RegistryFetch = (url, init) =>
    new Promise((resolve, reject) => {
      const u = new URL(url)
      const req = request({ host: u.hostname, port: server.port, path: u.pathname + u.search, method: init.method, headers: init.headers, ca: server.caPem, agent: false }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: async () => Buffer.concat(chunks).toString('utf8') }))
      })
      req.on('error', reject)
      req.end(init.body)
    })

  it('creates idempotently with the initial twin, reads the twin back and deletes (404 counts as done)', async () => {
    const gateway = createRestHubGateway({ fetch: fetchViaTls, clock: { now: () => Date.now() } })
    const hub = { hostName: 'localhost', connectionString: hubConnectionString }
    const spec = {
      hub,
      deviceId: 'via-rest',
      auth: { type: 'sas' as const, primaryKey: Buffer.alloc(32, 2).toString('base64'), secondaryKey: Buffer.alloc(32, 3).toString('base64') },
      iotEdge: false,
      initialTwin: { tags: { fleet: 'a' }, properties: { desired: { mode: 'eco' } } },
    }
    await gateway.createOrUpdateDevice(spec)
    await gateway.createOrUpdateDevice({ ...spec, iotEdge: true }) // the 409 → If-Match "*" path
    expect((await server.hubs.get('localhost')!.getDevice('via-rest'))?.capabilities.iotEdge).toBe(true)
    expect(await gateway.getTwin({ hub, deviceId: 'via-rest' })).toEqual({ tags: { fleet: 'a' }, properties: { desired: { mode: 'eco' }, reported: {} } })
    await gateway.deleteDevice({ hub, deviceId: 'via-rest' })
    await gateway.deleteDevice({ hub, deviceId: 'via-rest' })
    expect(await gateway.getTwin({ hub, deviceId: 'via-rest' })).toBeUndefined()
  })

  it('reports a refused signature as HUB_UNAUTHORIZED with the hub named', async () => {
    const gateway = createRestHubGateway({ fetch: fetchViaTls, clock: { now: () => Date.now() } })
    const hub = { hostName: 'localhost', connectionString: hubConnectionString.replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${Buffer.alloc(32, 9).toString('base64')}`) }
    await expect(gateway.createOrUpdateDevice({ hub, deviceId: 'nope', auth: { type: 'certificateAuthority' }, iotEdge: false })).rejects.toMatchObject({
      code: 'HUB_UNAUTHORIZED',
      message: expect.stringContaining('hub localhost refused'),
    })
  })

  it('checks that a linked hub connection string holds RegistryRead and RegistryWrite, naming the right a policy lacks', async () => {
    const options = { fetch: fetchViaTls, clock: { now: () => Date.now() } }
    const policy = (name: string) => server.endpoints.hubs[0]!.policies.find((p) => p.name === name)!.primaryConnectionString
    await expect(checkLinkedHubRights(policy('iothubowner'), options)).resolves.toBeUndefined()
    await expect(checkLinkedHubRights(policy('registryReadWrite'), options)).resolves.toBeUndefined()
    await expect(checkLinkedHubRights(policy('registryRead'), options)).rejects.toMatchObject({
      code: 'HUB_UNAUTHORIZED',
      reason: expect.stringContaining('policy registryRead, which lacks RegistryWrite'),
    })
    await expect(checkLinkedHubRights(policy('service'), options)).rejects.toMatchObject({ reason: expect.stringContaining('lacks RegistryRead') })
  })
})
