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
    lines.push('| Case | Ours | Peer | Peer speed | Ours / peer | Target | Met |', '|---|---:|---|---:|---:|---|:-:|')
    for (const c of suite.cases) {
      const peers = Object.entries(c.peers)
      const rows = peers.length > 0 ? peers : [[ '—', null ]]
      rows.forEach(([name, p], i) => {
        lines.push(
          `| ${i === 0 ? c.name : ''} | ${i === 0 ? speed(c.ours) : ''} | ${name} | ${p ? speed(p) : ''} | ${p ? `${p.ratio.toFixed(2)}x` : ''} | ${i === 0 ? (c.target ?? '') : ''} | ${i === 0 ? verdict(c.met) : ''} |`,
        )
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
