// The DPS MQTT dialect on the wire of a real `provisio serve`, with a raw client built on
// @provisio/codec-mqtt's packet codec over TLS and over a WebSocket: packet order (PUBACK before
// the response), topic shapes, CONNACK codes, and what a malformed packet does — it closes that
// one connection, is logged with its reason, and leaves every other connection alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MqttPacket, MqttPublishPacket, encodePacket } from '@provisio/codec-mqtt'
import { buildSasToken } from '@provisio/protocol'
import { rawMqttClient } from '../lib/mqtt.js'
import { startTestServer, type TestServer } from '../lib/server.js'

let server: TestServer
const KEY = Buffer.alloc(32, 0x21).toString('base64')

const rawClient = (transport: 'tls' | 'ws') => rawMqttClient(server, { transport })

function connectPacket(registrationId: string, key = KEY): Parameters<typeof encodePacket>[0] {
  const { idScope } = server.endpoints
  const token = buildSasToken({ resource: `${idScope}/registrations/${registrationId}`, key, keyName: 'registration', expiresAt: Math.floor(Date.now() / 1000) + 600 })
  return {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    clientId: registrationId,
    username: `${idScope}/registrations/${registrationId}/api-version=2019-03-31`,
    password: Buffer.from(token),
  }
}

const body = (p: MqttPacket) => JSON.parse(Buffer.from((p as MqttPublishPacket).payload).toString('utf8'))

beforeAll(async () => {
  // Azure's exact flow (202 assigning on register, then polls), which these frames are checked against.
  server = await startTestServer({ assignmentBudgetMs: 0 })
  for (const id of ['wire-tls', 'wire-ws', 'wire-bystander']) {
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId: id,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } },
    })
  }
})

afterAll(async () => {
  await server?.stop()
})

describe.each(['tls', 'ws'] as const)('raw MQTT over %s', (kind) => {
  it('CONNACK 0, SUBACK 1, PUBACK before the 202 on res/202 with $rid first and retry-after, then 200 on the poll', async () => {
    const id = `wire-${kind}`
    const c = await rawClient(kind)
    c.send(connectPacket(id))
    expect(await c.next()).toEqual({ cmd: 'connack', returnCode: 0, sessionPresent: false })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$dps/registrations/res/#', qos: 2 }] })
    expect(await c.next()).toEqual({ cmd: 'suback', messageId: 1, granted: [1] })
    c.send({ cmd: 'publish', topic: '$dps/registrations/PUT/iotdps-register/?$rid=42', payload: JSON.stringify({ registrationId: id }), qos: 1, retain: false, dup: false, messageId: 10 })
    expect(await c.next()).toEqual({ cmd: 'puback', messageId: 10 })
    const accepted = await c.next()
    expect(accepted).toMatchObject({ cmd: 'publish', qos: 1, topic: '$dps/registrations/res/202/?$rid=42&retry-after=1' })
    const { operationId } = body(accepted)
    expect(operationId).toEqual(expect.any(String))
    c.send({ cmd: 'puback', messageId: (accepted as MqttPublishPacket).messageId! })

    let final: MqttPacket | undefined
    for (let i = 0; i < 50; i++) {
      c.send({ cmd: 'publish', topic: `$dps/registrations/GET/iotdps-get-operationstatus/?$rid=p${i}&operationId=${operationId}`, payload: ' ', qos: 0, retain: false, dup: false })
      const answer = (await c.next()) as MqttPublishPacket
      expect(answer.topic.startsWith(`$dps/registrations/res/`)).toBe(true)
      expect(answer.topic).toContain(`/?$rid=p${i}`)
      if (answer.topic.startsWith('$dps/registrations/res/200/')) {
        final = answer
        break
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(body(final!)).toMatchObject({ status: 'assigned', registrationState: { registrationId: id, assignedHub: 'localhost', deviceId: id } })
    c.send({ cmd: 'disconnect' })
    await c.closed
  })

  it('answers a wrong SAS with CONNACK 5 and closes', async () => {
    const c = await rawClient(kind)
    c.send(connectPacket(`wire-${kind}`, Buffer.alloc(32, 0x99).toString('base64')))
    expect(await c.next()).toEqual({ cmd: 'connack', returnCode: 5, sessionPresent: false })
    await c.closed
  })

  it('closes only the connection that sent a malformed packet, logging why', async () => {
    const bystander = await rawClient(kind)
    bystander.send(connectPacket('wire-bystander'))
    expect(await bystander.next()).toMatchObject({ cmd: 'connack', returnCode: 0 })

    const bad = await rawClient(kind)
    bad.send(connectPacket(`wire-${kind}`))
    expect(await bad.next()).toMatchObject({ cmd: 'connack', returnCode: 0 })
    // SUBSCRIBE with reserved flags 0000 instead of 0010 (MQTT-3.8.1-1).
    bad.sendBytes(new Uint8Array([0x80, 8, 0, 1, 0, 3, 0x61, 0x2f, 0x62, 1]))
    await bad.closed
    const logs = (server as unknown as { logs: string[] }).logs
    const dropped = logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'mqtt connection dropped' && l.code === 'MALFORMED_PACKET' && l.transport === (kind === 'tls' ? 'mqtts' : 'mqtt-ws'))
    expect(dropped?.reason).toMatch(/subscribe/i)

    // The other connection is untouched.
    bystander.send({ cmd: 'pingreq' })
    expect(await bystander.next()).toEqual({ cmd: 'pingresp' })
    bystander.end()
  })
})
