// End-to-end registrations: `provisio serve` as users run it (the built CLI,
// its own process) registering brand-new devices over every transport — HTTPS, MQTT, MQTT over
// WebSockets, AMQPS, AMQP over WebSockets — with symmetric-key group devices and X.509 group
// devices (HTTPS, MQTT), on ONE instance (SQLite; one process, or `--workers 2` beside a baseline
// of two cluster workers) and on TWO instances sharing one PostgreSQL database, each case beside a
// bare-TLS baseline measured in the same run.
//
// One operation = one device doing "connect, one request, close": TLS handshake, the
// transport's session set-up (MQTT CONNECT + SUBSCRIBE; AMQP SASL PLAIN + two links), ONE
// register request answered `200 assigned` (the servers run with an assignment budget, so the
// assignment finishes inside the request), close. The baseline (lib/bare-server.mjs) is a process
// serving the same transport on the same certificate and TLS settings that answers the same
// request with a fixed `200 assigned` and does nothing else; the client does exactly the same.
// ours/baseline is therefore the share of the bare TLS + protocol round trip that survives our
// service work (SAS or chain check, engine, store, hub identity).
//
// The devices run in a separate process, 32 at a time, timing each registration (p50/p99).
// Symmetric-key devices over HTTPS and MQTT are driven by the native load client
// (lib/native-client.mjs, C + OpenSSL), every other case by the Node one (lib/load-client.mjs);
// within a case the same client drives ours and the baseline. Why: the Node client costs about
// 2 ms of CPU per registration, more than the server under test, and client and servers share the
// machine's 2 cores, so with it the client sets the pace. One extra row keeps the Node client on
// the 1-instance MQTT case for comparison. Symmetric-key devices resume TLS sessions (the client
// offers the last ticket the server sent, as Node's https.Agent does for any reconnecting client);
// X.509 devices do a full handshake with their own certificate every time. One extra MQTT case
// measures the full handshake for symmetric-key devices too.
import { readFileSync } from 'node:fs'
import pg from 'pg'
import { putEnrollmentGroup, startBare, startLoadClient, startProvisio, tempDir } from '../lib/e2e-processes.mjs'
import { startNativeClient } from '../lib/native-client.mjs'

const CONCURRENCY = 32
const BATCH = 64
const X509_POOL = 6000
const GROUP_KEY = Buffer.alloc(64, 0x6d).toString('base64')
const POSTGRES_URL = process.env.PROVISIO_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const BASELINE = 'bare-TLS baseline'

const TRANSPORTS = {
  https: { label: 'HTTPS', port: (p) => p.https },
  mqtt: { label: 'MQTT', port: (p) => p.mqtt },
  'mqtt-ws': { label: 'MQTT over WebSockets', port: (p) => p.https },
  amqp: { label: 'AMQPS', port: (p) => p.amqp },
  'amqp-ws': { label: 'AMQP over WebSockets', port: (p) => p.https },
}

const state = { client: undefined, native: undefined, x509Root: undefined, configs: new Map(), current: undefined }

/** The Node load client (every transport and attestation; it also makes the X.509 identities). */
function client() {
  state.client ??= startLoadClient()
  return state.client
}

/** The native load client (symmetric-key devices over HTTPS and MQTT), built on first use. */
function nativeClient() {
  state.native ??= startNativeClient()
  return state.native
}

/** Which client drives a case unless it says otherwise: native where it exists. */
const defaultDriver = (transport, credential) => (credential === 'sas' && (transport === 'https' || transport === 'mqtt') ? 'native' : 'node')
const DRIVERS = { native: 'native', node: 'Node' }

/** Drops schemas of earlier bench runs whose process is gone (a SIGKILLed run cannot clean up). */
async function dropStaleSchemas(db) {
  const { rows } = await db.query(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'provisio_bench_%'`)
  for (const { nspname } of rows) {
    const pid = Number(/^provisio_bench_(\d+)_/.exec(nspname)?.[1])
    let alive = false
    try {
      process.kill(pid, 0)
      alive = true
    } catch {
      alive = false
    }
    if (!alive) await db.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`)
  }
}

