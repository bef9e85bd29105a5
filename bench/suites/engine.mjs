// Engine throughput: in-process symmetric-key register → assigned. Targets:
// >= 20,000 registrations/s on the memory store, >= 5,000/s on SQLite, one core.
//
// Setup builds one SAS token per device (device keys derived from the group key with the batch
// API, tokens shaped like Microsoft's Node symmetric-key client). Each operation is one
// `engine.register()` awaited until it answers `assigned` (assignmentBudgetMs > 0, no Timers port,
// so the engine waits for the assignment inside the call); the hub gateway is a no-op, so what is
// measured is the engine: rate-limit bookkeeping off, attestation (token parse + HMAC), group
// match with derived keys, allocation (hashed over 2 hubs), operation + registration record in
// the store, events.
//
// There is no external peer for an in-process DPS engine, so cases report absolute rates.
//
// `ours` is async (`async: true`; a Promise for a batch of BATCH registrations, opsPerCall = BATCH),
// awaited by the runner: `node bench/run.mjs engine` (packages built first; `npm run bench -- engine`).
// Run directly (`node bench/suites/engine.mjs [--quick]`) it measures the same way (warm-up,
// median of timed runs) and also records rates per second of process CPU time, which is what one
// uncontended core does on this shared 2-core machine; it writes the same results files.
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { deriveDeviceKeys } from '@provisio/crypto'
import { buildSasToken } from '@provisio/protocol'
import { createEngine, MemoryStore } from '@provisio/engine'
import { createSqliteStore } from '@provisio/store-sqlite'

const ID_SCOPE = '0ne00000A0A'
const HUBS = ['bench-hub-1.azure-devices.net', 'bench-hub-2.azure-devices.net']
const DEVICES = 40_000
const BATCH = 200
const GROUP_KEY = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 31 + 7) & 0xff)).toString('base64')
const GROUP_SECONDARY = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 17 + 3) & 0xff)).toString('base64')

/** Random port: 8 KiB pool from the OS RNG, sliced (the engine asks for ~64 bytes per register). */
function pooledRandom() {
  let pool = randomBytes(8192)
  let at = 0
  return {
    bytes(n) {
      if (n > pool.length) return new Uint8Array(randomBytes(n))
      if (at + n > pool.length) {
        pool = randomBytes(8192)
        at = 0
      }
      const out = new Uint8Array(pool.buffer, pool.byteOffset + at, n).slice()
      at += n
      return out
    },
  }
}

const noHub = {
  async createOrUpdateDevice() {},
  async getTwin() {
    return undefined
  },
  async deleteDevice() {},
}

/** Registration ids and their tokens, built once (not measured). */
function buildDevices(prefix, keyFor) {
  const ids = Array.from({ length: DEVICES }, (_, i) => `${prefix}-${String(i).padStart(6, '0')}-mac-a1b2c3d4e5f6`)
  const keys = keyFor(ids)
  const expiresAt = Math.floor(Date.now() / 1000) + 24 * 3600
  const tokens = ids.map((id, i) =>
    buildSasToken({ resource: `${ID_SCOPE}/registrations/${id}`, key: keys[i], expiresAt, keyName: 'registration', encodeResource: 'raw', fieldOrder: ['sr', 'sig', 'skn', 'se'] }),
  )
  return { ids, tokens }
}

function engineOver(store) {
  return createEngine({
    store,
    clock: { now: () => Date.now() },
    random: pooledRandom(),
    hubGateway: noHub,
    assignmentBudgetMs: 1000,
    rateLimits: { registrationsPerScope: false, pollsPerDevice: false },
    instances: [
      {
        idScope: ID_SCOPE,
        serviceHostName: 'bench.azure-devices-provisioning.net',
        linkedHubs: HUBS.map((hostName) => ({ hostName, connectionString: `HostName=${hostName};SharedAccessKeyName=iothubowner;SharedAccessKey=${GROUP_KEY}` })),
        accessPolicies: [],
      },
    ],
  })
}

