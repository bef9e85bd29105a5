// `provisio simulate` when things go wrong: a server worker SIGKILLed mid-run, the whole server
// killed mid-run, a rate limit reached, and the service API's kept connection closed by the server
// while the simulator's event loop was busy. Every device is accounted for (assigned or failed), the
// summary is always printed, the exit code is 1 when any device is not assigned, and the summary
// says where the time went, which limit answered 429 and the rate limits the server states.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { PassThrough } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { createServiceClient, simulateCommand } from '@provisio/server'
import { CLI, startServe, type ServeProcess } from '../lib/cli.js'
import { startTestServer, type TestServer } from '../lib/server.js'

type Endpoints = { idScope: string; serviceConnectionString: string; caCertificate: string; ports: { https: number } }

interface Summary {
  devices: number
  succeeded: number
  failed: number
  failures: Record<string, number>
  unfinished: number
  timeMs: { service: number; waiting: number; pollWaits: number; retryWaits: number }
  throttled: { total: number; byLimit: Record<string, number> }
  rateLimits?: { registrationsPerMinute: number; pollsPer10Seconds: number }
  groupKey?: string
}

let serve: ServeProcess<Endpoints> | undefined
let inProcess: TestServer | undefined

afterEach(async () => {
  serve?.stop()
  serve = undefined
  await inProcess?.stop()
  inProcess = undefined
})

/** `provisio simulate` in a child process; resolves with its exit code and output (fails after `limitMs`). */
function runSimulate(dataDir: string, args: readonly string[], limitMs: number): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; stderr: () => string } {
  const child = spawn(process.execPath, [CLI, 'simulate', '--data-dir', dataDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`provisio simulate still running after ${limitMs} ms:\n${stdout}\n${stderr.slice(-3000)}`))
    }, limitMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
  return { done, stderr: () => stderr }
}

/** A stream that keeps what is written to it. */
function captured(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough()
  const chunks: Buffer[] = []
  stream.on('data', (c: Buffer) => chunks.push(c))
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') }
}

/** Waits (bounded) until `check` holds, polling every 50 ms. */
async function until(check: () => boolean, limitMs: number, what: string): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function workerPids(s: ServeProcess<Endpoints>): number[] {
  const line = s.stderr.split('\n').find((l) => l.includes('"msg":"workers listening"'))
  if (line === undefined) throw new Error(`no "workers listening" line:\n${s.stderr}`)
  return String((JSON.parse(line) as { pids: string }).pids).split(',').map(Number)
}

const assigned = (s: ServeProcess<Endpoints>) => s.stderr.split('"msg":"device assigned"').length - 1

/** The JSON summary; every device assigned or counted in a failure, the exit code from the count. */
function expectAccounted(result: { code: number | null; stdout: string; stderr: string }, devices: number): Summary {
  expect(result.stdout, result.stderr.slice(-3000)).toMatch(/^\{/)
  const summary = JSON.parse(result.stdout) as Summary
  expect(summary.devices).toBe(devices)
  expect(summary.succeeded + summary.failed).toBe(devices)
  expect(Object.values(summary.failures).reduce((a, b) => a + b, 0)).toBe(summary.failed)
  expect(result.code).toBe(summary.failed === 0 ? 0 : 1)
  return summary
}

describe('provisio simulate against a server that dies mid-run', () => {
  it('a worker hung, then SIGKILLed mid-run: every device is accounted for, the summary printed, the exit code from the count', { timeout: 240_000 }, async () => {
    serve = await startServe<Endpoints>({ dataDirPrefix: 'provisio-simkill-', args: ['--workers', '2', '--retry-after', '1'] })
    const s = serve
    const run = runSimulate(s.dataDir, ['--devices', '60', '--concurrency', '20', '--transport', 'mqtt', '--create-group', '--prefix', 'killw-', '--timeout', '20', '--json'], 180_000)
    await until(() => assigned(s) >= 10, 60_000, '10 devices assigned')
    // The fault: one worker hangs for 2 s (SIGSTOP) — its devices' register and poll PUBLISHes,
    // sent every second (--retry-after 1), go unacknowledged — and is then killed.
    const worker = workerPids(s)[0]!
    process.kill(worker, 'SIGSTOP')
    await new Promise((r) => setTimeout(r, 2000))
    process.kill(worker, 'SIGKILL')
    expectAccounted(await run.done, 60)
  })

  it('the whole server SIGKILLed mid-run: the devices left fail at their deadline, the summary is printed, exit 1', { timeout: 240_000 }, async () => {
    serve = await startServe<Endpoints>({ dataDirPrefix: 'provisio-simkill-', args: ['--workers', '2', '--retry-after', '1'] })
    const s = serve
    const run = runSimulate(s.dataDir, ['--devices', '40', '--concurrency', '10', '--transport', 'mqtt', '--create-group', '--prefix', 'killall-', '--timeout', '5', '--json'], 180_000)
    await until(() => assigned(s) >= 5, 60_000, '5 devices assigned')
    for (const pid of workerPids(s)) process.kill(pid, 'SIGKILL')
    s.child.kill('SIGKILL')
    const result = await run.done
    const summary = expectAccounted(result, 40)
    expect(summary.failed).toBeGreaterThan(0)
    expect(result.code).toBe(1)
  })
})

describe('the service API client of provisio simulate', () => {
  it('sends a PUT again when the server closed the kept connection while the event loop was busy', { timeout: 60_000 }, async () => {
    serve = await startServe<Endpoints>({ dataDirPrefix: 'provisio-simka-' })
    const { endpoints } = serve
    const client = createServiceClient({ host: 'localhost', port: endpoints.ports.https, ca: readFileSync(endpoints.caCertificate, 'utf8'), connectionString: endpoints.serviceConnectionString })
    try {
      const group = (id: string) => ({ enrollmentGroupId: id, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: Buffer.alloc(64, 1).toString('base64'), secondaryKey: Buffer.alloc(64, 2).toString('base64') } } })
      await client.put('/enrollmentGroups/kept-1', group('kept-1'))
      // The simulator's event loop busy past the server's keep-alive timeout (5 s, closed a little later), as when it makes
      // software TPMs: the server closes the idle connection, and the client, not having run since,
      // still holds it as free and reuses it for the next call. Atomics.wait blocks the thread as
      // CPU-bound work would.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 8_000)
      await client.put('/enrollmentGroups/kept-2', group('kept-2'))
    } finally {
      client.close()
    }
  })
})

