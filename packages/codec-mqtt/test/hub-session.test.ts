// The hub MQTT session against a recording HubDeviceApi (the hub core has its own suite): what
// goes on the wire for each client packet, in which order, and why a connection ends.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ProvisioError, formatMethodRequestTopic, newHubSessionState, type HubMqttSessionState, type HubSessionStore } from '@provisio/protocol'
import {
  MqttRouter,
  createHubMqttSession,
  encodePacket,
  mqttDialectOf,
  type HubDeviceApi,
  type HubMqttEvent,
  type HubMqttLimits,
  type MqttCloseReason,
  type MqttPacket,
  type MqttPublishPacket,
} from '../src/index.js'
import { concat, recordingPorts, sender, settle, text } from './helpers.js'

const USERNAME = 'hub.example/dev-1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4'
const SAS = 'SharedAccessSignature sr=hub.example%2Fdevices%2Fdev-1&sig=abc%3D&se=1900000000'

function harness(options: { api?: Partial<HubDeviceApi>; limits?: Partial<HubMqttLimits>; chain?: Uint8Array[]; sessions?: HubSessionStore } = {}) {
  const recorder = recordingPorts<HubMqttEvent>({ maxPacketBytes: 1 << 20 })
  const calls: { name: string; args: unknown[] }[] = []
  const telemetry: { body: string; properties: Record<string, string>; systemProperties: Record<string, string> }[] = []
  const reported: Record<string, unknown> = {}
  let reportedVersion = 1
  const api: HubDeviceApi = {
    authenticate: async (r) => {
      calls.push({ name: 'authenticate', args: [r] })
      if (options.api?.authenticate) return options.api.authenticate(r)
      return { hostName: r.hostName, deviceId: r.deviceId }
    },
    getTwin: async (h, d) => {
      calls.push({ name: 'getTwin', args: [h, d] })
      if (options.api?.getTwin) return options.api.getTwin(h, d)
      return { desired: { interval: 10, $version: 2 }, reported: { ...reported, $version: reportedVersion } }
    },
    patchReported: async (h, d, patch) => {
      calls.push({ name: 'patchReported', args: [h, d, patch] })
      if (options.api?.patchReported) return options.api.patchReported(h, d, patch)
      Object.assign(reported, patch)
      return ++reportedVersion
    },
    telemetry: (h, d, m) => {
      calls.push({ name: 'telemetry', args: [h, d] })
      if (options.api?.telemetry) return options.api.telemetry(h, d, m)
      telemetry.push({ body: new TextDecoder().decode(m.body), properties: m.properties, systemProperties: m.systemProperties })
    },
  }
  const session = createHubMqttSession({
    api,
    ...recorder.ports,
    ...(options.chain ? { clientCertificates: options.chain } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.sessions ? { sessions: options.sessions } : {}),
  })
  const send = sender(session)
  return {
    session,
    out: recorder.out,
    closes: recorder.closes,
    events: recorder.events,
    calls,
    telemetry,
    send,
    settle,
    advance: recorder.advance,
    connect: async (extra: Partial<Extract<MqttPacket, { cmd: 'connect' }>> = {}) => {
      send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, keepalive: 180, clientId: 'dev-1', username: USERNAME, password: Buffer.from(SAS), ...extra })
      await settle()
    },
    subscribe: async (...topics: string[]) => {
      send({ cmd: 'subscribe', messageId: 1, subscriptions: topics.map((topic) => ({ topic, qos: 0 as const })) })
      await settle()
    },
    publish: async (topic: string, payload: string, qos: 0 | 1 = 0, messageId = 5) => {
      send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false, ...(qos === 1 ? { messageId } : {}) })
      await settle()
    },
  }
}

