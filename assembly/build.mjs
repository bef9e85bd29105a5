// Compiles assembly/index.ts twice: a scalar build and a SIMD build with identical exports.
// Output: assembly/build/provisio.wasm and assembly/build/provisio.simd.wasm (never committed;
// @provisio/crypto embeds them into a generated module).
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const asc = join(dirname(createRequire(import.meta.url).resolve('assemblyscript/package.json')), 'bin', 'asc.js')
mkdirSync(join(here, 'build'), { recursive: true })

// Unrolled SHA-2 rounds and NIST field arithmetic are generated from one description each
// (gen-sha2.mjs, gen-ecc.mjs) into assembly/generated/, which is never committed.
for (const generator of ['gen-sha2.mjs', 'gen-ecc.mjs']) {
  const g = spawnSync(process.execPath, [join(here, generator)], { cwd: here, stdio: 'inherit' })
  if (g.status !== 0) {
    console.error(`${generator} failed (exit ${g.status})`)
    process.exit(1)
  }
}

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

// The scalar build must run on engines without WebAssembly SIMD (older Safari, some embedded
// runtimes). Check it the way such an engine would: validate it with every feature except SIMD.
// (binaryen is the optimizer assemblyscript itself runs on.)
{
  const { default: binaryen } = await import('binaryen')
  const scalar = binaryen.readBinary(readFileSync(join(here, 'build', targets[0].name)))
  scalar.setFeatures(binaryen.Features.All & ~binaryen.Features.SIMD128)
  const ok = scalar.validate()
  scalar.dispose()
  if (!ok) {
    console.error(`${targets[0].name} uses SIMD instructions: guard them with ASC_FEATURE_SIMD`)
    process.exit(1)
  }
  console.log(`${targets[0].name} validates without SIMD`)
}
