// DPS over AMQP, proven with Microsoft's own client over real TLS and WSS on loopback: the Node device
// SDK's AMQP transports (Amqp over AMQPS, AmqpWs over WebSockets on the HTTPS port) with the
// symmetric-key security client register against `provisio serve` (docs/protocol.md §4).
//
// Test-side plumbing only, the clients stay unmodified: the Amqp transport passes no CA to rhea's
// tls.connect, so connections to our AMQPS port get the dev CA added; AmqpWs always dials port
// 443 (§11), so its `webSocketAgent` transport option gets an https.Agent whose connections go
// to our HTTPS port instead.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Amqp, AmqpWs } from 'azure-iot-provisioning-device-amqp'
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key'
import { deriveDeviceKey } from '@provisio/crypto'
import { startTestServer, type TestServer } from '../lib/server.js'
import { startEchoWebhook } from '../lib/webhook.js'
import { trustCaOnPort, webSocketAgent } from '../lib/tls-plumbing.js'


let server: TestServer
let restoreTls: () => void

const key = (seed: number) => Buffer.alloc(32, seed).toString('base64')

interface RegistrationResult {
  assignedHub: string
  deviceId: string
  status?: string
  payload?: unknown
}

function register(transport: 'amqp' | 'amqp-ws', registrationId: string, deviceKey: string, payload?: object): Promise<RegistrationResult> {
  let client: ReturnType<typeof ProvisioningDeviceClient.create>
  if (transport === 'amqp') {
    client = ProvisioningDeviceClient.create(`localhost:${server.endpoints.ports.amqp}`, server.endpoints.idScope, new Amqp() as never,
      // Two copies of azure-iot-common in node_modules make the SDK's own types disagree; the objects fit.
      new SymmetricKeySecurityClient(registrationId, deviceKey) as never)
  } else {
    const ws = new AmqpWs()
    ws.setTransportOptions({ webSocketAgent: webSocketAgent(server) } as never)
    client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, ws as never, new SymmetricKeySecurityClient(registrationId, deviceKey) as never)
  }
  if (payload !== undefined) client.setProvisioningPayload(payload as never)
  return new Promise((resolve, reject) => {
    client.register((err?: Error, result?: unknown) => (err ? reject(err) : resolve(result as RegistrationResult)))
  })
}

function logs(): string[] {
  return (server as unknown as { logs: string[] }).logs
}

beforeAll(async () => {
  server = await startTestServer()
  restoreTls = trustCaOnPort(server.endpoints.ports.amqp, server.caPem)
})

afterAll(async () => {
  restoreTls?.()
  await server?.stop()
})

