// The hub side of codec-amqp without sockets: the routing rule, the front that answers alike until
// it knows the service (its bytes must equal what the chosen session writes alone), and a hub
// session's CBS and telemetry links over a fake HubDeviceApi.
import frames from 'rhea/lib/frames.js'
import message from 'rhea/lib/message.js'
import terminus from 'rhea/lib/terminus.js'
import { describe, expect, it } from 'vitest'
import { ProvisioError, type HubDeviceApi } from '@provisio/protocol'
import { AmqpConnection, AmqpDeviceSession, AmqpHubSession, DEFAULT_HUB_AMQP_LIMITS, routeAmqp, type AmqpEndpoint, type AmqpRouteHint } from '../src/index.js'
import { ADDRESS, AMQP_HEADER, amqp, attachReceiver, begin, fakeDevice, parseOutput, sasl } from './harness.js'

const HUB = 'hub-1.example'
const NOW = Date.UTC(2026, 0, 1)

const hubNamed = (name: string, by: 'host' | 'short') => (by === 'host' ? (name.toLowerCase() === HUB ? HUB : name === 'localhost' ? 'localhost' : undefined) : name.toLowerCase() === 'hub-1' ? HUB : undefined)
const dpsHost = (host: string) => host === 'localhost'
const route = (hint: Partial<AmqpRouteHint>) => routeAmqp({ final: false, ...hint }, hubNamed, dpsHost)

describe('routeAmqp', () => {
  it('picks DPS or a hub by PLAIN user, TPM, host name, and the first link when DPS shares the host name', () => {
    expect(route({ saslMechanism: 'TPM', hostName: HUB })).toBe('dps')
    expect(route({ saslUser: `${ADDRESS}`, hostName: HUB })).toBe('dps')
    expect(route({ saslUser: 'service@sas.root.hub-1' })).toEqual({ hub: HUB })
    expect(route({ saslUser: 'dev-1@sas.hub-1' })).toEqual({ hub: HUB })
    expect(route({ saslUser: 'dev-1@sas.elsewhere' })).toBe('dps')
    expect(route({ hostName: 'HUB-1.example' })).toEqual({ hub: HUB })
    expect(route({ hostName: 'global.example' })).toBe('dps')
    expect(route({})).toBe('dps')
    expect(route({ hostName: 'localhost' })).toBe('undecided')
    expect(route({ hostName: 'localhost', linkAddress: ADDRESS })).toBe('dps')
    expect(route({ hostName: 'localhost', linkAddress: `amqps://localhost/${ADDRESS}` })).toBe('dps')
    expect(route({ hostName: 'localhost', linkAddress: '$cbs' })).toEqual({ hub: 'localhost' })
    expect(route({ hostName: 'localhost', final: true })).toEqual({ hub: 'localhost' })
  })
})

function fakeHubApi(): { api: HubDeviceApi; telemetry: { deviceId: string; body: string; properties: Record<string, string>; systemProperties: Record<string, string> }[] } {
  const telemetry: { deviceId: string; body: string; properties: Record<string, string>; systemProperties: Record<string, string> }[] = []
  const api: HubDeviceApi = {
    async authenticate(request) {
      if (request.sasToken === 'good') return { hostName: HUB, deviceId: request.deviceId, expiresAtMs: NOW + 60_000 }
      throw new ProvisioError('SAS_BAD_SIGNATURE', 'signature does not match either key')
    },
    getTwin: async () => ({ desired: {}, reported: {} }),
    patchReported: async () => 1,
    telemetry(_hostName, deviceId, m) {
      telemetry.push({ deviceId, body: Buffer.from(m.body).toString(), properties: m.properties, systemProperties: m.systemProperties })
    },
  }
  return { api, telemetry }
}

function hubSession(clock: { now(): number }, written: Buffer[]) {
  const fake = fakeHubApi()
  const session = new AmqpHubSession({
    hostName: HUB,
    api: fake.api,
    authorizeService: async (token) => {
      if (token === 'policy') return { expiresAtMs: NOW + 60_000 }
      throw new ProvisioError('SAS_BAD_SIGNATURE', 'policy key does not verify')
    },
    write: (b) => written.push(Buffer.from(b)),
    close: () => undefined,
    clock,
    containerId: 'provisio',
  })
  return { session, ...fake }
}

const hubOpen = (hostName: string) => amqp(frames.open({ container_id: 'client', hostname: hostName, max_frame_size: 65536 }))
const link = (name: string, handle: number, role: boolean, address: string) =>
  amqp(frames.attach({ name, handle, role, source: terminus.source({ address: role ? address : 'client' }).described(), target: terminus.target({ address: role ? 'client' : address }).described(), initial_delivery_count: 0 }))
