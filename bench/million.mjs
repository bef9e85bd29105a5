// A million devices at flat cost: for each size N (default 10,000 and 1,000,000, in the same run),
// `provisio enrollments import` loads N individual enrollments (symmetric keys) from a JSON-lines
// file into a fresh data directory, then the engine — over that database, in this process —
// registers distinct devices drawn at random from the N (each once), and pages through every enrollment (1,000 a page)
// and reads single records. Reported per size: import rate, CPU time per registration (this process: engine +
// store, no transport), RSS after the registrations, database bytes per device, and page times.
// The verdict compares CPU per registration at the largest size with the smallest (target ≤ 1.2×).
//
//   node bench/million.mjs                                   # 10k and 1M on SQLite
//   node bench/million.mjs --sizes 10000,50000 --registrations 5000
//   node bench/million.mjs --store postgres://postgres@127.0.0.1:5432/test
//
// Packages must be built (npx turbo run build --filter=@provisio/server...). Nothing is written to
// bench/results: the numbers of a 1M run are kept in bench/README.md by hand.
import { spawnSync } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { createWriteStream, mkdtempSync, rmSync, statSync, existsSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildSasToken } from '@provisio/protocol'
import { createEngine } from '@provisio/engine'
import { createSqliteStore } from '@provisio/store-sqlite'
import { createPostgresStore } from '@provisio/store-postgres'