const CONFIGS = {
  sqlite: {
    label: '1 instance, SQLite',
    async start() {
      const dir = tempDir('sqlite')
      const a = await startProvisio(dir)
      return { instances: [a], bare: [await startBare(a.certFile, a.keyFile)] }
    },
  },
  workers: {
    label: '1 instance, SQLite, 2 workers',
    async start() {
      const dir = tempDir('workers')
      const a = await startProvisio(dir, ['--workers', '2'])
      return { instances: [a], bare: [await startBare(a.certFile, a.keyFile, { workers: 2 })] }
    },
  },
  postgres: {
    label: '2 instances, PostgreSQL',
    async start() {
      const schema = `provisio_bench_${process.pid}_${Date.now().toString(36)}`
      const db = new pg.Client({ connectionString: POSTGRES_URL })
      await db.connect()
      await dropStaleSchemas(db)
      const store = `${POSTGRES_URL}?schema=${schema}`
      // The first instance creates the shared DPS instance; the second joins it.
      const a = await startProvisio(tempDir('pg-a'), ['--store', store])
      const b = await startProvisio(tempDir('pg-b'), ['--store', store])
      const cleanup = async () => {
        await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
        await db.end()
      }
      return { instances: [a, b], bare: [await startBare(a.certFile, a.keyFile), await startBare(b.certFile, b.keyFile)], cleanup }
    },
  },
}

/** Stops the running configuration: servers gracefully (SIGTERM), baselines, its database schema. */
async function stopCurrent() {
  if (!state.current) return
  const c = state.current
  state.current = undefined
  for (const i of c.instances) await i.stop()
  for (const b of c.bare) b.child.kill('SIGKILL')
  await c.cleanup?.()
}

/** Starts a configuration's processes (stopping the previous configuration's) and its groups. */
async function use(configName) {
  if (state.current?.name === configName) return state.current
  await stopCurrent()
  const started = await CONFIGS[configName].start()
  const first = started.instances[0]
  await putEnrollmentGroup(first, { enrollmentGroupId: 'bench-sas', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: GROUP_KEY } } })
  state.x509Root ??= (await client().ask({ cmd: 'x509', count: X509_POOL, prefix: 'bench-x509-' })).rootPem
  await putEnrollmentGroup(first, { enrollmentGroupId: 'bench-x509', attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: state.x509Root } } } } })
  state.current = { name: configName, ...started, idScope: first.endpoints.idScope }
  return state.current
}

/**
 * CPU time of a process so far, ms (Linux /proc; undefined elsewhere). Used for the CPU spent per
 * registration by the servers and by the load client: unlike a rate, it hardly moves with the
 * machine's background load, and it shows which side sets the pace.
 */
function cpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
  } catch {
    return undefined
  }
}

/** A process and its descendants (cluster workers), from /proc; just `pid` where /proc has no children lists. */
function processTree(pid) {
  const pids = [pid]
  for (let i = 0; i < pids.length; i++) {
    try {
      const children = readFileSync(`/proc/${pids[i]}/task/${pids[i]}/children`, 'utf8').trim()
      if (children) pids.push(...children.split(/\s+/).map(Number))
    } catch {
      // Gone, or no /proc: count what we have.
    }
  }
  return pids
}
const CLOCK_TICKS = 100 // USER_HZ: 100 on every Linux architecture Node runs on

/** Per case and side: registrations and CPU ms of the servers and of the load client. */
const cpu = new Map()

