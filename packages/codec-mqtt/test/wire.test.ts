// The packet codec, table-driven: every fixture is checked four ways —
// parse, serialize, parse of serialize, and the decoder fed byte by byte and in random splits.
// Fixture bytes are written out by hand from MQTT 3.1.1 §3 (fixed header, variable header,
// payload), not produced by the code under test.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MqttCodecError, MqttDecoder, encodePacket, type MqttPacket } from '../src/index.js'

/** Bytes from numbers (one byte each) and ASCII strings. */
function bytes(...parts: (number | string)[]): Uint8Array {
  const out: number[] = []
  for (const p of parts) {
    if (typeof p === 'number') out.push(p)
    else for (const ch of p) out.push(ch.charCodeAt(0))
  }
  return new Uint8Array(out)
}

const RES = '$dps/registrations/res/#' // 24 characters
const REGISTER = '$dps/registrations/PUT/iotdps-register/?$rid=1' // 46 characters
const LONG = 'x'.repeat(200)

const FIXTURES: [string, MqttPacket, Uint8Array][] = [
  [
    'CONNECT with username, password, clean session, keep-alive 180',
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 180, clientId: 'dev1', username: 'u', password: Buffer.from('sas') },
    // 10 bytes of variable header + 14 of payload = 24
    bytes(0x10, 24, 0, 4, 'MQTT', 4, 0xc2, 0, 180, 0, 4, 'dev1', 0, 1, 'u', 0, 3, 'sas'),
  ],
  [
    'CONNECT without password (X.509 device), flags 0x82',
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'd', username: 'u' },
    bytes(0x10, 16, 0, 4, 'MQTT', 4, 0x82, 0, 60, 0, 1, 'd', 0, 1, 'u'),
  ],
  ['CONNACK accepted, no session', { cmd: 'connack', returnCode: 0, sessionPresent: false }, bytes(0x20, 2, 0, 0)],
  ['CONNACK not authorized', { cmd: 'connack', returnCode: 5, sessionPresent: false }, bytes(0x20, 2, 0, 5)],
  [
    'SUBSCRIBE to the DPS response filter at QoS 1',
    { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: RES, qos: 1 }] },
    bytes(0x82, 29, 0, 1, 0, 24, RES, 1),
  ],
  ['SUBACK granting 1 and failing one filter', { cmd: 'suback', messageId: 1, granted: [1, 0x80] }, bytes(0x90, 4, 0, 1, 1, 0x80)],
  [
    'PUBLISH QoS 1 register request',
    { cmd: 'publish', topic: REGISTER, payload: Buffer.from('{}'), qos: 1, retain: false, dup: false, messageId: 7 },
    bytes(0x32, 52, 0, 46, REGISTER, 0, 7, '{}'),
  ],
  [
    'PUBLISH QoS 0 with a binary payload',
    { cmd: 'publish', topic: 't', payload: Buffer.from([0, 255, 1]), qos: 0, retain: false, dup: false },
    bytes(0x30, 6, 0, 1, 't', 0, 255, 1),
  ],
  [
    'PUBLISH whose Remaining Length takes two bytes (203 = 0xCB 0x01)',
    { cmd: 'publish', topic: 't', payload: Buffer.from(LONG), qos: 0, retain: false, dup: false },
    bytes(0x30, 0xcb, 0x01, 0, 1, 't', LONG),
  ],
  ['PUBACK', { cmd: 'puback', messageId: 7 }, bytes(0x40, 2, 0, 7)],
  ['UNSUBSCRIBE', { cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['t'] }, bytes(0xa2, 5, 0, 2, 0, 1, 't')],
  ['UNSUBACK', { cmd: 'unsuback', messageId: 2 }, bytes(0xb0, 2, 0, 2)],
  ['PINGREQ', { cmd: 'pingreq' }, bytes(0xc0, 0)],
  ['PINGRESP', { cmd: 'pingresp' }, bytes(0xd0, 0)],
  ['DISCONNECT', { cmd: 'disconnect' }, bytes(0xe0, 0)],
]

