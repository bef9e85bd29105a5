// Sums the vitest JSON reports of every workspace (written by vitest.shared.ts) and prints one
// closing line, `Tests: N passed, N failed, N skipped`. Under CI a skipped or missing test run
// fails the build: tests that need PostgreSQL or Chromium may skip on a developer machine that
// lacks them, never in CI.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const dirs = [
  ...readdirSync(join(root, 'packages')).map((d) => join(root, 'packages', d)),
  join(root, 'test'),
]
let passed = 0
let failed = 0
let skipped = 0
const problems = []
for (const dir of dirs) {
  if (!existsSync(join(dir, 'package.json'))) continue
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  if (!pkg.scripts?.test) continue
  const file = join(dir, 'test-results', 'vitest.json')
  if (!existsSync(file)) {
    problems.push(`${pkg.name}: no test report (did its tests run?)`)
    continue
  }
  const r = JSON.parse(readFileSync(file, 'utf8'))
  passed += r.numPassedTests
  failed += r.numFailedTests
  skipped += r.numPendingTests + r.numTodoTests
  if (r.numPendingTests + r.numTodoTests > 0) problems.push(`${pkg.name}: ${r.numPendingTests + r.numTodoTests} skipped`)
  if (r.numTotalTests === 0) problems.push(`${pkg.name}: ran no test`)
}
for (const p of problems) console.log(`  ${p}`)
console.log(`Tests: ${passed} passed, ${failed} failed, ${skipped} skipped`)
if (failed > 0 || (process.env.CI && problems.length > 0)) process.exit(1)
