// The package map of docs/architecture.md §1, checked mechanically: a package may depend only on packages of
// a lower layer (and only on those the map allows), and pure packages (layers 0-4) declare no
// dependency that would drag Node or the DOM in. ESLint separately forbids node:* imports and
// ambient globals inside their sources; this suite guards the dependency graph itself.
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs'
import { join, dirname, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Layer of every package, as the table of docs/architecture.md §1 gives it (checked below). */
const LAYER: Record<string, number> = {
  '@provisio/crypto': 0,
  '@provisio/protocol': 1,
  '@provisio/x509': 2,
  '@provisio/tpm': 2,
  '@provisio/allocation': 2,
  '@provisio/engine': 3,
  '@provisio/hub': 3,
  '@provisio/codec-http': 4,
  '@provisio/codec-mqtt': 4,
  '@provisio/codec-amqp': 4,
  '@provisio/store-sqlite': 5,
  '@provisio/store-postgres': 5,
  '@provisio/server': 5,
  '@provisio/device': 5,
  '@provisio/emulator': 6,
}

/**
 * Same-layer dependencies docs/architecture.md §1 allows: the server (layer 5, "everything below") wires the
 * stores, which the table lists before it in layer 5, and the device SDK (`provisio simulate`).
 */
const SAME_LAYER_ALLOWED = new Set([
  '@provisio/server -> @provisio/store-sqlite',
  '@provisio/server -> @provisio/store-postgres',
  // `provisio simulate` (the load generator in the server's CLI) drives devices through the device SDK.
  '@provisio/server -> @provisio/device',
])

/** Third-party runtime dependencies a pure package may have (they must be runtime-neutral). */
const PURE_ALLOWED = new Set(['asn1js', 'pkijs', 'mqtt-packet', 'rhea', 'pvtsutils', 'bytestreamjs'])

interface Manifest {
  name: string
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
}

const manifests: Manifest[] = readdirSync(join(root, 'packages'))
  .map((dir) => join(root, 'packages', dir, 'package.json'))
  .filter((file) => existsSync(file))
  .map((file) => JSON.parse(readFileSync(file, 'utf8')) as Manifest)

describe('package layering (docs/architecture.md §1)', () => {
  it('knows every package in packages/', () => {
    expect(manifests.length).toBeGreaterThan(0)
    for (const m of manifests) expect(LAYER, `${m.name} is not in the package map`).toHaveProperty([m.name])
  })

  it('matches the layer table of docs/architecture.md §1', () => {
    const doc = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8')
    const documented: Record<string, number> = {}
    for (const row of doc.matchAll(/^\| (\d) \| ([^|]+)\|/gm)) {
      for (const name of row[2]!.matchAll(/`(@provisio\/[a-z0-9-]+)`/g)) documented[name[1]!] = Number(row[1])
    }
    expect(documented).toEqual(LAYER)
  })

  for (const m of manifests) {
    const deps = { ...m.dependencies, ...m.peerDependencies }
    it(`${m.name} depends only on lower layers`, () => {
      for (const dep of Object.keys(deps)) {
        if (!dep.startsWith('@provisio/')) continue
        expect(LAYER[dep], `${m.name} -> ${dep}: unknown package`).toBeDefined()
        if (SAME_LAYER_ALLOWED.has(`${m.name} -> ${dep}`)) continue
        expect(LAYER[dep]!, `${m.name} (layer ${LAYER[m.name]}) must not depend on ${dep} (layer ${LAYER[dep]})`).toBeLessThan(
          LAYER[m.name]!,
        )
      }
    })
    if ((LAYER[m.name] ?? 99) <= 4) {
      it(`${m.name} (pure) has only runtime-neutral third-party dependencies`, () => {
        for (const dep of Object.keys(deps)) {
          if (dep.startsWith('@provisio/')) continue
          expect(PURE_ALLOWED.has(dep), `${m.name} must not depend on ${dep}`).toBe(true)
        }
      })
    }
  }
})

/** Every .ts file under a directory. */
function sourcesOf(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sourcesOf(path) : path.endsWith('.ts') ? [path] : []
  })
}

/** The module specifiers a source imports or re-exports (static and dynamic). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const out: string[] = []
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push((m[1] ?? m[2])!)
  return out
}

/** Subpath exports a package declares (besides its index). */
function exportedSubpaths(name: string): Set<string> {
  const m = manifests.find((x) => x.name === name) as (Manifest & { exports?: Record<string, unknown> }) | undefined
  return new Set(Object.keys(m?.exports ?? {}).filter((k) => k !== '.').map((k) => `${name}/${k.slice(2)}`))
}

describe('package boundaries', () => {
  const packageDirs = readdirSync(join(root, 'packages')).filter((dir) => existsSync(join(root, 'packages', dir, 'src')))

  for (const dir of packageDirs) {
    const name = `@provisio/${dir}`
    it(`${name} imports other packages only through their public entries, and no file of another package`, () => {
      const pkgRoot = join(root, 'packages', dir)
      for (const file of sourcesOf(join(pkgRoot, 'src'))) {
        for (const spec of importsOf(file)) {
          const where = `${relative(root, file)} imports ${spec}`
          if (spec.startsWith('.')) {
            expect(relative(pkgRoot, resolve(dirname(file), spec)).startsWith('..'), where).toBe(false)
            continue
          }
          const deep = /^(@provisio\/[^/]+)\/.+/.exec(spec)
          if (deep !== null) expect(exportedSubpaths(deep[1]!).has(spec), `${where}: a package's internals are not its API`).toBe(true)
        }
      }
    })
    if ((LAYER[name] ?? 99) <= 4) {
      it(`${name} (pure) sources import no node:* module`, () => {
        for (const file of sourcesOf(join(root, 'packages', dir, 'src'))) {
          for (const spec of importsOf(file)) expect(spec.startsWith('node:'), `${relative(root, file)} imports ${spec}`).toBe(false)
        }
      })
    }
  }

  it('the hub logic lives in @provisio/hub: the server holds no hub registry, device API, gateway or store of its own', () => {
    // hub-events.ts (the relay between processes) is wiring and stays in the server.
    const serverFiles = readdirSync(join(root, 'packages', 'server', 'src')).filter((f) => f.startsWith('hub-'))
    expect(serverFiles).toEqual(['hub-events.ts'])
  })
})
