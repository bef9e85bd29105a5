#!/usr/bin/env node
// Prints the e2e summary table of the root README from bench/results/e2e.json: one row per
// transport and attestation; one instance (one process, and --workers 2) and two instances side by side (rate, p50/p99, ratio to the
// bare-TLS baseline of the same run). Usage: node bench/e2e-table.mjs
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const doc = JSON.parse(readFileSync(fileURLToPath(new URL('results/e2e.json', import.meta.url)), 'utf8'))
const suite = doc.suites.find((s) => s.id === 'e2e')
if (!suite) throw new Error('bench/results/e2e.json has no e2e suite: run `npm run bench -- e2e` first')

const CONFIGS = { '1 instance, SQLite': 'one', '1 instance, SQLite, 2 workers': 'workers', '2 instances, PostgreSQL': 'two' }
const rows = new Map()
for (const c of suite.cases) {
  const m = /^(.*?): (.*)$/.exec(c.name)
  const key = m && CONFIGS[m[1]]
  if (!key) continue
  const row = rows.get(m[2]) ?? {}
  row[key] = c
  rows.set(m[2], row)
}
const rate = (n) => (n >= 1000 ? `${(n / 1000).toFixed(2)} k/s` : `${Math.round(n)}/s`)
const cell = (c) => {
  if (!c) return '— | — | —'
  const [peer] = Object.values(c.peers)
  const l = c.ours.latencyMs
  return `${rate(c.ours.opsPerSec)} | ${l ? `${Math.round(l.p50)} / ${Math.round(l.p99)} ms` : '—'} | ${peer ? `${peer.ratio.toFixed(2)}×` : '—'}`
}
const verdict = (c, label) =>
  (c?.clauses ?? [])
    .map((k) => `${label}${k.text.replace(/>=/g, '≥').replace(/(\d)x /, '$1× ').replace(/bare-TLS baseline/g, 'baseline')}: ${k.met === true ? 'yes' : k.met === false ? '**no**' : 'n/a'}`)
    .join('; ')
const lines = [
  '| transport, attestation | 1 instance (SQLite) | p50 / p99 | vs baseline | 1 instance, 2 workers | p50 / p99 | vs baseline | 2 instances (PostgreSQL) | p50 / p99 | vs baseline | targets |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
]
for (const [name, row] of rows) {
  const targets = [verdict(row.one, ''), verdict(row.workers, '2 workers: ')].filter(Boolean).join('; ')
  lines.push(`| ${name} | ${cell(row.one)} | ${cell(row.workers)} | ${cell(row.two)} | ${targets} |`)
}
console.log(lines.join('\n'))
