/**
 * Prometheus metrics of the server (text exposition format 0.0.4), served at GET /metrics:
 *
 * - `provisio_registration_attempts_total{transport,attestation}` — register calls;
 * - `provisio_device_responses_total{transport,operation,status}` — device API answers by status
 *   (202 assigning, 200 assigned, 401 refused, 429 throttled …); operation `authenticate` is the
 *   credential check of an MQTT CONNECT or AMQP SASL exchange;
 * - `provisio_registrations_total{status}` — assignments that finished: assigned or failed;
 * - `provisio_attestation_attempts_total{kind,result}` — attestation outcomes of register calls
 *   (success, failure, challenge for the first TPM leg);
 * - `provisio_open_connections{listener}` — connections open now: TCP connections accepted by the
 *   `https`, `mqtts` and `amqps` listeners (counted from the TCP accept, before TLS), and the
 *   WebSocket sessions `mqtt-ws` and `amqp-ws` (also counted under `https`, whose upgraded sockets they are);
 * - `provisio_process_heap_used_bytes`, `provisio_process_resident_memory_bytes` — memory of the process;
 *   `provisio_process_start_time_seconds` — when it started (a restarted worker shows a new one);
 * - with the SQLite store: `provisio_sqlite_commits_total` (group commits),
 *   `provisio_sqlite_lock_waits_total` and `provisio_sqlite_lock_wait_seconds_total` (times writes
 *   queued for another process's write lock, and how long they waited: `--workers` contention).
 *
 * With `--workers n` every family carries a `worker` label (1 … n): any worker answers a scrape
 * with the series of all of them, gathered by the primary over IPC ({@link renderMetrics}).
 */
import { isProvisioError } from '@provisio/protocol'
import type { DeviceApi, Evidence } from '@provisio/protocol'

/** One metric family as plain data: what crosses processes (`--workers`) and what is rendered. */
export interface MetricFamily {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'gauge'
  readonly labelNames: readonly string[]
  /** Label values (in `labelNames` order) and the value. */
  readonly samples: readonly (readonly [readonly string[], number])[]
}

class Series {
  readonly #values = new Map<string, number>()
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly type: 'counter' | 'gauge',
  ) {}

  protected add(labels: readonly string[], by: number): void {
    const key = JSON.stringify(labels)
    this.#values.set(key, (this.#values.get(key) ?? 0) + by)
  }

  get(labels: readonly string[]): number {
    return this.#values.get(JSON.stringify(labels)) ?? 0
  }

  family(): MetricFamily {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      labelNames: this.labelNames,
      samples: [...this.#values].map(([key, value]) => [JSON.parse(key) as string[], value] as const),
    }
  }
}

class Counter extends Series {
  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, labelNames, 'counter')
  }

  inc(labels: readonly string[], by = 1): void {
    this.add(labels, by)
  }
}

class Gauge extends Series {
  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, labelNames, 'gauge')
  }

  override add(labels: readonly string[], by: number): void {
    super.add(labels, by)
  }
}

/**
 * Renders families in the text exposition format. With several sources (workers), each sample
 * gets the source's `worker` label and a family's samples stay together, sorted.
 */
export function renderMetrics(sources: readonly { readonly worker?: string; readonly families: readonly MetricFamily[] }[]): string {
  const order: string[] = []
  const merged = new Map<string, { family: MetricFamily; rows: { sort: string; line: string }[] }>()
  for (const source of sources) {
    for (const family of source.families) {
      let entry = merged.get(family.name)
      if (entry === undefined) {
        entry = { family, rows: [] }
        merged.set(family.name, entry)
        order.push(family.name)
      }
      for (const [values, value] of family.samples) {
        const pairs = values.map((v, i) => `${family.labelNames[i]}="${escapeLabel(v)}"`)
        if (source.worker !== undefined) pairs.push(`worker="${escapeLabel(source.worker)}"`)
        const labels = pairs.join(',')
        const sort = JSON.stringify(values) + '\u0000' + (source.worker ?? '').padStart(8, '0')
        entry.rows.push({ sort, line: `${family.name}${labels === '' ? '' : `{${labels}}`} ${value}\n` })
      }
    }
  }
  let out = ''
  for (const name of order) {
    const { family, rows } = merged.get(name)!
    out += `# HELP ${family.name} ${family.help}\n# TYPE ${family.name} ${family.type}\n`
    for (const row of rows.sort((a, b) => (a.sort < b.sort ? -1 : a.sort > b.sort ? 1 : 0))) out += row.line
  }
  return out
}

