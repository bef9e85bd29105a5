import { describe, expect, it } from 'vitest'
import { isProvisioError } from '@provisio/protocol'
import { EmbeddedHub, MAX_MODULES_PER_DEVICE, MemoryHubStore } from '../src/index.js'

function hub(store = new MemoryHubStore()) {
  let t = Date.UTC(2026, 0, 1)
  let r = 7
  return new EmbeddedHub('hub.example', {
    store,
    clock: { now: () => (t += 1000) },
    random: { bytes: (n) => Uint8Array.from({ length: n }, () => (r = (r * 1103515245 + 12345) & 0xff)) },
  })
}

async function refusal(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise
  } catch (error) {
    if (isProvisioError(error)) return error
    throw error
  }
  throw new Error('expected a refusal')
}

describe('EmbeddedHub modules', () => {
  it('creates, reads, lists, updates with If-Match and deletes modules of a device', async () => {
    const h = hub()
    await h.createOrUpdateDevice({ deviceId: 'edge-1', authentication: { type: 'sas' } })
    const m = await h.createOrUpdateModule({ deviceId: 'EDGE-1', moduleId: 'Filter', managedBy: 'ops', authentication: { type: 'sas' } }, { ifNoneMatch: true })
    expect(m).toMatchObject({ deviceId: 'edge-1', moduleId: 'Filter', managedBy: 'ops', connectionState: 'Disconnected', generationId: expect.stringMatching(/^\d{18}$/) })
    expect(m.authentication.symmetricKey?.primaryKey).toMatch(/=$/)
    expect((await refusal(h.createOrUpdateModule({ deviceId: 'edge-1', moduleId: 'filter', authentication: { type: 'sas' } }, { ifNoneMatch: true }))).code).toBe('CONFLICT')
    await h.createOrUpdateModule({ deviceId: 'edge-1', moduleId: 'aggregator', authentication: { type: 'sas' } }, { ifNoneMatch: true })
    expect((await h.listModules('edge-1'))!.map((x) => x.moduleId)).toEqual(['aggregator', 'Filter'])
    expect(await h.listModules('nobody')).toBeUndefined()

    expect((await refusal(h.createOrUpdateModule({ deviceId: 'edge-1', moduleId: 'filter', authentication: { type: 'sas' } }, { ifMatch: '"stale"' }))).code).toBe('PRECONDITION_FAILED')
    const updated = await h.createOrUpdateModule({ deviceId: 'edge-1', moduleId: 'filter', authentication: { type: 'sas', symmetricKey: { primaryKey: Buffer.alloc(32, 1).toString('base64'), secondaryKey: null } } }, { ifMatch: `"${m.etag}"` })
    expect(updated.etag).not.toBe(m.etag)
    expect(updated.generationId).toBe(m.generationId)
    expect(updated.moduleId).toBe('Filter')
    expect((await refusal(h.createOrUpdateModule({ deviceId: 'edge-1', moduleId: 'ghost', authentication: { type: 'sas' } }, { ifMatch: '*' }))).code).toBe('NOT_FOUND')

    // A device write keeps the modules.
    await h.createOrUpdateDevice({ deviceId: 'edge-1', status: 'disabled', authentication: { type: 'sas' } }, { ifMatch: '*' })
    expect(await h.getModule('edge-1', 'filter')).toEqual(updated)

    expect(await h.deleteModule('edge-1', 'aggregator', { ifMatch: '*' })).toBe(true)
    expect(await h.deleteModule('edge-1', 'aggregator')).toBe(false)
    expect((await h.listModules('edge-1'))!.map((x) => x.moduleId)).toEqual(['Filter'])
    // Deleting the device deletes its modules.
    await h.deleteDevice('edge-1')
    await h.createOrUpdateDevice({ deviceId: 'edge-1', authentication: { type: 'sas' } })
    expect(await h.listModules('edge-1')).toEqual([])
  })

  it('keeps a module twin apart from the device twin, with its own etag and versions', async () => {
    const h = hub()
    await h.createOrUpdateDevice({ deviceId: 'd', authentication: { type: 'sas' } })
    await h.createOrUpdateModule({ deviceId: 'd', moduleId: 'm', authentication: { type: 'sas' } })
    const before = (await h.getModuleTwin('d', 'm'))!
    expect(before).toMatchObject({ deviceId: 'd', moduleId: 'm', version: 1, properties: { desired: { $version: 1 }, reported: { $version: 1 } } })
    const patched = await h.updateModuleTwin('d', 'm', { tags: { site: 'a' }, properties: { desired: { rate: 5 } } }, { ifMatch: `"${before.etag}"` })
    expect(patched).toMatchObject({ version: 2, tags: { site: 'a' }, properties: { desired: { rate: 5, $version: 2 } } })
    expect(patched.etag).not.toBe(before.etag)
    expect((await refusal(h.updateModuleTwin('d', 'm', { tags: { x: 1 } }, { ifMatch: `"${before.etag}"` }))).code).toBe('PRECONDITION_FAILED')
    const replaced = await h.updateModuleTwin('d', 'm', { properties: { desired: { mode: 'b' } } }, { replace: true })
    expect(replaced.properties.desired).toEqual({ mode: 'b', $version: 3 })
    expect((await h.getTwin('d'))!.properties.desired).toEqual({ $version: 1 })
    expect((await refusal(h.updateModuleTwin('d', 'nope', { tags: {} }))).code).toBe('NOT_FOUND')
  })

  it(`refuses a module past ${MAX_MODULES_PER_DEVICE} per device, and modules of a missing device`, async () => {
    const h = hub()
    expect((await refusal(h.createOrUpdateModule({ deviceId: 'none', moduleId: 'm', authentication: { type: 'sas' } }))).code).toBe('NOT_FOUND')
    await h.createOrUpdateDevice({ deviceId: 'd', authentication: { type: 'none' } })
    for (let i = 0; i < MAX_MODULES_PER_DEVICE; i++) await h.createOrUpdateModule({ deviceId: 'd', moduleId: `m${i}`, authentication: { type: 'none' } })
    const tooMany = await refusal(h.createOrUpdateModule({ deviceId: 'd', moduleId: 'one-more', authentication: { type: 'none' } }))
    expect(tooMany).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining(`(${MAX_MODULES_PER_DEVICE})`) })
    expect((await refusal(h.createOrUpdateModule({ deviceId: 'd', moduleId: 'bad/id', authentication: { type: 'none' } }))).code).toBe('INVALID_DEVICE_ID')
  })

  it('two hubs on one store writing modules of one device at once lose neither', async () => {
    const store = new MemoryHubStore()
    const [a, b] = [hub(store), hub(store)]
    await a.createOrUpdateDevice({ deviceId: 'd', authentication: { type: 'none' } })
    await Promise.all([
      a.createOrUpdateModule({ deviceId: 'd', moduleId: 'from-a', authentication: { type: 'none' } }),
      b.createOrUpdateModule({ deviceId: 'd', moduleId: 'from-b', authentication: { type: 'none' } }),
    ])
    expect((await a.listModules('d'))!.map((m) => m.moduleId)).toEqual(['from-a', 'from-b'])
  })
})
