// Stay-connected runs (desired changes, telemetry at an interval), the whole-run summary, the
// CSV/JSON export and the desired-property edit, with scripted hub sessions and a recorded fetch
// (Chromium drives the real SDK and server: test/browser/emulator.test.ts at the repository root).
import { describe, expect, it, vi } from 'vitest'
import { ready } from '@provisio/crypto'
import { parseSasToken, verifySasToken } from '@provisio/protocol'
import { DesiredEditError, parsePatch, patchDesired, type FetchForEdit } from '../src/desired-edit.js'
import { csvField, publicSettings, rowsToCsv, runToJson } from '../src/export.js'
import { Fleet, withDesired, type DeviceDriver, type DeviceSpec, type HubSession } from '../src/fleet.js'
import { parseSettings } from '../src/settings.js'
import { Stats } from '../src/stats.js'

const spec = (index: number): DeviceSpec => ({ index, registrationId: `d-${index}`, credential: { kind: 'symmetric-key', key: 'AAAA' } })
const tick = () => new Promise((r) => setTimeout(r, 0))

/** Hub sessions the test drives: desired pushes, disconnects, and the telemetry each sent. */
function scriptedHub() {
  type MethodHandler = Parameters<HubSession['onMethod']>[0]
  const sessions = new Map<string, { desired: (p: Record<string, unknown>, v: number | undefined) => void; drop: (reason: string) => void; method?: MethodHandler; sent: Record<string, unknown>[]; closed: boolean }>()
  const driver: DeviceDriver = {
    provision: async (s) => ({ status: 'assigned', assignedHub: 'hub', deviceId: s.registrationId }),
    connect: async (s) => {
      const entry = { desired: (_p: Record<string, unknown>, _v: number | undefined) => undefined as void, drop: (_r: string) => undefined as void, method: undefined as MethodHandler | undefined, sent: [] as Record<string, unknown>[], closed: false }
      sessions.set(s.registrationId, entry)
      const session: HubSession = {
        twin: { desired: { mode: 'initial', $version: 1 }, reported: {} },
        onDesired: (l) => void (entry.desired = l),
        onDisconnect: (l) => void (entry.drop = l),
        onMethod: (h) => void (entry.method = h),
        sendTelemetry: async (body) => {
          if (entry.closed) throw new Error('closed')
          entry.sent.push(body)
        },
        close: async () => void (entry.closed = true),
      }
      return session
    },
  }
  return { driver, sessions }
}

/** An interval timer the test fires by hand. */
function manualTimer() {
  const timers = new Set<{ ms: number; run: () => void }>()
  return {
    every: (ms: number, run: () => void) => {
      const t = { ms, run }
      timers.add(t)
      return () => void timers.delete(t)
    },
    fire: () => {
      for (const t of timers) t.run()
    },
    get size() {
      return timers.size
    },
  }
}

