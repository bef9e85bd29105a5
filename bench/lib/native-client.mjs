// The native device fleet (bench/native/dps-load.c): symmetric-key devices over HTTPS and MQTT,
// registered exactly as the Node load client (load-client.mjs) does, for a fraction of its CPU.
// Built with the system C compiler and OpenSSL 3 on first use, into a cache directory outside the
// repository keyed by a hash of the source and the flags; then spawned and driven over
// stdin/stdout (the line protocol is described at the top of dps-load.c).
//
//   const client = startNativeClient()
//   const { samples, resumed, cpuMs } = await client.ask({ cmd: 'batch', transport: 'mqtt', targets: [{ port, ca }],
//     idScope, prefix, count, concurrency, credential: 'sas', groupKey, resume: true })
//   client.child.pid; client.cpuMs(); await client.stop()
//
// `ask` takes the Node load client's batch message (startLoadClient in e2e-processes.mjs); only
// symmetric-key devices (credential 'sas') over 'https' and 'mqtt' exist here, and a target's CA
// may be given as PEM text (`ca`, written to a temporary file) or as a file (`caFile`).
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'dps-load.c')
const CFLAGS = ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror']
const LIBS = ['-lssl', '-lcrypto']
const PACKAGES = 'Debian/Ubuntu: apt-get install build-essential libssl-dev (or the minimal gcc libc6-dev libssl-dev)'

const children = new Set()
const dirs = new Set()
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/**
 * Compiles dps-load.c unless this exact source was built before with these flags; returns the
 * binary's path. The compiler is $CC or `cc`. Throws a clear error when the compiler or the
 * OpenSSL headers and libraries are missing.
 */
export function buildNativeClient() {
  const cc = process.env.CC || 'cc'
  const source = readFileSync(SOURCE)
  const hash = createHash('sha256').update(source).update(JSON.stringify([cc, CFLAGS, LIBS])).digest('hex').slice(0, 16)
  const dir = join(tmpdir(), `provisio-bench-native-${hash}`)
  const binary = join(dir, 'dps-load')
  if (existsSync(binary)) return binary
  const probe = spawnSync(cc, ['--version'], { encoding: 'utf8' })
  if (probe.error) throw new Error(`native load client: no C compiler (${cc}: ${probe.error.code ?? probe.error.message}); ${PACKAGES}`)
  mkdirSync(dir, { recursive: true })
  // Built under a name of its own, then renamed: a concurrent build never sees half a binary.
  const partial = `${binary}.${process.pid}.tmp`
  const run = spawnSync(cc, [...CFLAGS, '-o', partial, SOURCE, ...LIBS], { encoding: 'utf8' })
  if (run.error || run.status !== 0) {
    rmSync(partial, { force: true })
    const out = `${run.stderr ?? ''}${run.stdout ?? ''}`.trim() || String(run.error)
    if (/openssl\/[a-z0-9_]+\.h/i.test(out) && /No such file/i.test(out)) throw new Error(`native load client: the OpenSSL 3 headers are missing (openssl/ssl.h); ${PACKAGES}\n${out}`)
    if (/cannot find -l(ssl|crypto)/.test(out)) throw new Error(`native load client: the OpenSSL libraries are missing (-lssl/-lcrypto); ${PACKAGES}\n${out}`)
    if (/needs OpenSSL 3/.test(out)) throw new Error(`native load client: OpenSSL 3 is needed, older headers found; ${PACKAGES}\n${out}`)
    throw new Error(`native load client: ${cc} ${[...CFLAGS, '-o', partial, SOURCE, ...LIBS].join(' ')} failed:\n${out}`)
  }
  renameSync(partial, binary)
  return binary
}

/** A field of the command line: no TAB, no line break (they delimit the protocol). */
function field(name, value) {
  const text = String(value)
  if (/[\t\r\n]/.test(text)) throw new Error(`native load client: ${name} must not contain tabs or line breaks`)
  return `${name}=${text}`
}

function integer(name, value, min, max) {
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`native load client: ${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`)
  return value
}

/**
 * Spawns the (built) native client. `ask(batch)` resolves with `{ samples, resumed, cpuMs }`:
 * ms per device (connect start to close), how many of the batch's handshakes resumed a TLS
 * session, and the client's user + system CPU ms so far; it rejects with the client's error.
 */