/** One benchmark fixture: an engine, a device population, and a cursor over it. */
function fixture(makeStore, kind) {
  const state = { engine: undefined, devices: undefined, next: 0, close: undefined }
  return {
    state,
    async setup() {
      if (state.engine) return
      const { store, close } = makeStore()
      state.engine = engineOver(store)
      state.close = close
      if (kind === 'group') {
        await state.engine.createOrUpdateEnrollmentGroup(ID_SCOPE, {
          enrollmentGroupId: 'bench-fleet',
          attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: GROUP_SECONDARY } },
        })
        state.devices = buildDevices('grp', (ids) => deriveDeviceKeys(GROUP_KEY, ids))
      } else {
        const devices = buildDevices('ind', (ids) => ids.map((_, i) => Buffer.from(`individual-key-${i}`.padEnd(32, '.')).toString('base64')))
        for (let i = 0; i < devices.ids.length; i += 10) {
          const enrollments = devices.ids.slice(i, i + 10).map((registrationId, j) => {
            const primaryKey = Buffer.from(`individual-key-${i + j}`.padEnd(32, '.')).toString('base64')
            return { registrationId, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey: GROUP_SECONDARY } } }
          })
          const r = await state.engine.runBulkEnrollmentOperation(ID_SCOPE, { mode: 'create', enrollments })
          if (!r.isSuccessful) throw new Error(`bench setup: bulk create failed: ${JSON.stringify(r.errors)}`)
        }
        state.devices = devices
      }
    },
    /** Registers BATCH devices one after another, each until assigned. */
    async ours() {
      const { engine, devices } = state
      for (let b = 0; b < BATCH; b++) {
        const i = state.next
        state.next = (i + 1) % DEVICES
        const reply = await engine.register({
          idScope: ID_SCOPE,
          registrationId: devices.ids[i],
          evidence: { type: 'sas', token: devices.tokens[i] },
          apiVersion: '2021-10-01',
        })
        if (reply.body.status !== 'assigned') throw new Error(`bench: device ${devices.ids[i]} ended ${reply.body.status}`)
      }
    },
    /** Registers BATCH devices at once (all in flight together), as a server under load does. */
    async concurrent() {
      const { engine, devices } = state
      const replies = []
      for (let b = 0; b < BATCH; b++) {
        const i = state.next
        state.next = (i + 1) % DEVICES
        replies.push(engine.register({ idScope: ID_SCOPE, registrationId: devices.ids[i], evidence: { type: 'sas', token: devices.tokens[i] }, apiVersion: '2021-10-01' }))
      }
      for (const reply of await Promise.all(replies)) {
        if (reply.body.status !== 'assigned') throw new Error(`bench: a device ended ${reply.body.status}`)
      }
    },
    async check() {
      await this.setup()
      const { engine, devices } = state
      const r = await engine.register({ idScope: ID_SCOPE, registrationId: devices.ids[0], evidence: { type: 'sas', token: devices.tokens[0] }, apiVersion: '2021-10-01' })
      if (r.status !== 200 || r.body.status !== 'assigned' || !HUBS.includes(r.body.registrationState.assignedHub)) {
        throw new Error(`bench check: unexpected reply ${JSON.stringify(r)}`)
      }
    },
  }
}

let sqliteDir
function sqliteStore() {
  sqliteDir ??= mkdtempSync(join(tmpdir(), 'provisio-bench-'))
  const store = createSqliteStore(join(sqliteDir, `engine-${Date.now()}-${Math.random().toString(16).slice(2)}.db`))
  return { store, close: () => store.close() }
}
process.on('exit', () => {
  if (sqliteDir) rmSync(sqliteDir, { recursive: true, force: true })
})

const memoryGroup = fixture(() => ({ store: new MemoryStore() }), 'group')
const fixtures = [
  { name: 'register → assigned, group device (derived key), memory store', target: '>= 20,000/s', f: memoryGroup },
  {
    name: `register → assigned, group device, memory store, ${BATCH} in flight at once`,
    f: { setup: () => memoryGroup.setup(), check: () => memoryGroup.check(), ours: () => memoryGroup.concurrent() },
  },
  { name: 'register → assigned, individual enrollment, memory store', target: '>= 20,000/s', f: fixture(() => ({ store: new MemoryStore() }), 'individual') },
  { name: 'register → assigned, group device (derived key), SQLite file (WAL)', target: '>= 5,000/s', f: fixture(sqliteStore, 'group') },
  { name: 'register → assigned, individual enrollment, SQLite file (WAL)', target: '>= 5,000/s', f: fixture(sqliteStore, 'individual') },
]