let runId = 0
function batch(configName, transport, credential, who, { resume = credential === 'sas', count = BATCH, caseName, driver = defaultDriver(transport, credential) } = {}) {
  return async () => {
    const c = await use(configName)
    const load = driver === 'native' ? nativeClient() : client()
    const targets =
      who === 'ours'
        ? c.instances.map((i) => ({ port: TRANSPORTS[transport].port(i.endpoints.ports), ca: i.ca }))
        : c.bare.map((b, k) => ({ port: TRANSPORTS[transport].port(b.ports), ca: c.instances[k].ca }))
    // Every process of every measured server: cluster workers included (their CPU is not the primary's).
    const servers = (who === 'ours' ? c.instances : c.bare).flatMap((p) => processTree(p.child.pid))
    const sum = (pids) => pids.reduce((t, pid) => t + (cpuMs(pid) ?? NaN), 0)
    const before = { server: sum(servers), client: sum([load.child.pid]) }
    return load.ask({
      cmd: 'batch',
      transport,
      targets,
      idScope: c.idScope,
      prefix: `e2e-${configName}-${transport}-${who}-${process.pid}-${runId}-`,
      count,
      concurrency: CONCURRENCY,
      credential,
      groupKey: GROUP_KEY,
      resume,
      fresh: who === 'ours',
      poolKey: configName,
    }).then((answer) => {
      if (answer.x509Reused !== undefined) state.x509Reused = answer.x509Reused
      if (caseName !== undefined) {
        const key = `${caseName}\u0000${who}`
        const t = cpu.get(key) ?? { ops: 0, server: 0, client: 0, driver }
        t.ops += count
        t.server += sum(servers) - before.server
        t.client += sum([load.child.pid]) - before.client
        cpu.set(key, t)
      }
      return answer
    })
  }
}

function registrationCase(configName, transport, credential, { target, resume, driver = defaultDriver(transport, credential) } = {}) {
  const attestation = credential === 'sas' ? 'symmetric key' : 'X.509'
  const handshake = credential === 'x509' ? 'full TLS handshake with a client certificate' : resume === false ? 'full TLS handshake' : 'TLS session resumed'
  // The client is named only where it is not the usual one for the transport and attestation.
  const odd = driver !== defaultDriver(transport, credential) ? `, ${DRIVERS[driver]} load client` : ''
  const name = `${CONFIGS[configName].label}: ${TRANSPORTS[transport].label}, ${attestation} (${handshake}${odd})`
  names.push(name)
  const options = { ...(resume === undefined ? {} : { resume }), caseName: name, driver }
  return {
    name,
    unit: 'ops',
    opsPerCall: BATCH,
    async: true,
    ...(target ? { target: target.replaceAll('BASELINE', BASELINE) } : {}),
    setup: () => use(configName),
    async check() {
      runId++
      // One device each way; the load client throws unless the answer is `200 assigned`.
      await batch(configName, transport, credential, 'ours', { ...options, count: 1, caseName: undefined })()
      await batch(configName, transport, credential, 'baseline', { ...options, count: 1, caseName: undefined })()
    },
    ours: batch(configName, transport, credential, 'ours', options),
    peers: { [BASELINE]: batch(configName, transport, credential, 'baseline', options) },
  }
}

const names = []
const cases = []
for (const configName of ['sqlite', 'workers', 'postgres']) {
  if (configName === 'workers') {
    // One instance on both cores: the symmetric-key cases the native client drives, and X.509 over HTTPS.
    cases.push(registrationCase(configName, 'mqtt', 'sas', { target: '>= 0.5x BASELINE and >= 1,000/s' }))
    cases.push(registrationCase(configName, 'https', 'sas'))
    cases.push(registrationCase(configName, 'https', 'x509', { target: '>= 0.4x BASELINE' }))
    continue
  }
  for (const transport of Object.keys(TRANSPORTS)) {
    const target = configName === 'sqlite' && transport === 'mqtt' ? '>= 0.5x BASELINE and >= 1,000/s' : undefined
    cases.push(registrationCase(configName, transport, 'sas', { target }))
  }
  if (configName === 'sqlite') {
    cases.push(registrationCase(configName, 'mqtt', 'sas', { resume: false }))
    // The same MQTT case with the Node load client, to keep the old driver's numbers in view.
    cases.push(registrationCase(configName, 'mqtt', 'sas', { driver: 'node' }))
  }
  cases.push(registrationCase(configName, 'https', 'x509', { target: configName === 'sqlite' ? '>= 0.4x BASELINE' : undefined }))
  cases.push(registrationCase(configName, 'mqtt', 'x509'))
}