describe('CONNECT', () => {
  it('admits a device with its SAS: clean=0 accepted, sessionPresent 0, credentials handed to the hub', async () => {
    const h = harness()
    await h.connect()
    expect(h.out).toEqual([{ cmd: 'connack', returnCode: 0, sessionPresent: false }])
    expect(h.calls[0]).toEqual({ name: 'authenticate', args: [{ hostName: 'hub.example', deviceId: 'dev-1', sasToken: SAS }] })
    expect(h.events[0]).toEqual({ type: 'connected', hostName: 'hub.example', deviceId: 'dev-1', apiVersion: '2021-04-12', clientType: 'azure-iot-device/1.18.4', keepAliveSeconds: 180, clean: false, sessionPresent: false })
    expect(h.session.state).toBe('connected')
  })

  it('hands the TLS chain over when there is no password', async () => {
    const chain = [new Uint8Array([0x30, 0x01, 0x00])]
    const h = harness({ chain })
    await h.connect({ password: undefined })
    expect(h.calls[0]!.args[0]).toEqual({ hostName: 'hub.example', deviceId: 'dev-1', clientCertificates: chain })
    expect(h.out[0]).toMatchObject({ cmd: 'connack', returnCode: 0 })
  })

  it.each([
    ['a refused SAS', new ProvisioError('SAS_BAD_SIGNATURE', 'signature matches neither key of dev-1'), 5],
    ['an unknown device', new ProvisioError('NOT_FOUND', 'no device dev-1'), 5],
    ['a disabled device', new ProvisioError('DEVICE_DISABLED', 'dev-1 is disabled'), 5],
    ['a store failure', new ProvisioError('SERVICE_UNAVAILABLE', 'database down'), 3],
  ])('answers %s (%s) with CONNACK %d, says why, and closes', async (_name, error, code) => {
    const h = harness({ api: { authenticate: async () => Promise.reject(error) } })
    await h.connect()
    expect(h.out).toEqual([{ cmd: 'connack', returnCode: code, sessionPresent: false }])
    expect(h.events[0]).toMatchObject({ type: 'refused', returnCode: code, reason: expect.stringContaining(error.reason), deviceId: 'dev-1' })
    expect(h.closes).toEqual([{ code: 'CONNECT_REFUSED', reason: expect.stringContaining(error.code) }])
  })

  it.each([
    [{ username: undefined, password: undefined }, 4, /no username/],
    [{ username: 'nohost' }, 4, /hubHostName/],
    [{ clientId: 'other' }, 2, /differs from the username/],
    [{ username: 'hub.example/dev-1/mod/?api-version=1', clientId: 'dev-1/mod' }, 2, /module identities/],
    [{ password: undefined }, 5, /neither a SAS password nor a TLS client certificate/],
    [{ password: Buffer.from([0xff, 0xfe]) }, 4, /not UTF-8/],
    [{ protocolVersion: 3, protocolId: 'MQIsdp' }, 1, /not MQTT 3.1.1/],
  ])('refuses a CONNECT with %o (CONNACK %i) without asking the hub', async (extra, code, reason) => {
    const h = harness()
    await h.connect(extra as never)
    expect(h.out[0]).toEqual({ cmd: 'connack', returnCode: code, sessionPresent: false })
    expect(h.events[0]).toMatchObject({ type: 'refused', reason: expect.stringMatching(reason) })
    expect(h.calls).toHaveLength(0)
    expect(h.closes[0]!.code).toBe('CONNECT_REFUSED')
  })

  it('serves packets pipelined behind the CONNECT once admitted, in order', async () => {
    const h = harness()
    h.send(
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'dev-1', username: USERNAME, password: Buffer.from(SAS) },
      { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$iothub/twin/res/#', qos: 0 }] },
      { cmd: 'publish', topic: '$iothub/twin/GET/?$rid=1', payload: Buffer.from(''), qos: 0, retain: false, dup: false },
    )
    await h.settle()
    await h.settle()
    expect(h.out.map((p) => p.cmd)).toEqual(['connack', 'suback', 'publish'])
  })

  it('closes on a connect timeout and on silence beyond 1.5 × keep-alive', async () => {
    const a = harness()
    a.advance(10_000)
    a.session.tick()
    expect(a.closes[0]!.code).toBe('CONNECT_TIMEOUT')
    const b = harness()
    await b.connect({ keepalive: 10 })
    b.advance(14_000)
    b.session.tick()
    expect(b.closes).toHaveLength(0)
    b.send({ cmd: 'pingreq' })
    expect(b.out.at(-1)).toEqual({ cmd: 'pingresp' })
    b.advance(15_001)
    b.session.tick()
    expect(b.closes[0]).toMatchObject({ code: 'KEEPALIVE_TIMEOUT' })
  })
})

