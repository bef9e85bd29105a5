/**
 * `provisio serve --workers n`: one server on every core, with node:cluster.
 *
 * The primary does the one-time set-up (data directory, DPS instance, dev PKI, the store opened
 * once to migrate it), then forks n workers. Each worker runs the whole server — HTTPS, MQTT and
 * AMQP listeners on the same ports (cluster shares the listening sockets; with port 0 every
 * worker is handed the same ephemeral port, listener by listener in the order they listen) — on
 * the shared store, exactly as several instances share PostgreSQL: operations, leases,
 * registration records, hub identities and TPM challenges live in the database.
 *
 * The primary writes `endpoints.json` and prints the banner once every worker listens, restarts
 * a worker that dies (with a log line and an exponential back-off, so a crash loop does not
 * spin), drains every worker on SIGINT/SIGTERM and exits 0, and exits 1 when the workers cannot
 * start. It also carries what must cross processes over IPC: GET /metrics (any worker answers
 * with every worker's series, labelled `worker`), and the embedded hubs' desired-property changes
 * and revoked identities (pushed to a device whichever worker holds its connection).
 *
 * The workers accept connections from the shared listening socket themselves (cluster.SCHED_NONE),
 * rather than Node's default on Linux, round-robin (the primary accepts every connection and
 * passes it to a worker over IPC). Measured on 2 cores with short TLS connections (one device
 * registration each): round-robin cost the primary 0.17-0.27 ms of CPU per connection and gave
 * 5-13 % fewer registrations per second; the workers took equal shares either way (README
 * "Several workers"). NODE_CLUSTER_SCHED_POLICY=rr picks round-robin.
 */
import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import type { ServeConfig } from './config.js'
import { createLogger, type Logger } from './logger.js'
import { renderMetrics, type MetricFamily } from './metrics.js'
import { endpointsFor, prepareServe, startServer, writeEndpoints, type Endpoints, type RunningServer } from './serve.js'

/** Marks a process forked as a worker of `provisio serve` (its settings arrive over IPC). */
const WORKER_ENV = 'PROVISIO_SERVE_WORKER'

/** Consecutive failed starts of one worker slot after which the primary gives up. */
export const MAX_FAILED_STARTS = 5
/** Restart delay after the first crash in a minute; doubled for each further one, up to 30 s. */
const RESTART_DELAY_MS = 250
const MAX_RESTART_DELAY_MS = 30_000
/** Workers still running this long after the shutdown request are killed. */
const STOP_TIMEOUT_MS = 30_000
/** How long a /metrics scrape waits for the other workers' series. */
const GATHER_TIMEOUT_MS = 2000

interface WorkerSpec {
  readonly slot: number
  readonly config: ServeConfig
  /** TLS session-ticket keys, base64: a session made with one worker resumes on any. */
  readonly ticketKeys: string
}

type ToPrimary =
  | { readonly t: 'hello' }
  | { readonly t: 'listening'; readonly ports: Endpoints['ports'] }
  | { readonly t: 'failed'; readonly message: string }
  | { readonly t: 'metrics?'; readonly id: number }
  | { readonly t: 'families'; readonly id: number; readonly families: MetricFamily[] }
  | { readonly t: 'relay'; readonly message: string }

type ToWorker =
  | { readonly t: 'start'; readonly spec: WorkerSpec }
  | { readonly t: 'metrics'; readonly id: number; readonly text: string }
  | { readonly t: 'families?'; readonly id: number }
  | { readonly t: 'relay'; readonly message: string }
  | { readonly t: 'shutdown'; readonly signal: string }

/** Whether this process is a worker forked by {@link runPrimary}. */
export function isServeWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] === '1'
}

interface Slot {
  readonly slot: number
  worker: Worker | undefined
  listening: boolean
  /** Why the current worker could not start, as it reported. */
  failure: string | undefined
  /** Exits in the last minute (for the back-off). */
  crashes: number[]
  /** Starts in a row that ended before listening. */
  failedStarts: number
  restart: ReturnType<typeof setTimeout> | undefined
}

/**
 * The primary: set-up, fork, supervise. Resolves with the process exit code once every worker
 * is gone (0 after a clean drain). `ready` is called once, when all workers listen.
 */
