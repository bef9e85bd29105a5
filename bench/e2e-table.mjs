#!/usr/bin/env node
// Prints the e2e summary table of the root README from bench/results/e2e.json: one row per
// transport and attestation, one and two instances side by side (rate, p50/p99, ratio to the
// bare-TLS baseline of the same run). Usage: node bench/e2e-table.mjs
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const doc = JSON.parse(readFileSync(fileURLToPath(new URL('results/e2e.json', import.meta.url)), 'utf8'))
const suite = doc.suites.find((s) => s.id === 'e2e')
if (!suite) throw new Error('bench/results/e2e.json has no e2e suite: run `npm run bench -- e2e` first')

const rows = new Map()
for (const c of suite.cases) {
  const m = /^(1 instance, SQLite|2 instances, PostgreSQL): (.*)$/.exec(c.name)
  if (!m) continue
  const row = rows.get(m[2]) ?? {}
  row[m[1].startsWith('1') ? 'one' : 'two'] = c
  rows.set(m[2], row)
}
const rate = (n) => (n >= 1000 ? `${(n / 1000).toFixed(2)} k/s` : `${Math.round(n)}/s`)
const cell = (c) => {
  if (!c) return '— | — | —'
  const [peer] = Object.values(c.peers)
  const l = c.ours.latencyMs
  return `${rate(c.ours.opsPerSec)} | ${l ? `${Math.round(l.p50)} / ${Math.round(l.p99)} ms` : '—'} | ${peer ? `${peer.ratio.toFixed(2)}×` : '—'}`
}
const verdict = (c) =>
  (c?.clauses ?? [])
    .map((k) => `${k.text.replace(/>=/g, '≥').replace(/(\d)x /, '$1× ').replace(/bare-TLS baseline/g, 'baseline')}: ${k.met === true ? 'yes' : k.met === false ? '**no**' : 'n/a'}`)
    .join('; ')
const lines = [
  '| transport, attestation | 1 instance (SQLite) | p50 / p99 | vs baseline | 2 instances (PostgreSQL) | p50 / p99 | vs baseline | target (1 instance) |',
  '|---|---:|---:|---:|---:|---:|---:|---|',
]
for (const [name, row] of rows) lines.push(`| ${name} | ${cell(row.one)} | ${cell(row.two)} | ${verdict(row.one)} |`)
console.log(lines.join('\n'))