describe('stay-connected runs', () => {
  it('keep devices connected until Stop: desired changes land in the row, telemetry goes out every interval, Stop closes every connection', async () => {
    const { driver, sessions } = scriptedHub()
    const timer = manualTimer()
    const fleet = new Fleet({ count: 3, concurrency: 1, device: spec, driver, clock: { now: () => 0 }, readTwins: true, stayConnected: true, telemetryIntervalMs: 1000, every: timer.every })
    let done = false
    const finished = fleet.start().then(() => (done = true))
    await vi.waitFor(() => expect(fleet.connected).toBe(3), { timeout: 2000, interval: 1 })
    // One lane served all three: a connected device does not hold its lane.
    expect(fleet.stats.connected).toBe(3)
    expect(timer.size).toBe(3)
    timer.fire()
    await tick()
    timer.fire()
    await tick()
    expect(sessions.get('d-1')!.sent).toEqual([
      { deviceId: 'd-1', seq: 1, temperature: 20.8 },
      { deviceId: 'd-1', seq: 2, temperature: 20.9 },
    ])
    expect(fleet.stats.telemetrySent).toBe(6)
    sessions.get('d-2')!.desired({ mode: 'edited', $version: 2 }, 2)
    expect(fleet.rows[2]!.twin).toEqual({ desired: { mode: 'edited', $version: 2 }, reported: {} })
    expect(fleet.rows[2]!.log.at(-1)!.text).toBe('desired change (version 2) received: {"mode":"edited"}')
    expect(fleet.stats.desiredReceived).toBe(1)
    expect(done).toBe(false)
    fleet.stop()
    await finished
    expect([...sessions.values()].every((s) => s.closed)).toBe(true)
    expect(timer.size).toBe(0)
    expect(fleet.stats.connected).toBe(0)
    expect(fleet.rows.map((r) => r!.connection)).toEqual(['closed', 'closed', 'closed'])
    expect(fleet.stats.byStatus).toMatchObject({ assigned: 3, stopped: 0 })
  })

  it('connected devices answer direct methods: the payload echoed with the status set on the page, the call in the device log', async () => {
    const { driver, sessions } = scriptedHub()
    let status = 200
    const fleet = new Fleet({ count: 1, concurrency: 1, device: spec, driver, clock: { now: () => 0 }, readTwins: true, stayConnected: true, methodStatus: () => status })
    const finished = fleet.start()
    await vi.waitFor(() => expect(fleet.connected).toBe(1), { timeout: 2000, interval: 1 })
    const answer = sessions.get('d-0')!.method!
    expect(answer('blink', { times: 3 })).toEqual({ status: 200, payload: { times: 3 } })
    expect(fleet.rows[0]!.log.at(-1)!.text).toBe('direct method blink called with {"times":3}; answered 200, payload echoed')
    status = 503
    expect(answer('reboot', null)).toEqual({ status: 503, payload: null })
    expect(fleet.rows[0]!.log.at(-1)!.text).toBe('direct method reboot called with null; answered 503, payload echoed')
    expect(fleet.rows[0]!.methodCalls).toBe(2)
    fleet.stop()
    await finished
  })

  it('ends the run on its own when every device lost its connection', async () => {
    const { driver, sessions } = scriptedHub()
    const fleet = new Fleet({ count: 2, concurrency: 2, device: spec, driver, clock: { now: () => 0 }, readTwins: true, stayConnected: true })
    const finished = fleet.start()
    await vi.waitFor(() => expect(fleet.connected).toBe(2), { timeout: 2000, interval: 1 })
    sessions.get('d-0')!.drop('hub MQTT connection closed')
    sessions.get('d-1')!.drop('hub MQTT connection closed')
    await finished
    expect(fleet.rows[0]!.connection).toBe('closed')
    expect(fleet.rows[0]!.log.at(-1)!.text).toBe('disconnected: hub MQTT connection closed')
  })

  it('merges desired patches as the hub does: null deletes, objects merge', () => {
    expect(withDesired({ desired: { a: 1, b: { c: 2, d: 3 } } }, { a: null, b: { c: 4 }, e: [1] })).toEqual({ desired: { b: { c: 4, d: 3 }, e: [1] } })
  })

  it('settings: telemetry needs stay-connected, which needs twins', () => {
    const base = { host: 'localhost', port: '8443', idScope: '0ne0000ABCD', transport: 'mqtt-ws', credential: 'group-key', groupKey: 'AAAA', registrationIdPrefix: 'd-', count: '2', concurrency: '1' }
    const ok = parseSettings({ ...base, readTwins: 'true', stayConnected: 'true', telemetryIntervalSeconds: '5' })
    expect(ok.ok && ok.settings).toMatchObject({ stayConnected: true, telemetryIntervalSeconds: 5 })
    const errors = (raw: Record<string, string>) => {
      const r = parseSettings({ ...base, ...raw })
      return r.ok ? [] : r.errors.map((e) => `${e.field}: ${e.message}`)
    }
    expect(errors({ telemetryIntervalSeconds: '5' })).toEqual(['telemetryIntervalSeconds: telemetry is sent by devices that stay connected: tick "Stay connected", or set the interval to 0'])
    expect(errors({ stayConnected: 'true', telemetryIntervalSeconds: '1.5' })[0]).toMatch(/^telemetryIntervalSeconds: telemetry interval must be a whole number of seconds from 0/)
    expect(errors({ stayConnected: 'true', readTwins: 'false' })[0]).toMatch(/^stayConnected: a device that stays connected reads its twin/)
  })
})

describe('whole-run summary', () => {
  it('rates the registrations over the whole run, from start to the last finished one, with latency percentiles', () => {
    const stats = new Stats(1000)
    for (let i = 1; i <= 100; i++) stats.record(i % 10 === 0 ? 'failed' : 'assigned', i % 10 === 0 ? '401002' : undefined, i, 1000 + i * 100)
    stats.record('stopped', undefined, undefined, 50_000)
    const s = stats.summary(90_000)
    expect(s.durationSeconds).toBe(10)
    expect(s.finished).toBe(100)
    expect(s.ratePerSecond).toBe(10)
    expect(s.latencyMs).toEqual({ p50: 50, p95: 95, p99: 99, max: 100, mean: 50.5 })
    expect(s.byErrorCode).toEqual({ '401002': 10 })
    // The last 5 s alone would say otherwise: nothing finished then.
    expect(stats.rate(90_000)).toBe(0)
    expect(new Stats(0).summary(2000)).toMatchObject({ finished: 0, durationSeconds: 2, ratePerSecond: 0 })
    expect(new Stats(0).summary(2000).latencyMs).toBeUndefined()
  })
})

