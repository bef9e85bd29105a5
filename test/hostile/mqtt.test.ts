// Hostile MQTT on 8883 and on MQTT-over-WebSockets: broken Remaining Length varints,
// packets over the limit, garbage after CONNECT, a first packet that is not CONNECT, a protocol
// level we do not serve, truncated packets, and a bounded fuzz loop. Each ends in a clear refusal
// (CONNACK code where MQTT has one, else the connection is closed), the server logs the reason,
// no connection is left open, and a good device still registers.
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { encodePacket, MqttDecoder, type MqttPacket } from '@provisio/codec-mqtt'
import { buildSasToken } from '@provisio/protocol'
import { deviceToken, expectServerUnharmed, GOOD_DEVICE, GOOD_KEY, type HostileServer, logLines, startHostileServer } from '../lib/hostile.js'
import { rawTls, rawWs, type RawResult } from '../lib/raw.js'

let server: HostileServer

beforeAll(async () => {
  server = await startHostileServer({ connectTimeoutMs: 1000 })
})

afterEach(() => expectServerUnharmed(server, ['mqtts', 'mqtt-ws']))

afterAll(async () => {
  await server?.stop()
})

function connect(registrationId = GOOD_DEVICE): Buffer {
  const { idScope } = server.endpoints
  const token = buildSasToken({ resource: `${idScope}/registrations/${registrationId}`, key: GOOD_KEY, keyName: 'registration', expiresAt: Math.floor(Date.now() / 1000) + 600 })
  return Buffer.from(
    encodePacket({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: registrationId, username: `${idScope}/registrations/${registrationId}/api-version=2019-03-31`, password: Buffer.from(token) }),
  )
}

function packets(bytes: Buffer): MqttPacket[] {
  const result = new MqttDecoder().push(bytes)
  return result.packets
}

const TRANSPORT = { tls: 'mqtts', ws: 'mqtt-ws' } as const

/** Sends the chunks over MQTTS or MQTT-WS and returns what came back plus the log of the drop. */
async function exchange(kind: 'tls' | 'ws', chunks: Buffer[], options: { endAfterWrite?: boolean; deadlineMs?: number; gapMs?: number; until?: (b: Buffer) => boolean } = {}): Promise<{ result: RawResult; dropped: Record<string, unknown> | undefined }> {
  const before = server.logs.length
  const result = kind === 'tls' ? await rawTls(server.endpoints.ports.mqtt, server.caPem, chunks, options) : await rawWs(server.port, server.caPem, 'mqtt', chunks, options)
  const dropped = logLines(server)
    .slice(before)
    .find((l) => (l.msg === 'mqtt connection dropped' || l.msg === 'mqtt connect refused') && l.transport === TRANSPORT[kind])
  return { result, dropped }
}

