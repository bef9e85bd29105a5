// The server's log on stderr is written asynchronously and must still be whole when the process
// ends: a burst of lines followed at once by process.exit, or by an uncaught exception, loses
// none. Runs the built @provisio/server in a child process, as `provisio serve` runs it.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'packages', 'server', 'dist', 'index.js')
const LINES = 20_000

/** Runs a script that logs LINES lines and then ends as `end` says; resolves with its exit code and stderr. */
function run(end: string): Promise<{ code: number | null; stderr: string }> {
  expect(existsSync(DIST), `${DIST} must be built (turbo runs build before these tests)`).toBe(true)
  const script = [
    `import { createLogger } from ${JSON.stringify(pathToFileURL(DIST).href)}`,
    `const log = createLogger('info')`,
    `for (let i = 0; i < ${LINES}; i++) log.info('line', { i, pad: 'x'.repeat(100) })`,
    end,
  ].join('\n')
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })))
}

function logged(stderr: string): number[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => (JSON.parse(l) as { i: number }).i)
}

describe('log lines at exit', () => {
  it('are all written when the process exits right after logging them', async () => {
    const { code, stderr } = await run('process.exit(3)')
    expect(code).toBe(3)
    expect(logged(stderr)).toEqual(Array.from({ length: LINES }, (_, i) => i))
  })

  it('are all written when an uncaught exception ends the process', async () => {
    const { code, stderr } = await run(`setImmediate(() => { throw new Error('fatal after logging') })`)
    expect(code).toBe(1)
    expect(stderr).toContain('fatal after logging')
    expect(logged(stderr)).toEqual(Array.from({ length: LINES }, (_, i) => i))
  })
})
