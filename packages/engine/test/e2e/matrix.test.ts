/**
 * In-process end-to-end suite: enrollment kind × allocation policy ×
 * reprovision policy, with a recording HubGateway and the custom webhook on a real HTTP server.
 *
 * Each case: first registration lands on hub A with the initial twin; the service then changes a
 * desired property on hub A; the allocation is changed to point at hub B and the device registers
 * again; the reprovision policy decides what happens (migrate, reset, never); finally the device
 * is sent back to hub A (or forced, for never).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AllocationPolicy, JsonObject, ReprovisionPolicy } from '@provisio/protocol'
import { createEngine, MemoryStore, type RegistrationAssignedEvent } from '../../src/index.js'
import { deriveKey, deviceToken, key, ManualClock, nodeRandom, RecordingHubGateway } from '../helpers/fakes.js'
import { hubConnectionString, HUB_A, HUB_B, HUB_C, ID_SCOPE, instanceConfig, testEngine, type TestEngine } from '../helpers/setup.js'
import { nodeFetch, startWebhook, type WebhookServer } from './webhook-server.js'

const KINDS = ['individual', 'group'] as const
const POLICIES: AllocationPolicy[] = ['hashed', 'geoLatency', 'static', 'custom']
const REPROVISION: Record<'migrate' | 'reset' | 'never', ReprovisionPolicy> = {
  migrate: { updateHubAssignment: true, migrateDeviceData: true },
  reset: { updateHubAssignment: true, migrateDeviceData: false },
  never: { updateHubAssignment: false, migrateDeviceData: false },
}

let webhook: WebhookServer
beforeAll(async () => {
  webhook = await startWebhook()
})
afterAll(async () => {
  await webhook.close()
})

interface Harness {
  engine: TestEngine
  hubs: RecordingHubGateway
  clock: ManualClock
  assigned: RegistrationAssignedEvent[]
  /** Points the allocation at `hub` (per policy) and registers; returns the registration state. */
  registerTowards(hub: string, force?: boolean): Promise<{ assignedHub?: string; substatus?: string; deviceId?: string; payload?: JsonObject; status: string }>
}

const ENROLLMENT_TWIN = { tags: { fleet: 'matrix' }, properties: { desired: { interval: 30 } } }

async function harness(kind: (typeof KINDS)[number], policy: AllocationPolicy, reprovision: ReprovisionPolicy, registrationId: string): Promise<Harness> {
  const clock = new ManualClock()
  const hubs = new RecordingHubGateway()
  const engine = testEngine(createEngine({
    store: new MemoryStore(),
    clock,
    random: nodeRandom,
    hubGateway: hubs,
    fetch: nodeFetch,
    assignmentBudgetMs: 5000,
    rateLimits: { registrationsPerScope: false, pollsPerDevice: false },
    instances: [
      instanceConfig({
        linkedHubs: [
          { hostName: HUB_A, connectionString: hubConnectionString(HUB_A), location: 'westeurope' },
          { hostName: HUB_B, connectionString: hubConnectionString(HUB_B), location: 'eastus', allocationWeight: 3 },
          { hostName: HUB_C, connectionString: hubConnectionString(HUB_C), location: 'northeurope', applyAllocationPolicy: false },
        ],
        geoLatency: {
          latencyMs: {
            westeurope: { westeurope: 5, eastus: 90, northeurope: 20 },
            eastus: { westeurope: 90, eastus: 4, northeurope: 80 },
          },
        },
      }),
    ],
  }))
  const assigned: RegistrationAssignedEvent[] = []
  engine.on('registrationAssigned', (e) => assigned.push(e))

  const groupKey = key(64)
  const individualKey = key(32)
  const deviceKey = kind === 'individual' ? individualKey : deriveKey(groupKey, registrationId)
  const common = {
    allocationPolicy: policy,
    reprovisionPolicy: reprovision,
    initialTwin: ENROLLMENT_TWIN,
    capabilities: { iotEdge: kind === 'group' },
    ...(policy === 'custom' ? { customAllocationDefinition: { webhookUrl: webhook.url, apiVersion: '2021-10-01' } } : {}),
  }
  const hubSelection = (hub: string) =>
    policy === 'hashed' ? { iotHubs: [hub] } : policy === 'static' ? { iotHubHostName: hub } : {}
  const write = async (hub: string) => {
    if (kind === 'individual') {
      const current = await engine.getEnrollment(ID_SCOPE, registrationId).catch(() => undefined)
      await engine.createOrUpdateEnrollment(
        ID_SCOPE,
        { registrationId, deviceId: `${registrationId}-dev`, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: individualKey, secondaryKey: key(32) } }, ...common, ...hubSelection(hub) },
        current ? { ifMatch: current.etag! } : {},
      )
    } else {
      await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, {
        enrollmentGroupId: 'matrix-group',
        attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64) } },
        ...common,
        ...hubSelection(hub),
      })
    }
  }
  const region = (hub: string) => (hub === HUB_A ? 'westeurope' : 'eastus')

  return {
    engine,
    hubs,
    clock,
    assigned,
    async registerTowards(hub, force = false) {
      await write(hub)
      const payload: JsonObject = { region: region(hub), target: hub, modelId: 'dtmi:provisio:matrix;1' }
      const reply = await engine.register({
        idScope: ID_SCOPE,
        registrationId,
        evidence: { type: 'sas', token: deviceToken(ID_SCOPE, registrationId, deviceKey, Math.floor(clock.now() / 1000) + 3600) },
        payload,
        forceRegistration: force,
        apiVersion: '2021-10-01',
      })
      expect(reply.status).toBe(200)
      return reply.body.registrationState!
    },
  }
}

