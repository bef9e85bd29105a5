#!/usr/bin/env node
// The `provisio` command. npm links a workspace's bin into node_modules/.bin at install time only
// when the file it names already exists, and dist/ is made by the build that follows: so the bin is
// this launcher, which exists from the clone on and hands over to the built CLI (src/cli.ts).
import { existsSync } from 'node:fs'

const cli = new URL('../dist/cli.js', import.meta.url)
if (existsSync(cli)) {
  await import(cli.href)
} else {
  process.stderr.write(
    'provisio: the command is not built yet (packages/server/dist/cli.js is missing).\n' +
      'Build it at the root of the repository with `npm run build` (or `npm start`, which builds, then serves);\n' +
      '`npm install` builds it too unless scripts were turned off (--ignore-scripts).\n',
  )
  process.exitCode = 1
}
