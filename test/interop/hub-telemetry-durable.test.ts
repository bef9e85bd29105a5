// Durable telemetry with Microsoft's device client: azure-iot-device over Mqtt and MqttWs sends
// messages with application and system properties; each send resolves on PUBACK, which the hub
// sends only once the message is stored (docs/protocol.md §12.1). The server is then stopped and a
// new one started on the same data directory: the messages are read back from it with their
// properties and the hub's system properties.
import { rmSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { Client, Message } from 'azure-iot-device'
import { Mqtt as DeviceMqtt, MqttWs as DeviceMqttWs } from 'azure-iot-device-mqtt'
import { NoRetry } from 'azure-iot-common'
import { readHubTelemetry } from '../lib/mqtt.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { registryOn } from '../lib/registry.js'
import { loopbackHttpsAgent, redirectMqtts } from '../lib/tls-plumbing.js'

const HUB = 'hub-durable.example'
let dataDir: string | undefined
let server: TestServer | undefined
let undoRedirect: (() => void) | undefined

afterAll(async () => {
  undoRedirect?.()
  await server?.stop()
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
})

describe('telemetry stored before PUBACK survives a restart', () => {
  it('azure-iot-device over Mqtt and MqttWs sends; a restarted server reads every message with its properties', async () => {
    const first = await startTestServer({ hubs: [{ hostName: HUB }] })
    server = first
    dataDir = first.dataDir
    first.useAsDefaultHttpsAgent()
    undoRedirect = redirectMqtts(first)
    const registry = registryOn(first, first.endpoints.hubs.find((h) => h.hostName === HUB)!.connectionString)
    const key = Buffer.alloc(32, 0x31).toString('base64')
    const sent: Record<string, string[]> = {}
    for (const transport of ['Mqtt', 'MqttWs'] as const) {
      const deviceId = `durable-${transport.toLowerCase()}`
      await registry.create({ deviceId, authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } } } as never)
      const client = Client.fromConnectionString(`HostName=${HUB};DeviceId=${deviceId};SharedAccessKey=${key}`, transport === 'Mqtt' ? DeviceMqtt : DeviceMqttWs)
      client.setRetryPolicy(new NoRetry())
      await client.setOptions(transport === 'Mqtt' ? { ca: first.caPem } : ({ ca: first.caPem, mqtt: { webSocketAgent: loopbackHttpsAgent(first) } } as never))
      await client.open()
      sent[deviceId] = []
      // Sent concurrently: the hub stores them in group commits and acknowledges in order.
      const sends: Promise<unknown>[] = []
      for (let i = 0; i < 20; i++) {
        const message = new Message(JSON.stringify({ i, transport }))
        message.properties.add('seq', String(i))
        message.messageId = `${deviceId}-${i}`
        message.correlationId = `corr-${i}`
        message.contentType = 'application/json'
        message.contentEncoding = 'utf-8'
        sent[deviceId].push(JSON.stringify({ i, transport }))
        sends.push(client.sendEvent(message))
      }
      await Promise.all(sends)
      await client.close()
    }
    undoRedirect()
    undoRedirect = undefined
    await first.close()
    server = undefined

    const second = await startTestServer({ hubs: [{ hostName: HUB }], dataDir })
    server = second
    second.useAsDefaultHttpsAgent()
    for (const [deviceId, bodies] of Object.entries(sent)) {
      const read = await readHubTelemetry(second, HUB, deviceId)
      expect(read.status).toBe(200)
      expect(read.body.dropped).toBe(0)
      expect(read.body.messages.map((m) => m.body)).toEqual(bodies)
      expect(read.body.messages.map((m) => m.sequenceNumber)).toEqual(bodies.map((_, i) => i + 1))
      expect(read.body.messages[3]).toMatchObject({
        properties: { seq: '3' },
        systemProperties: {
          '$.mid': `${deviceId}-3`,
          '$.cid': 'corr-3',
          '$.ct': 'application/json',
          '$.ce': 'utf-8',
          'iothub-connection-device-id': deviceId,
          'iothub-enqueuedtime': expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        },
      })
    }
    // The store holds them in the hub's partitions, numbered from 0 in each.
    const sizes = await Promise.all([0, 1, 2, 3].map(async (p) => (await second.telemetryStore!.partitionInfo(HUB, p)).lastSequenceNumber + 1))
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(40)
  }, 60_000)
})