describe.each(['tls', 'ws'] as const)('MQTT over %s', (kind) => {
  it('a Remaining Length of five bytes closes the connection, logged as malformed', async () => {
    const { result, dropped } = await exchange(kind, [Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])])
    expect(result.closedByServer).toBe(true)
    expect(dropped).toMatchObject({ code: 'MALFORMED_PACKET', reason: expect.stringMatching(/Remaining Length uses more than 4 bytes/) })
  })

  it('a packet declared over the limit is refused from its fixed header', async () => {
    // CONNECT announcing 1 MiB: refused before the body arrives.
    const { result, dropped } = await exchange(kind, [Buffer.from([0x10, 0x80, 0x80, 0x40])])
    expect(result.closedByServer).toBe(true)
    expect(dropped).toMatchObject({ code: 'PACKET_TOO_LARGE', reason: expect.stringMatching(/connect packet of \d+ bytes exceeds the limit of 131072 bytes/i) })
  })

  it('a first packet that is not CONNECT closes the connection', async () => {
    const { result, dropped } = await exchange(kind, [Buffer.from([0xc0, 0x00])])
    expect(result.closedByServer).toBe(true)
    expect(dropped).toMatchObject({ code: 'PROTOCOL_VIOLATION', reason: expect.stringMatching(/CONNECT/) })
  })

  it('MQTT 5 is refused with CONNACK 1 (unacceptable protocol version)', async () => {
    const v5 = Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 2, 0, 60, 0, 0, 0])
    const { result, dropped } = await exchange(kind, [v5])
    expect(result.closedByServer).toBe(true)
    expect(packets(result.bytes)).toEqual([{ cmd: 'connack', returnCode: 1, sessionPresent: false }])
    expect(dropped?.reason).toMatch(/MQTT 3\.1\.1/)
  })

  it('garbage in the same segment as a good CONNECT: the connection is dropped with the reason', async () => {
    const { result, dropped } = await exchange(kind, [Buffer.concat([connect(), Buffer.from([0x00, 0x00, 0xde, 0xad, 0xbe, 0xef])])])
    expect(result.closedByServer).toBe(true)
    expect(dropped).toMatchObject({ code: 'MALFORMED_PACKET', reason: expect.stringMatching(/reserved/) })
  })

  it('garbage after the CONNACK of a good CONNECT: the connection is dropped with the reason', async () => {
    const { result } = await exchange(kind, [connect(), Buffer.from([0x00, 0x00, 0xde, 0xad, 0xbe, 0xef])], { gapMs: 500 })
    expect(result.closedByServer).toBe(true)
    expect(packets(result.bytes)[0]).toEqual({ cmd: 'connack', returnCode: 0, sessionPresent: false })
    const dropped = [...logLines(server)].reverse().find((l) => l.msg === 'mqtt connection dropped' && l.transport === TRANSPORT[kind])
    expect(dropped).toMatchObject({ code: 'MALFORMED_PACKET', reason: expect.stringMatching(/reserved/) })
  })

  it('a truncated CONNECT followed by silence is cut at the connect timeout', async () => {
    const whole = connect()
    const { result, dropped } = await exchange(kind, [whole.subarray(0, whole.length - 5)], { deadlineMs: 20_000 })
    expect(result.closedByServer).toBe(true)
    expect(dropped).toMatchObject({ code: 'CONNECT_TIMEOUT', reason: expect.stringMatching(/no CONNECT within 1000 ms/) })
  })

  it('a PUBLISH over the register body limit after CONNECT is refused', async () => {
    const big = encodePacket({ cmd: 'publish', topic: '$dps/registrations/PUT/iotdps-register/?$rid=1', payload: Buffer.alloc(200 * 1024, 0x20), qos: 0, retain: false, dup: false })
    const { result } = await exchange(kind, [connect(), Buffer.from(big)])
    expect(result.closedByServer).toBe(true)
    const dropped = [...logLines(server)].reverse().find((l) => l.msg === 'mqtt connection dropped' && l.transport === TRANSPORT[kind])
    expect(dropped).toMatchObject({ code: 'PACKET_TOO_LARGE' })
  })
})

describe('MQTT over WebSockets', () => {
  it('a WebSocket message over 256 KiB is refused with close code 1009, logged', async () => {
    const before = server.logs.length
    const result = await rawWs(server.port, server.caPem, 'mqtt', [connect(), Buffer.alloc(300 * 1024, 0x30)])
    expect(result.closedByServer).toBe(true)
    expect(result.closeCode).toBe(1009)
    expect(logLines(server).slice(before).find((l) => l.msg === 'mqtt websocket error')?.error).toMatch(/Max payload size exceeded/)
  })
})

describe('fuzzed MQTT bytes (bounded)', () => {
  it.each(['tls', 'ws'] as const)('random bytes, alone or after a good CONNECT, over %s', async (kind) => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.uint8Array({ minLength: 1, maxLength: 512 }), async (afterConnect, bytes) => {
        const chunks = afterConnect ? [connect(), Buffer.from(bytes)] : [Buffer.from(bytes)]
        // Bytes that form no complete packet leave the server waiting: the client then goes away.
        const { result } = await exchange(kind, chunks, { endAfterWrite: true, deadlineMs: 200 })
        if (result.bytes.length > 0) {
          // Whatever the server wrote is well-formed MQTT, starting with a CONNACK.
          const decoded = new MqttDecoder().push(result.bytes)
          expect(decoded.error).toBeUndefined()
          expect(decoded.packets[0]?.cmd).toBe('connack')
        }
      }),
      { numRuns: 20, seed: 56 },
    )
  })
})

describe('after the attacks', () => {
  it('a device still gets CONNACK 0 and registers over raw MQTT', async () => {
    const token = deviceToken(server, GOOD_DEVICE)
    expect(token).toContain('registration')
    const register = encodePacket({ cmd: 'publish', topic: '$dps/registrations/PUT/iotdps-register/?$rid=9', payload: JSON.stringify({ registrationId: GOOD_DEVICE }), qos: 1, messageId: 3, retain: false, dup: false })
    const subscribe = encodePacket({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: '$dps/registrations/res/#', qos: 1 }] })
    const answered = (bytes: Buffer) => packets(bytes).some((p) => p.cmd === 'publish')
    const { result } = await exchange('tls', [connect(), Buffer.from(subscribe), Buffer.from(register)], { deadlineMs: 10_000, until: answered })
    const seen = packets(result.bytes)
    expect(seen[0]).toEqual({ cmd: 'connack', returnCode: 0, sessionPresent: false })
    expect(seen.some((p) => p.cmd === 'publish' && /^\$dps\/registrations\/res\/20[02]\//.test(p.topic))).toBe(true)
  })
})