describe('azure-iot-provisioning-device-amqp + azure-iot-security-symmetric-key', () => {
  it('Amqp registers an individual enrollment and lands on the embedded hub', async () => {
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId: 'amqp-individual-1',
      deviceId: 'amqp-device-1',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(21), secondaryKey: key(22) } },
      initialTwin: { tags: { via: 'amqp' } },
    })
    const result = await register('amqp', 'amqp-individual-1', key(21))
    expect(result.status).toBe('assigned')
    expect(result.assignedHub).toBe('localhost')
    expect(result.deviceId).toBe('amqp-device-1')
    const hub = server.hubs.get('localhost')!
    expect((await hub.getDevice('amqp-device-1'))?.authentication.symmetricKey?.primaryKey).toBe(key(21))
    expect((await hub.getTwin('amqp-device-1'))?.tags).toEqual({ via: 'amqp' })
    // The requests went over AMQP, as the metrics count them.
    expect(await server.metrics.render()).toMatch(/transport="amqp"/)
  })

  it('AmqpWs registers an individual enrollment over WebSockets on the HTTPS port', async () => {
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId: 'amqp-ws-individual-1',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(23), secondaryKey: key(24) } },
    })
    const before = await server.metrics.attempts.get(['amqp-ws', 'symmetricKey'])
    const result = await register('amqp-ws', 'amqp-ws-individual-1', key(24))
    expect(result.status).toBe('assigned')
    // Counted under its own transport label in /metrics.
    expect(await server.metrics.attempts.get(['amqp-ws', 'symmetricKey'])).toBe(before + 1)
    expect(result.deviceId).toBe('amqp-ws-individual-1')
    expect(await server.hubs.get('localhost')!.getDevice('amqp-ws-individual-1')).toBeDefined()
  })

  it.each(['amqp', 'amqp-ws'] as const)('%s registers through a group enrollment with a derived key and a payload', async (transport) => {
    const groupKey = Buffer.alloc(64, transport === 'amqp' ? 31 : 32).toString('base64')
    const groupId = `amqp-group-${transport}`
    await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
      enrollmentGroupId: groupId,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: Buffer.alloc(64, 9).toString('base64') } },
      initialTwin: { properties: { desired: { fleet: transport } } },
    })
    const registrationId = `${groupId}-member-7`
    const result = await register(transport, registrationId, deriveDeviceKey(groupKey, registrationId), { modelId: 'dtmi:provisio:test;1' })
    expect(result.deviceId).toBe(registrationId)
    const state = await server.engine.getRegistrationState(server.endpoints.idScope, registrationId)
    expect(state.status).toBe('assigned')
    expect((await server.hubs.get('localhost')!.getTwin(registrationId))?.properties.desired).toMatchObject({ fleet: transport })
  })

  it('carries the device payload to a custom allocation webhook and its answer back (AmqpWs and Amqp)', async () => {
    const webhook = await startEchoWebhook()
    const seen = webhook.seen
    try {
      const url = webhook.url
      for (const [transport, seed] of [['amqp-ws', 41], ['amqp', 43]] as const) {
        const registrationId = `amqp-custom-${transport}`
        await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
          registrationId,
          allocationPolicy: 'custom',
          customAllocationDefinition: { webhookUrl: url, apiVersion: '2021-10-01' },
          attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(seed), secondaryKey: key(seed + 1) } },
        })
        const result = await register(transport, registrationId, key(seed), { modelId: 'dtmi:provisio:test;1', transport })
        expect(result.payload).toEqual({ echo: { modelId: 'dtmi:provisio:test;1', transport } })
      }
      expect(seen).toEqual([
        { modelId: 'dtmi:provisio:test;1', transport: 'amqp-ws' },
        { modelId: 'dtmi:provisio:test;1', transport: 'amqp' },
      ])
    } finally {
      await webhook.close()
    }
  })

  // Transient refusals (§4): the request delivery is rejected with the catalog condition, the JSON
  // error body as description and retry-after in info. The Node client then retries only if its
  // `instanceof ThrottlingError/InternalServerError` check holds; in this install
  // azure-iot-amqp-base and azure-iot-provisioning-device-amqp each carry their own copy of
  // azure-iot-common, so the check fails and the client reports the rejection instead. What it
  // received is checked field by field, then the same device registers once the fault is gone.
  it.each([
    ['throttled register', { throttleRegister: { firstAttempts: 1, retryAfterSeconds: 4 } }, 'com.microsoft:device-container-throttled', 429001, 4],
    ['register answered 503', { serverErrorRegister: { firstAttempts: 1, status: 503 as const, retryAfterSeconds: 2 } }, 'amqp:internal-error', 503001, 2],
  ] as const)('Amqp: a %s is a rejected delivery carrying the condition, the JSON error body and retry-after', async (label, profile, condition, errorCode, retryAfter) => {
    const registrationId = `amqp-fault-${label.replace(/[^a-z0-9]+/g, '-')}`
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(61), secondaryKey: key(62) } },
    })
    server.engine.setFaultProfile(server.endpoints.idScope, profile)
    let refusal: { condition?: string; description?: string; info?: Record<string, unknown> } | undefined
    try {
      await register('amqp', registrationId, key(61)).catch((error: unknown) => {
        refusal = JSON.parse(JSON.stringify(error)) as typeof refusal
      })
    } finally {
      server.engine.setFaultProfile(server.endpoints.idScope, undefined)
    }
    expect(refusal?.condition).toBe(condition)
    expect(JSON.parse(refusal!.description!)).toMatchObject({ errorCode })
    expect(refusal?.info).toEqual({ 'retry-after': retryAfter, 'Retry-After': retryAfter })
    const result = await register('amqp', registrationId, key(61))
    expect(result.status).toBe('assigned')
  })

  it.each(['amqp', 'amqp-ws'] as const)('%s: a wrong key is refused at SASL, before any link or registration', async (transport) => {
    const registrationId = `amqp-wrong-key-${transport}`
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(51), secondaryKey: key(52) } },
    })
    const before = logs().length
    await expect(register(transport, registrationId, key(59))).rejects.toThrow()
    const refusals = logs()
      .slice(before)
      .filter((line) => line.includes('amqp connection refused') && line.includes('sasl-refused'))
    expect(refusals.length).toBeGreaterThan(0)
    expect(refusals[0]).toContain(registrationId)
    expect(await server.hubs.get('localhost')!.getDevice(registrationId)).toBeUndefined()
    await expect(server.engine.getRegistrationState(server.endpoints.idScope, registrationId)).rejects.toThrow()
  })
})