describe('credentials and identity during a connection', () => {
  it('closes when the SAS token the device connected with expires (CREDENTIALS_EXPIRED), on the tick after', async () => {
    const h = harness({ api: { authenticate: async (r) => ({ hostName: r.hostName, deviceId: r.deviceId, expiresAtMs: 1_700_000_060_000 }) } })
    await h.connect({ keepalive: 0 })
    h.advance(59_000)
    h.session.tick()
    expect(h.closes).toHaveLength(0)
    h.advance(1_000)
    h.session.tick()
    expect(h.closes).toEqual([{ code: 'CREDENTIALS_EXPIRED', reason: expect.stringMatching(/dev-1 expired at 1700000060/) }])
  })

  it('closes with IDENTITY_REVOKED and the reason when the adapter revokes the device', async () => {
    const h = harness()
    await h.connect()
    h.session.revoke('device dev-1 was disabled on hub hub.example')
    expect(h.closes).toEqual([{ code: 'IDENTITY_REVOKED', reason: 'device dev-1 was disabled on hub hub.example' }])
    h.send({ cmd: 'pingreq' })
    expect(h.out.at(-1)).toEqual({ cmd: 'connack', returnCode: 0, sessionPresent: false })
  })
})

describe('subscriptions', () => {
  it('grants the twin, desired, methods and own C2D filters (QoS ≤ 1) and fails the rest', async () => {
    const h = harness()
    await h.connect()
    h.send({
      cmd: 'subscribe',
      messageId: 3,
      subscriptions: [
        { topic: '$iothub/twin/res/#', qos: 0 },
        { topic: '$iothub/twin/PATCH/properties/desired/#', qos: 0 },
        { topic: '$iothub/methods/POST/#', qos: 0 },
        { topic: 'devices/dev-1/messages/devicebound/#', qos: 1 },
        { topic: 'devices/dev-2/messages/devicebound/#', qos: 1 },
        { topic: '#', qos: 2 },
      ],
    })
    expect(h.out.at(-1)).toEqual({ cmd: 'suback', messageId: 3, granted: [0, 0, 0, 1, 0x80, 0x80] })
    h.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['$iothub/twin/PATCH/properties/desired/#'] })
    expect(h.out.at(-1)).toEqual({ cmd: 'unsuback', messageId: 4 })
    expect(h.session.pushDesired({ a: 1, $version: 3 }, 3)).toBe(false)
  })
})

describe('direct methods', () => {
  it('reports a methods subscription, delivers a method request and hands the answer on (oversized answers dropped with a reason)', async () => {
    const h = harness()
    await h.connect()
    expect(h.session.deliver({ topic: formatMethodRequestTopic('reboot', 'r1'), payload: '{}' })).toBe(false)
    await h.subscribe('$iothub/methods/POST/#')
    expect(h.events).toContainEqual({ type: 'subscribed', kinds: ['methods'] })
    expect(h.session.deliver({ topic: formatMethodRequestTopic('reboot', 'r1'), payload: '{"at":1}' })).toBe(true)
    expect(h.out.at(-1)).toMatchObject({ cmd: 'publish', topic: '$iothub/methods/POST/reboot/?$rid=r1', qos: 0 })
    await h.publish('$iothub/methods/res/201/?$rid=r1', '{"ok":true}')
    const answer = h.events.find((e) => e.type === 'methodResponse') as Extract<HubMqttEvent, { type: 'methodResponse' }>
    expect({ rid: answer.rid, status: answer.status, payload: new TextDecoder().decode(answer.payload) }).toEqual({ rid: 'r1', status: 201, payload: '{"ok":true}' })
    await h.publish('$iothub/methods/res/200/?$rid=r2', JSON.stringify('x'.repeat(128 * 1024)))
    expect(h.events.at(-1)).toMatchObject({ type: 'methodResponseRefused', rid: 'r2' })
    expect(h.closes).toEqual([])
  })
})