const send = (handle: number, deliveryId: number, msg: Record<string, unknown>) =>
  amqp(frames.transfer({ handle, delivery_id: deliveryId, delivery_tag: Buffer.from([deliveryId]), message_format: 0, settled: false }), 0, Buffer.from(message.encode(msg)))
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
}

describe('AmqpConnection', () => {
  const conversation = (address: string) => [AMQP_HEADER, hubOpen('localhost'), begin(), address === ADDRESS ? attachReceiver() : link('cbs-recv', 0, true, address)]

  it.each([
    ['a DPS registration link', ADDRESS, 'dps'],
    ['a $cbs link', '$cbs', 'hub'],
  ])('on a host name DPS and a hub share, %s (%s) goes to %s, and the bytes equal what that session writes alone', async (_what, address, expected) => {
    const limits = { maxFrameSize: 64 * 1024, maxSessions: 4, maxLinksPerSession: DEFAULT_HUB_AMQP_LIMITS.maxLinksPerSession }
    const make = (kind: string, write: (b: Uint8Array) => void): AmqpEndpoint =>
      kind === 'dps'
        ? new AmqpDeviceSession({ device: fakeDevice().api, clock: { now: () => NOW }, trackingId: () => 't', write, close: () => undefined })
        : new AmqpHubSession({ hostName: 'localhost', api: fakeHubApi().api, authorizeService: async () => ({}), write, close: () => undefined, clock: { now: () => NOW }, containerId: 'provisio' })
    const viaFront: Buffer[] = []
    let chosen = ''
    const front = new AmqpConnection({
      write: (b) => viaFront.push(Buffer.from(b)),
      close: () => undefined,
      limits,
      containerId: 'provisio',
      clock: { now: () => NOW },
      select: (hint, write) => {
        const r = routeAmqp(hint, hubNamed, dpsHost)
        if (r === 'undecided') return undefined
        chosen = r === 'dps' ? 'dps' : 'hub'
        return make(chosen, write)
      },
    })
    for (const bytes of conversation(address)) front.push(bytes)
    await settle()
    expect(chosen).toBe(expected)
    const alone: Buffer[] = []
    const direct = make(expected, (b) => alone.push(Buffer.from(b)))
    for (const bytes of conversation(address)) direct.push(bytes)
    await settle()
    const names = (bufs: Buffer[]) => parseOutput(Buffer.concat(bufs)).map((w) => w.name)
    // The front announced the hub's handle-max in begin; everything else is the same, frame by frame.
    expect(names(viaFront)).toEqual(names(alone))
    expect(parseOutput(Buffer.concat(viaFront)).at(-1)!.name).toBe('attach')
  })

  it('hands over at once when the open names a hub that DPS does not share', () => {
    const hints: AmqpRouteHint[] = []
    const front = new AmqpConnection({
      write: () => undefined,
      close: () => undefined,
      limits: { maxFrameSize: 65536, maxSessions: 4, maxLinksPerSession: 16 },
      containerId: 'provisio',
      clock: { now: () => NOW },
      select: (hint, write) => {
        hints.push(hint)
        return new AmqpHubSession({ hostName: HUB, api: fakeHubApi().api, authorizeService: async () => ({}), write, close: () => undefined, clock: { now: () => NOW } })
      },
    })
    front.push(Buffer.concat([AMQP_HEADER, hubOpen(HUB)]))
    expect(hints).toEqual([{ hostName: HUB, final: false }])
    expect(front.opening).toBe(false)
  })
})

