/**
 * Prometheus metrics of the server (text exposition format 0.0.4), served at GET /metrics, kept
 * in a prom-client registry per server:
 *
 * - `provisio_registration_attempts_total{transport,attestation}` — register calls;
 * - `provisio_registration_duration_seconds{transport,attestation}` — histogram of how long a
 *   registration took as the device saw it: from the register call that was accepted (202, or 200
 *   when final at once) to the answer that reported it final (assigned, failed or disabled),
 *   polling included. A poll answered by another worker or instance than the register is not seen;
 * - `provisio_device_responses_total{transport,operation,status}` — device API answers by status
 *   (202 assigning, 200 assigned, 401 refused, 429 throttled …); operation `authenticate` is the
 *   credential check of an MQTT CONNECT or AMQP SASL exchange;
 * - `provisio_registrations_total{status}` — assignments that finished: assigned or failed;
 * - `provisio_attestation_attempts_total{kind,result}` — attestation outcomes of register calls
 *   (success, failure, challenge for the first TPM leg);
 * - `provisio_open_connections{listener}` — connections open now: TCP connections accepted by the
 *   `https`, `mqtts` and `amqps` listeners (counted from the TCP accept, before TLS), and the
 *   WebSocket sessions `mqtt-ws` and `amqp-ws` (also counted under `https`, whose upgraded sockets they are);
 * - the embedded hubs: `provisio_hub_connected_devices{transport}` (device sessions open now),
 *   `provisio_hub_connections_total{transport,result}`, `provisio_hub_telemetry_messages_total{transport}`,
 *   `provisio_hub_twin_requests_total{transport,operation,status}` (twin reads and reported-property updates),
 *   `provisio_hub_https_requests_total{operation,result}` (the HTTPS device API: `accepted` or the refusal's code),
 *   `provisio_hub_desired_pushes_total{result}` (desired-property updates for a connected device:
 *   `sent`, or `not_sent` when its session had not subscribed to them or was closing);
 * - `provisio_process_heap_used_bytes`, `provisio_process_resident_memory_bytes` — memory of the process;
 *   `provisio_process_start_time_seconds` — when it started (a restarted worker shows a new one);
 *   beside them prom-client's default Node.js process metrics under their usual names
 *   (`process_cpu_seconds_total`, `nodejs_eventloop_lag_seconds`, `nodejs_heap_size_used_bytes` …);
 * - with the SQLite store: `provisio_sqlite_commits_total` (group commits),
 *   `provisio_sqlite_lock_waits_total` and `provisio_sqlite_lock_wait_seconds_total` (times writes
 *   queued for another process's write lock, and how long they waited: `--workers` contention).
 *
 * With `--workers n` every series carries a `worker` label (1 … n): any worker answers a scrape
 * with the series of all of them, gathered by the primary over IPC as prom-client's JSON and
 * rendered by {@link renderMetrics}. prom-client's AggregatorRegistry sums the workers' series
 * into one; here each worker keeps its own (the label), which the scale tests and dashboards read.
 */
import { performance } from 'node:perf_hooks'
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client'
import { isProvisioError } from '@provisio/protocol'
import type { DeviceApi, Evidence, RegistrationOperationStatus } from '@provisio/protocol'

/** One metric family as plain data (prom-client's JSON form): what crosses processes (`--workers`). */
export type MetricFamily = MetricObjectWithValues<MetricValue<string>>

/** A counter or gauge addressed by its label values in `labelNames` order. */
class Labelled {
  constructor(
    readonly metric: Counter<string> | Gauge<string>,
    readonly labelNames: readonly string[],
  ) {}

  /** Adds `by` (a gauge may go down; 0 makes the series exist). */
  inc(labels: readonly string[], by = 1): void {
    this.metric.labels(...labels).inc(by)
  }

  /** The series' value now (0 when it does not exist). */
  async get(labels: readonly string[]): Promise<number> {
    const { values } = await this.metric.get()
    return values.find((v) => this.labelNames.every((name, i) => v.labels[name] === labels[i]))?.value ?? 0
  }
}

/**
 * Renders families in the text exposition format. With several sources (workers), each sample
 * gets the source's `worker` label and a family's samples stay together, sorted by their labels,
 * then by worker (a histogram's buckets keep their order).
 */
export async function renderMetrics(sources: readonly { readonly worker?: string; readonly families: readonly MetricFamily[] }[]): Promise<string> {
  const merged = new Map<string, { family: MetricFamily; values: { sort: string; value: MetricValue<string> }[] }>()
  for (const source of sources) {
    for (const family of source.families) {
      let entry = merged.get(family.name)
      if (entry === undefined) {
        entry = { family, values: [] }
        merged.set(family.name, entry)
      }
      for (const value of family.values) {
        const { le: _bucket, ...series } = value.labels as Record<string, string | number>
        const sort = JSON.stringify(Object.values(series)) + '\u0000' + (source.worker ?? '').padStart(8, '0')
        entry.values.push({ sort, value: source.worker === undefined ? value : { ...value, labels: { ...value.labels, worker: source.worker } } })
      }
    }
  }
  // Summing over series that differ by their worker label leaves each as it is: the registry
  // built here only renders.
  const families = [...merged.values()].map(({ family, values }) => ({
    ...family,
    aggregator: 'sum' as const,
    values: values.sort((a, b) => (a.sort < b.sort ? -1 : a.sort > b.sort ? 1 : 0)).map((v) => v.value),
  }))
  return AggregatorRegistry.aggregate([families]).metrics()
}