export async function runPrimary(config: ServeConfig, log: Logger, ready: (endpoints: Endpoints) => void): Promise<number> {
  const setup = await prepareServe(config, log)
  const ticketKeys = randomBytes(48).toString('base64')
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE
  cluster.setupPrimary({ args: ['serve'] })
  const policy = cluster.schedulingPolicy === cluster.SCHED_RR ? 'round-robin' : 'workers accept'

  return new Promise<number>((resolveExit) => {
    const slots: Slot[] = Array.from({ length: config.workers }, (_, i) => ({
      slot: i + 1,
      worker: undefined,
      listening: false,
      failure: undefined,
      crashes: [],
      failedStarts: 0,
      restart: undefined,
    }))
    let ports: Endpoints['ports'] | undefined
    let started = false
    let stopping = false
    let exitCode = 0
    let stopTimer: ReturnType<typeof setTimeout> | undefined
    const gathers = new Map<number, { want: Set<number>; got: Map<number, MetricFamily[]>; finish: () => void }>()
    let gatherId = 0

    const send = (worker: Worker | undefined, message: ToWorker) => {
      if (worker !== undefined && worker.isConnected()) worker.send(message, () => {})
    }
    const alive = () => slots.filter((s) => s.worker !== undefined)

    function fork(s: Slot): void {
      const worker = cluster.fork({ [WORKER_ENV]: '1' })
      s.worker = worker
      s.listening = false
      s.failure = undefined
      worker.on('message', (m: ToPrimary) => onMessage(s, worker, m))
      worker.on('exit', (code, signal) => onExit(s, worker, code, signal))
    }

    function onMessage(s: Slot, worker: Worker, m: ToPrimary): void {
      if (s.worker !== worker) return
      switch (m.t) {
        case 'hello':
          // The worker listens for messages now (one sent earlier, while its modules load, is lost,
          // such as a shutdown request: it is repeated here).
          send(worker, stopping ? { t: 'shutdown', signal: 'stopping' } : { t: 'start', spec: { slot: s.slot, config, ticketKeys } })
          return
        case 'listening':
          onListening(s, worker, m.ports)
          return
        case 'failed':
          s.failure = m.message
          return
        case 'metrics?':
          gather(worker, m.id)
          return
        case 'families': {
          const g = gathers.get(m.id)
          if (g === undefined) return
          g.got.set(s.slot, m.families)
          g.want.delete(s.slot)
          if (g.want.size === 0) g.finish()
          return
        }
        case 'relay':
          for (const other of slots) if (other !== s && other.listening) send(other.worker, { t: 'relay', message: m.message })
          return
      }
    }

    function onListening(s: Slot, worker: Worker, workerPorts: Endpoints['ports']): void {
      s.listening = true
      s.failedStarts = 0
      const same = ports !== undefined && ports.https === workerPorts.https && ports.mqtt === workerPorts.mqtt && ports.amqp === workerPorts.amqp
      if (!started) {
        if (ports !== undefined && !same) {
          fail(`workers listen on different ports (${JSON.stringify(ports)} and ${JSON.stringify(workerPorts)})`)
          return
        }
        ports = workerPorts
        if (slots.every((x) => x.listening)) {
          started = true
          const endpoints = endpointsFor(config, setup, ports)
          writeEndpoints(config, endpoints)
          log.info('workers listening', { workers: slots.length, pids: slots.map((x) => x.worker?.process.pid).join(','), scheduling: policy, ports: JSON.stringify(ports) })
          ready(endpoints)
        }
        return
      }
      log.info('worker restarted', { worker: s.slot, pid: worker.process.pid })
      if (!same) {
        // Every worker had died at once: the sockets of ephemeral ports were closed with them.
        ports = workerPorts
        writeEndpoints(config, endpointsFor(config, setup, ports))
        log.warn('the listening ports changed (every worker had stopped); endpoints.json rewritten', { ports: JSON.stringify(ports) })
      }
    }

    function onExit(s: Slot, worker: Worker, code: number | null, signal: string | null): void {
      if (s.worker !== worker) return
      const wasListening = s.listening
      s.worker = undefined
      s.listening = false
      for (const g of gathers.values()) {
        g.want.delete(s.slot)
        if (g.want.size === 0) g.finish()
      }
      const how = signal !== null ? `signal ${signal}` : `exit code ${code}`
      if (stopping) {
        if (code !== 0) {
          exitCode = 1
          log.error('worker did not stop cleanly', { worker: s.slot, pid: worker.process.pid, how })
        }
        if (alive().length === 0) finished()
        return
      }
      if (!started) {
        fail(`worker ${s.slot} could not start: ${s.failure ?? how}`)
        return
      }
      if (!wasListening) s.failedStarts++
      if (s.failedStarts >= MAX_FAILED_STARTS) {
        fail(`worker ${s.slot} could not start ${s.failedStarts} times in a row: ${s.failure ?? how}`)
        return
      }
      const now = Date.now()
      s.crashes = s.crashes.filter((t) => now - t < 60_000)
      s.crashes.push(now)
      const delay = Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** (s.crashes.length - 1))
      log.error(wasListening ? 'worker exited unexpectedly; restarting it' : 'worker could not start; trying again', {
        worker: s.slot,
        pid: worker.process.pid,
        how,
        ...(s.failure === undefined ? {} : { reason: s.failure }),
        restartInMs: delay,
      })
      s.restart = setTimeout(() => {
        s.restart = undefined
        if (!stopping) fork(s)
      }, delay)
    }

    /** Any worker's /metrics: every live worker's families, rendered with a `worker` label. */
    function gather(asker: Worker, askerId: number): void {
      const id = ++gatherId
      const got = new Map<number, MetricFamily[]>()
      const want = new Set(slots.filter((s) => s.listening).map((s) => s.slot))
      const finish = () => {
        clearTimeout(timer)
        if (!gathers.delete(id)) return
        const sources = [...got].sort((a, b) => a[0] - b[0]).map(([slot, families]) => ({ worker: String(slot), families }))
        void renderMetrics(sources).then((text) => send(asker, { t: 'metrics', id: askerId, text }))
      }
      const timer = setTimeout(finish, GATHER_TIMEOUT_MS)
      gathers.set(id, { want, got, finish })
      if (want.size === 0) finish()
      for (const s of slots) if (want.has(s.slot)) send(s.worker, { t: 'families?', id })
    }

    function fail(reason: string): void {
      log.error('workers cannot start; stopping', { reason })
      process.stderr.write(`provisio: ${reason}\n`)
      exitCode = 1
      stop('startup failure')
    }

    function stop(why: string): void {
      if (stopping) return
      stopping = true
      for (const s of slots) {
        if (s.restart !== undefined) clearTimeout(s.restart)
        s.restart = undefined
        send(s.worker, { t: 'shutdown', signal: why })
      }
      if (alive().length === 0) {
        finished()
        return
      }
      stopTimer = setTimeout(() => {
        for (const s of alive()) {
          log.error('worker still running after the shutdown timeout; killing it', { worker: s.slot, pid: s.worker?.process.pid, timeoutMs: STOP_TIMEOUT_MS })
          s.worker?.process.kill('SIGKILL')
        }
        exitCode = 1
      }, STOP_TIMEOUT_MS)
    }

    function finished(): void {
      if (stopTimer !== undefined) clearTimeout(stopTimer)
      log.info('stopped', { workers: slots.length, exitCode })
      resolveExit(exitCode)
    }

    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        log.info('stopping', { signal, workers: alive().length })
        stop(signal)
      })
    }
    for (const s of slots) fork(s)
  })
}

