import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { availableParallelism } from 'node:os'
import { ConfigError, DEFAULT_CONFIG, MAX_WORKERS, resolveConfig } from '../src/config.js'

describe('resolveConfig', () => {
  it('applies defaults, then the config file, then the environment, then flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-config-'))
    const file = join(dir, 'provisio.json')
    writeFileSync(file, JSON.stringify({ httpsPort: 9000, mqttPort: 9001, logLevel: 'warn', hostNames: ['a.example'] }))
    const config = resolveConfig({ config: file, 'mqtt-port': '9101' }, { PROVISIO_MQTT_PORT: '9201', PROVISIO_AMQP_PORT: '9202', PROVISIO_HTTPS_PORT: '' }, dir)
    expect(config.httpsPort).toBe(9000) // file (empty env is ignored)
    expect(config.mqttPort).toBe(9101) // flag beats env beats file
    expect(config.amqpPort).toBe(9202) // env
    expect(config.logLevel).toBe('warn')
    expect(config.hostNames).toEqual(['a.example'])
    expect(config.host).toBe(DEFAULT_CONFIG.host)
    expect(config.dataDir).toBe(join(dir, '.provisio'))
  })

  it.each([
    [{ 'https-port': '70000' }, {}, /httpsPort \(--https-port\) must be a port number/],
    [{ 'log-level': 'loud' }, {}, /logLevel .* must be one of error, warn, info, debug/],
    [{}, { PROVISIO_RETRY_AFTER: '0' }, /retryAfterSeconds \(environment PROVISIO_RETRY_AFTER\) must be at least 1/],
    [{ cert: 'c.pem' }, {}, /--cert and --key must be given together/],
    [{ host: '  ' }, {}, /host \(--host\) must be a non-empty string/],
  ])('refuses %j %j naming the setting', (flags, env, message) => {
    expect(() => resolveConfig(flags, env, '/tmp')).toThrow(message)
    expect(() => resolveConfig(flags, env, '/tmp')).toThrow(ConfigError)
  })

  it('names unknown keys and broken JSON in a config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-config-'))
    writeFileSync(join(dir, 'bad.json'), '{"httpPort": 1}')
    expect(() => resolveConfig({ config: 'bad.json' }, {}, dir)).toThrow(/unknown setting "httpPort"/)
    writeFileSync(join(dir, 'broken.json'), '{')
    expect(() => resolveConfig({ config: 'broken.json' }, {}, dir)).toThrow(/config file broken.json/)
  })
})

describe('rate limit settings', () => {
  it('default to the DPS limits and accept 0 to turn them off', () => {
    expect(resolveConfig({}, {}, '/tmp')).toMatchObject({ registrationsPerMinute: 1000, pollsPer10Seconds: 5 })
    expect(resolveConfig({ 'registrations-per-minute': '0' }, { PROVISIO_POLLS_PER_10S: '0' }, '/tmp')).toMatchObject({ registrationsPerMinute: 0, pollsPer10Seconds: 0 })
    expect(() => resolveConfig({ 'polls-per-10s': '-1' }, {}, '/tmp')).toThrow(/pollsPer10Seconds \(--polls-per-10s\) must be a whole number/)
  })
})

describe('hubs setting', () => {
  it('takes host names from flags and objects with weights from the config file', () => {
    expect(resolveConfig({ hubs: 'a.example, b.example' }, {}, '/tmp').hubs).toEqual([{ hostName: 'a.example' }, { hostName: 'b.example' }])
    const dir = mkdtempSync(join(tmpdir(), 'provisio-config-'))
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ hubs: [{ hostName: 'a.example', allocationWeight: 7 }, { hostName: 'b.example', applyAllocationPolicy: false }] }))
    expect(resolveConfig({ config: 'c.json' }, {}, dir).hubs).toEqual([{ hostName: 'a.example', allocationWeight: 7 }, { hostName: 'b.example', applyAllocationPolicy: false }])
  })

  it.each([
    ['[{"hostName":"a.example","allocationWeight":0}]', /allocationWeight must be an integer from 1 to 1000/],
    ['[{"hostName":"bad host"}]', /hostName must be a DNS host name/],
    ['[{"hostName":"a.example","weight":2}]', /unknown member "weight"/],
    ['["a.example","A.example"]', /names a hub twice/],
  ])('refuses %s', (hubs, message) => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-config-'))
    writeFileSync(join(dir, 'c.json'), `{"hubs":${hubs}}`)
    expect(() => resolveConfig({ config: 'c.json' }, {}, dir)).toThrow(message)
  })

  it('takes web origins for CORS and WebSockets: the Vite dev server by default, normalised, * for any', () => {
    expect(resolveConfig({}, {}, '/tmp').corsOrigins).toEqual(['http://localhost:5173', 'http://127.0.0.1:5173'])
    expect(resolveConfig({ 'cors-origins': 'https://Ops.Example:443/, http://localhost:3000' }, {}, '/tmp').corsOrigins).toEqual(['https://ops.example', 'http://localhost:3000'])
    expect(resolveConfig({}, { PROVISIO_CORS_ORIGINS: '*' }, '/tmp').corsOrigins).toEqual(['*'])
    expect(resolveConfig({ 'cors-origins': '' }, {}, '/tmp').corsOrigins).toEqual([])
  })

  it.each([
    ['https://a.example/path', /corsOrigins \(--cors-origins\): "https:\/\/a.example\/path" must be an origin only/],
    ['ftp://a.example', /must be an http or https origin/],
    ['a.example', /is not an origin/],
    ['https://user@a.example', /must be an origin only/],
  ])('refuses the origin %s saying why', (origin, message) => {
    expect(() => resolveConfig({ 'cors-origins': origin }, {}, '/tmp')).toThrow(message)
  })

  it('resolves the emulator directory against the working directory', () => {
    expect(resolveConfig({ 'emulator-dir': 'web/dist' }, {}, '/srv').emulatorDir).toBe('/srv/web/dist')
    expect(resolveConfig({}, {}, '/srv').emulatorDir).toBeUndefined()
  })
})