export default {
  file: 'e2e',
  title: 'End to end: registrations per transport and attestation, one and two instances, beside a bare-TLS baseline',
  timing: { warmupMs: 500, runMs: 750, runs: 7 },
  async teardown() {
    await stopCurrent()
    await state.client?.stop()
    await state.native?.stop()
  },
  notes: () =>
    '`provisio serve` (the built CLI, its own process; dev PKI with an ECDSA P-256 certificate; `--assignment-budget-ms 5000` so register answers `200 assigned`; ' +
    'register rate limit off; log level error) on one instance with SQLite (one process; or `--workers 2`, two processes on the same ports, beside a baseline of two cluster workers), or two instances on one PostgreSQL database (devices alternate between them). ' +
    'Baseline: one bare-TLS server per instance (`lib/bare-server.mjs`) on the same certificate and TLS settings and transport, answering the same register ' +
    `request with a fixed \`200 assigned\`. Devices: a separate load-client process, ${CONCURRENCY} in flight, ${BATCH} per call, each a brand-new device doing ` +
    '"connect, one request, close" (MQTT: CONNECT + SUBSCRIBE + register PUBLISH; AMQP: SASL PLAIN + two links + register message); within a case the same client drives ours and the baseline. ' +
    'Symmetric-key devices over HTTPS and MQTT: the native load client (`native/dps-load.c`, C with OpenSSL 3, one thread, epoll), because the Node client ' +
    '(`lib/load-client.mjs`) costs about 2 ms of CPU per registration, more than the server under test, on the 2 cores it shares with the servers, so it would set the pace; ' +
    'every other case (WebSocket and AMQP transports, X.509): the Node client; the row marked "Node load client" repeats the 1-instance MQTT case with the Node client for comparison. ' +
    'Symmetric-key devices resume TLS sessions with the last ticket the server sent (as Node\'s https.Agent does); X.509 devices do a full handshake with their own certificate ' +
    `(leaf CN = registrationId under one P-256 root; a pool of ${X509_POOL} made up front). ` +
    'p50/p99: per registration, from connect to close, measured in the load client over the timed runs. All processes share the 2 cores, so absolute rates are a floor; the ratio is what compares.' +
    ` X.509 identities reused (pool exhausted, i.e. re-registrations): ${state.x509Reused ?? 0}.\n\n` +
    'CPU per registration (/proc, over warm-up and timed runs; servers = every measured server process, cluster workers included, PostgreSQL\'s own processes not included; ' +
    'client = the load client that drove the case). With 2 cores, server + client CPU per registration bounds the rate: 2 cores / (server + client ms).\n\n' +
    '| Case | provisio serve | bare-TLS servers | load client | load client CPU (ours / baseline) |\n|---|---:|---:|---|---:|\n' +
    names
      .filter((n) => cpu.has(`${n}\u0000ours`))
      .map((n) => {
        const o = cpu.get(`${n}\u0000ours`)
        const b = cpu.get(`${n}\u0000baseline`)
        const ms = (t, side) => (t && t.ops > 0 && Number.isFinite(t[side]) ? `${(t[side] / t.ops).toFixed(2)} ms` : 'n/a')
        return `| ${n} | ${ms(o, 'server')} | ${ms(b, 'server')} | ${DRIVERS[o.driver]} | ${ms(o, 'client')} / ${ms(b, 'client')} |`
      })
      .join('\n'),
  cases,
}
