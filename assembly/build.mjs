// Compiles assembly/index.ts twice: a scalar build and a SIMD build with identical exports.
// Output: assembly/build/provisio.wasm and assembly/build/provisio.simd.wasm (never committed;
// @provisio/crypto embeds them into a generated module).
import { spawnSync } from 'node:child_process'
import { mkdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const asc = join(dirname(createRequire(import.meta.url).resolve('assemblyscript/package.json')), 'bin', 'asc.js')
mkdirSync(join(here, 'build'), { recursive: true })

const common = [
  'index.ts',
  '--runtime', 'stub',
  '--optimizeLevel', '3',
  '--shrinkLevel', '0',
  '--converge',
  '--noAssert',
  '--initialMemory', '16',
  '--use', 'abort=',
]
const targets = [
  { name: 'provisio.wasm', flags: ['--disable', 'simd'] },
  { name: 'provisio.simd.wasm', flags: ['--enable', 'simd'] },
]

for (const t of targets) {
  const out = join(here, 'build', t.name)
  const args = [asc, ...common, ...t.flags, '--outFile', out]
  const r = spawnSync(process.execPath, args, { cwd: here, stdio: 'inherit' })
  if (r.status !== 0) {
    console.error(`asc failed for ${t.name} (exit ${r.status})`)
    process.exit(1)
  }
  console.log(`built ${t.name}: ${statSync(out).size} bytes`)
}
