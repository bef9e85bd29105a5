// The DPS MQTT session against a recording DeviceApi (the engine has its own suites): what goes
// on the wire for each client packet, in which order, and why a connection ends.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import type { DeviceApi } from '@provisio/protocol'
import {
  createDpsMqttSession,
  type DpsMqttEvent,
  type MqttLimits,
  type MqttPacket,
  type MqttPublishPacket,
} from '../src/index.js'
import { recordingPorts, sender, settle, text } from './helpers.js'

const SCOPE = '0ne00000A0A'
const USERNAME = `${SCOPE}/registrations/dev-1/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1`
const SAS = 'SharedAccessSignature sr=0ne00000A0A/registrations/dev-1&sig=abc%3D&skn=registration&se=1900000000'
const RES = '$dps/registrations/res/#'
const registerTopic = (rid: string) => `$dps/registrations/PUT/iotdps-register/?$rid=${rid}`
const pollTopic = (rid: string, op: string) => `$dps/registrations/GET/iotdps-get-operationstatus/?$rid=${rid}&operationId=${op}`

interface Call {
  name: string
  request: Record<string, unknown>
}

function harness(options: { api?: Partial<DeviceApi>; limits?: Partial<MqttLimits>; chain?: Uint8Array[]; authenticateAtConnect?: boolean } = {}) {
  const recorder = recordingPorts<DpsMqttEvent>()
  const calls: Call[] = []
  const recorded =
    <T,>(name: string, fallback: (request: Record<string, unknown>) => Promise<T>) =>
    (request: unknown) => {
      calls.push({ name, request: request as Record<string, unknown> })
      const own = options.api?.[name as keyof DeviceApi] as ((r: unknown) => Promise<T>) | undefined
      return own ? own(request) : fallback(request as Record<string, unknown>)
    }
  const api: DeviceApi = {
    registrationStatus: recorded('registrationStatus', async (r) => ({ status: 200, body: { registrationId: String(r.registrationId), status: 'unassigned' } })) as never,
    // Only when the test gives one: a DeviceApi without authenticate is checked with registrationStatus.
    ...(options.api?.authenticate !== undefined ? { authenticate: recorded('authenticate', async () => undefined) as never } : {}),
    register: recorded('register', async () => ({ status: 202, body: { operationId: 'op-1', status: 'assigning' }, retryAfterSeconds: 3 })) as never,
    operationStatus: recorded('operationStatus', async () => ({
      status: 200,
      body: { operationId: 'op-1', status: 'assigned', registrationState: { registrationId: 'dev-1', assignedHub: 'hub.example', deviceId: 'dev-1', status: 'assigned' } },
    })) as never,
  }
  const session = createDpsMqttSession({
    api,
    ...recorder.ports,
    ...(options.chain ? { clientCertificates: options.chain } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.authenticateAtConnect === undefined ? {} : { authenticateAtConnect: options.authenticateAtConnect }),
  })
  const send = sender(session)
  return {
    session,
    out: recorder.out,
    closes: recorder.closes,
    events: recorder.events,
    calls,
    send,
    advance: recorder.advance,
    settle,
    connect: (extra: Partial<Extract<MqttPacket, { cmd: 'connect' }>> = {}) =>
      send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 180, clientId: 'dev-1', username: USERNAME, password: Buffer.from(SAS), ...extra }),
  }
}

const publish = (topic: string, payload: string, messageId = 5, qos: 0 | 1 | 2 = 1): MqttPublishPacket & { payload: Uint8Array } => ({
  cmd: 'publish',
  topic,
  payload: Buffer.from(payload),
  qos,
  retain: false,
  dup: false,
  ...(qos > 0 ? { messageId } : {}),
})

async function connected(options: Parameters<typeof harness>[0] = {}) {
  const h = harness(options)
  h.connect()
  await h.settle()
  h.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: RES, qos: 1 }] })
  h.out.length = 0
  return h
}