describe('connection timeouts and fault profiles', () => {
  it('default to 10 s / 10 s / 30 s and take flags and environment', () => {
    expect(resolveConfig({}, {}, '/tmp')).toMatchObject({ handshakeTimeoutMs: 10_000, connectTimeoutMs: 10_000, requestTimeoutMs: 30_000 })
    expect(resolveConfig({ 'connect-timeout-ms': '500' }, { PROVISIO_HANDSHAKE_TIMEOUT_MS: '700' }, '/tmp')).toMatchObject({ handshakeTimeoutMs: 700, connectTimeoutMs: 500 })
    expect(() => resolveConfig({ 'handshake-timeout-ms': '0' }, {}, '/tmp')).toThrow(/handshakeTimeoutMs \(--handshake-timeout-ms\) must be an integer from 100 to 600000/)
    expect(() => resolveConfig({ 'connect-timeout-ms': '40000' }, {}, '/tmp')).toThrow(/must not exceed requestTimeoutMs/)
  })

  it('reads a fault profile inline, from @file and from the config file, and names what is wrong', () => {
    const profile = { throttleRegister: { firstAttempts: 1, retryAfterSeconds: 2 }, serverErrorPoll: { everyNth: 2, status: 503 }, slowAssigningPolls: 1 }
    expect(resolveConfig({ faults: JSON.stringify(profile) }, {}, '/tmp').faults).toEqual(profile)
    const dir = mkdtempSync(join(tmpdir(), 'provisio-config-'))
    writeFileSync(join(dir, 'faults.json'), JSON.stringify(profile))
    expect(resolveConfig({}, { PROVISIO_FAULTS: `@${join(dir, 'faults.json')}` }, dir).faults).toEqual(profile)
    expect(resolveConfig({ faults: '@faults.json' }, {}, dir).faults).toEqual(profile)
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ faults: { throttlePoll: {} } }))
    expect(resolveConfig({ config: 'c.json' }, {}, dir).faults).toEqual({ throttlePoll: {} })
    expect(resolveConfig({}, {}, '/tmp').faults).toBeUndefined()
    expect(() => resolveConfig({ faults: '{"throttleRegistr":{}}' }, {}, '/tmp')).toThrow(/unknown fault "throttleRegistr"/)
    expect(() => resolveConfig({ faults: '{"serverErrorRegister":{"status":502}}' }, {}, '/tmp')).toThrow(/status must be 500 or 503/)
    expect(() => resolveConfig({ faults: '{"throttlePoll":{"everyNth":0}}' }, {}, '/tmp')).toThrow(/everyNth must be an integer from 1/)
    expect(() => resolveConfig({ faults: '{oops' }, {}, '/tmp')).toThrow(/faults \(--faults\) must be a JSON object or @file/)
  })

  it('takes --workers as a number or auto, from flags, environment and the config file, and needs a shared store', () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-config-'))
    expect(resolveConfig({}, {}, dir).workers).toBe(1)
    expect(resolveConfig({ workers: '3' }, {}, dir).workers).toBe(3)
    expect(resolveConfig({}, { PROVISIO_WORKERS: 'auto' }, dir).workers).toBe(Math.min(MAX_WORKERS, availableParallelism()))
    writeFileSync(join(dir, 'w.json'), JSON.stringify({ workers: 2, store: 'postgres://db.example/provisio' }))
    expect(resolveConfig({ config: 'w.json' }, {}, dir)).toMatchObject({ workers: 2, store: 'postgres://db.example/provisio' })
    writeFileSync(join(dir, 'auto.json'), JSON.stringify({ workers: 'auto' }))
    expect(resolveConfig({ config: 'auto.json' }, {}, dir).workers).toBe(Math.min(MAX_WORKERS, availableParallelism()))
    for (const bad of ['0', '-1', '1.5', 'two', '', String(MAX_WORKERS + 1)]) {
      expect(() => resolveConfig({ workers: bad }, {}, dir)).toThrow(/workers \(--workers\) must be a whole number from 1 to 64, or auto/)
    }
    expect(() => resolveConfig({ workers: '2', store: 'memory' }, {}, dir)).toThrow(/workers \(2\) need a store the processes share: the memory store lives in one process/)
    expect(resolveConfig({ workers: '1', store: 'memory' }, {}, dir).workers).toBe(1)
  })

  it('paces SQLite commits 2 ms apart by default; --commit-interval-ms takes 0 to 1000', () => {
    expect(resolveConfig({}, {}, '/tmp').commitIntervalMs).toBe(2)
    expect(resolveConfig({ 'commit-interval-ms': '0' }, {}, '/tmp').commitIntervalMs).toBe(0)
    expect(resolveConfig({}, { PROVISIO_COMMIT_INTERVAL_MS: '5' }, '/tmp').commitIntervalMs).toBe(5)
    expect(() => resolveConfig({ 'commit-interval-ms': '1001' }, {}, '/tmp')).toThrow(/commitIntervalMs must be 0 to 1000 ms, got 1001/)
    expect(() => resolveConfig({ 'commit-interval-ms': '-1' }, {}, '/tmp')).toThrow(/commitIntervalMs \(--commit-interval-ms\) must be an integer from 0 to 60000/)
  })
})