describe('twin', () => {
  it('answers GET with desired and reported on $iothub/twin/res/200', async () => {
    const h = harness()
    await h.connect()
    await h.subscribe('$iothub/twin/res/#')
    await h.publish('$iothub/twin/GET/?$rid=abc', '')
    const res = h.out.at(-1) as MqttPublishPacket
    expect(res).toMatchObject({ cmd: 'publish', topic: '$iothub/twin/res/200/?$rid=abc', qos: 0 })
    expect(JSON.parse(text(res))).toEqual({ desired: { interval: 10, $version: 2 }, reported: { $version: 1 } })
  })

  it('answers a reported PATCH with 204 and the new $version in the topic; PUBACK first for QoS 1', async () => {
    const h = harness()
    await h.connect()
    await h.subscribe('$iothub/twin/res/#')
    await h.publish('$iothub/twin/PATCH/properties/reported/?$rid=r2', '{"fw":"1.0"}', 1, 9)
    expect(h.out.slice(-2)).toEqual([
      { cmd: 'puback', messageId: 9 },
      expect.objectContaining({ cmd: 'publish', topic: '$iothub/twin/res/204/?$rid=r2&$version=2' }),
    ])
    expect(text(h.out.at(-1)!)).toBe('')
    expect(h.calls.at(-1)).toEqual({ name: 'patchReported', args: ['hub.example', 'dev-1', { fw: '1.0' }] })
  })

  it('answers broken requests with an error status and a body carrying errorCode (the SDK fails the call on it)', async () => {
    const h = harness({ api: { getTwin: () => Promise.reject(new ProvisioError('NOT_FOUND', 'deleted meanwhile')) } })
    await h.connect()
    await h.subscribe('$iothub/twin/res/#')
    await h.publish('$iothub/twin/PATCH/properties/reported/?$rid=r1', '[1,2]')
    expect(h.out.at(-1)).toMatchObject({ topic: '$iothub/twin/res/400/?$rid=r1' })
    expect(JSON.parse(text(h.out.at(-1)!))).toMatchObject({ errorCode: 400003 })
    await h.publish('$iothub/twin/PATCH/properties/reported/?$rid=r2', '{not json')
    expect(h.out.at(-1)).toMatchObject({ topic: '$iothub/twin/res/400/?$rid=r2' })
    await h.publish('$iothub/twin/PATCH/properties/reported/?$rid=r3', `{"a":"${'x'.repeat(40_000)}"}`)
    expect(h.out.at(-1)).toMatchObject({ topic: '$iothub/twin/res/413/?$rid=r3' })
    await h.publish('$iothub/twin/GET/?$rid=r4', '')
    expect(h.out.at(-1)).toMatchObject({ topic: '$iothub/twin/res/404/?$rid=r4' })
    expect(h.session.state).toBe('connected')
  })

  it('answers requests beyond the in-flight limit with 429', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const h = harness({ limits: { maxInFlight: 1 }, api: { getTwin: async () => (await gate, { desired: { $version: 1 }, reported: { $version: 1 } }) } })
    await h.connect()
    await h.subscribe('$iothub/twin/res/#')
    await h.publish('$iothub/twin/GET/?$rid=1', '')
    await h.publish('$iothub/twin/GET/?$rid=2', '')
    expect(h.out.at(-1)).toMatchObject({ topic: '$iothub/twin/res/429/?$rid=2' })
    release()
    await h.settle()
    expect(h.out.at(-1)).toMatchObject({ topic: '$iothub/twin/res/200/?$rid=1' })
    expect(h.session.inFlight).toBe(0)
  })

  it('sends no response without a subscription (MQTT-3.3.5), and tells so', async () => {
    const h = harness()
    await h.connect()
    await h.publish('$iothub/twin/GET/?$rid=1', '')
    expect(h.out.map((p) => p.cmd)).toEqual(['connack'])
    expect(h.events.at(-1)).toMatchObject({ type: 'twin', status: 200, delivered: false })
  })

  it('pushes desired changes at the granted QoS to a subscribed device', async () => {
    const h = harness()
    await h.connect()
    await h.subscribe('$iothub/twin/PATCH/properties/desired/#')
    expect(h.session.pushDesired({ interval: 30, $version: 3 }, 3)).toBe(true)
    expect(h.out.at(-1)).toMatchObject({ cmd: 'publish', topic: '$iothub/twin/PATCH/properties/desired/?$version=3', qos: 0 })
    expect(JSON.parse(text(h.out.at(-1)!))).toEqual({ interval: 30, $version: 3 })
  })
})

