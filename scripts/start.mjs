// `npm start`: builds what `provisio serve` needs (turbo, incremental), saying what it does, then
// runs `provisio serve` in this process with the arguments given after `npm start --`.
// `--build-only` (the root package's `prepare`, run by `npm install`) stops after the build, so
// that `npx provisio` works right after the install.
//
// turbo's own output is kept back (one line per package, not tsup's every file) and printed whole
// only when the build fails: a first build compiles the WebAssembly crypto core and every package
// (about a minute on two cores), later starts find everything in turbo's cache.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const cli = fileURLToPath(new URL('../packages/server/dist/cli.js', import.meta.url))
const turbo = fileURLToPath(new URL('../node_modules/turbo/bin/turbo', import.meta.url))
const args = ['run', 'build', '--filter=@provisio/server...', '--filter=@provisio/emulator...', '--output-logs=new-only', '--ui=stream']

const buildOnly = process.argv[2] === '--build-only'
const started = Date.now()
process.stderr.write(existsSync(cli)
  ? 'provisio: checking the build (turbo: only what changed is rebuilt)…\n'
  : 'provisio: first build of the packages `provisio serve` needs (about a minute on two cores)…\n')

/** Runs the build; resolves with its exit code, echoing one line per package as it starts. */
function build() {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [turbo, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1' } })
    const output = []
    const seen = new Set()
    let cached = 0
    let rest = ''
    const onData = (chunk) => {
      output.push(chunk)
      const lines = (rest + chunk.toString()).split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) {
        // turbo prefixes every line of a task with "<package>:<task>: ".
        const task = /^(@?[\w./-]+):build: (.*)$/.exec(line)
        if (task === null || seen.has(task[1])) continue
        seen.add(task[1])
        if (task[2].startsWith('cache hit')) cached++
        else process.stderr.write(`  building ${task[1]}\n`)
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.on('error', (error) => {
      process.stderr.write(`provisio: could not run turbo (${error.message}); run \`npm install\` first\n`)
      resolve(1)
    })
    child.on('close', (code) => {
      if (code !== 0) {
        process.stderr.write(Buffer.concat(output))
        process.stderr.write(`provisio: the build failed (turbo exit code ${code}); its output is above\n`)
      } else {
        const seconds = ((Date.now() - started) / 1000).toFixed(1)
        process.stderr.write(`provisio: build ready in ${seconds} s (${seen.size} packages, ${cached} unchanged from the cache)${buildOnly ? '' : '; starting provisio serve'}\n`)
      }
      resolve(code ?? 1)
    })
  })
}

const code = await build()
if (code !== 0 || buildOnly) process.exit(code)
// The CLI runs in this process (no second process to pass signals to): it reads its command from
// process.argv, and --workers forks process.argv[1].
process.argv = [process.argv[0], cli, 'serve', ...process.argv.slice(2)]
await import(pathToFileURL(cli).href)