describe('access control settings', () => {
  it('takes DPS policies from flags (name:Right+Right) and the config file ({name, rights}), and names what is wrong', () => {
    expect(DEFAULT_CONFIG.servicePolicies).toEqual([])
    expect(resolveConfig({ 'service-policies': 'reader:EnrollmentRead+registrationstatusread, writer:EnrollmentWrite' }, {}, '/tmp').servicePolicies).toEqual([
      { name: 'reader', rights: ['EnrollmentRead', 'RegistrationStatusRead'] },
      { name: 'writer', rights: ['EnrollmentWrite'] },
    ])
    const dir = mkdtempSync(join(tmpdir(), 'provisio-config-'))
    const file = join(dir, 'provisio.json')
    writeFileSync(file, JSON.stringify({ servicePolicies: [{ name: 'ops', rights: ['ServiceConfig'] }] }))
    expect(resolveConfig({ config: file }, {}, dir).servicePolicies).toEqual([{ name: 'ops', rights: ['ServiceConfig'] }])
    expect(() => resolveConfig({ 'service-policies': 'reader:EnrollmentReed' }, {}, '/tmp')).toThrow(/servicePolicies .*\[0\]\.rights: unknown right "EnrollmentReed"/)
    expect(() => resolveConfig({ 'service-policies': 'provisioningserviceowner:EnrollmentRead' }, {}, '/tmp')).toThrow(/always exists with every right/)
    expect(() => resolveConfig({ 'service-policies': 'a:EnrollmentRead,a:EnrollmentWrite' }, {}, '/tmp')).toThrow(/names a policy twice/)
    expect(() => resolveConfig({ 'service-policies': 'bad name:EnrollmentRead' }, {}, '/tmp')).toThrow(/\.name must be 1-64 letters/)
  })

  it('takes IP filters for the instance (JSON or @file) and hubs (config file), and a minimum TLS version of 1.2 or 1.3', () => {
    const rules = [{ filterName: 'lab', action: 'Reject', ipMask: '10.0.0.0/8' }]
    expect(resolveConfig({ 'ip-filter': JSON.stringify(rules) }, {}, '/tmp').ipFilter).toEqual(rules)
    const dir = mkdtempSync(join(tmpdir(), 'provisio-config-'))
    writeFileSync(join(dir, 'rules.json'), JSON.stringify(rules))
    expect(resolveConfig({}, { PROVISIO_IP_FILTER: '@rules.json' }, dir).ipFilter).toEqual(rules)
    const file = join(dir, 'provisio.json')
    writeFileSync(file, JSON.stringify({ hubs: [{ hostName: 'hub-a.example', ipFilter: rules }] }))
    expect(resolveConfig({ config: file }, {}, dir).hubs).toEqual([{ hostName: 'hub-a.example', ipFilter: rules }])
    expect(() => resolveConfig({ 'ip-filter': '[{"filterName":"x","action":"Drop","ipMask":"10.0.0.0/8"}]' }, {}, '/tmp')).toThrow(/ipFilter \(--ip-filter\)\[0\]\.action must be Accept or Reject/)
    expect(() => resolveConfig({ 'ip-filter': '{oops' }, {}, '/tmp')).toThrow(/must be a JSON list or @file of one/)
    expect(DEFAULT_CONFIG.minTlsVersion).toBe('1.2')
    expect(resolveConfig({ 'min-tls-version': '1.3' }, {}, '/tmp').minTlsVersion).toBe('1.3')
    expect(() => resolveConfig({ 'min-tls-version': '1.1' }, {}, '/tmp')).toThrow(/minTlsVersion \(--min-tls-version\) must be 1.2 or 1.3/)
  })
})