export function startNativeClient() {
  const binary = buildNativeClient()
  const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'pipe'] })
  children.add(child)
  const caDir = mkdtempSync(join(tmpdir(), 'provisio-bench-native-ca-'))
  dirs.add(caDir)
  const caFiles = new Map() // PEM → file
  const waiting = [] // answers come in command order
  let stderr = ''
  let pending = ''
  let lastCpuMs
  let exited = false
  const describe = () => `native load client (exit ${child.exitCode ?? child.signalCode}): ${stderr.trim() || 'no output'}`

  child.stderr.on('data', (c) => {
    stderr = (stderr + c).slice(-4000)
  })
  child.stdout.on('data', (c) => {
    pending += c
    let nl
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl)
      pending = pending.slice(nl + 1)
      const w = waiting.shift()
      let answer
      try {
        answer = JSON.parse(line)
      } catch {
        w?.reject(new Error(`native load client: unreadable answer ${line.slice(0, 200)}`))
        continue
      }
      lastCpuMs = answer.cpuMs
      if (answer.ok) w?.resolve({ samples: answer.samples, resumed: answer.resumed, cpuMs: answer.cpuMs })
      else w?.reject(new Error(`native load client: ${answer.error}`))
    }
  })
  child.stdin.on('error', () => {}) // a dead child shows up as 'exit'
  child.on('error', (e) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`native load client: ${e.message}`))
  })
  child.on('exit', () => {
    exited = true
    children.delete(child)
    for (const w of waiting.splice(0)) w.reject(new Error(`native load client exited: ${describe()}`))
  })

  function caFile(target, k) {
    if (typeof target.caFile === 'string') return target.caFile
    if (typeof target.ca !== 'string' || !target.ca.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`native load client: targets[${k}] needs ca (PEM text) or caFile`)
    let file = caFiles.get(target.ca)
    if (file === undefined) {
      file = join(caDir, `ca-${caFiles.size}.pem`)
      writeFileSync(file, target.ca)
      caFiles.set(target.ca, file)
    }
    return file
  }

  function commandLine(m) {
    if (m.cmd !== 'batch') throw new Error(`native load client: unknown command ${JSON.stringify(m.cmd)} (only batch)`)
    if (m.credential !== undefined && m.credential !== 'sas') throw new Error(`native load client: only symmetric-key devices (credential 'sas'), not ${JSON.stringify(m.credential)}`)
    if (m.transport !== 'https' && m.transport !== 'mqtt') throw new Error(`native load client: transport must be 'https' or 'mqtt', not ${JSON.stringify(m.transport)}`)
    if (!Array.isArray(m.targets) || m.targets.length === 0) throw new Error('native load client: targets must be a non-empty array of { port, ca | caFile }')
    if (typeof m.resume !== 'boolean') throw new Error('native load client: resume must be true or false')
    const fields = [
      'batch',
      field('transport', m.transport),
      ...m.targets.map((t, k) => field('target', `${integer(`targets[${k}].port`, t.port, 1, 65535)}:${caFile(t, k)}`)),
      field('idScope', m.idScope),
      field('prefix', m.prefix),
      field('count', integer('count', m.count, 1, 10_000_000)),
      field('concurrency', integer('concurrency', m.concurrency, 1, 4096)),
      field('groupKey', m.groupKey),
      field('resume', m.resume ? 1 : 0),
      ...(m.timeoutMs === undefined ? [] : [field('timeoutMs', integer('timeoutMs', m.timeoutMs, 1, 3_600_000))]),
    ]
    return fields.join('\t') + '\n'
  }

  return {
    child,
    /** user + system CPU ms of the client, as it reported with its last answer (undefined before). */
    cpuMs: () => lastCpuMs,
    /** Ends the client (end of its input), waits for it, removes its CA files. */
    async stop() {
      if (!exited) {
        const done = new Promise((resolve) => child.once('exit', resolve))
        child.stdin.end()
        await done
      }
      rmSync(caDir, { recursive: true, force: true })
      dirs.delete(caDir)
    },
    ask(message) {
      return new Promise((resolve, reject) => {
        if (exited) return reject(new Error(`native load client exited: ${describe()}`))
        const line = commandLine(message)
        waiting.push({ resolve, reject })
        child.stdin.write(line)
      })
    },
    /** The last lines the client wrote to stderr, and its exit status. */
    describe,
  }
}
