// Results files: bench/results/<file>.json (machine-readable) and <file>.md (the table).

import { existsSync, readFileSync, writeFileSync } from 'node:fs'

export function fmtRate(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`
  return `${n.toFixed(1)} `
}

function speed(r) {
  return r.bytesPerSec !== undefined ? `${(r.bytesPerSec / 1e6).toFixed(1)} MB/s` : `${fmtRate(r.opsPerSec)}ops/s`
}

const verdict = (met) => (met === true ? 'yes' : met === false ? '**NO**' : 'n/a')

/** Markdown for one results file. */
export function markdown(doc) {
  const lines = [`# Benchmark results: ${doc.file}`, '']
  for (const suite of doc.suites) {
    const e = suite.env
    lines.push(`## ${suite.title} (\`suites/${suite.id}.mjs\`)`, '')
    lines.push(
      `Node ${e.node}, ${e.cpu} (${e.cores} cores, load ${e.loadavg.map((x) => x.toFixed(2)).join(' ')} at start), ${e.date}.` +
        ` Median of ${e.runs} interleaved runs of ~${e.runMs} ms after ${e.warmupMs} ms warm-up.`,
      '',
    )
    if (suite.notes) lines.push(suite.notes, '')
    // Latency columns (p50 / p99 per operation) appear when a suite's cases measured them.
    const latency = suite.cases.some((c) => c.ours.latencyMs)
    const ms = (r) => (r?.latencyMs ? `${r.latencyMs.p50.toFixed(1)} / ${r.latencyMs.p99.toFixed(1)} ms` : '')
    lines.push(
      latency
        ? '| Case | Ours | Ours p50 / p99 | Peer | Peer speed | Peer p50 / p99 | Ours / peer | Target | Met |'
        : '| Case | Ours | Peer | Peer speed | Ours / peer | Target | Met |',
      latency ? '|---|---:|---:|---|---:|---:|---:|---|:-:|' : '|---|---:|---|---:|---:|---|:-:|',
    )
    for (const c of suite.cases) {
      const peers = Object.entries(c.peers)
      const rows = peers.length > 0 ? peers : [[ '—', null ]]
      rows.forEach(([name, p], i) => {
        const first = i === 0
        const cells = latency
          ? [first ? c.name : '', first ? speed(c.ours) : '', first ? ms(c.ours) : '', name, p ? speed(p) : '', ms(p), p ? `${p.ratio.toFixed(2)}x` : '', first ? (c.target ?? '') : '', first ? verdict(c.met) : '']
          : [first ? c.name : '', first ? speed(c.ours) : '', name, p ? speed(p) : '', p ? `${p.ratio.toFixed(2)}x` : '', first ? (c.target ?? '') : '', first ? verdict(c.met) : '']
        lines.push(`| ${cells.join(' | ')} |`)
      })
    }
    lines.push('')
  }
  return lines.join('\n')
}

/** Merges freshly run suites into bench/results/<file>.json (others kept), writes .json and .md. */
export function writeResults(dir, file, suites) {
  const jsonPath = `${dir}/${file}.json`
  let doc = { file, suites: [] }
  if (existsSync(jsonPath)) {
    try {
      doc = JSON.parse(readFileSync(jsonPath, 'utf8'))
    } catch {
      doc = { file, suites: [] }
    }
  }
  const fresh = new Map(suites.map((s) => [s.id, s]))
  const kept = doc.suites.filter((s) => !fresh.has(s.id))
  doc.suites = [...kept, ...suites].sort((a, b) => a.id.localeCompare(b.id))
  writeFileSync(jsonPath, JSON.stringify(doc, null, 2) + '\n')
  const md = markdown(doc)
  writeFileSync(`${dir}/${file}.md`, md + '\n')
  return md
}
