/**
 * A ready-made engine over a store with two linked hubs and one ID scope, for unit tests.
 */
import type { DeviceResponse, RegisterRequest, RegistrationOperationStatus } from '@provisio/protocol'
import { createEngine, MemoryStore, type Engine, type EngineOptions, type InstanceConfig, type Store } from '../../src/index.js'
import { key, ManualClock, RecordingHubGateway, SeededRandom } from './fakes.js'

export const ID_SCOPE = '0ne0000A0A1'
export const HUB_A = 'hub-a.azure-devices.net'
export const HUB_B = 'hub-b.azure-devices.net'
export const HUB_C = 'hub-c.azure-devices.net'
export const SERVICE_HOST = 'dps1.azure-devices-provisioning.net'
export const OWNER_KEY = key(32, 7)

export function hubConnectionString(host: string): string {
  return `HostName=${host};SharedAccessKeyName=iothubowner;SharedAccessKey=${key(32, 3)}`
}

export function instanceConfig(overrides: Partial<InstanceConfig> = {}): InstanceConfig {
  return {
    idScope: ID_SCOPE,
    serviceHostName: SERVICE_HOST,
    linkedHubs: [
      { hostName: HUB_A, connectionString: hubConnectionString(HUB_A), location: 'westeurope' },
      { hostName: HUB_B, connectionString: hubConnectionString(HUB_B), location: 'eastus' },
    ],
    accessPolicies: [
      {
        name: 'provisioningserviceowner',
        primaryKey: OWNER_KEY,
        secondaryKey: key(32, 8),
        permissions: ['ServiceConfig', 'EnrollmentRead', 'EnrollmentWrite', 'RegistrationStatusRead', 'RegistrationStatusWrite'],
      },
      { name: 'reader', primaryKey: key(32, 9), secondaryKey: key(32, 10), permissions: ['EnrollmentRead'] },
    ],
    ...overrides,
  }
}

/** An engine whose register never answers a TPM challenge (no TPM verifier): narrows the type for tests. */
export type TestEngine = Omit<Engine, 'register'> & { register(request: RegisterRequest): Promise<DeviceResponse<RegistrationOperationStatus>> }

/** Wraps an engine for symmetric-key tests: a TPM challenge there would be a bug, so it throws. */
export function testEngine(engine: Engine): TestEngine {
  return {
    ...engine,
    async register(request) {
      const reply = await engine.register(request)
      if (reply.status === 401) throw new Error(`unexpected TPM challenge for ${request.registrationId}`)
      return reply
    },
  }
}

export function setup(options: Partial<EngineOptions> & { store?: Store } = {}) {
  const clock = new ManualClock()
  const random = new SeededRandom()
  const hubs = new RecordingHubGateway()
  const store = options.store ?? new MemoryStore()
  const raw = createEngine({
    store,
    clock,
    random,
    hubGateway: hubs,
    instances: [instanceConfig()],
    assignmentBudgetMs: 1000,
    ...options,
  })
  const nowSeconds = () => Math.floor(clock.now() / 1000)
  return { engine: testEngine(raw), raw, clock, random, hubs, store, nowSeconds }
}