describe('the summary of a throttled run', () => {
  it('counts the 429s by the limit that answered, states the server rate limits and where the time went', { timeout: 60_000 }, async () => {
    inProcess = await startTestServer({ registrationsPerMinute: 2, retryAfterSeconds: 1 })
    const [out, err] = [captured(), captured()]
    // Three devices, two registrations a minute: the third is answered 429 until its 4 s deadline.
    const code = await simulateCommand(['--data-dir', inProcess.dataDir, '--devices', '3', '--concurrency', '3', '--transport', 'http', '--create-group', '--prefix', 'thr-', '--timeout', '4', '--json'], { stdout: out.stream, stderr: err.stream, stderrIsTty: false })
    const summary = JSON.parse(out.text()) as Summary
    expect(code).toBe(1)
    expect(summary).toMatchObject({ succeeded: 2, failed: 1, unfinished: 0 })
    expect(summary.throttled.total).toBeGreaterThanOrEqual(1)
    expect(summary.throttled.byLimit).toEqual({ 'registrations per ID scope (429001)': summary.throttled.total })
    expect(summary.rateLimits).toEqual({ registrationsPerMinute: 2, pollsPer10Seconds: 5 })
    // The throttled device waited on retry-after; every device spent time in requests.
    expect(summary.timeMs.retryWaits).toBeGreaterThan(0)
    expect(summary.timeMs.waiting).toBe(summary.timeMs.pollWaits + summary.timeMs.retryWaits)
    expect(summary.timeMs.service).toBeGreaterThan(0)
    // --create-group gives the key of the group it made, to reuse with --group-key.
    expect(summary.groupKey).toMatch(/^[A-Za-z0-9+/]{86}==$/)
    expect(err.text()).toContain(`--group-key ${summary.groupKey}`)

    // The same in the human summary.
    const human = captured()
    const again = await simulateCommand(['--data-dir', inProcess.dataDir, '--devices', '1', '--transport', 'http', '--group-key', summary.groupKey!, '--prefix', 'thr-again-', '--timeout', '3'], { stdout: human.stream, stderr: new PassThrough(), stderrIsTty: false })
    expect(again).toBe(1)
    const text = human.text()
    expect(text).toMatch(/ {2}time {10}[\d.]+ s in requests, [\d.]+ s waiting \(retry-after and polling: polls [\d.]+ s, retries [\d.]+ s\), summed over devices\n/)
    expect(text).toMatch(/ {2}throttled {5}\d+ × 429: registrations per ID scope \(429001\) \(\d+\)\n/)
    expect(text).toMatch(/ {2}rate limits {3}2 registrations per minute per ID scope, 5 status polls per 10 s per device\n/)
  })
})
