#!/usr/bin/env node
// Benchmark runner (see bench/README.md). Imports every bench/suites/*.mjs, keeps those selected
// by the command-line filters (a results file name such as `crypto`, or a suite name such as
// `crypto-hash`; none = all), measures each case's `ours` and peers in one process, and writes
// bench/results/<file>.json and .md, printing the tables.
//
// Suites import the BUILT packages (`@provisio/*` resolves to dist/ through normal Node
// resolution), so run `turbo run build` first; `npm run bench` does both.
import { readdirSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { measure, measureAsync } from './lib/measure.mjs'
import { checkTarget } from './lib/targets.mjs'
import { writeResults } from './lib/report.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const filters = args.filter((a) => !a.startsWith('--'))
// --case=<text>: only the cases whose name contains <text> (e.g. while working on one transport).
const caseFilter = args.find((a) => a.startsWith('--case='))?.slice('--case='.length)
const timing = quick ? { warmupMs: 100, runMs: 80, runs: 3 } : { warmupMs: 250, runMs: 250, runs: 7 }

const files = readdirSync(join(here, 'suites'))
  .filter((f) => f.endsWith('.mjs'))
  .sort()
const suites = []
for (const f of files) {
  const id = f.replace(/\.mjs$/, '')
  const mod = await import(pathToFileURL(join(here, 'suites', f)).href)
  const suite = mod.default
  if (!suite || !Array.isArray(suite.cases) || typeof suite.file !== 'string') {
    throw new Error(`bench/suites/${f}: default export must be { file, title, cases }`)
  }
  if (filters.length === 0 || filters.includes(suite.file) || filters.includes(id)) suites.push({ id, ...suite })
}
if (suites.length === 0) {
  console.error(`no suite matches ${filters.join(', ')} (files: ${files.join(', ')})`)
  process.exit(1)
}

const byFile = new Map()
for (const suite of suites) {
  const env = {
    node: process.version,
    v8: process.versions.v8,
    cpu: cpus()[0]?.model ?? 'unknown CPU',
    cores: cpus().length,
    loadavg: loadavg(),
    date: new Date().toISOString(),
    ...timing,
    ...(quick ? {} : suite.timing),
  }
  console.log(`\n# ${suite.title} (${suite.id})`)
  const cases = []
  for (const c of suite.cases) {
    if (caseFilter !== undefined && !c.name.includes(caseFilter)) continue
    if (c.setup) await c.setup()
    const opsPerCall = c.opsPerCall ?? 1
    const bytesPerOp = c.unit === 'bytes' ? c.bytesPerOp : undefined
    if (c.unit === 'bytes' && !(bytesPerOp > 0)) throw new Error(`${suite.id}: case "${c.name}" has unit bytes but no bytesPerOp`)
    const fns = { ours: c.ours, ...c.peers }
    // A wrong result makes any speed meaningless: a case may define `check()` (our extension of
    // the contract), which must throw unless ours and every peer produce the same output.
    if (c.check) await c.check()
    // Optional per-suite / per-case overrides, e.g. longer runs for slow asynchronous batches.
    const t = { ...timing, ...(quick ? {} : { ...suite.timing, ...c.timing }) }
    const m = c.async ? await measureAsync(fns, t) : measure(fns, t)
    const rate = (name) => {
      const opsPerSec = m[name].callsPerSec * opsPerCall
      return {
        opsPerSec,
        ...(bytesPerOp !== undefined ? { bytesPerSec: opsPerSec * bytesPerOp } : {}),
        spread: [m[name].min * opsPerCall, m[name].max * opsPerCall],
        ...(m[name].latency ? { latencyMs: m[name].latency } : {}),
      }
    }
    const ours = rate('ours')
    const peers = {}
    for (const name of Object.keys(c.peers ?? {})) {
      const r = rate(name)
      peers[name] = { ...r, ratio: ours.opsPerSec / r.opsPerSec }
    }
    const ratios = Object.fromEntries(Object.entries(peers).map(([k, v]) => [k, v.ratio]))
    const verdict = c.target ? checkTarget(c.target, { ...ours, ratios }) : { met: null, clauses: [] }
    const result = {
      name: c.name,
      unit: c.unit,
      opsPerCall,
      ...(bytesPerOp !== undefined ? { bytesPerOp } : {}),
      ours,
      peers,
      ...(c.target ? { target: c.target, met: verdict.met, clauses: verdict.clauses } : { met: null }),
    }
    cases.push(result)
    const lat = (r) => (r.latencyMs ? ` (p50 ${r.latencyMs.p50.toFixed(1)} ms, p99 ${r.latencyMs.p99.toFixed(1)} ms)` : '')
    const show = (r) => (r.bytesPerSec !== undefined ? `${(r.bytesPerSec / 1e6).toFixed(1)} MB/s` : `${Math.round(r.opsPerSec).toLocaleString('en-US')} ops/s`) + lat(r)
    console.log(`- ${c.name}: ours ${show(ours)}` + Object.entries(peers).map(([k, v]) => `; ${k} ${show(v)} (${v.ratio.toFixed(2)}x)`).join('') +
      (c.target ? ` — target ${c.target}: ${verdict.met === true ? 'met' : verdict.met === false ? 'NOT MET' : 'n/a'}` : ''))
  }
  const list = byFile.get(suite.file) ?? []
  // teardown (optional): stops what the suite started (servers, databases) once its cases ran.
  if (suite.teardown) await suite.teardown()
  // notes may be a function, called after the cases ran (figures a suite gathers while measuring).
  const notes = typeof suite.notes === 'function' ? suite.notes() : suite.notes
  list.push({ id: suite.id, title: suite.title, ...(notes ? { notes } : {}), env, cases })
  byFile.set(suite.file, list)
}

let failed = false
for (const [file, list] of byFile) {
  const md = writeResults(join(here, 'results'), file, list)
  console.log(`\n${md}`)
  console.log(`wrote bench/results/${file}.json and ${file}.md`)
  failed ||= list.some((s) => s.cases.some((c) => c.met === false))
}
// Unmet targets are reported, not fatal: the numbers are the deliverable.
if (failed) console.log('\nsome targets were not met (see the tables above)')
// Suites leave servers and pools open (the e2e ones start real listeners): results are written,
// so end the process instead of waiting for every handle to close.
process.exit(0)