for (const kind of KINDS) {
  for (const policy of POLICIES) {
    for (const [name, reprovision] of Object.entries(REPROVISION)) {
      describe(`${kind} enrollment × ${policy} × ${name}`, () => {
        it('provisions, reprovisions per policy and keeps the hubs consistent', async () => {
          const registrationId = `m-${kind}-${policy}-${name}`.toLowerCase()
          const h = await harness(kind, policy, reprovision, registrationId)
          const deviceId = kind === 'individual' ? `${registrationId}-dev` : registrationId
          const webhookCallsBefore = webhook.requests.length

          // 1. first registration: hub A, initial twin, credentials, capabilities
          const first = await h.registerTowards(HUB_A)
          expect(first).toMatchObject({ status: 'assigned', assignedHub: HUB_A, deviceId, substatus: 'initialAssignment' })
          const onA = h.hubs.device(HUB_A, deviceId)!
          expect(onA.iotEdge).toBe(kind === 'group')
          expect(onA.auth.type).toBe('sas')
          if (policy === 'custom') {
            expect(onA.twin).toEqual({ tags: { from: 'webhook' }, properties: { desired: { webhook: true } } })
            expect(first.payload).toEqual({ echo: registrationId, url: '/api/allocate?code=function-key' })
            const request = webhook.requests[webhookCallsBefore]!
            const enrollment = request.individualEnrollment ?? request.enrollmentGroup
            expect(enrollment?.attestation).toEqual({ type: 'symmetricKey', symmetricKey: {} })
            expect(request.deviceRuntimeContext).toMatchObject({ registrationId, payload: { target: HUB_A } })
            expect(request.deviceRuntimeContext.currentIotHubHostName).toBeUndefined()
            // hub C has applyAllocationPolicy false: not offered to the webhook
            expect(request.linkedHubs).toEqual([HUB_A, HUB_B])
          } else {
            expect(onA.twin).toEqual(ENROLLMENT_TWIN)
            expect(first.payload).toBeUndefined()
          }

          // 2. the back end changes the twin on hub A
          onA.twin.properties!.desired!['changedOnHub'] = 'yes'

          // 3. allocation now points at hub B; re-register
          const second = await h.registerTowards(HUB_B)
          if (name === 'never') {
            expect(second).toMatchObject({ status: 'assigned', assignedHub: HUB_A, substatus: 'initialAssignment' })
            expect(h.hubs.device(HUB_B, deviceId)).toBeUndefined()
            expect(h.hubs.device(HUB_A, deviceId)!.twin.properties!.desired!['changedOnHub']).toBe('yes')
          } else {
            const substatus = name === 'migrate' ? 'deviceDataMigrated' : 'deviceDataReset'
            expect(second).toMatchObject({ status: 'assigned', assignedHub: HUB_B, substatus })
            expect(h.hubs.device(HUB_A, deviceId)).toBeUndefined() // old identity removed
            const onB = h.hubs.device(HUB_B, deviceId)!
            if (name === 'migrate') expect(onB.twin.properties!.desired!['changedOnHub']).toBe('yes')
            else expect(onB.twin).toEqual(ENROLLMENT_TWIN)
            if (policy === 'custom') {
              expect(webhook.requests[webhook.requests.length - 1]!.deviceRuntimeContext).toMatchObject({ currentIotHubHostName: HUB_A, currentDeviceId: deviceId })
            }
          }

          // 4. back to hub A (never: forced)
          const third = await h.registerTowards(HUB_A, name === 'never')
          if (name === 'never') {
            // Forced while pointing at A: already there, nothing moves.
            expect(third).toMatchObject({ assignedHub: HUB_A, substatus: 'initialAssignment' })
            const forced = await h.registerTowards(HUB_B, true)
            expect(forced).toMatchObject({ assignedHub: HUB_B, substatus: 'deviceDataReset' })
            expect(h.hubs.device(HUB_A, deviceId)).toBeUndefined()
          } else {
            expect(third).toMatchObject({ assignedHub: HUB_A, substatus: 'reprovisionedToInitialAssignment' })
            expect(h.hubs.device(HUB_B, deviceId)).toBeUndefined()
          }

          // every assignment emitted an event; the service view agrees with the device view
          expect(h.assigned.length).toBe(name === 'never' ? 4 : 3)
          const state = await h.engine.getRegistrationState(ID_SCOPE, registrationId.toUpperCase())
          expect(state.assignedHub).toBe(h.assigned[h.assigned.length - 1]!.assignedHub)
          if (kind === 'group') {
            const page = await h.engine.queryRegistrationStates(ID_SCOPE, 'matrix-group')
            expect(page.items.map((s) => s.registrationId)).toEqual([registrationId])
          }
        })
      })
    }
  }
}

describe('custom webhook failures over HTTP', () => {
  it('records 400207 with the status code when the webhook answers 400', async () => {
    const h = await harness('individual', 'custom', REPROVISION.migrate, 'hook-fails')
    webhook.failWith = 400
    try {
      await expect(h.registerTowards(HUB_A)).resolves.toMatchObject({ status: 'failed', errorCode: 400207, errorMessage: 'Custom allocation failed with status code: 400' })
    } finally {
      webhook.failWith = undefined
    }
    expect(h.hubs.calls).toHaveLength(0)
  })

  it('refuses a webhook answer naming a hub that is not linked', async () => {
    const h = await harness('group', 'custom', REPROVISION.migrate, 'hook-unlinked')
    const state = await h.registerTowards('rogue.azure-devices.net')
    expect(state).toMatchObject({ status: 'failed', errorCode: 400207 })
    expect(h.hubs.calls).toHaveLength(0)
  })
})