describe('persistent sessions (clean session 0)', () => {
  /** A store keeping one device's session, as the hub's MemoryHubSessions does. */
  function oneSessionStore(): HubSessionStore & { kept: HubMqttSessionState | undefined } {
    const store = {
      kept: undefined as HubMqttSessionState | undefined,
      open(_h: string, _d: string, clean: boolean, owner: object) {
        const present = !clean && store.kept !== undefined
        if (!present) store.kept = newHubSessionState(owner)
        store.kept!.owner = owner
        return Promise.resolve({ state: store.kept!, present })
      },
      close(_h: string, _d: string, owner: object) {
        if (store.kept?.owner === owner) store.kept.owner = undefined
      },
    }
    return store
  }

  it('a reconnect finds subscriptions and unacknowledged QoS 1 messages (sent again with DUP); at most maxUnacknowledged in flight', async () => {
    const sessions = oneSessionStore()
    const first = harness({ sessions, limits: { maxUnacknowledged: 1 } })
    await first.connect()
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$iothub/twin/PATCH/properties/desired/#', qos: 1 }] })
    expect(first.session.pushDesired({ a: 1, $version: 2 }, 2)).toBe(true)
    expect(first.session.pushDesired({ a: 2, $version: 3 }, 3)).toBe(true)
    // One in flight, the second waits.
    const sent = first.out.filter((p): p is MqttPublishPacket => p.cmd === 'publish')
    expect(sent).toHaveLength(1)
    expect(sent[0]).toMatchObject({ qos: 1, dup: false, topic: '$iothub/twin/PATCH/properties/desired/?$version=2' })
    first.session.end('CONNECTION_LOST', 'gone')
    expect(sessions.kept?.owner).toBeUndefined()

    // Room for two in flight now: the kept one again (DUP, its own id), then the waiting one under an id not in use.
    const second = harness({ sessions, limits: { maxUnacknowledged: 2 } })
    await second.connect()
    expect(second.out[0]).toEqual({ cmd: 'connack', returnCode: 0, sessionPresent: true })
    expect(second.events[0]).toMatchObject({ type: 'connected', sessionPresent: true })
    expect(second.out[1]).toMatchObject({ cmd: 'publish', qos: 1, dup: true, messageId: sent[0]!.messageId, topic: sent[0]!.topic })
    const drained = second.out[2] as MqttPublishPacket
    expect(drained).toMatchObject({ cmd: 'publish', qos: 1, dup: false, topic: '$iothub/twin/PATCH/properties/desired/?$version=3' })
    expect(drained.messageId).not.toBe(sent[0]!.messageId)
    expect(second.out).toHaveLength(3)
    second.send({ cmd: 'puback', messageId: sent[0]!.messageId! })
    // The subscription still holds: a twin response needs none, the desired push goes out.
    second.send({ cmd: 'puback', messageId: drained.messageId! })
    expect(second.session.pushDesired({ a: 3, $version: 4 }, 4)).toBe(true)

    const clean = harness({ sessions })
    await clean.connect({ clean: true })
    expect(clean.out).toEqual([{ cmd: 'connack', returnCode: 0, sessionPresent: false }])
    expect(clean.session.pushDesired({ a: 4, $version: 5 }, 5)).toBe(false)
  })
})

