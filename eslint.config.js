// Lint rules for the whole monorepo. The one rule that matters most: packages below the
// server/device adapters (layers 0-4 in DESIGN.md) import no Node built-ins and touch no DOM,
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

const pureRules = {
  'no-restricted-imports': [
    'error',
    {
      paths: nodeBuiltins.map((name) => ({
        name,
        message: 'Pure packages import no Node built-ins; take the capability as a port (DESIGN.md).',
      })),
      patterns: [
        {
          group: ['node:*'],
          message: 'Pure packages import no node:* modules; take the capability as a port (DESIGN.md).',
        },
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
      message: `Pure packages use no ambient "${name}": pass it in (Clock, Random, Fetch ports; DESIGN.md).`,
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
    files: PURE_PACKAGES.map((p) => `packages/${p}/src/**/*.ts`),
    rules: pureRules,
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