/** Something whose end is announced by a 'close' event (a socket, a WebSocket). */
interface Closable {
  once(event: 'close', listener: () => void): unknown
}

/** Buckets of the registration latency, seconds: polling makes most registrations take 1-3 s. */
const REGISTRATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120]
/** Registrations still waiting for their final answer that are remembered (oldest forgotten first). */
const MAX_PENDING_REGISTRATIONS = 100_000
/** A registration not final after this long is forgotten (the device gave up or polls elsewhere). */
const PENDING_REGISTRATION_TTL_MS = 10 * 60_000
const FINAL_STATUSES: ReadonlySet<RegistrationOperationStatus['status']> = new Set(['assigned', 'failed', 'disabled'])

const KIND: Record<Evidence['type'], string> = { sas: 'symmetricKey', x509: 'x509', tpm: 'tpm' }

export class Metrics {
  /** The registry this server's metrics live in (one per server: tests run several in a process). */
  readonly registry = new Registry()

  readonly attempts = this.#counter('provisio_registration_attempts_total', 'Device register calls.', ['transport', 'attestation'])
  readonly responses = this.#counter('provisio_device_responses_total', 'Device API answers by status.', ['transport', 'operation', 'status'])
  readonly registrations = this.#counter('provisio_registrations_total', 'Assignments that finished, by outcome.', ['status'])
  readonly attestation = this.#counter('provisio_attestation_attempts_total', 'Attestation outcomes of register calls.', ['kind', 'result'])
  readonly hubConnections = this.#counter('provisio_hub_connections_total', 'Device CONNECTs at the embedded hubs, by outcome (accepted, or the CONNACK code).', ['transport', 'result'])
  readonly hubTelemetry = this.#counter('provisio_hub_telemetry_messages_total', 'Device-to-cloud messages the embedded hubs stored.', ['transport'])
  readonly hubTelemetryDropped = this.#counter('provisio_hub_telemetry_dropped_total', 'Stored device-to-cloud messages removed by retention or the size bound, by hub and reason.', ['hub', 'reason'])
  readonly hubHttps = this.#counter('provisio_hub_https_requests_total', 'Device requests at the embedded hubs\' HTTPS device API, by operation and result (accepted, or the refusal\'s code).', ['operation', 'result'])
  readonly hubTwin = this.#counter('provisio_hub_twin_requests_total', 'Device twin requests at the embedded hubs, by operation and status.', ['transport', 'operation', 'status'])
  readonly hubMethods = this.#counter(
    'provisio_hub_method_calls_total',
    'Direct method calls by hub and outcome: invoked, answered, not_online, timed_out, disconnected, cancelled, stopped (calls of callers on this process).',
    ['hub', 'outcome'],
  )
  readonly hubC2d = this.#counter(
    'provisio_hub_c2d_messages_total',
    'Cloud-to-device messages by hub and event: sent, delivered, completed, abandoned, rejected, purged, refused (expired ones show as feedback records).',
    ['hub', 'event'],
  )
  readonly hubC2dFeedback = this.#counter('provisio_hub_c2d_feedback_records_total', 'Cloud-to-device feedback records handed to the service, by hub.', ['hub'])
  readonly hubDesiredPushes = this.#counter('provisio_hub_desired_pushes_total', 'Desired-property changes pushed to devices connected to the embedded hubs, by result.', ['result'])
  readonly hubConnected = this.#gauge('provisio_hub_connected_devices', 'Devices connected to the embedded hubs now.', ['transport'])
  readonly connections = this.#gauge('provisio_open_connections', 'Connections open now, by listener (TCP accepts before TLS; WebSocket sessions by transport).', ['listener'])
  readonly registrationSeconds = new Histogram({
    name: 'provisio_registration_duration_seconds',
    help: 'Time from an accepted register call to the answer that reported the registration final, polling included.',
    labelNames: ['transport', 'attestation'],
    buckets: REGISTRATION_BUCKETS,
    registers: [this.registry],
  })

  /** Accepted registrations waiting for their final answer, by operation id (insertion = start order). */
  readonly #pending = new Map<string, { readonly startedMs: number; readonly transport: string; readonly kind: string }>()

  constructor() {
    collectDefaultMetrics({ register: this.registry })
    const startedAtSeconds = Math.round(Date.now() / 1000)
    this.#sampled('provisio_process_heap_used_bytes', 'V8 heap in use.', () => process.memoryUsage().heapUsed)
    this.#sampled('provisio_process_resident_memory_bytes', 'Resident set size.', () => process.memoryUsage.rss())
    this.#sampled('provisio_process_start_time_seconds', 'Start time of the process, Unix seconds.', () => startedAtSeconds)
  }

  #counter(name: string, help: string, labelNames: readonly string[]): Labelled {
    return new Labelled(new Counter({ name, help, labelNames, registers: [this.registry] }), labelNames)
  }

  #gauge(name: string, help: string, labelNames: readonly string[]): Labelled {
    return new Labelled(new Gauge({ name, help, labelNames, registers: [this.registry] }), labelNames)
  }

  /** A metric without labels whose value is read at each scrape. */
  #sampled(name: string, help: string, read: () => number, type: 'gauge' | 'counter' = 'gauge'): void {
    if (type === 'gauge') {
      new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()) } })
    } else {
      new Counter({ name, help, registers: [this.registry], collect() { this.reset(); this.inc(read()) } })
    }
  }

  /** Counts `socket` as open on `listener` until it closes. */
  track(listener: string, socket: Closable): void {
    this.connections.inc([listener], 1)
    socket.once('close', () => this.connections.inc([listener], -1))
  }

  /** Counts a device connected to an embedded hub over `transport` until `closed` settles. */
  trackHubDevice(transport: string, closed: Promise<unknown>): void {
    this.hubConnected.inc([transport], 1)
    const gone = () => this.hubConnected.inc([transport], -1)
    closed.then(gone, gone)
  }

  /** Adds the SQLite group-commit counters (GroupCommit.stats) to every rendering. Call once. */
  watchSqlite(stats: () => { readonly commits: number; readonly lockWaits: number; readonly lockWaitMs: number }): void {
    this.#sampled('provisio_sqlite_commits_total', 'SQLite group commits (transactions) of the store.', () => stats().commits, 'counter')
    this.#sampled('provisio_sqlite_lock_waits_total', 'Times writes queued for the SQLite write lock another process held.', () => stats().lockWaits, 'counter')
    this.#sampled('provisio_sqlite_lock_wait_seconds_total', 'Time writes spent queued for that lock.', () => stats().lockWaitMs / 1000, 'counter')
  }

  /** Every family now, as plain data (what a worker sends the primary). */
  families(): Promise<MetricFamily[]> {
    return this.registry.getMetricsAsJSON() as Promise<MetricFamily[]>
  }

  /** This process's metrics in the text format. */
  render(): Promise<string> {
    return this.registry.metrics()
  }

  /** A registration accepted by a register call: its latency runs until its final answer. */
  #accepted(operationId: string, startedMs: number, transport: string, kind: string): void {
    for (const [id, p] of this.#pending) {
      if (this.#pending.size < MAX_PENDING_REGISTRATIONS && startedMs - p.startedMs < PENDING_REGISTRATION_TTL_MS) break
      this.#pending.delete(id)
    }
    this.#pending.delete(operationId)
    this.#pending.set(operationId, { startedMs, transport, kind })
  }

  /** An operation answered final: observes its registration's latency once. */
  #final(operationId: string): void {
    const p = this.#pending.get(operationId)
    if (p === undefined) return
    this.#pending.delete(operationId)
    this.registrationSeconds.labels(p.transport, p.kind).observe((performance.now() - p.startedMs) / 1000)
  }

  /** Wraps a DeviceApi so that every call through one transport is counted. */
  instrument(api: DeviceApi, transport: string): DeviceApi {
    const answered = (operation: string, status: number) => this.responses.inc([transport, operation, String(status)])
    const failed = (operation: string, error: unknown) => answered(operation, isProvisioError(error) ? error.httpStatus : 500)
    return {
      register: async (request) => {
        const kind = KIND[request.evidence.type]
        const startedMs = performance.now()
        this.attempts.inc([transport, kind])
        try {
          const result = await api.register(request)
          answered('register', result.status)
          this.attestation.inc([kind, result.status === 401 ? 'challenge' : 'success'])
          if (result.status !== 401) {
            this.#accepted(result.body.operationId, startedMs, transport, kind)
            if (FINAL_STATUSES.has(result.body.status)) this.#final(result.body.operationId)
          }
          return result
        } catch (error) {
          failed('register', error)
          if (isProvisioError(error) && error.httpStatus === 401) this.attestation.inc([kind, 'failure'])
          throw error
        }
      },
      operationStatus: async (request) => {
        try {
          const result = await api.operationStatus(request)
          answered('operationStatus', result.status)
          if (FINAL_STATUSES.has(result.body.status)) this.#final(request.operationId)
          return result
        } catch (error) {
          failed('operationStatus', error)
          throw error
        }
      },
      registrationStatus: async (request) => {
        try {
          const result = await api.registrationStatus(request)
          answered('registrationStatus', result.status)
          return result
        } catch (error) {
          failed('registrationStatus', error)
          throw error
        }
      },
      ...(api.authenticate === undefined
        ? {}
        : {
            authenticate: async (request: Parameters<NonNullable<DeviceApi['authenticate']>>[0]) => {
              try {
                await api.authenticate!(request)
                answered('authenticate', 200)
              } catch (error) {
                failed('authenticate', error)
                throw error
              }
            },
          }),
    }
  }
}
