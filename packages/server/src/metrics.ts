/**
 * Prometheus metrics of the server (text exposition format 0.0.4), served at GET /metrics:
 *
 * - `provisio_registration_attempts_total{transport,attestation}` — register calls;
 * - `provisio_device_responses_total{transport,operation,status}` — device API answers by status
 *   (202 assigning, 200 assigned, 401 refused, 429 throttled …);
 * - `provisio_registrations_total{status}` — assignments that finished: assigned or failed;
 * - `provisio_attestation_attempts_total{kind,result}` — attestation outcomes of register calls
 *   (success, failure, challenge for the first TPM leg);
 * - `provisio_open_connections{listener}` — connections open now: TCP connections accepted by the
 *   `https`, `mqtts` and `amqps` listeners (counted from the TCP accept, before TLS), and the
 *   WebSocket sessions `mqtt-ws` and `amqp-ws` (also counted under `https`, whose upgraded sockets they are);
 * - `provisio_process_heap_used_bytes`, `provisio_process_resident_memory_bytes` — memory of the process.
 */
import { isProvisioError } from '@provisio/protocol'
import type { DeviceApi, Evidence } from '@provisio/protocol'

class Counter {
  readonly #values = new Map<string, number>()
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  inc(labels: readonly string[], by = 1): void {
    const key = JSON.stringify(labels)
    this.#values.set(key, (this.#values.get(key) ?? 0) + by)
  }

  get(labels: readonly string[]): number {
    return this.#values.get(JSON.stringify(labels)) ?? 0
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`
    for (const [key, value] of [...this.#values].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const labels = (JSON.parse(key) as string[]).map((v, i) => `${this.labelNames[i]}="${escapeLabel(v)}"`).join(',')
      out += `${this.name}{${labels}} ${value}\n`
    }
    return out
  }
}

class Gauge {
  readonly #values = new Map<string, number>()
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  add(labels: readonly string[], by: number): void {
    const key = JSON.stringify(labels)
    this.#values.set(key, (this.#values.get(key) ?? 0) + by)
  }

  get(labels: readonly string[]): number {
    return this.#values.get(JSON.stringify(labels)) ?? 0
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n`
    for (const [key, value] of [...this.#values].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const labels = (JSON.parse(key) as string[]).map((v, i) => `${this.labelNames[i]}="${escapeLabel(v)}"`).join(',')
      out += `${this.name}${labels === '' ? '' : `{${labels}}`} ${value}\n`
    }
    return out
  }
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

  readonly connections = new Gauge('provisio_open_connections', 'Connections open now, by listener (TCP accepts before TLS; WebSocket sessions by transport).', ['listener'])

  /** Counts `socket` as open on `listener` until it closes. */
  track(listener: string, socket: Closable): void {
    this.connections.add([listener], 1)
    socket.once('close', () => this.connections.add([listener], -1))
  }

  render(): string {
    const memory = process.memoryUsage()
    const process_ =
      `# HELP provisio_process_heap_used_bytes V8 heap in use.\n# TYPE provisio_process_heap_used_bytes gauge\nprovisio_process_heap_used_bytes ${memory.heapUsed}\n` +
      `# HELP provisio_process_resident_memory_bytes Resident set size.\n# TYPE provisio_process_resident_memory_bytes gauge\nprovisio_process_resident_memory_bytes ${memory.rss}\n`
    return [this.attempts, this.responses, this.registrations, this.attestation, this.hubConnections, this.hubTelemetry, this.hubTwin, this.connections].map((c) => c.render()).join('') + process_
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
    }
  }
}
