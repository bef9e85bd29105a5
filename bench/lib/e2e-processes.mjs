// The processes of the e2e bench: `provisio serve` instances (the built CLI, as users run it),
// bare-TLS baseline servers (bare-server.mjs), and the device fleet (load-client.mjs), each its
// own Node process. Everything started here is killed when the bench process exits.
import { fork, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildSasToken } from '@provisio/protocol'

const here = dirname(fileURLToPath(import.meta.url))
const CLI = join(here, '..', '..', 'packages', 'server', 'dist', 'cli.js')
const children = new Set()
const dirs = new Set()
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/**
 * Extra node flags for profiling: PROVISIO_BENCH_NODE_FLAGS for the measured servers,
 * PROVISIO_BENCH_CLIENT_FLAGS for the load client, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 * (the profile is written when the process exits normally: servers get SIGTERM at the end).
 */
const flags = (name) => (process.env[name] ?? '').split(/\s+/).filter(Boolean)
const serverFlags = flags('PROVISIO_BENCH_NODE_FLAGS')

function track(child, name) {
  children.add(child)
  const output = []
  const keep = (c) => {
    output.push(...String(c).split('\n').filter(Boolean))
    if (output.length > 100) output.splice(0, output.length - 100)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  child.on('exit', () => children.delete(child))
  child.describe = () => `${name} (exit ${child.exitCode}):\n${output.join('\n')}`
  return child
}

export function tempDir(label) {
  const dir = mkdtempSync(join(tmpdir(), `provisio-bench-${label}-`))
  dirs.add(dir)
  return dir
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Starts one `provisio serve` on `dataDir` with the bench settings: ephemeral ports, assignments
 * answered at once (200 assigned within --assignment-budget-ms), the DPS register rate limit off,
 * errors-only logging. Resolves with its endpoints, CA, and server certificate/key paths.
 */
export async function startProvisio(dataDir, extraArgs = []) {
  rmSync(join(dataDir, 'endpoints.json'), { force: true })
  const args = ['serve', '--data-dir', dataDir, '--https-port', '0', '--mqtt-port', '0', '--amqp-port', '0', '--log-level', 'error', '--assignment-budget-ms', '5000', '--registrations-per-minute', '0', '--retry-after', '1', ...extraArgs]
  const child = track(spawn(process.execPath, [...serverFlags, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }), `provisio serve ${dataDir}`)
  const file = join(dataDir, 'endpoints.json')
  const deadline = Date.now() + 60_000
  while (!existsSync(file)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`did not start: ${child.describe()}`)
    await sleep(25)
  }
  await sleep(20)
  const endpoints = JSON.parse(readFileSync(file, 'utf8'))
  return {
    child,
    endpoints,
    ca: readFileSync(endpoints.caCertificate, 'utf8'),
    certFile: join(dataDir, 'server.pem'),
    keyFile: join(dataDir, 'server-key.pem'),
    /** SIGTERM (a graceful stop writes the CPU profile when profiling), then wait. */
    async stop() {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/**
 * Starts a bare-TLS baseline process on the given certificate (`workers` > 1: that many cluster
 * workers on the same ports; `script`: which baseline, bare-server.mjs for registrations,
 * bare-hub.mjs for the hub's cloud operations); resolves with its ports.
 */
export async function startBare(certFile, keyFile, { workers = 1, script = 'bare-server.mjs' } = {}) {
  const args = [join(here, script), certFile, keyFile, ...(workers > 1 ? ['--workers', String(workers)] : [])]
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }), script)
  const ports = await new Promise((resolve, reject) => {
    let text = ''
    child.stdout.on('data', (c) => {
      text += c
      if (text.includes('\n')) resolve(JSON.parse(text.split('\n')[0]))
    })
    child.on('exit', () => reject(new Error(`bare server exited: ${child.describe()}`)))
  })
  return { child, ports }
}

/** Forks the device fleet; `ask(message)` resolves with its answer. */
export function startLoadClient() {
  const child = track(fork(join(here, 'load-client.mjs'), [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: flags('PROVISIO_BENCH_CLIENT_FLAGS') }), 'load client')
  const waiting = new Map()
  let id = 0
  child.on('message', (m) => {
    const w = waiting.get(m.id)
    waiting.delete(m.id)
    if (m.ok) w?.resolve(m)
    else w?.reject(new Error(`load client: ${m.error}`))
  })
  child.on('exit', () => {
    for (const w of waiting.values()) w.reject(new Error(`load client exited: ${child.describe()}`))
    waiting.clear()
  })
  return {
    child,
    /** Ends the client normally (so a --cpu-prof profile gets written). */
    stop() {
      child.disconnect()
      return new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))
    },
    ask(message) {
      return new Promise((resolve, reject) => {
        const m = { ...message, id: ++id }
        waiting.set(m.id, { resolve, reject })
        child.send(m)
      })
    },
  }
}

/** PUT an enrollment group through the service API (§7) of a started instance. */
export async function putEnrollmentGroup(instance, group) {
  const cs = Object.fromEntries(instance.endpoints.serviceConnectionString.split(';').map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]))
  const token = buildSasToken({ resource: cs.HostName, key: cs.SharedAccessKey, keyName: cs.SharedAccessKeyName, expiresAt: Math.floor(Date.now() / 1000) + 3600 })
  const body = JSON.stringify(group)
  const answer = await new Promise((resolve, reject) => {
    const req = request(
      {
        host: 'localhost',
        port: instance.endpoints.ports.https,
        ca: instance.ca,
        method: 'PUT',
        path: `/enrollmentGroups/${encodeURIComponent(group.enrollmentGroupId)}?api-version=2021-10-01`,
        agent: false,
        headers: { authorization: token, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = ''
        res.on('data', (c) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode, text }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
  if (answer.status !== 200) throw new Error(`enrollment group ${group.enrollmentGroupId}: ${answer.status} ${answer.text}`)
}
