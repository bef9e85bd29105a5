// The browser entry bundles for a browser: esbuild with platform "browser" (which cannot resolve
// any Node built-in) and the `browser` export conditions, as Vite does. A node:* module reachable
// from src/browser.ts fails this test; the Node entry's node:https is the control that it would.
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const src = (file: string) => fileURLToPath(new URL(`../src/${file}`, import.meta.url))

async function bundle(entry: string) {
  return build({
    entryPoints: [src(entry)],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    conditions: ['source', 'browser'],
    metafile: true,
    logLevel: 'silent',
  })
}

describe('browser entry', () => {
  it('bundles for the browser with no Node built-in among its inputs', async () => {
    const result = await bundle('browser.ts')
    const inputs = Object.keys(result.metafile.inputs)
    expect(inputs.some((f) => f.includes('rhea-umd.js'))).toBe(true)
    expect(inputs.some((f) => /mqtt\/dist\/mqtt\.esm\.js$/.test(f))).toBe(true)
    expect(inputs.filter((f) => f.startsWith('node:') || f.includes('/ws/lib/'))).toEqual([])
    const text = result.outputFiles[0]!.text
    expect(text).not.toMatch(/from\s*["']node:/)
  }, 120_000)

  // With the "source" condition too (as the workspace's Vite and vitest configs set it): the
  // browser branch must win over the top-level "source" (src/index.ts, the Node entry).
  it('a bare "@provisio/device" import resolves to the browser entry under the browser condition', async () => {
    const conditions = ['source', 'browser']
    const result = await build({
      stdin: { contents: "import { ProvisioningClient, x509 } from '@provisio/device'; console.log(ProvisioningClient, x509)", resolveDir: fileURLToPath(new URL('.', import.meta.url)), loader: 'ts' },
      bundle: true,
      write: false,
      platform: 'browser',
      format: 'esm',
      conditions,
      metafile: true,
      logLevel: 'silent',
    })
    const inputs = Object.keys(result.metafile.inputs)
    expect(inputs.some((f) => /(^|\/)(src\/browser\.ts|dist\/browser\.js)$/.test(f))).toBe(true)
    expect(inputs.some((f) => /^\.\.\/(src|dist)\/index\.(ts|js)$/.test(f))).toBe(false)
  }, 120_000)

  it('the Node entry does not bundle for a browser (the check above can fail)', async () => {
    await expect(bundle('index.ts')).rejects.toThrow(/node:/)
  }, 120_000)
})