describe('CONNECT', () => {
  it('checks the SAS through the device API, then answers CONNACK 0 with sessionPresent 0', async () => {
    const h = harness()
    h.connect({ clean: false }) // Python sends clean session 0: DPS still has no session (§3).
    expect(h.session.state).toBe('authenticating')
    expect(h.out).toEqual([])
    await h.settle()
    expect(h.calls).toEqual([{ name: 'registrationStatus', request: { idScope: SCOPE, registrationId: 'dev-1', evidence: { type: 'sas', token: SAS } } }])
    expect(h.out).toEqual([{ cmd: 'connack', returnCode: 0, sessionPresent: false }])
    expect(h.session.state).toBe('connected')
    expect(h.events[0]).toEqual({
      type: 'connected',
      idScope: SCOPE,
      registrationId: 'dev-1',
      apiVersion: '2019-03-31',
      clientVersion: 'azure-iot-provisioning-device/1.9.1',
      keepAliveSeconds: 180,
    })
  })

  it('checks with api.authenticate when the device API has it (no registration read at CONNECT)', async () => {
    const h = harness({ api: { authenticate: async () => undefined } })
    h.connect()
    await h.settle()
    expect(h.calls).toEqual([{ name: 'authenticate', request: { idScope: SCOPE, registrationId: 'dev-1', evidence: { type: 'sas', token: SAS } } }])
    expect(h.out).toEqual([{ cmd: 'connack', returnCode: 0, sessionPresent: false }])
    const refused = harness({ api: { authenticate: async () => Promise.reject(new ProvisioError('SAS_BAD_SIGNATURE', 'test: signature matches no key')) } })
    refused.connect()
    await refused.settle()
    expect(refused.out).toEqual([{ cmd: 'connack', returnCode: 5, sessionPresent: false }])
  })

  it('answers CONNACK 5 and closes when the service refuses the credentials', async () => {
    const h = harness({ api: { registrationStatus: async () => Promise.reject(new ProvisioError('SAS_BAD_SIGNATURE', 'test: signature matches no key')) } })
    h.connect()
    await h.settle()
    expect(h.out).toEqual([{ cmd: 'connack', returnCode: 5, sessionPresent: false }])
    expect(h.closes).toEqual([{ code: 'CONNECT_REFUSED', reason: expect.stringMatching(/CONNACK 5: credentials refused: SAS_BAD_SIGNATURE: test: signature/) }])
    expect(h.session.state).toBe('closed')
  })

  it('answers CONNACK 3 when the service is unavailable', async () => {
    const h = harness({ api: { registrationStatus: async () => Promise.reject(new Error('store down')) } })
    h.connect()
    await h.settle()
    expect(h.out).toEqual([{ cmd: 'connack', returnCode: 3, sessionPresent: false }])
  })

  const refusals: [string, Partial<Extract<MqttPacket, { cmd: 'connect' }>>, number, RegExp][] = [
    ['clientId differs from the registrationId', { clientId: 'other' }, 2, /clientId "other" differs/],
    ['registrationId breaks the grammar', { clientId: 'bad id!', username: `${SCOPE}/registrations/bad id!/api-version=2019-03-31` }, 2, /registrationId/],
    ['no username (and so no password, MQTT-3.1.2-22)', { username: undefined as never, password: undefined as never }, 4, /no username/],
    ['a username of another shape', { username: `${SCOPE}/devices/dev-1` }, 4, /must start with/],
    ['a malformed api-version', { username: `${SCOPE}/registrations/dev-1/api-version=yesterday` }, 4, /api-version "yesterday"/],
    ['a password that is not UTF-8', { password: Buffer.from([0xff, 0xfe]) }, 4, /not UTF-8/],
    ['neither password nor certificate', { password: undefined as never }, 5, /neither a SAS password nor a TLS client certificate/],
    ['MQTT 3.1 (MQIsdp, level 3)', { protocolId: 'MQIsdp' as never, protocolVersion: 3 }, 1, /not MQTT 3\.1\.1/],
  ]
  for (const [name, change, code, reason] of refusals) {
    it(`refuses ${name} with CONNACK ${code}, without calling the service`, () => {
      const h = harness()
      const packet = { cmd: 'connect' as const, protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 180, clientId: 'dev-1', username: USERNAME, password: Buffer.from(SAS), ...change }
      if (change.username === undefined && 'username' in change) delete (packet as { username?: string }).username
      if (change.password === undefined && 'password' in change) delete (packet as { password?: Uint8Array }).password
      h.send(packet)
      expect(h.out).toEqual([{ cmd: 'connack', returnCode: code, sessionPresent: false }])
      expect(h.closes).toEqual([{ code: 'CONNECT_REFUSED', reason: expect.stringMatching(reason) }])
      expect(h.calls).toEqual([])
    })
  }

  it('refuses an MQTT 5 CONNECT with return code 1 (MQTT-3.1.2-2)', () => {
    const h = harness()
    // CONNECT, level 5, flags 0x02, keep-alive 60, empty properties, clientId "d".
    h.session.push(new Uint8Array([0x10, 14, 0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x02, 0, 60, 0, 0, 1, 0x64]))
    expect(h.out).toEqual([{ cmd: 'connack', returnCode: 1, sessionPresent: false }])
    expect(h.closes[0]?.code).toBe('CONNECT_REFUSED')
  })

  it('takes the TLS client chain as X.509 evidence when there is no password', async () => {
    const chain = [new Uint8Array([0x30, 0x03, 1, 2, 3])]
    const h = harness({ chain })
    h.connect({ password: undefined as never })
    await h.settle()
    expect(h.calls[0]!.request.evidence).toEqual({ type: 'x509', chain })
    expect(h.out).toEqual([{ cmd: 'connack', returnCode: 0, sessionPresent: false }])
  })

  it('accepts at once when told not to authenticate at CONNECT', () => {
    const h = harness({ authenticateAtConnect: false })
    h.connect()
    expect(h.out).toEqual([{ cmd: 'connack', returnCode: 0, sessionPresent: false }])
    expect(h.calls).toEqual([])
  })

  it('serves packets pipelined behind the CONNECT after the CONNACK, in order', async () => {
    const h = harness()
    h.send(
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 180, clientId: 'dev-1', username: USERNAME, password: Buffer.from(SAS) },
      { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: RES, qos: 1 }] },
      { cmd: 'pingreq' },
    )
    expect(h.out).toEqual([])
    await h.settle()
    expect(h.out.map((p) => p.cmd)).toEqual(['connack', 'suback', 'pingresp'])
  })
})