const suite = {
  file: 'engine',
  title: 'Engine: in-process symmetric-key registration throughput',
  notes:
    'Absolute rates (no peer exists for an in-process DPS engine). One operation = one `register()` awaited until `assigned`, ' +
    `${BATCH} per call, cycling over ${DEVICES.toLocaleString('en-US')} pre-built device tokens (first pass: first assignment; ` +
    'later passes: re-registration of an assigned device). Hub gateway is a no-op; rate limits off.',
  cases: fixtures.map(({ name, target, f }) => ({
    name,
    unit: 'ops',
    ...(target !== undefined ? { target } : {}),
    opsPerCall: BATCH,
    async: true,
    setup: () => f.setup(),
    check: () => f.check(),
    ours: () => f.ours(),
    peers: {},
  })),
}
export default suite

// ---------------------------------------------------------------------------------------------
// Standalone run: the same measurement discipline as bench/lib/measure.mjs, awaiting `ours`.

async function calibrate(fn, ms) {
  let calls = 0
  const start = performance.now()
  let elapsed = 0
  while (elapsed < ms) {
    await fn()
    calls++
    elapsed = performance.now() - start
  }
  return calls / elapsed
}

async function timed(fn, iterations) {
  const start = performance.now()
  for (let i = 0; i < iterations; i++) await fn()
  return performance.now() - start
}

async function measureAsync(fn, { warmupMs, runMs, runs }) {
  const perMs = await calibrate(fn, warmupMs)
  const iterations = Math.max(1, Math.round(perMs * runMs))
  const rates = []
  const cpuRates = []
  for (let r = 0; r < runs; r++) {
    const cpu0 = process.cpuUsage()
    const ms = await timed(fn, iterations)
    const cpu = process.cpuUsage(cpu0)
    rates.push((iterations * 1000) / ms)
    // Calls per second of this process's CPU time (user + system): what one uncontended core
    // would do. Reported beside wall-clock rates because this 2-core machine is shared.
    cpuRates.push((iterations * 1e6) / (cpu.user + cpu.system))
  }
  rates.sort((a, b) => a - b)
  cpuRates.sort((a, b) => a - b)
  return { callsPerSec: rates[rates.length >> 1], min: rates[0], max: rates[rates.length - 1], callsPerCpuSec: cpuRates[cpuRates.length >> 1] }
}

async function main() {
  const quick = process.argv.includes('--quick')
  const timing = quick ? { warmupMs: 300, runMs: 300, runs: 3 } : { warmupMs: 1000, runMs: 1000, runs: 7 }
  const { checkTarget } = await import('../lib/targets.mjs')
  const { writeResults } = await import('../lib/report.mjs')
  const env = { node: process.version, v8: process.versions.v8, cpu: cpus()[0]?.model ?? 'unknown CPU', cores: cpus().length, loadavg: loadavg(), date: new Date().toISOString(), ...timing }
  const cases = []
  console.log(`# ${suite.title} (engine)`)
  for (const c of suite.cases) {
    await c.setup()
    await c.check()
    const m = await measureAsync(c.ours, timing)
    const ours = { opsPerSec: m.callsPerSec * c.opsPerCall, spread: [m.min * c.opsPerCall, m.max * c.opsPerCall], opsPerCpuSecond: m.callsPerCpuSec * c.opsPerCall }
    const verdict = c.target ? checkTarget(c.target, { ...ours, ratios: {} }) : { met: null, clauses: [] }
    cases.push({ name: c.name, unit: c.unit, opsPerCall: c.opsPerCall, ours, peers: {}, ...(c.target ? { target: c.target, met: verdict.met, clauses: verdict.clauses } : { met: null }) })
    console.log(
      `- ${c.name}: ${Math.round(ours.opsPerSec).toLocaleString('en-US')} ops/s wall-clock, ` +
        `${Math.round(ours.opsPerCpuSecond).toLocaleString('en-US')} per CPU-second` + (c.target ? ` — target ${c.target}: ${verdict.met ? 'met' : 'NOT MET'}` : ''),
    )
  }
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results')
  const perCpu = cases.map((c) => `${c.name}: ${Math.round(c.ours.opsPerCpuSecond).toLocaleString('en-US')}/CPU-s`).join('; ')
  const notes = `${suite.notes} Load average at start ${env.loadavg.map((x) => x.toFixed(2)).join(' ')} on ${env.cores} cores; ` +
    `rates per second of process CPU time (one uncontended core): ${perCpu}.`
  writeResults(dir, 'engine', [{ id: 'engine', title: suite.title, notes, env, cases }])
  console.log('wrote bench/results/engine.json and engine.md')
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main()
}