/** Something whose end is announced by a 'close' event (a socket, a WebSocket). */
interface Closable {
  once(event: 'close', listener: () => void): unknown
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

const KIND: Record<Evidence['type'], string> = { sas: 'symmetricKey', x509: 'x509', tpm: 'tpm' }

export class Metrics {
  readonly attempts = new Counter('provisio_registration_attempts_total', 'Device register calls.', ['transport', 'attestation'])
  readonly responses = new Counter('provisio_device_responses_total', 'Device API answers by status.', ['transport', 'operation', 'status'])
  readonly registrations = new Counter('provisio_registrations_total', 'Assignments that finished, by outcome.', ['status'])
  readonly attestation = new Counter('provisio_attestation_attempts_total', 'Attestation outcomes of register calls.', ['kind', 'result'])
  readonly hubConnections = new Counter('provisio_hub_connections_total', 'Device CONNECTs at the embedded hubs, by outcome (accepted, or the CONNACK code).', ['transport', 'result'])
  readonly hubTelemetry = new Counter('provisio_hub_telemetry_messages_total', 'Device-to-cloud messages the embedded hubs stored.', ['transport'])
  readonly hubTwin = new Counter('provisio_hub_twin_requests_total', 'Device twin requests at the embedded hubs, by operation and status.', ['transport', 'operation', 'status'])
  readonly hubMethods = new Counter(
    'provisio_hub_method_calls_total',
    'Direct method calls by hub and outcome: invoked, answered, not_online, timed_out, disconnected, cancelled, stopped (calls of callers on this process).',
    ['hub', 'outcome'],
  )

  readonly connections = new Gauge('provisio_open_connections', 'Connections open now, by listener (TCP accepts before TLS; WebSocket sessions by transport).', ['listener'])

  /** Counts `socket` as open on `listener` until it closes. */
  track(listener: string, socket: Closable): void {
    this.connections.add([listener], 1)
    socket.once('close', () => this.connections.add([listener], -1))
  }

  #sqlite: (() => { readonly commits: number; readonly lockWaits: number; readonly lockWaitMs: number }) | undefined
  readonly #startedAtSeconds = Math.round(Date.now() / 1000)

  /** Adds the SQLite group-commit counters (GroupCommit.stats) to every rendering. */
  watchSqlite(stats: () => { readonly commits: number; readonly lockWaits: number; readonly lockWaitMs: number }): void {
    this.#sqlite = stats
  }

  /** Every family now, as plain data (what a worker sends the primary). */
  families(): MetricFamily[] {
    const memory = process.memoryUsage()
    const gauge = (name: string, help: string, value: number): MetricFamily => ({ name, help, type: 'gauge', labelNames: [], samples: [[[], value]] })
    const counter = (name: string, help: string, value: number): MetricFamily => ({ name, help, type: 'counter', labelNames: [], samples: [[[], value]] })
    const sqlite = this.#sqlite?.()
    return [
      ...[this.attempts, this.responses, this.registrations, this.attestation, this.hubConnections, this.hubTelemetry, this.hubTwin, this.hubMethods, this.connections].map((c) => c.family()),
      ...(sqlite === undefined
        ? []
        : [
            counter('provisio_sqlite_commits_total', 'SQLite group commits (transactions) of the store.', sqlite.commits),
            counter('provisio_sqlite_lock_waits_total', 'Times writes queued for the SQLite write lock another process held.', sqlite.lockWaits),
            counter('provisio_sqlite_lock_wait_seconds_total', 'Time writes spent queued for that lock.', sqlite.lockWaitMs / 1000),
          ]),
      gauge('provisio_process_heap_used_bytes', 'V8 heap in use.', memory.heapUsed),
      gauge('provisio_process_resident_memory_bytes', 'Resident set size.', memory.rss),
      gauge('provisio_process_start_time_seconds', 'Start time of the process, Unix seconds.', this.#startedAtSeconds),
    ]
  }

  render(): string {
    return renderMetrics([{ families: this.families() }])
  }

  /** Wraps a DeviceApi so that every call through one transport is counted. */
  instrument(api: DeviceApi, transport: string): DeviceApi {
    const answered = (operation: string, status: number) => this.responses.inc([transport, operation, String(status)])
    const failed = (operation: string, error: unknown) => answered(operation, isProvisioError(error) ? error.httpStatus : 500)
    return {
      register: async (request) => {
        const kind = KIND[request.evidence.type]
        this.attempts.inc([transport, kind])
        try {
          const result = await api.register(request)
          answered('register', result.status)
          this.attestation.inc([kind, result.status === 401 ? 'challenge' : 'success'])
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