describe('SUBSCRIBE', () => {
  it('grants only the response filter, QoS 2 as 1, and fails every other filter with 0x80', async () => {
    const h = harness()
    h.connect()
    await h.settle()
    h.send({
      cmd: 'subscribe',
      messageId: 9,
      subscriptions: [
        { topic: RES, qos: 2 },
        { topic: '$dps/registrations/#', qos: 1 },
        { topic: RES, qos: 0 },
        { topic: 'devices/dev-1/messages/devicebound/#', qos: 1 },
      ],
    })
    expect(h.out.at(-1)).toEqual({ cmd: 'suback', messageId: 9, granted: [1, 0x80, 0, 0x80] })
  })
})

describe('register and poll', () => {
  it('PUBACKs at once, then publishes the 202 on res/202 with $rid first and retry-after, then 200 on the poll', async () => {
    const h = await connected()
    h.send(publish(registerTopic('r1'), JSON.stringify({ registrationId: 'dev-1', payload: { modelId: 'dtmi:x;1' } }), 5))
    // The PUBACK is written synchronously, before the service is even asked (§3, .NET order).
    expect(h.out).toEqual([{ cmd: 'puback', messageId: 5 }])
    await h.settle()
    expect(h.calls.at(-1)).toEqual({
      name: 'register',
      request: { idScope: SCOPE, registrationId: 'dev-1', evidence: { type: 'sas', token: SAS }, apiVersion: '2019-03-31', payload: { modelId: 'dtmi:x;1' } },
    })
    const response = h.out[1] as MqttPublishPacket
    expect(response).toMatchObject({ cmd: 'publish', topic: '$dps/registrations/res/202/?$rid=r1&retry-after=3', qos: 1, retain: false })
    expect(JSON.parse(text(response))).toEqual({ operationId: 'op-1', status: 'assigning' })

    h.send(publish(pollTopic('r2', 'op-1'), ' ', 6))
    await h.settle()
    expect(h.calls.at(-1)).toEqual({ name: 'operationStatus', request: { idScope: SCOPE, registrationId: 'dev-1', operationId: 'op-1' } })
    const final = h.out.at(-1) as MqttPublishPacket
    expect(final.topic).toBe('$dps/registrations/res/200/?$rid=r2')
    expect(JSON.parse(text(final))).toMatchObject({ status: 'assigned', registrationState: { assignedHub: 'hub.example' } })
    // Response packet identifiers differ.
    expect(final.messageId).not.toBe(response.messageId)
  })

  it('accepts QoS 0 requests (C) and an empty register body (.NET)', async () => {
    const h = await connected()
    h.send(publish(registerTopic('7'), '', 0, 0))
    await h.settle()
    expect(h.out.map((p) => p.cmd)).toEqual(['publish'])
    expect(h.calls.at(-1)!.request).not.toHaveProperty('payload')
  })

  const errors: [string, unknown, number, string | undefined, number][] = [
    ['THROTTLED with its retry-after', new ProvisioError('THROTTLED', 'test: 1000/min', { retryAfterSeconds: 7 }), 429, '7', 429001],
    ['an unexpected failure as a transient 500', new Error('boom'), 500, '1', 500001],
    ['a refusal without retry-after', new ProvisioError('ENROLLMENT_NOT_FOUND', 'test: not enrolled'), 401, undefined, 401002],
  ]
  for (const [name, thrown, status, retryAfter, errorCode] of errors) {
    it(`answers ${name} on res/${status} with the DPS error body`, async () => {
      const h = await connected({ api: { register: async () => Promise.reject(thrown) } })
      h.send(publish(registerTopic('abc'), '{}'))
      await h.settle()
      const answer = h.out.at(-1) as MqttPublishPacket
      expect(answer.topic).toBe(`$dps/registrations/res/${status}/?$rid=abc${retryAfter ? `&retry-after=${retryAfter}` : ''}`)
      const body = JSON.parse(text(answer))
      expect(body).toEqual({ errorCode, trackingId: 'track-1', message: expect.any(String), timestampUtc: expect.stringMatching(/^2023-11-14T22:13:20/) })
      // The device never sees the internal reason.
      expect(body.message).not.toMatch(/test:|boom/)
      const event = h.events.at(-1) as Extract<DpsMqttEvent, { type: 'response' }>
      expect(event).toMatchObject({ type: 'response', operation: 'register', status, delivered: true })
      expect(event.error?.errorCode).toBe(errorCode)
    })
  }

  it('refuses TPM attestation over MQTT with a clear 400', async () => {
    const h = await connected()
    h.send(publish(registerTopic('t'), JSON.stringify({ registrationId: 'dev-1', tpm: { endorsementKey: 'AAAA' } })))
    await h.settle()
    const answer = h.out.at(-1) as MqttPublishPacket
    expect(answer.topic).toBe('$dps/registrations/res/400/?$rid=t')
    expect(JSON.parse(text(answer)).message).toBe('TPM attestation is not supported over MQTT; use HTTPS or AMQP.')
    expect(h.calls.map((c) => c.name)).not.toContain('register')
  })

  it('answers 400 for a body naming another device, and for invalid JSON', async () => {
    const h = await connected()
    h.send(publish(registerTopic('a'), JSON.stringify({ registrationId: 'dev-2' }), 5))
    h.send(publish(registerTopic('b'), '{not json', 6))
    await h.settle()
    const answers = h.out.filter((p): p is MqttPublishPacket => p.cmd === 'publish')
    expect(answers.map((p) => p.topic)).toEqual(['$dps/registrations/res/400/?$rid=a', '$dps/registrations/res/400/?$rid=b'])
    expect(JSON.parse(text(answers[1]!)).errorCode).toBe(400002)
  })

  it('answers a poll without operationId with 400 and closes on topics outside the dialect', async () => {
    const h = await connected()
    h.send(publish('$dps/registrations/GET/iotdps-get-operationstatus/?$rid=9', ' '))
    await h.settle()
    expect((h.out.at(-1) as MqttPublishPacket).topic).toBe('$dps/registrations/res/400/?$rid=9')
    h.send(publish('devices/dev-1/messages/events/', 'hi'))
    expect(h.closes).toEqual([{ code: 'UNSUPPORTED', reason: expect.stringMatching(/neither the register nor/) }])
  })

  it('answers 429 beyond maxInFlight requests on one connection', async () => {
    const h = await connected({ limits: { maxInFlight: 2 }, api: { register: () => new Promise(() => {}) } })
    h.send(publish(registerTopic('1'), '{}', 1), publish(registerTopic('2'), '{}', 2), publish(registerTopic('3'), '{}', 3))
    await h.settle()
    expect(h.session.inFlight).toBe(2)
    const answers = h.out.filter((p): p is MqttPublishPacket => p.cmd === 'publish')
    expect(answers.map((p) => p.topic)).toEqual(['$dps/registrations/res/429/?$rid=3&retry-after=1'])
  })

  it('delivers nothing to a client without the subscription (MQTT-3.3.5), and says so', async () => {
    const h = harness()
    h.connect()
    await h.settle()
    h.send(publish(registerTopic('r'), '{}'))
    await h.settle()
    expect(h.out.map((p) => p.cmd)).toEqual(['connack', 'puback'])
    expect(h.events.at(-1)).toMatchObject({ type: 'response', status: 202, delivered: false })
  })

  it('drops answers that arrive after the connection ended', async () => {
    let resolve!: (v: unknown) => void
    const h = await connected({ api: { register: () => new Promise((r) => (resolve = r)) as never } })
    h.send(publish(registerTopic('late'), '{}'))
    h.session.end('CONNECTION_LOST', 'socket closed')
    const written = h.out.length
    resolve({ status: 202, body: { operationId: 'x', status: 'assigning' } })
    await h.settle()
    expect(h.out.length).toBe(written)
    expect(h.closes).toEqual([{ code: 'CONNECTION_LOST', reason: 'socket closed' }])
  })
})