function decodeAll(chunks: Uint8Array[]): { packets: MqttPacket[]; error?: MqttCodecError } {
  const decoder = new MqttDecoder()
  const packets: MqttPacket[] = []
  for (const chunk of chunks) {
    const r = decoder.push(chunk)
    packets.push(...r.packets)
    if (r.error) return { packets, error: r.error }
  }
  return { packets }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

describe('fixture quartet', () => {
  for (const [name, packet, wire] of FIXTURES) {
    describe(name, () => {
      it('parses', () => {
        const decoder = new MqttDecoder()
        const r = decoder.push(wire)
        expect(r.error).toBeUndefined()
        expect(r.packets).toEqual([packet])
        expect(decoder.buffered).toBe(0)
      })
      it('serializes', () => {
        expect(hex(encodePacket(packet))).toBe(hex(wire))
      })
      it('parses what it serializes', () => {
        expect(decodeAll([encodePacket(packet)]).packets).toEqual([packet])
      })
      it('decodes fed byte by byte and in random splits', () => {
        const oneByOne = decodeAll([...wire].map((b) => new Uint8Array([b])))
        expect(oneByOne.packets).toEqual([packet])
        fc.assert(
          fc.property(fc.array(fc.integer({ min: 0, max: wire.length }), { maxLength: 8 }), (cuts) => {
            const points = [0, ...cuts.sort((a, b) => a - b), wire.length]
            // Two copies back to back, so a split can also straddle the packet boundary.
            const doubled = new Uint8Array([...wire, ...wire])
            const chunks = points.slice(1).map((end, i) => doubled.subarray(points[i], end))
            chunks.push(doubled.subarray(wire.length))
            expect(decodeAll(chunks).packets).toEqual([packet, packet])
          }),
          { numRuns: 50 },
        )
      })
    })
  }

  it('encodes a plain Uint8Array payload (no Buffer) identically', () => {
    const payload = new Uint8Array([0, 255, 1])
    expect(hex(encodePacket({ cmd: 'publish', topic: 't', payload, qos: 0, retain: false, dup: false }))).toBe(hex(bytes(0x30, 6, 0, 1, 't', 0, 255, 1)))
    const long = new Uint8Array(200).fill(0x78)
    expect(hex(encodePacket({ cmd: 'publish', topic: 't', payload: long, qos: 0, retain: false, dup: false }))).toBe(hex(bytes(0x30, 0xcb, 0x01, 0, 1, 't', LONG)))
  })

  it('refuses to encode a QoS 1 PUBLISH without a packet identifier', () => {
    expect(() => encodePacket({ cmd: 'publish', topic: 't', payload: 'x', qos: 1, retain: false, dup: false })).toThrowError(
      expect.objectContaining({ code: 'MQTT_ENCODE_FAILED' }),
    )
  })
})

describe('decoder errors', () => {
  const cases: [string, Uint8Array, string, RegExp][] = [
    ['reserved packet type 0', bytes(0x00, 0), 'MQTT_MALFORMED', /type 0 is reserved/],
    ['reserved packet type 15', bytes(0xf0, 0), 'MQTT_MALFORMED', /type 15 is reserved/],
    ['a 5-byte Remaining Length', bytes(0x30, 0xff, 0xff, 0xff, 0xff, 0x01), 'MQTT_MALFORMED', /more than 4 bytes/],
    ['SUBSCRIBE with reserved flags 0000 (must be 0010)', bytes(0x80, 8, 0, 1, 0, 3, 'a/b', 1), 'MQTT_MALFORMED', /subscribe/i],
    ['PUBLISH with both QoS bits set', bytes(0x36, 3, 0, 1, 't'), 'MQTT_MALFORMED', /QoS/],
    ['CONNECT with reserved flag bit 0', bytes(0x10, 12, 0, 4, 'MQTT', 4, 0x01, 0, 60, 0, 0), 'MQTT_MALFORMED', /bit 0/],
    ['CONNECT of protocol level 6', bytes(0x10, 12, 0, 4, 'MQTT', 6, 0x02, 0, 60, 0, 0), 'MQTT_UNSUPPORTED_PROTOCOL', /protocol version/i],
    ['CONNECT naming another protocol', bytes(0x10, 12, 0, 4, 'XQTT', 4, 0x02, 0, 60, 0, 0), 'MQTT_UNSUPPORTED_PROTOCOL', /protocolId/i],
    ['a string longer than its packet', bytes(0x30, 4, 0, 9, 'ab'), 'MQTT_MALFORMED', /publish/i],
  ]
  for (const [name, wire, code, message] of cases) {
    it(`${name} → ${code}`, () => {
      const r = new MqttDecoder().push(wire)
      expect(r.packets).toEqual([])
      expect(r.error).toBeInstanceOf(MqttCodecError)
      expect(r.error?.code).toBe(code)
      expect(r.error?.message).toMatch(message)
    })
  }

  it('refuses an oversized packet as soon as its header is read, before the body arrives', () => {
    const decoder = new MqttDecoder({ maxPacketBytes: 100 })
    // Remaining Length 200: only the fixed header is sent.
    const r = decoder.push(bytes(0x30, 0xc8, 0x01))
    expect(r.error?.code).toBe('MQTT_PACKET_TOO_LARGE')
    expect(r.error?.message).toMatch(/203 bytes exceeds the limit of 100/)
  })

  it('stays failed after an error and ignores further input', () => {
    const decoder = new MqttDecoder()
    expect(decoder.push(bytes(0x00, 0)).error).toBeDefined()
    const again = decoder.push(bytes(0xc0, 0))
    expect(again.packets).toEqual([])
    expect(again.error?.code).toBe('MQTT_MALFORMED')
  })

  it('returns the packets before a broken one', () => {
    const r = new MqttDecoder().push(bytes(0xc0, 0, 0xc0, 0, 0x00, 0))
    expect(r.packets).toEqual([{ cmd: 'pingreq' }, { cmd: 'pingreq' }])
    expect(r.error?.code).toBe('MQTT_MALFORMED')
  })
})

describe('decoders are independent', () => {
  // Every decoder hands its frames to one shared mqtt-packet parser; nothing one connection
  // sends may change how another's packets parse.
  const SUBSCRIBE = FIXTURES.find(([name]) => name.startsWith('SUBSCRIBE'))!
  const CONNECT_V5 = bytes(0x10, 14, 0, 4, 'MQTT', 5, 0x02, 0, 60, 0, 0, 1, 'd')
  const CONNECT_BRIDGE = bytes(0x10, 13, 0, 4, 'MQTT', 0x84, 0x02, 0, 60, 0, 1, 'd')

  for (const [name, other] of [['an MQTT 5 CONNECT', CONNECT_V5], ['a bridge-mode CONNECT', CONNECT_BRIDGE]] as const) {
    it(`${name} on one connection leaves the next connection's SUBSCRIBE a 3.1.1 one`, () => {
      const first = new MqttDecoder().push(other)
      expect(first.packets[0]).toMatchObject({ cmd: 'connect' })
      const second = new MqttDecoder().push(SUBSCRIBE[2])
      expect(second.error).toBeUndefined()
      expect(second.packets).toEqual([SUBSCRIBE[1]])
    })
  }

  it('random input on one decoder, interleaved with a valid stream on another, never disturbs the valid one', () => {
    const garbageFirst = fc.constantFrom(0x10, 0x30, 0x32, 0x82, 0xa2, 0x00)
    fc.assert(
      fc.property(garbageFirst, fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 16 }), (g0, rest, gStep, vStep) => {
        const garbage = new Uint8Array([g0, ...rest])
        const valid = Buffer.concat([CONNECT_V5, ...FIXTURES.map(([, , wire]) => wire)])
        // The valid stream opens with an MQTT 5 CONNECT of its own decoder's: its later 3.1.1
        // packets still parse as 3.1.1 because each decoder's frames are parsed on their own.
        const expected = FIXTURES.map(([, packet]) => packet)
        const a = new MqttDecoder({ maxPacketBytes: 4096 })
        const b = new MqttDecoder()
        const got: MqttPacket[] = []
        let gi = 0
        for (let vi = 0; vi < valid.length; vi += vStep) {
          if (gi < garbage.length) {
            a.push(garbage.subarray(gi, gi + gStep))
            gi += gStep
          }
          const r = b.push(valid.subarray(vi, vi + vStep))
          expect(r.error).toBeUndefined()
          got.push(...r.packets)
        }
        expect(got.slice(1).map((p) => JSON.stringify(p, (_k, v: unknown) => (v instanceof Uint8Array ? hex(v) : v)))).toEqual(
          expected.map((p) => JSON.stringify(p, (_k, v: unknown) => (v instanceof Uint8Array ? hex(v) : v))),
        )
      }),
      { numRuns: 300 },
    )
  })
})

describe('random input', () => {
  it('random bytes yield packets or one typed error, never a throw', () => {
    // Biased towards valid first bytes of client packets, as mqtt-packet's testRandom does.
    const first = fc.constantFrom(0x10, 0x30, 0x32, 0x34, 0x40, 0x82, 0xa2, 0xc0, 0xe0, 0x00, 0xff)
    fc.assert(
      fc.property(first, fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 64 }), (b0, rest, step) => {
        const input = new Uint8Array([b0, ...rest])
        const decoder = new MqttDecoder({ maxPacketBytes: 4096 })
        for (let i = 0; i < input.length; i += step) {
          const r = decoder.push(input.subarray(i, i + step))
          for (const p of r.packets) expect(typeof p.cmd).toBe('string')
          if (r.error) {
            expect(r.error).toBeInstanceOf(MqttCodecError)
            expect(['MQTT_MALFORMED', 'MQTT_UNSUPPORTED_PROTOCOL', 'MQTT_PACKET_TOO_LARGE']).toContain(r.error.code)
            break
          }
        }
      }),
      { numRuns: 3000 },
    )
  })
})