describe('telemetry', () => {
  it('stores messages with their properties and acknowledges QoS 1 after storing', async () => {
    const h = harness()
    await h.connect()
    await h.publish('devices/dev-1/messages/events/%24.mid=m1&unit=C', '{"t":21}', 1, 7)
    expect(h.telemetry).toEqual([{ body: '{"t":21}', properties: { unit: 'C' }, systemProperties: { '$.mid': 'm1' } }])
    expect(h.out.at(-1)).toEqual({ cmd: 'puback', messageId: 7 })
  })

  it('leaves a message the hub could not store unacknowledged and says why', async () => {
    const h = harness({ api: { telemetry: () => { throw new ProvisioError('SERVICE_UNAVAILABLE', 'buffer closed') } } })
    await h.connect()
    await h.publish('devices/dev-1/messages/events/', 'x', 1, 7)
    expect(h.out.map((p) => p.cmd)).toEqual(['connack'])
    expect(h.events.at(-1)).toEqual({ type: 'telemetryRefused', reason: 'SERVICE_UNAVAILABLE: buffer closed' })
  })

  it('acknowledges a message only once the hub has stored it, in the order the PUBLISHes came', async () => {
    const pending: { resolve: () => void; reject: (error: unknown) => void }[] = []
    const h = harness({ api: { telemetry: () => new Promise<void>((resolve, reject) => void pending.push({ resolve, reject })) } })
    await h.connect()
    await h.publish('devices/dev-1/messages/events/', 'a', 1, 7)
    await h.publish('devices/dev-1/messages/events/', 'b', 1, 8)
    await h.publish('devices/dev-1/messages/events/', 'c', 1, 9)
    // Not stored yet: no PUBACK.
    expect(h.out.map((p) => p.cmd)).toEqual(['connack'])
    pending[0]!.resolve()
    pending[1]!.reject(new ProvisioError('SERVICE_UNAVAILABLE', 'disk full'))
    pending[2]!.resolve()
    await h.settle()
    expect(h.out.slice(1)).toEqual([
      { cmd: 'puback', messageId: 7 },
      { cmd: 'puback', messageId: 9 },
    ])
    expect(h.events).toContainEqual({ type: 'telemetryRefused', reason: 'SERVICE_UNAVAILABLE: disk full' })
  })

  it.each([
    ['another device', 'devices/dev-2/messages/events/', 'x', 'UNSUPPORTED', /dev-2/],
    ['an unknown topic', 'foo/bar', 'x', 'UNSUPPORTED', /not one a device may publish/],
    ['a payload over the limit', 'devices/dev-1/messages/events/', 'x'.repeat(2000), 'PACKET_TOO_LARGE', /exceeds the limit of 1000/],
  ])('closes the connection for telemetry to %s', async (_name, topic, payload, code, reason) => {
    const h = harness({ limits: { maxTelemetryBytes: 1000 } })
    await h.connect()
    await h.publish(topic, payload, 1)
    expect(h.closes[0]).toEqual({ code, reason: expect.stringMatching(reason) })
    expect(h.telemetry).toHaveLength(0)
  })

  it('closes on QoS 2 and on packets over the packet limit', async () => {
    const a = harness()
    await a.connect()
    a.send({ cmd: 'publish', topic: 'devices/dev-1/messages/events/', payload: Buffer.from('x'), qos: 2, messageId: 1, retain: false, dup: false })
    expect(a.closes[0]!.code).toBe('UNSUPPORTED')
    const b = harness({ limits: { maxPacketBytes: 500 } })
    await b.connect()
    await b.publish('devices/dev-1/messages/events/', 'x'.repeat(600))
    expect(b.closes[0]!.code).toBe('PACKET_TOO_LARGE')
  })
})

describe('robustness', () => {
  it('any bytes after a valid CONNECT end in a typed close or a served packet, never an exception (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (noise) => {
        const h = harness()
        await h.connect()
        h.session.push(noise)
        await h.settle()
        for (const c of h.closes) expect(c.code).not.toBe('INTERNAL_ERROR')
      }),
      { numRuns: 200 },
    )
  })
})

describe('MqttRouter', () => {
  function routed(bytes: Uint8Array[], isHub = (h: string) => h === 'hub.example') {
    const chosen: string[] = []
    const seen: Uint8Array[] = []
    const closes: MqttCloseReason[] = []
    let now = 0
    const router = new MqttRouter({
      clock: { now: () => now },
      choose: (connect) => {
        chosen.push(mqttDialectOf(connect?.username, isHub))
        return { push: (b) => void seen.push(b), tick: () => undefined, end: () => undefined, shutdown: () => undefined, abandon: () => undefined, idle: () => Promise.resolve(), inFlight: 0 }
      },
      close: (r) => closes.push(r),
    })
    for (const b of bytes) router.push(b)
    return { chosen, seen, closes, router, advance: (ms: number) => void (now += ms) }
  }
  const connect = (username: string) => encodePacket({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'x', username })

  it('waits for the whole CONNECT, even byte by byte, then replays every byte into the chosen session', () => {
    const bytes = concat([connect(USERNAME), encodePacket({ cmd: 'pingreq' })])
    const r = routed([...bytes].map((b) => new Uint8Array([b])))
    expect(r.chosen).toEqual(['hub'])
    expect(concat(r.seen)).toEqual(bytes)
  })

  it('routes DPS usernames to DPS and broken first packets to a session that will refuse them', () => {
    expect(routed([connect('0ne00000A0A/registrations/dev/api-version=2019-03-31')]).chosen).toEqual(['dps'])
    expect(routed([encodePacket({ cmd: 'pingreq' })]).chosen).toEqual(['dps'])
    expect(routed([new Uint8Array([0x00, 0x00])]).chosen).toEqual(['dps'])
  })

  it('closes on a connect timeout while nothing complete has arrived', () => {
    const r = routed([connect(USERNAME).subarray(0, 5)])
    r.advance(10_000)
    r.router.tick()
    expect(r.chosen).toEqual([])
    expect(r.closes[0]!.code).toBe('CONNECT_TIMEOUT')
  })
})