describe('connection rules', () => {
  it('answers PINGREQ and ends on DISCONNECT', async () => {
    const h = await connected()
    h.send({ cmd: 'pingreq' })
    expect(h.out).toEqual([{ cmd: 'pingresp' }])
    h.send({ cmd: 'disconnect' })
    expect(h.closes).toEqual([{ code: 'CLIENT_DISCONNECT', reason: 'client sent DISCONNECT' }])
  })

  it('closes when the first packet is not CONNECT, and on a second CONNECT', async () => {
    const first = harness()
    first.send({ cmd: 'pingreq' })
    expect(first.closes[0]).toEqual({ code: 'PROTOCOL_VIOLATION', reason: expect.stringMatching(/MQTT-3\.1\.0-1/) })
    const second = await connected()
    second.connect()
    expect(second.closes[0]).toEqual({ code: 'PROTOCOL_VIOLATION', reason: expect.stringMatching(/MQTT-3\.1\.0-2/) })
  })

  it('closes on a QoS 2 PUBLISH, on server-bound packet types and on PUBREL', async () => {
    const qos2 = await connected()
    qos2.send(publish(registerTopic('x'), '{}', 3, 2))
    expect(qos2.closes[0]?.code).toBe('UNSUPPORTED')
    const suback = await connected()
    suback.send({ cmd: 'suback', messageId: 1, granted: [1] })
    expect(suback.closes[0]).toEqual({ code: 'PROTOCOL_VIOLATION', reason: 'SUBACK is not expected from a client here' })
  })

  it('closes a connection that sends no CONNECT within the connect timeout', () => {
    const h = harness({ limits: { connectTimeoutMs: 5000 } })
    h.advance(4999)
    h.session.tick()
    expect(h.closes).toEqual([])
    h.advance(1)
    h.session.tick()
    expect(h.closes).toEqual([{ code: 'CONNECT_TIMEOUT', reason: 'no CONNECT within 5000 ms of the connection opening' }])
  })

  it('closes after 1.5 keep-alive periods of silence, and any packet resets the count (MQTT-3.1.2-24)', async () => {
    const h = harness()
    h.connect({ keepalive: 10 })
    await h.settle()
    h.advance(14_000)
    h.send({ cmd: 'pingreq' })
    h.advance(14_000)
    h.session.tick()
    expect(h.closes).toEqual([])
    h.advance(1_001)
    h.session.tick()
    expect(h.closes).toEqual([{ code: 'KEEPALIVE_TIMEOUT', reason: expect.stringMatching(/no packet for 15001 ms; keep-alive is 10 s/) }])
  })

  it('holds a client asking for no keep-alive to the ceiling', async () => {
    const h = harness({ limits: { maxKeepAliveSeconds: 60 } })
    h.connect({ keepalive: 0 })
    await h.settle()
    h.advance(90_001)
    h.session.tick()
    expect(h.closes[0]?.code).toBe('KEEPALIVE_TIMEOUT')
  })

  it('closes on malformed bytes and on an oversized packet with the reason', async () => {
    const malformed = await connected()
    malformed.session.push(new Uint8Array([0x00, 0x00]))
    expect(malformed.closes).toEqual([{ code: 'MALFORMED_PACKET', reason: expect.stringMatching(/reserved/) }])
    const large = await connected({ limits: { maxPacketBytes: 1024 } })
    large.send(publish(registerTopic('big'), 'x'.repeat(2000)))
    expect(large.closes).toEqual([{ code: 'PACKET_TOO_LARGE', reason: expect.stringMatching(/exceeds the limit of 1024 bytes/) }])
  })

  it('random bytes after a valid handshake never throw out of push(), and end only with typed reasons', async () => {
    const codes = new Set(['MALFORMED_PACKET', 'PACKET_TOO_LARGE', 'PROTOCOL_VIOLATION', 'UNSUPPORTED', 'CLIENT_DISCONNECT', 'CONNECT_REFUSED'])
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), fc.boolean(), async (noise, handshake) => {
        const h = handshake ? await connected() : harness()
        expect(() => h.session.push(noise)).not.toThrow()
        await h.settle()
        for (const c of h.closes) expect(codes).toContain(c.code)
        expect(h.closes.length).toBeLessThanOrEqual(1)
      }),
      { numRuns: 300 },
    )
  })
})

