import { describe, expect, it } from 'vitest'
import { isProvisioError } from '@provisio/protocol'
import { EmbeddedHub, MemoryHubStore, mergePatch } from '../src/index.js'

function hub() {
  let t = Date.UTC(2026, 0, 1)
  let r = 0
  return new EmbeddedHub('hub.example', {
    store: new MemoryHubStore(),
    clock: { now: () => (t += 1000) },
    random: { bytes: (n) => Uint8Array.from({ length: n }, () => (r = (r * 1103515245 + 12345) & 0xff)) },
  })
}

describe('EmbeddedHub registry', () => {
  it('creates a SAS device, generating keys omitted on create, with a fresh twin', async () => {
    const h = hub()
    const d = await h.createOrUpdateDevice({ deviceId: 'Dev-1', authentication: { type: 'sas' } })
    expect(d.deviceId).toBe('Dev-1')
    expect(d.status).toBe('enabled')
    expect(d.authentication.symmetricKey?.primaryKey).toMatch(/^[A-Za-z0-9+/]{43}=$/)
    expect(d.authentication.symmetricKey?.secondaryKey).not.toBe(d.authentication.symmetricKey?.primaryKey)
    const twin = await h.getTwin('dev-1')
    expect(twin).toMatchObject({ deviceId: 'Dev-1', version: 1, authenticationType: 'sas', properties: { desired: { $version: 1 }, reported: { $version: 1 } } })
  })

  it('update is idempotent on identity: same generationId and casing, new etag, twin kept', async () => {
    const h = hub()
    const a = await h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'sas', symmetricKey: { primaryKey: 'a'.repeat(44), secondaryKey: 'b'.repeat(44) } } })
    await h.updateTwin('dev', { tags: { site: 'x' } })
    const b = await h.createOrUpdateDevice({ deviceId: 'DEV', authentication: { type: 'sas', symmetricKey: { primaryKey: 'c'.repeat(44), secondaryKey: 'd'.repeat(44) } }, capabilities: { iotEdge: true } })
    expect(b.generationId).toBe(a.generationId)
    expect(b.deviceId).toBe('dev')
    expect(b.etag).not.toBe(a.etag)
    expect(b.authentication.symmetricKey?.primaryKey).toBe('c'.repeat(44))
    const twin = await h.getTwin('dev')
    expect(twin?.tags).toEqual({ site: 'x' })
    expect(twin?.capabilities.iotEdge).toBe(true)
  })

  it('refuses an invalid device id and a selfSigned device without thumbprint, naming the rule', async () => {
    const h = hub()
    await expect(h.createOrUpdateDevice({ deviceId: 'bad id with spaces', authentication: { type: 'sas' } })).rejects.toSatisfy(isProvisioError)
    await expect(h.createOrUpdateDevice({ deviceId: 'x', authentication: { type: 'selfSigned' } })).rejects.toThrow(/primaryThumbprint is required/)
  })

  it('honours If-Match on update and delete', async () => {
    const h = hub()
    const d = await h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'none' } })
    await expect(h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'none' } }, { ifMatch: '"stale"' })).rejects.toMatchObject({ code: 'PRECONDITION_FAILED' })
    await expect(h.deleteDevice('dev', { ifMatch: 'stale' })).rejects.toMatchObject({ httpStatus: 412 })
    expect(await h.deleteDevice('dev', { ifMatch: `"${d.etag}"` })).toBe(true)
    expect(await h.deleteDevice('dev')).toBe(false)
    expect(await h.getDevice('dev')).toBeUndefined()
  })

  it('lists devices in id order, page by page', async () => {
    const h = hub()
    for (const id of ['c', 'a', 'd', 'b']) await h.createOrUpdateDevice({ deviceId: id, authentication: { type: 'none' } })
    expect((await h.listDevices({ limit: 2 })).map((d) => d.deviceId)).toEqual(['a', 'b'])
    expect((await h.listDevices({ limit: 2, after: 'b' })).map((d) => d.deviceId)).toEqual(['c', 'd'])
    expect(await h.listDevices({ after: 'd' })).toEqual([])
  })
})

describe('twins', () => {
  it('merge-patches desired properties, null removes, versions count changes', async () => {
    const h = hub()
    await h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'none' } })
    await h.updateTwin('dev', { properties: { desired: { fw: { version: '1.0', url: 'u' }, interval: 5 } } })
    const t = await h.updateTwin('dev', { properties: { desired: { fw: { url: null }, interval: 10 } } })
    expect(t.properties.desired).toEqual({ fw: { version: '1.0' }, interval: 10, $version: 3 })
    expect(t.version).toBe(3)
    const r = await h.updateTwin('dev', { tags: { a: 1 }, properties: { desired: { only: true } } }, { replace: true })
    expect(r.properties.desired).toEqual({ only: true, $version: 4 })
    expect(r.tags).toEqual({ a: 1 })
  })

  it('keeps reported properties with their own $version', async () => {
    const h = hub()
    await h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'none' } })
    expect(await h.patchReported('dev', { temp: 21, nested: { a: 1 } })).toBe(2)
    expect(await h.patchReported('dev', { nested: { a: null, b: 2 } })).toBe(3)
    expect((await h.getTwin('dev'))?.properties.reported).toEqual({ temp: 21, nested: { b: 2 }, $version: 3 })
  })

  it('refuses a twin update for an unknown device or a stale etag', async () => {
    const h = hub()
    await expect(h.updateTwin('ghost', { tags: {} })).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'none' } })
    await expect(h.updateTwin('dev', { tags: {} }, { ifMatch: 'nope' })).rejects.toMatchObject({ code: 'PRECONDITION_FAILED' })
  })

  it('mergePatch follows RFC 7396 examples', () => {
    expect(mergePatch({ a: 'b', c: { d: 'e', f: 'g' } }, { a: 'z', c: { f: null } })).toEqual({ a: 'z', c: { d: 'e' } })
    expect(mergePatch({ a: [1] }, { a: [2, 3] })).toEqual({ a: [2, 3] })
    expect(mergePatch({ a: 'x' }, { a: { b: null } })).toEqual({ a: {} })
  })
})

