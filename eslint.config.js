// Lint rules for the whole monorepo. The one rule that matters most: packages below the
// server/device adapters (layers 0-4 of docs/architecture.md §1) import no Node built-ins and touch no DOM,
// timers or process-wide globals. Clock, randomness, fetch and stores are passed in as ports.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import { builtinModules } from 'node:module'

/** Packages that must stay pure (run unchanged in Node, browsers and workers). */
export const PURE_PACKAGES = [
  'crypto',
  'protocol',
  'x509',
  'tpm',
  'allocation',
  'engine',
  'hub',
  'codec-http',
  'codec-mqtt',
  'codec-amqp',
]

const nodeBuiltins = builtinModules.filter((m) => !m.startsWith('_'))

/**
 * A package is used through its public entry (`@provisio/hub`), never its files: the server wires
 * the hub, it does not reach into it. (Subpath exports a package declares, like
 * `@provisio/device/browser`, are entries too.)
 */
const noDeepImports = {
  group: ['@provisio/*/*', '!@provisio/device/browser', '**/packages/*/src/**', '../../*/src/**'],
  message: "Import a package through its public index (e.g. '@provisio/hub'), not its internal files (DESIGN.md).",
}

const pureRules = {
  'no-restricted-imports': [
    'error',
    {
      paths: nodeBuiltins.map((name) => ({
        name,
        message: 'Pure packages import no Node built-ins; take the capability as a port (docs/architecture.md §1).',
      })),
      patterns: [
        {
          group: ['node:*'],
          message: 'Pure packages import no node:* modules; take the capability as a port (docs/architecture.md §1).',
        },
        noDeepImports,
      ],
    },
  ],
  'no-restricted-globals': [
    'error',
    ...[
      'window', 'document', 'navigator', 'location', 'localStorage', 'sessionStorage',
      'self', 'globalThis', 'process', 'Buffer', 'global', 'require', '__dirname', '__filename',
      'setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval',
      'fetch', 'XMLHttpRequest', 'WebSocket', 'crypto', 'performance', 'Date',
    ].map((name) => ({
      name,
      message: `Pure packages use no ambient "${name}": pass it in (Clock, Random, Fetch ports; docs/architecture.md §1).`,
    })),
  ],
}

/**
 * @provisio/device runs in Node and browsers: everything but its Node platform (src/node/) and its
 * Node entry (src/index.ts) is reachable from the browser entry, so it imports no Node built-ins
 * (and not `ws`, the Node WebSocket). Timers and fetch are fine there: both runtimes have them.
 */
const deviceBrowserRules = {
  'no-restricted-imports': [
    'error',
    {
      paths: [
        // 'buffer' is allowed: in a browser bundle it is the npm package (rhea's UMD build needs Buffers).
        ...nodeBuiltins.filter((name) => name !== 'buffer').map((name) => ({
          name,
          message: 'Browser-reachable device code imports no Node built-ins; put it in src/node/ behind the Platform (packages/device/src/transport.ts).',
        })),
        { name: 'ws', message: 'The Node WebSocket lives in src/node/platform.ts; browsers use the global WebSocket.' },
        { name: 'rhea', message: 'Take rhea from the Platform: Node loads the package, browsers its UMD build.' },
      ],
      patterns: [
        {
          group: ['node:*'],
          message: 'Browser-reachable device code imports no node:* modules; put it in src/node/ behind the Platform.',
        },
        noDeepImports,
      ],
    },
  ],
  'no-restricted-globals': [
    'error',
    ...['process', 'Buffer', 'global', 'require', '__dirname', '__filename', 'setImmediate'].map((name) => ({
      name,
      message: `Browser-reachable device code uses no Node global "${name}".`,
    })),
  ],
}

export default tseslint.config(
  {
    ignores: ['**/node_modules/**', '**/dist/**', '**/build/**', '**/src/generated/**', 'assembly/**', '**/.turbo/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    // Node adapters (server, stores, the device SDK's Node parts): packages only through their entries.
    files: ['packages/*/src/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [noDeepImports] }] },
  },
  {
    files: PURE_PACKAGES.map((p) => `packages/${p}/src/**/*.ts`),
    rules: pureRules,
  },
  {
    files: ['packages/device/src/**/*.ts'],
    ignores: ['packages/device/src/node/**', 'packages/device/src/index.ts'],
    rules: deviceBrowserRules,
  },
  {
    files: ['**/*.mjs', '**/*.js', 'bench/**', 'test/**', 'packages/*/test/**', 'packages/*/scripts/**'],
    languageOptions: {
      globals: {
        process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly',
        clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly',
        TextEncoder: 'readonly', TextDecoder: 'readonly', WebAssembly: 'readonly', performance: 'readonly',
        fetch: 'readonly', globalThis: 'readonly',
      },
    },
  },
)
