// Shared vitest settings for every workspace package: resolve `@provisio/*` to TypeScript
// sources through the "source" export condition, so tests never need a prior build (the
// only generated input is the embedded WASM module, produced by `turbo run generate`).
import { defineConfig } from 'vitest/config'
import { defaultServerConditions, defaultClientConditions } from 'vite'

export default defineConfig({
  resolve: { conditions: ['source', ...defaultClientConditions] },
  ssr: { resolve: { conditions: ['source', ...defaultServerConditions] } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // CI must never silently skip: `.only` fails the run there.
    allowOnly: !process.env.CI,
    // The JSON report feeds scripts/test-summary.mjs (one closing line; CI fails on skips).
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
  },
})
