// Several embedded hubs declared in the configuration, linked to DPS with weights, and a device
// reprovisioned between two of them — once migrating its twin, once resetting it (docs/protocol.md
// §7 ReprovisionPolicy). Registration goes through Microsoft's HTTP device client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key'
import { startTestServer, type TestServer } from '../lib/server.js'

const HUB_A = 'hub-a.example'
const HUB_B = 'hub-b.example'
const HUBS = [{ hostName: HUB_A, allocationWeight: 3 }, { hostName: HUB_B, applyAllocationPolicy: false }]
let server: TestServer

beforeAll(async () => {
  server = await startTestServer({ hubs: HUBS })
  server.useAsDefaultHttpsAgent()
})

afterAll(async () => {
  await server?.stop()
})

interface Result {
  assignedHub: string
  deviceId: string
  substatus?: string
}

function register(id: string, key: string): Promise<Result> {
  const client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(), new SymmetricKeySecurityClient(id, key) as never)
  return new Promise((resolve, reject) => client.register((err?: Error, r?: unknown) => (err ? reject(err) : resolve(r as Result))))
}

describe('hubs declared in the configuration', () => {
  it('are embedded, linked with their weights and listed in endpoints.json', () => {
    expect(server.endpoints.hubs.map((h) => h.hostName)).toEqual([HUB_A, HUB_B])
    expect(server.hubs.hostNames()).toEqual([HUB_A, HUB_B])
    const linked = server.engine.getInstance(server.endpoints.idScope)!.linkedHubs
    expect(linked.map((h) => [h.hostName, h.allocationWeight ?? 1, h.applyAllocationPolicy ?? true])).toEqual([
      [HUB_A, 3, true],
      [HUB_B, 1, false],
    ])
    for (const h of server.endpoints.hubs) expect(h.connectionString).toMatch(new RegExp(`^HostName=${h.hostName.replace(/\./g, '\\.')};SharedAccessKeyName=iothubowner;SharedAccessKey=`))
  })

  it('hashed allocation never picks a hub with applyAllocationPolicy false', async () => {
    const key = Buffer.alloc(32, 21).toString('base64')
    for (let i = 0; i < 4; i++) {
      await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
        registrationId: `hashed-${i}`,
        attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key, secondaryKey: key } },
      })
      expect((await register(`hashed-${i}`, key)).assignedHub).toBe(HUB_A)
    }
  })

  it.each([
    [true, 'deviceDataMigrated'],
    [false, 'deviceDataReset'],
  ])('moves a device from hub A to hub B (migrateDeviceData %s → %s)', async (migrate, substatus) => {
    const id = `moving-${migrate}`
    const key = Buffer.alloc(32, migrate ? 31 : 32).toString('base64')
    const scope = server.endpoints.idScope
    const enrollment = {
      registrationId: id,
      allocationPolicy: 'static',
      iotHubs: [HUB_A],
      reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: migrate },
      initialTwin: { tags: { origin: 'enrollment' }, properties: { desired: { interval: 10 } } },
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key, secondaryKey: key } },
    }
    await server.engine.createOrUpdateEnrollment(scope, enrollment)
    const first = await register(id, key)
    expect(first).toMatchObject({ assignedHub: HUB_A, substatus: 'initialAssignment' })
    // The service changes the twin on hub A after provisioning.
    await server.hubs.get(HUB_A)!.updateTwin(id, { properties: { desired: { firmware: '2.0' } } })

    const current = await server.engine.getEnrollment(scope, id)
    // GET hides the keys; a PUT without them would generate new ones (as DPS does), so send them again.
    await server.engine.createOrUpdateEnrollment(scope, { ...current, attestation: enrollment.attestation, iotHubs: [HUB_B] }, { ifMatch: current.etag! })
    const second = await register(id, key)
    expect(second).toMatchObject({ assignedHub: HUB_B, substatus })

    const twinB = await server.hubs.get(HUB_B)!.getTwin(id)
    if (migrate) expect(twinB?.properties.desired).toMatchObject({ interval: 10, firmware: '2.0' })
    else {
      expect(twinB?.properties.desired).toMatchObject({ interval: 10 })
      expect(twinB?.properties.desired).not.toHaveProperty('firmware')
    }
    expect(twinB?.tags).toEqual({ origin: 'enrollment' })
    // The identity left hub A.
    expect(await server.hubs.get(HUB_A)!.getDevice(id)).toBeUndefined()
  })

  it('keeps each hub\'s keys across restarts and adds newly declared hubs', async () => {
    const first = await startTestServer({ hubs: [{ hostName: HUB_A }] })
    const dataDir = first.dataDir
    const keyA = first.endpoints.hubs[0]!.connectionString
    await first.close()
    const again = await startTestServer({ dataDir, hubs: [{ hostName: HUB_A }, { hostName: 'hub-c.example' }] })
    try {
      expect(again.endpoints.hubs[0]!.connectionString).toBe(keyA)
      expect(again.endpoints.hubs.map((h) => h.hostName)).toEqual([HUB_A, 'hub-c.example'])
      expect(again.endpoints.idScope).toBe(first.endpoints.idScope)
    } finally {
      await again.stop()
    }
  })
})