describe('export', () => {
  const rows = [
    { index: 0, registrationId: 'd-0', status: 'assigned' as const, assignedHub: 'hub', deviceId: 'd-0', latencyMs: 12.4, twinStatus: 'read' as const, twin: { desired: { a: 1, $version: 3 } }, log: [{ atMs: 1, text: 'registering' }] },
    undefined,
    { index: 2, registrationId: 'd-2', status: 'failed' as const, errorCode: '401002', reason: 'Unauthorized (development reason: no enrollment, "x")', latencyMs: 5, log: [] },
    { index: 3, registrationId: 'd-3', status: 'error' as const, reason: '=HYPERLINK("x")', log: [] },
  ]

  it('writes the device table as CSV: quoted where needed, formulas defused, every device', () => {
    const csv = rowsToCsv(rows)
    expect(csv.split('\r\n')).toEqual([
      'index,registrationId,status,assignedHub,deviceId,latencyMs,errorCode,reason,twinStatus,desired,connection,telemetrySent,telemetryErrors,desiredReceived',
      '0,d-0,assigned,hub,d-0,12,,,read,"{""a"":1}",,,,',
      '2,d-2,failed,,,5,401002,"Unauthorized (development reason: no enrollment, ""x"")",,,,,,',
      `3,d-3,error,,,,,"'=HYPERLINK(""x"")",,,,,,`,
      '',
    ])
    expect(csvField('-1')).toBe("'-1")
    expect(csvField(-1)).toBe('-1')
  })

  it('writes the run as JSON without keys', () => {
    const parsed = parseSettings({ host: 'localhost', port: '8443', idScope: '0ne0000ABCD', transport: 'mqtt-ws', credential: 'group-key', groupKey: 'c2VjcmV0', registrationIdPrefix: 'd-', count: '4', concurrency: '1', readTwins: 'true' })
    if (!parsed.ok) throw new Error('settings')
    const text = runToJson(publicSettings(parsed.settings), new Stats(0).summary(1000), rows, '2026-01-01T00:00:00.000Z')
    expect(text).not.toContain('c2VjcmV0')
    const json = JSON.parse(text) as { settings: Record<string, unknown>; summary: unknown; devices: { registrationId: string; twin?: unknown; log: unknown[] }[] }
    expect(json.settings).not.toHaveProperty('groupKey')
    expect(json.settings).toMatchObject({ idScope: '0ne0000ABCD', count: 4 })
    expect(json.devices.map((d) => d.registrationId)).toEqual(['d-0', 'd-2', 'd-3'])
    expect(json.devices[0]).toMatchObject({ twin: { desired: { a: 1 } }, log: [{ atMs: 1, text: 'registering' }] })
  })
})

describe('desired edit', () => {
  const HUB_KEY = Buffer.alloc(32, 7).toString('base64')
  const connectionString = `HostName=myhub.local;SharedAccessKeyName=iothubowner;SharedAccessKey=${HUB_KEY}`

  it('sends a twin PATCH signed with the typed hub connection string to the form\'s server', async () => {
    await ready()
    const calls: { url: string; init: Parameters<FetchForEdit>[1] }[] = []
    const fetchImpl: FetchForEdit = async (url, init) => {
      calls.push({ url, init })
      return { ok: true, status: 200, text: async () => JSON.stringify({ properties: { desired: { mode: 'x', $version: 4 } } }) }
    }
    const result = await patchDesired(fetchImpl, { connectionString, deviceId: 'dev 1', patchText: '{"mode": "x"}', host: 'localhost', port: 8443, nowSeconds: 1_800_000_000 })
    expect(result).toEqual({ version: 4 })
    expect(calls).toHaveLength(1)
    expect(calls[0]!.url).toBe('https://localhost:8443/twins/dev%201?api-version=2021-04-12')
    expect(calls[0]!.init).toMatchObject({ method: 'PATCH', body: '{"properties":{"desired":{"mode":"x"}}}' })
    expect(calls[0]!.init.headers).toMatchObject({ 'content-type': 'application/json', 'if-match': '*' })
    const token = parseSasToken(calls[0]!.init.headers.authorization!)
    expect(token).toMatchObject({ resourceDecoded: 'myhub.local', skn: 'iothubowner', se: 1_800_003_600 })
    expect(verifySasToken(token, { keys: HUB_KEY, expectedResource: 'myhub.local', nowSeconds: 1_800_000_000, keyName: 'iothubowner' })).toMatchObject({ ok: true })
  })

  it('names the fault: patch, connection string, or the hub\'s answer', async () => {
    expect(() => parsePatch('[1]')).toThrow(/must be a JSON object/)
    expect(() => parsePatch('{')).toThrow(/not JSON/)
    expect(() => parsePatch('{"$version": 2}')).toThrow(/hub's own/)
    expect(() => parsePatch(JSON.stringify({ big: 'x'.repeat(40_000) }))).toThrow(/larger than 32768 bytes/)
    const never: FetchForEdit = async () => {
      throw new Error('not called')
    }
    await expect(patchDesired(never, { connectionString: 'HostName=h', deviceId: 'd', patchText: '{}', host: 'h', port: 1, nowSeconds: 1 })).rejects.toMatchObject({ field: 'connectionString' })
    const refusing: FetchForEdit = async () => ({ ok: false, status: 401, text: async () => '{"Message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized"}' })
    const error = await patchDesired(refusing, { connectionString, deviceId: 'd', patchText: '{}', host: 'h', port: 1, nowSeconds: 1 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DesiredEditError)
    expect(error).toMatchObject({ field: 'hub', message: 'the hub answered 401: {"Message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized"}' })
  })
})