describe('the TransportSession contract', () => {
  it('idle() resolves only once every request in flight was answered, after the answer was written', async () => {
    const pending: ((v: { status: 202; body: { operationId: string; status: 'assigning' }; retryAfterSeconds: number }) => void)[] = []
    const h = await connected({ api: { register: () => new Promise((resolve) => pending.push(resolve)) } })
    h.send(publish(registerTopic('1'), '{}', 1), publish(registerTopic('2'), '{}', 2))
    await h.settle()
    expect(h.session.inFlight).toBe(2)
    let idle = false
    const waited = h.session.idle().then(() => {
      idle = true
      return h.out.filter((p): p is MqttPublishPacket => p.cmd === 'publish').length
    })
    pending[0]!({ status: 202, body: { operationId: 'op-1', status: 'assigning' }, retryAfterSeconds: 3 })
    await h.settle()
    expect(idle).toBe(false)
    pending[1]!({ status: 202, body: { operationId: 'op-2', status: 'assigning' }, retryAfterSeconds: 3 })
    expect(await waited).toBe(2)
    expect(h.session.inFlight).toBe(0)
  })

  it('shutdown() ends with SERVER_CLOSING and abandon() with CONNECTION_LOST, each once', async () => {
    const a = await connected()
    a.session.shutdown('draining')
    a.session.abandon('socket closed')
    expect(a.closes).toEqual([{ code: 'SERVER_CLOSING', reason: 'draining' }])
    const b = await connected()
    b.session.abandon('socket closed')
    expect(b.closes).toEqual([{ code: 'CONNECTION_LOST', reason: 'socket closed' }])
  })
})
