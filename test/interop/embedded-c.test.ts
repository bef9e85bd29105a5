// A device that speaks like Microsoft's Embedded C SDK (test/lib/embedded-c.ts: MQTT 3.1.1 over TLS
// from mqtt-packet, SAS tokens `sr,sig,se` without skn, the PnP model id in the hub username)
// provisions through an enrollment group with its derived key, connects to the hub DPS assigned,
// GETs its twin (the group's initial desired properties) and sends telemetry, which the hub's HTTP
// API gives back. Its token with a wrong skn is still refused, with the reason in the log and the
// registration record.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { deriveDeviceKey } from '@provisio/crypto'
import { buildSasToken } from '@provisio/protocol'
import { EMBEDDED_C_HUB_SUBSCRIPTIONS, embeddedCConnect, embeddedCHubConnect, embeddedCProvision, type EmbeddedCConnection } from '../lib/embedded-c.js'
import { readHubTelemetry } from '../lib/mqtt.js'
import { startTestServer, type TestServer } from '../lib/server.js'

const GROUP_KEY = Buffer.alloc(64, 0x3c).toString('base64')
const MODEL_ID = 'dtmi:provisio:embeddedc;1'

let server: TestServer & { logs: string[] }
const open: EmbeddedCConnection[] = []

beforeAll(async () => {
  server = (await startTestServer()) as typeof server
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'embedded-c-fleet',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: Buffer.alloc(64, 0x3d).toString('base64') } },
    initialTwin: { properties: { desired: { telemetryInterval: 15 } } },
  })
}, 60_000)

afterAll(async () => {
  for (const c of open) c.end()
  await server?.stop()
})

describe('an Embedded-C-SDK-like device (raw MQTT 3.1.1, token without skn)', () => {
  const registrationId = 'embedded-c-device-1'
  const deviceKey = deriveDeviceKey(GROUP_KEY, registrationId)
  let hub: EmbeddedCConnection
  const granted: number[][] = []

  it('provisions through the group with a token sr,sig,se and no skn', async () => {
    const answer = await embeddedCProvision(server, registrationId, deviceKey)
    expect(answer.status).toBe(200)
    expect(answer.body.status).toBe('assigned')
    expect(answer.body.registrationState).toMatchObject({ assignedHub: 'localhost', deviceId: registrationId })
  })

  it('connects to the assigned hub with the model id in the username and a token without skn', async () => {
    hub = await embeddedCHubConnect(server, 'localhost', registrationId, deviceKey, MODEL_ID)
    open.push(hub)
    expect(hub.connack.returnCode).toBe(0)
    // The SDK's four subscriptions, each in its own SUBSCRIBE as the samples make them.
    for (const filter of EMBEDDED_C_HUB_SUBSCRIPTIONS) granted.push(await hub.subscribe([filter]))
  })

  it('is granted every Embedded C SDK subscription at QoS 1, the wildcard C2D filter among them', () => {
    expect(EMBEDDED_C_HUB_SUBSCRIPTIONS).toContain('devices/+/messages/devicebound/#')
    expect(granted).toEqual(EMBEDDED_C_HUB_SUBSCRIPTIONS.map(() => [1]))
  })

  it('GETs its twin: the group\'s initial desired properties', async () => {
    const answer = hub.nextPublish('$iothub/twin/res/')
    await hub.publish('$iothub/twin/GET/?$rid=get-1', '')
    const response = await answer
    expect(response.topic).toBe('$iothub/twin/res/200/?$rid=get-1')
    expect(JSON.parse(response.payload.toString())).toMatchObject({ desired: { telemetryInterval: 15 } })
  })

  it('sends telemetry the hub keeps', async () => {
    await hub.publish(`devices/${registrationId}/messages/events/`, JSON.stringify({ temperature: 21.5 }))
    const read = await readHubTelemetry(server, 'localhost', registrationId)
    expect(read.status).toBe(200)
    expect(read.body.messages.map((m) => m.body)).toContain(JSON.stringify({ temperature: 21.5 }))
  })

  it('is still refused with a present skn other than registration, with the reason in the event and the log', async () => {
    const idScope = server.endpoints.idScope
    const failures: { registrationId: string; reason: string; errorCode: number }[] = []
    const off = server.engine.on('registrationFailed', (e) => void failures.push(e))
    const token = buildSasToken({ resource: `${idScope}/registrations/${registrationId}`, key: deviceKey, expiresAt: Math.floor(Date.now() / 1000) + 600, keyName: 'iothubowner', fieldOrder: ['sr', 'sig', 'se', 'skn'] })
    const refused = await embeddedCConnect(server, { servername: 'localhost', clientId: registrationId, username: `${idScope}/registrations/${registrationId}/api-version=2021-06-01`, password: token })
    open.push(refused)
    off()
    expect(refused.connack.returnCode).toBe(5)
    expect(failures.at(-1)).toMatchObject({ registrationId, errorCode: 401002, reason: expect.stringMatching(/"iothubowner"; expected "registration"/) })
    expect(server.logs.some((line) => line.includes(registrationId) && line.includes('iothubowner'))).toBe(true)
  })
})