const here = dirname(fileURLToPath(import.meta.url))
const CLI = join(here, '..', 'packages', 'server', 'dist', 'cli.js')
const ID_SCOPE = '0ne000A1B2C'
const HUB = 'million-hub.azure-devices.net'
const SECRET = 'provisio-million-bench'

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,1000000' },
    registrations: { type: 'string', default: '8000' },
    store: { type: 'string', default: 'sqlite' },
    batch: { type: 'string', default: '1000' },
    keep: { type: 'boolean', default: false },
    // SQLite store settings of the registering engine (default: the store's own, as the server uses).
    'mmap-mib': { type: 'string' },
    'cache-mib': { type: 'string' },
  },
})
const sizes = values.sizes.split(',').map((s) => Number(s.trim()))
const registrations = Number(values.registrations)
if (sizes.some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(registrations) || registrations < 1) {
  throw new Error('--sizes takes whole numbers separated by commas, --registrations a whole number')
}
if (registrations > Math.min(...sizes)) throw new Error(`--registrations (${registrations}) must not exceed the smallest size: each device registers once`)
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx turbo run build --filter=@provisio/server...)`)
const postgresUrl = values.store === 'sqlite' ? undefined : values.store

/** The device key of enrollment i: HMAC of its index, so the bench can sign for any device. */
function keyOf(i) {
  return createHmac('sha256', SECRET).update(String(i)).digest('base64')
}
function idOf(i) {
  return `dev-${String(i).padStart(8, '0')}-a1b2c3d4`
}

async function writeEnrollments(file, n) {
  const out = createWriteStream(file)
  for (let i = 0; i < n; i++) {
    const line = JSON.stringify({
      registrationId: idOf(i),
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: keyOf(i), secondaryKey: keyOf(-1 - i) } },
      iotHubs: [HUB],
      initialTwin: { tags: { site: `site-${i % 97}`, batch: Math.floor(i / 1000) } },
    }) + '\n'
    if (!out.write(line)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}

function writeState(dataDir) {
  const key = () => randomBytes(32).toString('base64')
  const state = { version: 1, idScope: ID_SCOPE, servicePolicies: [], hubs: [{ hostName: HUB, policies: [{ name: 'iothubowner', primaryKey: key(), secondaryKey: key() }] }] }
  writeFileSync(join(dataDir, 'state.json'), JSON.stringify(state))
}

const noHub = { async createOrUpdateDevice() {}, async getTwin() { return undefined }, async deleteDevice() {} }

function engineOver(store) {
  return createEngine({
    store,
    clock: { now: () => Date.now() },
    random: { bytes: (n) => new Uint8Array(randomBytes(n)) },
    hubGateway: noHub,
    assignmentBudgetMs: 1000,
    rateLimits: { registrationsPerScope: false, pollsPerDevice: false },
    instances: [{
      idScope: ID_SCOPE,
      serviceHostName: 'million.azure-devices-provisioning.net',
      linkedHubs: [{ hostName: HUB, connectionString: `HostName=${HUB};SharedAccessKeyName=iothubowner;SharedAccessKey=${keyOf(0)}` }],
      accessPolicies: [],
    }],
  })
}

/** Milliseconds of one async call. */
async function timed(f) {
  const t = performance.now()
  const r = await f()
  return { ms: performance.now() - t, r }
}

/**
 * `k` distinct devices of `n`, drawn at random (deterministic xorshift): every registration is a
 * device's first, at every size, so the sizes compare the same work.
 */
function sample(n, k, seed = 0x9e3779b9) {
  let x = seed >>> 0
  const next = () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
  const picked = new Set()
  while (picked.size < k) picked.add(next() % n)
  return [...picked]
}

async function runSize(n) {
  const dir = mkdtempSync(join(tmpdir(), 'provisio-million-'))
  const schema = `provisio_million_${process.pid}_${n}`
  const url = postgresUrl === undefined ? undefined : `${postgresUrl}${postgresUrl.includes('?') ? '&' : '?'}schema=${schema}`
  try {
    writeState(dir)
    const file = join(dir, 'enrollments.jsonl')
    await writeEnrollments(file, n)

    // 1. Import through the CLI, as users do.
    const args = [CLI, 'enrollments', 'import', file, '--data-dir', dir, '--batch', values.batch, ...(url === undefined ? [] : ['--postgres', url])]
    const t0 = performance.now()
    const run = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    const importS = (performance.now() - t0) / 1000
    if (run.status !== 0) throw new Error(`import of ${n} failed (exit ${run.status}):\n${run.stdout}\n${run.stderr.slice(-4000)}`)
    if (!run.stdout.includes(`${n} created`)) throw new Error(`import of ${n}: unexpected summary ${run.stdout}`)

    // 2. Register devices drawn at random.
    const sqliteOptions = {
      ...(values['mmap-mib'] === undefined ? {} : { mmapSizeBytes: Number(values['mmap-mib']) * 1048576 }),
      ...(values['cache-mib'] === undefined ? {} : { cacheSizeKiB: Number(values['cache-mib']) * 1024 }),
    }
    const store = url === undefined ? createSqliteStore(join(dir, 'provisio.db'), sqliteOptions) : await createPostgresStore(url)
    const engine = engineOver(store)
    const expiresAt = Math.floor(Date.now() / 1000) + 3600
    const picks = sample(n, registrations)
    const tokens = picks.map((i) => buildSasToken({ resource: `${ID_SCOPE}/registrations/${idOf(i)}`, key: keyOf(i), expiresAt, keyName: 'registration' }))
    const register = async (k) => {
      const reply = await engine.register({ idScope: ID_SCOPE, registrationId: idOf(picks[k]), evidence: { type: 'sas', token: tokens[k] }, apiVersion: '2021-10-01' })
      if (reply.body.status !== 'assigned') throw new Error(`device ${idOf(picks[k])} ended ${reply.body.status}`)
    }
    const warm = Math.min(1000, Math.floor(registrations / 10))
    for (let k = 0; k < warm; k++) await register(k)
    const cpu0 = process.cpuUsage()
    const w0 = performance.now()
    for (let k = warm; k < registrations; k++) await register(k)
    const cpu = process.cpuUsage(cpu0)
    const wall = performance.now() - w0
    const measured = registrations - warm
    const rss = process.memoryUsage().rss

    // 3. Every enrollment, page by page (1,000 a page, continuation tokens), each page timed.
    const pageTimes = []
    let token
    let seen = 0
    do {
      const { ms, r } = await timed(() => engine.queryEnrollments(ID_SCOPE, undefined, { pageSize: 1000, ...(token === undefined ? {} : { continuationToken: token }) }))
      pageTimes.push(ms)
      seen += r.items.length
      token = r.continuationToken
    } while (token !== undefined)
    if (seen !== n) throw new Error(`paging saw ${seen} enrollments, not ${n}`)
    const sortedPages = [...pageTimes].sort((x, y) => x - y)
    const point = await timed(() => engine.getEnrollment(ID_SCOPE, idOf(n - 1)))
    const states = await timed(() => engine.getRegistrationState(ID_SCOPE, idOf(picks[0])))

    let dbBytes
    if (url === undefined) {
      store.db.pragma('wal_checkpoint(TRUNCATE)')
      dbBytes = statSync(join(dir, 'provisio.db')).size
      store.close()
    } else {
      const { rows } = await store.pool.query(
        `SELECT COALESCE(SUM(pg_total_relation_size(format('%I.%I', schemaname, tablename))), 0)::bigint AS bytes FROM pg_tables WHERE schemaname = $1`, [schema])
      dbBytes = Number(rows[0].bytes)
      await store.pool.query(`DROP SCHEMA "${schema}" CASCADE`)
      await store.close()
    }
    return {
      n,
      importS,
      importRate: n / importS,
      cpuUsPerReg: (cpu.user + cpu.system) / measured,
      userUsPerReg: cpu.user / measured,
      systemUsPerReg: cpu.system / measured,
      regPerS: measured / (wall / 1000),
      rssMiB: rss / 1048576,
      bytesPerDevice: dbBytes / n,
      firstPageMs: pageTimes[0],
      medianPageMs: sortedPages[Math.floor(sortedPages.length / 2)],
      maxPageMs: sortedPages[sortedPages.length - 1],
      walkS: pageTimes.reduce((x, y) => x + y, 0) / 1000,
      pointReadMs: point.ms,
      stateReadMs: states.ms,
    }
  } finally {
    if (!values.keep) rmSync(dir, { recursive: true, force: true })
  }
}

const results = []
for (const n of sizes) {
  process.stderr.write(`size ${n}: writing, importing, registering ${registrations} …\n`)
  results.push(await runSize(n))
}
const fmt = (v, d = 1) => v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
const lines = [
  `store: ${postgresUrl === undefined ? `SQLite (data directory; mmap ${values['mmap-mib'] ?? 'default'} MiB, cache ${values['cache-mib'] ?? 'default'} MiB)` : 'PostgreSQL'}; registrations per size: ${registrations} (first ${Math.min(1000, Math.floor(registrations / 10))} not measured); Node ${process.version}`,
  '',
  '| Enrollments | Import (s) | Import rate (/s) | CPU per registration (µs) | user / system (µs) | Registrations/s | RSS after (MiB) | DB bytes/device | First page (ms) | Median page (ms) | Slowest page (ms) | Full walk (s) | Point read (ms) | Registration state (ms) |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...results.map((r) => `| ${r.n.toLocaleString('en-US')} | ${fmt(r.importS)} | ${fmt(r.importRate, 0)} | ${fmt(r.cpuUsPerReg, 0)} | ${fmt(r.userUsPerReg, 0)} / ${fmt(r.systemUsPerReg, 0)} | ${fmt(r.regPerS, 0)} | ${fmt(r.rssMiB, 0)} | ${fmt(r.bytesPerDevice, 0)} | ${fmt(r.firstPageMs, 2)} | ${fmt(r.medianPageMs, 2)} | ${fmt(r.maxPageMs, 2)} | ${fmt(r.walkS, 1)} | ${fmt(r.pointReadMs, 3)} | ${fmt(r.stateReadMs, 3)} |`),
]
if (results.length > 1) {
  const small = results[0]
  const large = results[results.length - 1]
  const ratio = large.cpuUsPerReg / small.cpuUsPerReg
  lines.push('', `CPU per registration at ${large.n.toLocaleString('en-US')} vs ${small.n.toLocaleString('en-US')}: ${ratio.toFixed(2)}× (target ≤ 1.20×: ${ratio <= 1.2 ? 'met' : 'NOT met'})`)
}
process.stdout.write(lines.join('\n') + '\n')