describe('AmqpHubSession', () => {
  it('answers put-token 200/401/400, gates the telemetry link on the token, stores telemetry with its properties, and detaches when the token lapses', async () => {
    let now = NOW
    const written: Buffer[] = []
    const { session, telemetry } = hubSession({ now: () => now }, written)
    session.push(Buffer.concat([AMQP_HEADER, hubOpen(HUB), begin(), link('cbs-send', 0, false, '$cbs'), link('cbs-recv', 1, true, '$cbs'), amqp(frames.flow({ next_incoming_id: 0, incoming_window: 100, next_outgoing_id: 0, outgoing_window: 100, handle: 1, delivery_count: 0, link_credit: 10 }))]))
    const put = (id: number, name: unknown, body: unknown) =>
      session.push(send(0, id, { message_id: `m${id}`, application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', ...(name === undefined ? {} : { name }) }, body }))
    put(0, `${HUB}/devices/dev-1`, 'good')
    put(1, `${HUB}/devices/dev-1`, 'bad')
    put(2, 'other.example', 'policy')
    put(3, undefined, 'good')
    put(4, HUB, 'policy')
    await settle()
    const answers = parseOutput(Buffer.concat(written))
      .filter((w) => w.name === 'transfer' && w.payload !== undefined)
      .map((w) => message.decode(w.payload!))
      .map((m) => [m.correlation_id, m.application_properties!['status-code'], m.application_properties!['status-description']])
    // Answers go out as each check resolves; compared in request order.
    expect(answers.sort((a, b) => String(a[0]).localeCompare(String(b[0])))).toEqual([
      ['m0', 200, 'OK'],
      ['m1', 401, 'device "dev-1": signature does not match either key'],
      ['m2', 401, expect.stringContaining('is not hub hub-1.example')],
      ['m3', 400, expect.stringContaining('without a name')],
      ['m4', 200, 'OK'],
    ])

    written.length = 0
    session.push(link('events', 2, false, '/devices/dev-1/messages/events'))
    session.push(link('events-other', 3, false, '/devices/dev-2/messages/events'))
    session.push(link('unknown', 4, false, '/devices/dev-1/somewhere'))
    const detaches = parseOutput(Buffer.concat(written)).filter((w) => w.name === 'detach')
    expect(detaches.map((d) => (d.p['error'] as { condition: string }).condition)).toEqual(['amqp:unauthorized-access', 'amqp:not-found'])

    written.length = 0
    session.push(send(2, 5, { message_id: 'mid-1', content_type: 'text/plain', application_properties: { level: 3 }, body: message.data_section(Buffer.from('hello')) }))
    // Accepted only once the sink has stored it (its promise resolved).
    expect(parseOutput(Buffer.concat(written)).find((w) => w.name === 'disposition')).toBeUndefined()
    await settle()
    expect(telemetry).toEqual([{ deviceId: 'dev-1', body: 'hello', properties: { level: '3' }, systemProperties: { '$.mid': 'mid-1', '$.ct': 'text/plain' } }])
    expect(parseOutput(Buffer.concat(written)).find((w) => w.name === 'disposition')!.p['state']).toBeDefined()

    written.length = 0
    session.tick()
    expect(parseOutput(Buffer.concat(written)).filter((w) => w.name === 'detach')).toHaveLength(0)
    now = NOW + 60_001
    session.tick()
    const expired = parseOutput(Buffer.concat(written)).filter((w) => w.name === 'detach')
    // Only the telemetry link lived on a token ($cbs links need none).
    expect(expired.map((d) => { const e = d.p['error'] as { condition: string; description: string }; return { condition: e.condition, description: e.description } })).toEqual([{ condition: 'amqp:unauthorized-access', description: expect.stringContaining('token for device "dev-1" expired without renewal') }])
  })

  it('refuses TPM at SASL and accepts PLAIN {deviceId}@sas.{hub} with a good token', async () => {
    const written: Buffer[] = []
    const closes: string[] = []
    const refused = new AmqpHubSession({ hostName: HUB, api: fakeHubApi().api, authorizeService: async () => ({}), write: (b) => written.push(Buffer.from(b)), close: (r) => closes.push(r.reason), clock: { now: () => NOW } })
    refused.push(Buffer.concat([Buffer.from('AMQP\x03\x01\x00\x00', 'latin1'), sasl(frames.sasl_init({ mechanism: 'TPM', initial_response: Buffer.from([0]) }))]))
    expect(closes).toEqual([expect.stringContaining('TPM')])

    const ok: Buffer[] = []
    const plain = new AmqpHubSession({ hostName: HUB, api: fakeHubApi().api, authorizeService: async () => ({}), write: (b) => ok.push(Buffer.from(b)), close: () => undefined, clock: { now: () => NOW } })
    plain.push(Buffer.concat([Buffer.from('AMQP\x03\x01\x00\x00', 'latin1'), sasl(frames.sasl_init({ mechanism: 'PLAIN', initial_response: Buffer.from('\0dev-1@sas.hub-1\0good') }))]))
    await settle()
    const outcome = parseOutput(Buffer.concat(ok)).find((w) => w.name === 'sasl-outcome')
    expect(outcome?.p['code']).toBe(0)
  })
})

describe('AmqpHubSession: /messages/devicebound', () => {
  it('queues a service send through the c2d port (accepted) and rejects with the condition azure-iothub maps: unknown device, full queue, bad "to", no token', async () => {
    const written: Buffer[] = []
    const sent: { deviceId: string; input: Record<string, unknown> }[] = []
    const session = new AmqpHubSession({
      hostName: HUB,
      api: fakeHubApi().api,
      authorizeService: async (token) => {
        if (token === 'policy') return { expiresAtMs: NOW + 60_000 }
        throw new ProvisioError('SAS_BAD_SIGNATURE', 'policy key does not verify')
      },
      write: (b) => written.push(Buffer.from(b)),
      close: () => undefined,
      clock: { now: () => NOW },
      c2d: {
        async send(_hostName, deviceId, input) {
          if (deviceId === 'ghost') throw new ProvisioError('NOT_FOUND', 'device ghost is not registered')
          if (deviceId === 'full') throw new ProvisioError('DEVICE_QUEUE_FULL', 'the queue holds 50 messages')
          sent.push({ deviceId, input: input as never })
          return {}
        },
      },
    })
    session.push(Buffer.concat([AMQP_HEADER, hubOpen(HUB), begin(), link('early', 0, false, '/messages/devicebound')]))
    const early = parseOutput(Buffer.concat(written)).filter((w) => w.name === 'detach')
    expect((early[0]!.p['error'] as { condition: string }).condition).toBe('amqp:unauthorized-access')
    session.push(Buffer.concat([link('cbs-send', 1, false, '$cbs'), link('cbs-recv', 2, true, '$cbs'), amqp(frames.flow({ next_incoming_id: 0, incoming_window: 100, next_outgoing_id: 0, outgoing_window: 100, handle: 2, delivery_count: 0, link_credit: 10 }))]))
    session.push(send(1, 0, { message_id: 'p', application_properties: { operation: 'put-token', name: HUB }, body: 'policy' }))
    await settle()
    written.length = 0
    session.push(link('c2d', 3, false, '/Messages/DeviceBound'))
    const expiry = new Date(NOW + 3_600_000)
    const c2d = (id: number, to: string) =>
      session.push(send(3, id, { to, message_id: `c${id}`, correlation_id: 'corr', absolute_expiry_time: expiry, content_type: 'application/json', application_properties: { 'iothub-ack': 'full', colour: 'red' }, body: message.data_section(Buffer.from('{"on":true}')) }))
    c2d(1, '/devices/dev-1/messages/devicebound')
    c2d(2, '/devices/ghost/messages/devicebound')
    c2d(3, '/devices/full/messages/devicebound')
    c2d(4, '/devices/dev-1/twin')
    await settle()
    expect(sent).toEqual([
      {
        deviceId: 'dev-1',
        input: { messageId: 'c1', correlationId: 'corr', to: '/devices/dev-1/messages/devicebound', expiryTimeUtc: NOW + 3_600_000, ack: 'full', contentType: 'application/json', properties: { colour: 'red' }, body: expect.anything() },
      },
    ])
    expect(Buffer.from(sent[0]!.input['body'] as Uint8Array).toString()).toBe('{"on":true}')
    const outcomes = parseOutput(Buffer.concat(written))
      .filter((w) => w.name === 'disposition')
      .map((w) => {
        const state = w.p['state'] as { value?: unknown[]; descriptor?: { value?: unknown } }
        const error = (state.value?.[0] as { value?: { value?: unknown }[] } | undefined)?.value?.[0]?.value
        return [w.p['first'], error ?? 'accepted']
      })
      .sort((a, b) => Number(a[0]) - Number(b[0]))
    expect(outcomes).toEqual([
      [1, 'accepted'],
      [2, 'amqp:not-found'],
      [3, 'amqp:resource-limit-exceeded'],
      [4, 'amqp:invalid-field'],
    ])
  })
})

describe('time on hub connections (tick)', () => {
  it('refuses a connection that names nobody before the open timeout, and not before', () => {
    let now = NOW
    const closes: { code: string }[] = []
    const front = new AmqpConnection({
      write: () => undefined,
      close: (reason) => closes.push(reason),
      limits: { maxFrameSize: 65536, maxSessions: 4, maxLinksPerSession: 16 },
      containerId: 'provisio',
      clock: { now: () => now },
      openTimeoutMs: 5000,
      select: (hint, write) => (hint.final ? new AmqpHubSession({ hostName: HUB, api: fakeHubApi().api, authorizeService: async () => ({}), write, close: (reason) => closes.push(reason), clock: { now: () => now } }) : undefined),
    })
    now += 4999
    front.tick()
    expect(closes).toEqual([])
    now += 1
    front.tick()
    expect(closes.map((c) => c.code)).toEqual(['OPEN_TIMEOUT'])
    expect(front.closed).toBe(true)
  })

  it('keeps an open hub connection alive with empty frames after half the peer idle-time-out of silence', () => {
    let now = NOW
    const out: Buffer[] = []
    const session = new AmqpHubSession({ hostName: HUB, api: fakeHubApi().api, authorizeService: async () => ({}), write: (b) => out.push(Buffer.from(b)), close: () => undefined, clock: { now: () => now } })
    session.push(AMQP_HEADER)
    session.push(amqp(frames.open({ container_id: 'peer', hostname: HUB, idle_time_out: 4000 })))
    expect(session.opening).toBe(false)
    const written = () => Buffer.concat(out).length
    const before = written()
    now += 1999
    session.tick()
    expect(written()).toBe(before)
    now += 1
    session.tick()
    // An empty frame: size 8, data offset 2, type 0, channel 0.
    expect(Buffer.concat(out).subarray(before)).toEqual(Buffer.from([0, 0, 0, 8, 2, 0, 0, 0]))
    expect(session.inFlight).toBe(0)
  })
})
