// DPS over MQTT, proven with Microsoft's own MQTT provisioning client over real TLS and WSS on
// loopback: azure-iot-provisioning-device-mqtt (`Mqtt` and `MqttWs`) with the symmetric-key
// security client registers against `provisio serve`.
//
// Pointing the unmodified clients at the test server (docs/protocol.md §11): `Mqtt` connects to
// `mqtts://<host>`, so `localhost:<port>` works as the host. `MqttWs` always builds
// `wss://<host>:443/$iothub/websocket`; the transport takes an MqttBase, whose public
// `setOptions({ mqtt: { webSocketAgent } })` hands mqtt.js an https.Agent — ours opens its TLS
// connections to the test server's HTTPS port instead of 443. Both trust the dev CA through
// `setOptions({ ca })`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Mqtt, MqttWs } from 'azure-iot-provisioning-device-mqtt'
import { MqttBase } from 'azure-iot-mqtt-base'
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key'
import { deriveDeviceKey } from '@provisio/crypto'
import { startTestServer, type TestServer } from '../lib/server.js'
import { startEchoWebhook } from '../lib/webhook.js'
import { webSocketAgent } from '../lib/tls-plumbing.js'


let server: TestServer
const key = (seed: number) => Buffer.alloc(32, seed).toString('base64')
const GROUP_KEY = Buffer.alloc(64, 0x42).toString('base64')

interface RegistrationResult {
  assignedHub: string
  deviceId: string
  payload?: unknown
}

const TRANSPORTS = {
  Mqtt: {
    label: 'mqtt',
    host: () => `localhost:${server.endpoints.ports.mqtt}`,
    make: () => {
      const base = new MqttBase()
      base.setOptions({ ca: server.caPem } as never)
      return new Mqtt(base as never)
    },
  },
  MqttWs: {
    label: 'mqtt-ws',
    host: () => 'localhost',
    make: () => {
      const base = new MqttBase()
      base.setOptions({ ca: server.caPem, mqtt: { webSocketAgent: webSocketAgent(server) } } as never)
      return new MqttWs(base as never)
    },
  },
} as const

function register(transport: keyof typeof TRANSPORTS, registrationId: string, deviceKey: string, payload?: object): Promise<RegistrationResult> {
  const t = TRANSPORTS[transport]
  // Two copies of azure-iot-common in node_modules make the SDK's own types disagree; the objects fit.
  const client = ProvisioningDeviceClient.create(t.host(), server.endpoints.idScope, t.make() as never, new SymmetricKeySecurityClient(registrationId, deviceKey) as never)
  if (payload !== undefined) client.setProvisioningPayload(payload as never)
  return new Promise((resolve, reject) => {
    client.register((err?: Error, result?: unknown) => (err ? reject(err) : resolve(result as RegistrationResult)))
  })
}

beforeAll(async () => {
  // Azure's exact flow (202 assigning, then polls): the throttling case counts 429s on the polls.
  // The default fast path (200 assigned on register) is proved for Mqtt and MqttWs in fast-path.test.ts.
  server = await startTestServer({ assignmentBudgetMs: 0 })
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'mqtt-fleet',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: Buffer.alloc(64, 0x43).toString('base64') } },
    initialTwin: { properties: { desired: { fleet: 'mqtt' } } },
  })
})

afterAll(async () => {
  await server?.stop()
})