describe('identity and twin in one write', () => {
  it('applies the twin with the identity: merged on creation, replaced on an existing device when asked', async () => {
    const h = hub()
    await h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'none' } }, { twin: { tags: { a: 1 }, properties: { desired: { x: 1 } } }, replaceTwin: true })
    expect((await h.getTwin('dev'))).toMatchObject({ tags: { a: 1 }, version: 2, properties: { desired: { x: 1, $version: 2 } } })
    await h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'none' } }, { twin: { tags: { b: 2 } }, replaceTwin: true })
    expect((await h.getTwin('dev'))?.tags).toEqual({ b: 2 })
    await h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'none' } }, { twin: { tags: { c: 3 } } })
    expect((await h.getTwin('dev'))?.tags).toEqual({ b: 2, c: 3 })
  })
})

describe('registry create and update semantics', () => {
  it('create refuses an existing id with CONFLICT; update of a missing id is NOT_FOUND', async () => {
    const h = hub()
    await h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'none' } }, { ifNoneMatch: true })
    await expect(h.createOrUpdateDevice({ deviceId: 'DEV', authentication: { type: 'none' } }, { ifNoneMatch: true })).rejects.toMatchObject({ code: 'CONFLICT' })
    await expect(h.createOrUpdateDevice({ deviceId: 'ghost', authentication: { type: 'none' } }, { ifMatch: '*' })).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(h.createOrUpdateDevice({ deviceId: 'dev', authentication: { type: 'none' }, status: 'disabled' }, { ifMatch: '*' })).resolves.toMatchObject({ status: 'disabled' })
  })
})

describe('twin patches that clear a section', () => {
  it('{"properties":{"desired":null}} clears desired and pushes the removed properties as null; {"tags":null} clears tags', async () => {
    const h = hub()
    await h.createOrUpdateDevice({ deviceId: 'clr', authentication: { type: 'sas' } })
    await h.updateTwin('clr', { tags: { a: 1 }, properties: { desired: { x: 1, y: { z: 2 } } } })
    const pushed: unknown[] = []
    h.onDesiredChange((c) => pushed.push(c.patch))
    const twin = await h.updateTwin('clr', { properties: { desired: null } })
    expect(twin.properties.desired).toEqual({ $version: 3 })
    expect(pushed).toEqual([{ x: null, y: null, $version: 3 }])
    const untagged = await h.updateTwin('clr', { tags: null })
    expect(untagged.tags).toEqual({})
    expect(untagged.properties.desired.$version).toBe(3)
    expect(pushed).toHaveLength(1)
  })

  it('validateTwinPatch keeps a null section and still refuses other non-objects', async () => {
    const { validateTwinPatch } = await import('@provisio/protocol')
    expect(validateTwinPatch({ tags: null, properties: { desired: null } })).toEqual({ tags: null, properties: { desired: null } })
    expect(() => validateTwinPatch({ tags: 3 })).toThrow(/tags: must be an object/)
    expect(() => validateTwinPatch({ properties: { desired: [] } })).toThrow(/properties.desired: must be an object/)
  })
})

describe('IoT Edge scopes', () => {
  it('an Edge device gets its own scope; a leaf names its parent in deviceScope, an Edge child in parentScopes; unknown parents are refused', async () => {
    const h = hub()
    const gw = await h.createOrUpdateDevice({ deviceId: 'gw', authentication: { type: 'sas' }, capabilities: { iotEdge: true } })
    expect(gw.deviceScope).toBe(`ms-azure-iot-edge://gw-${gw.generationId}`)
    expect(gw.parentScopes).toEqual([])
    const leaf = await h.createOrUpdateDevice({ deviceId: 'leaf', authentication: { type: 'sas' }, deviceScope: gw.deviceScope! })
    expect(leaf).toMatchObject({ deviceScope: gw.deviceScope, parentScopes: [gw.deviceScope] })
    const child = await h.createOrUpdateDevice({ deviceId: 'child', authentication: { type: 'sas' }, capabilities: { iotEdge: true }, parentScopes: [gw.deviceScope!] })
    expect(child).toMatchObject({ deviceScope: `ms-azure-iot-edge://child-${child.generationId}`, parentScopes: [gw.deviceScope] })
    // Named nowhere in an update: the parent stays; '' removes it.
    expect((await h.createOrUpdateDevice({ deviceId: 'leaf', authentication: { type: 'sas' } })).deviceScope).toBe(gw.deviceScope)
    const orphan = await h.createOrUpdateDevice({ deviceId: 'leaf', authentication: { type: 'sas' }, deviceScope: '' })
    expect(orphan.deviceScope).toBeUndefined()
    expect(orphan.parentScopes).toEqual([])
    await expect(h.createOrUpdateDevice({ deviceId: 'x', authentication: { type: 'sas' }, deviceScope: 'ms-azure-iot-edge://leaf-1' })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      reason: expect.stringContaining('is not the scope of an IoT Edge device'),
    })
  })
})