/**
 * A worker: waits for its settings from the primary, runs the whole server, reports the ports,
 * answers the primary's questions, and drains on the primary's request (or its own SIGINT /
 * SIGTERM, which a terminal sends the whole process group). Resolves with the exit code.
 */
export async function runWorker(): Promise<number> {
  const send = (message: ToPrimary) =>
    new Promise<void>((resolve) => {
      if (!process.connected || process.send === undefined) return resolve()
      process.send(message, () => resolve())
    })
  let log: Logger = createLogger('info')
  let slot = 0
  let server: RunningServer | undefined
  let stopRequested = false
  let resolveStopped!: () => void
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve))
  const relayListeners = new Set<(message: string) => void>()
  const asks = new Map<number, (text: string) => void>()
  let askId = 0

  let resolveSpec!: (spec: WorkerSpec | undefined) => void
  const specArrived = new Promise<WorkerSpec | undefined>((resolve) => (resolveSpec = resolve))
  let started = false
  const stop = (why: string) => {
    if (stopRequested) return
    stopRequested = true
    log.info('stopping', { signal: why })
    if (server !== undefined) server.close().then(resolveStopped, resolveStopped)
    // Asked to stop before it had its settings: nothing to drain.
    else if (!started) resolveSpec(undefined)
  }
  process.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'start':
        resolveSpec(m.spec)
        return
      case 'families?':
        void (server?.metrics.families() ?? Promise.resolve([])).then((families) => send({ t: 'families', id: m.id, families }))
        return
      case 'metrics':
        asks.get(m.id)?.(m.text)
        asks.delete(m.id)
        return
      case 'relay':
        for (const listener of relayListeners) listener(m.message)
        return
      case 'shutdown':
        stop(m.signal)
        return
    }
  })
  // A terminal's Ctrl-C reaches the whole process group: the workers drain as the primary asks.
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
  void send({ t: 'hello' })
  const spec = await specArrived
  if (spec === undefined) return 0
  started = true
  slot = spec.slot
  log = createLogger(spec.config.logLevel, undefined, { worker: slot })

  /** /metrics: the primary gathers every worker's series; alone (primary gone), this worker's. */
  const metricsText = () =>
    new Promise<string>((resolve) => {
      const id = ++askId
      const local = async () => renderMetrics([{ worker: String(slot), families: (await server?.metrics.families()) ?? [] }])
      const timer = setTimeout(() => {
        asks.delete(id)
        resolve(local())
      }, GATHER_TIMEOUT_MS * 2)
      asks.set(id, (text) => {
        clearTimeout(timer)
        resolve(text)
      })
      if (!process.connected) {
        clearTimeout(timer)
        asks.delete(id)
        resolve(local())
        return
      }
      void send({ t: 'metrics?', id })
    })

  try {
    server = await startServer(spec.config, log, {
      writeEndpoints: false,
      ticketKeys: Buffer.from(spec.ticketKeys, 'base64'),
      metricsText,
      hubRelay: {
        publish: (message) => void send({ t: 'relay', message }),
        subscribe: (listener) => {
          relayListeners.add(listener)
          return () => void relayListeners.delete(listener)
        },
      },
    })
  } catch (error) {
    log.error('worker could not start', { error })
    await send({ t: 'failed', message: (error as Error).message })
    return 1
  }
  await send({ t: 'listening', ports: server.endpoints.ports })
  if (stopRequested) server.close().then(resolveStopped, resolveStopped)
  await stopped
  return 0
}