describe.each(Object.keys(TRANSPORTS) as (keyof typeof TRANSPORTS)[])('azure-iot-provisioning-device-mqtt %s + azure-iot-security-symmetric-key', (transport) => {
  const label = TRANSPORTS[transport].label
  const id = (name: string) => `${label}-${name}`

  it('registers an individual enrollment and lands on the embedded hub', async () => {
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId: id('individual'),
      deviceId: id('device'),
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(1), secondaryKey: key(2) } },
      initialTwin: { tags: { site: 'lab' } },
    })
    const before = await server.metrics.attempts.get([label, 'symmetricKey'])
    const result = await register(transport, id('individual'), key(1))
    expect(result.assignedHub).toBe('localhost')
    expect(result.deviceId).toBe(id('device'))
    const device = await server.hubs.get('localhost')!.getDevice(id('device'))
    expect(device?.authentication.symmetricKey?.primaryKey).toBe(key(1))
    // The request really came through this transport.
    expect(await server.metrics.attempts.get([label, 'symmetricKey'])).toBe(before + 1)
  })

  it('registers through a group enrollment with a derived key, carrying a payload', async () => {
    const registrationId = id('group-member-7')
    const result = await register(transport, registrationId, deriveDeviceKey(GROUP_KEY, registrationId), { modelId: 'dtmi:provisio:mqtt;1' })
    expect(result.deviceId).toBe(registrationId)
    const record = await server.engine.getRegistrationRecord(server.endpoints.idScope, registrationId)
    expect(record?.state.status).toBe('assigned')
    expect(record?.enrollmentGroupId).toBe('mqtt-fleet')
    expect((await server.hubs.get('localhost')!.getTwin(registrationId))?.properties.desired).toMatchObject({ fleet: 'mqtt' })
  })

  it('carries the device payload to a custom allocation webhook and its answer back to the device', async () => {
    const webhook = await startEchoWebhook()
    const seen = webhook.seen
    try {
      await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
        registrationId: id('custom'),
        allocationPolicy: 'custom',
        customAllocationDefinition: { webhookUrl: webhook.url, apiVersion: '2021-10-01' },
        attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(11), secondaryKey: key(12) } },
      })
      const result = await register(transport, id('custom'), key(11), { modelId: 'dtmi:provisio:mqtt;1', via: label })
      expect(seen).toEqual([{ modelId: 'dtmi:provisio:mqtt;1', via: label }])
      expect(result.payload).toEqual({ echo: { modelId: 'dtmi:provisio:mqtt;1', via: label } })
    } finally {
      await webhook.close()
    }
  })

  it('refuses a wrong key at CONNECT', async () => {
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId: id('wrong-key'),
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(3), secondaryKey: key(4) } },
    })
    const refusedBefore = await server.metrics.responses.get([label, 'authenticate', '401'])
    await expect(register(transport, id('wrong-key'), key(9))).rejects.toThrow()
    // Refused by the CONNECT check (CONNACK 5), before any register call.
    expect(await server.metrics.responses.get([label, 'authenticate', '401'])).toBe(refusedBefore + 1)
    expect(await server.hubs.get('localhost')!.getDevice(id('wrong-key'))).toBeUndefined()
    expect((server as unknown as { logs: string[] }).logs.some((l) => l.includes('mqtt connect refused') && l.includes(id('wrong-key')))).toBe(true)
  })

  it('answers 429 with retry-after to a throttled register and poll; the client waits and retries', async () => {
    const registrationId = id('throttled')
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key(5), secondaryKey: key(6) } },
    })
    const registers429 = await server.metrics.responses.get([label, 'register', '429'])
    const polls429 = await server.metrics.responses.get([label, 'operationStatus', '429'])
    server.engine.setFaultProfile(server.endpoints.idScope, {
      throttleRegister: { firstAttempts: 1, retryAfterSeconds: 1 },
      throttlePoll: { firstAttempts: 1, retryAfterSeconds: 1 },
    })
    try {
      const result = await register(transport, registrationId, key(5))
      expect(result.deviceId).toBe(registrationId)
    } finally {
      server.engine.setFaultProfile(server.endpoints.idScope, undefined)
    }
    expect(await server.metrics.responses.get([label, 'register', '429'])).toBe(registers429 + 1)
    expect(await server.metrics.responses.get([label, 'operationStatus', '429'])).toBe(polls429 + 1)
    expect(await server.metrics.responses.get([label, 'register', '202'])).toBeGreaterThanOrEqual(1)
  })
})
