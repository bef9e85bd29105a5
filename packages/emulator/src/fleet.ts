/**
 * The fleet: N emulated devices run through a driver with at most `concurrency` at work at once,
 * each provisioned and then (optionally) reading its twin from the hub it was assigned to. Stop
 * aborts the devices at work and starts no more. Every change lands in the device table and the
 * statistics, and listeners are told; the DOM code repaints from them. No DOM here; the clock is
 * passed in.
 */
import { Stats } from './stats.js'

/** One emulated device's credential. */
export type DeviceCredential =
  | { readonly kind: 'symmetric-key'; readonly key: string }
  | { readonly kind: 'tpm'; readonly index: number }

export interface DeviceSpec {
  readonly index: number
  readonly registrationId: string
  readonly credential: DeviceCredential
}

/** What provisioning gave a device. */
export type ProvisionResult =
  | {
      readonly status: 'assigned'
      readonly assignedHub: string
      readonly deviceId: string
      readonly substatus?: string
    }
  | { readonly status: 'failed' | 'disabled'; readonly errorCode?: number | string; readonly reason: string }

/** An assigned device's open connection to its hub (stay-connected runs). */
export interface HubSession {
  /** The twin read right after connecting. */
  readonly twin: unknown
  /** Desired-property changes the hub pushes. */
  onDesired(listener: (patch: Record<string, unknown>, version: number | undefined) => void): void
  /** Answers the direct methods the hub delivers (every method name) with `handler`. */
  onMethod(handler: (methodName: string, payload: unknown) => { status: number; payload: unknown }): void
  /** Called once when the connection drops (not after close()). */
  onDisconnect(listener: (reason: string) => void): void
  /** Sends one telemetry message; resolves when the hub acknowledged it. */
  sendTelemetry(body: Record<string, unknown>): Promise<void>
  close(): Promise<void>
}

/** Where the devices' work is done: the device SDK behind a small seam (driver.ts). */
export interface DeviceDriver {
  /** Provisions the device; `note` adds a line to its log (retries, what the service said). */
  provision(device: DeviceSpec, signal: AbortSignal, note: (text: string) => void): Promise<ProvisionResult>
  /** The twin of an assigned device, read from its hub (absent: twins are not read). */
  readTwin?(device: DeviceSpec, result: Extract<ProvisionResult, { status: 'assigned' }>, signal: AbortSignal): Promise<unknown>
  /** Connects an assigned device to its hub, reads its twin and keeps the connection (stay-connected runs). */
  connect?(device: DeviceSpec, result: Extract<ProvisionResult, { status: 'assigned' }>, signal: AbortSignal): Promise<HubSession>
}

/** One line of a device's log: milliseconds since the fleet started, and what happened. */
export interface LogLine {
  readonly atMs: number
  readonly text: string
}

/** Lines kept per device (a device that retries for long keeps its first and latest lines). */
export const MAX_LOG_LINES = 50

export type DeviceStatus = 'pending' | 'registering' | 'assigned' | 'failed' | 'disabled' | 'error' | 'stopped'

/** One row of the device table. */
export interface DeviceRow {
  readonly index: number
  readonly registrationId: string
  status: DeviceStatus
  assignedHub?: string
  deviceId?: string
  /** DPS error code or the SDK's error code. */
  errorCode?: string
  reason?: string
  latencyMs?: number
  twinStatus?: 'reading' | 'read' | 'error'
  twin?: unknown
  twinError?: string
  /** The hub connection of a stay-connected device. */
  connection?: 'connecting' | 'connected' | 'closed' | 'error'
  telemetrySent?: number
  telemetryErrors?: number
  desiredReceived?: number
  /** Direct methods the device answered. */
  methodCalls?: number
  readonly log: LogLine[]
}

export interface Clock {
  /** Milliseconds on a monotonic clock. */
  now(): number
}

/** Repeats `run` every `ms` until the returned function is called (setInterval in the page). */
export type IntervalTimer = (ms: number, run: () => void) => () => void

export interface FleetOptions {
  readonly count: number
  readonly concurrency: number
  /** The spec of device `index` (made on demand, so a large fleet costs nothing up front). */
  readonly device: (index: number) => DeviceSpec
  readonly driver: DeviceDriver
  readonly clock: Clock
  readonly readTwins: boolean
  /** Keep assigned devices connected until Stop (needs driver.connect). */
  readonly stayConnected?: boolean
  /** Telemetry interval of connected devices, ms; 0 or absent sends none. */
  readonly telemetryIntervalMs?: number
  /** The interval timer telemetry uses (required with a telemetry interval). */
  readonly every?: IntervalTimer
  /** The status connected devices answer direct methods with, read at each call (default 200); they echo the payload. */
  readonly methodStatus?: () => number
}

export type FleetEvent = { readonly type: 'device'; readonly row: DeviceRow } | { readonly type: 'done'; readonly stopped: boolean }

export class Fleet {
  readonly rows: DeviceRow[] = []
  readonly stats: Stats
  #next = 0
  #active = 0
  #running = false
  #stopped = false
  readonly #abort = new AbortController()
  readonly #listeners = new Set<(event: FleetEvent) => void>()
  #finished: Promise<void> | undefined
  #t0 = 0
  /** Connected devices (stay-connected runs): their session and how to stop their telemetry. */
  readonly #sessions = new Map<number, { readonly session: HubSession; readonly stopTelemetry: () => void }>()
  /** Wakes the run's end when Stop is pressed or the last connection is gone. */
  #wake: (() => void) | undefined

  constructor(private readonly options: FleetOptions) {
    if (!Number.isInteger(options.count) || options.count < 0) throw new RangeError('count must be a whole number')
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) throw new RangeError('concurrency must be at least 1')
    this.stats = new Stats(options.clock.now())
  }

  get running(): boolean {
    return this.#running
  }

  on(listener: (event: FleetEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Starts the devices; resolves when every device is done or the fleet was stopped. */
  start(): Promise<void> {
    if (this.#finished !== undefined) return this.#finished
    this.#running = true
    this.#t0 = this.options.clock.now()
    this.stats.restart(this.#t0)
    this.#finished = new Promise<void>((resolve) => {
      const lanes = Math.min(this.options.concurrency, this.options.count)
      let open = lanes
      if (lanes === 0) {
        this.#finish(resolve)
        return
      }
      for (let i = 0; i < lanes; i++) {
        void this.#lane().finally(() => {
          if (--open === 0) void this.#closeSessions().then(() => this.#finish(resolve))
        })
      }
    })
    return this.#finished
  }

  /** Aborts the devices at work and starts no more; the rest are marked stopped. */
  stop(): void {
    if (this.#stopped) return
    this.#stopped = true
    this.#abort.abort(new Error('stopped by the user'))
    this.#wake?.()
  }

  /** Devices connected to their hub right now. */
  get connected(): number {
    return this.#sessions.size
  }

  /** Once every device is through: waits for Stop while devices stay connected, then closes them. */
  async #closeSessions(): Promise<void> {
    if (!this.#stopped && this.#sessions.size > 0) await new Promise<void>((resolve) => (this.#wake = resolve))
    const open = [...this.#sessions.entries()]
    this.#sessions.clear()
    await Promise.allSettled(
      open.map(async ([index, { session, stopTelemetry }]) => {
        stopTelemetry()
        this.stats.connected--
        const row = this.rows[index]!
        row.connection = 'closed'
        this.#note(row, 'disconnected: stopped by the user')
        this.#update(row)
        await session.close()
      }),
    )
  }

  /** Devices at work right now. */
  get active(): number {
    return this.#active
  }

  #finish(resolve: () => void): void {
    this.#running = false
    this.#emit({ type: 'done', stopped: this.#stopped })
    resolve()
  }

  #emit(event: FleetEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch {
        // A listener's failure must not stop the fleet.
      }
    }
  }

  #update(row: DeviceRow): void {
    this.#emit({ type: 'device', row })
  }

  async #lane(): Promise<void> {
    while (!this.#stopped && this.#next < this.options.count) {
      const index = this.#next++
      this.#active++
      try {
        await this.#runOne(index)
      } finally {
        this.#active--
      }
    }
  }

  async #runOne(index: number): Promise<void> {
    const { driver, clock } = this.options
    const signal = this.#abort.signal
    let spec: DeviceSpec
    try {
      spec = this.options.device(index)
    } catch (error) {
      const row: DeviceRow = { index, registrationId: `#${index}`, status: 'error', errorCode: errorCode(error), reason: message(error), log: [] }
      this.#note(row, `could not be made: ${message(error)}`)
      this.rows[index] = row
      this.stats.record('error', row.errorCode, undefined, clock.now())
      this.#update(row)
      return
    }
    const row: DeviceRow = { index, registrationId: spec.registrationId, status: 'registering', log: [] }
    this.rows[index] = row
    this.stats.started()
    this.#note(row, 'registering')
    this.#update(row)
    const startedAt = clock.now()
    let result: ProvisionResult
    try {
      result = await driver.provision(spec, signal, (text) => this.#note(row, text))
    } catch (error) {
      const now = clock.now()
      if (signal.aborted) {
        row.status = 'stopped'
        row.reason = 'stopped before the device finished'
        this.stats.record('stopped', undefined, undefined, now)
      } else {
        row.status = 'error'
        row.errorCode = errorCode(error)
        row.reason = message(error)
        row.latencyMs = now - startedAt
        this.stats.record('error', row.errorCode, row.latencyMs, now)
      }
      this.#note(row, `${row.status}: ${row.reason}`)
      this.#update(row)
      return
    }
    const now = clock.now()
    row.latencyMs = now - startedAt
    if (result.status === 'assigned') {
      row.status = 'assigned'
      row.assignedHub = result.assignedHub
      row.deviceId = result.deviceId
      this.stats.record('assigned', undefined, row.latencyMs, now)
      this.#note(row, `assigned to ${result.assignedHub} as ${result.deviceId}${result.substatus === undefined ? '' : ` (${result.substatus})`} after ${Math.round(row.latencyMs)} ms`)
    } else {
      row.status = result.status
      if (result.errorCode !== undefined) row.errorCode = String(result.errorCode)
      row.reason = result.reason
      this.stats.record(result.status, row.errorCode, row.latencyMs, now)
      this.#note(row, `${result.status}${row.errorCode === undefined ? '' : ` (${row.errorCode})`}: ${result.reason}`)
    }
    this.#update(row)
    if (result.status !== 'assigned' || signal.aborted) return
    if (this.options.stayConnected === true && driver.connect !== undefined) return this.#stay(spec, row, result, driver.connect.bind(driver))
    if (!this.options.readTwins || driver.readTwin === undefined) return
    row.twinStatus = 'reading'
    this.#note(row, `reading the twin from ${result.assignedHub}`)
    this.#update(row)
    try {
      row.twin = await driver.readTwin(spec, result, signal)
      row.twinStatus = 'read'
      this.stats.twinRead(true)
      this.#note(row, 'twin read')
    } catch (error) {
      row.twinStatus = 'error'
      row.twinError = signal.aborted ? 'stopped' : message(error)
      this.stats.twinRead(false)
      this.#note(row, `twin not read: ${row.twinError}`)
    }
    this.#update(row)
  }

  /** Connects the device to its hub and keeps it there: desired changes land in its row, telemetry goes out every interval. */
  async #stay(spec: DeviceSpec, row: DeviceRow, result: Extract<ProvisionResult, { status: 'assigned' }>, connect: NonNullable<DeviceDriver['connect']>): Promise<void> {
    const signal = this.#abort.signal
    row.connection = 'connecting'
    row.twinStatus = 'reading'
    this.#note(row, `connecting to ${result.assignedHub}`)
    this.#update(row)
    let session: HubSession
    try {
      session = await connect(spec, result, signal)
    } catch (error) {
      row.connection = 'error'
      row.twinStatus = 'error'
      row.twinError = signal.aborted ? 'stopped' : message(error)
      this.stats.twinRead(false)
      this.#note(row, `not connected: ${row.twinError}`)
      this.#update(row)
      return
    }
    if (signal.aborted) {
      await session.close()
      return
    }
    row.connection = 'connected'
    row.twin = session.twin
    row.twinStatus = 'read'
    row.telemetrySent = 0
    row.telemetryErrors = 0
    row.desiredReceived = 0
    this.stats.twinRead(true)
    this.stats.connected++
    this.#note(row, 'connected, twin read')
    session.onDesired((patch, version) => {
      row.twin = withDesired(row.twin, patch)
      row.desiredReceived = (row.desiredReceived ?? 0) + 1
      this.stats.desiredReceived++
      this.#note(row, `desired change${version === undefined ? '' : ` (version ${version})`} received: ${JSON.stringify(withoutMetadata(patch))}`)
      this.#update(row)
    })
    session.onMethod((methodName, payload) => {
      const status = this.options.methodStatus?.() ?? 200
      row.methodCalls = (row.methodCalls ?? 0) + 1
      this.#note(row, `direct method ${methodName} called with ${JSON.stringify(payload)}; answered ${status}, payload echoed`)
      this.#update(row)
      return { status, payload }
    })
    const interval = this.options.telemetryIntervalMs ?? 0
    let sending = false
    const send = () => {
      if (sending) return
      sending = true
      const seq = (row.telemetrySent ?? 0) + (row.telemetryErrors ?? 0) + 1
      session
        .sendTelemetry({ deviceId: row.deviceId, seq, temperature: 20 + ((spec.index * 7 + seq) % 100) / 10 })
        .then(
          () => {
            row.telemetrySent = (row.telemetrySent ?? 0) + 1
            this.stats.telemetrySent++
          },
          (error: unknown) => {
            row.telemetryErrors = (row.telemetryErrors ?? 0) + 1
            this.stats.telemetryErrors++
            this.#note(row, `telemetry ${seq} not sent: ${message(error)}`)
          },
        )
        .finally(() => {
          sending = false
          this.#update(row)
        })
    }
    let stopTelemetry = () => undefined as void
    if (interval > 0) {
      if (this.options.every === undefined) throw new RangeError('a telemetry interval needs the `every` timer')
      stopTelemetry = this.options.every(interval, send)
    }
    this.#sessions.set(row.index, { session, stopTelemetry })
    session.onDisconnect((reason) => {
      if (!this.#sessions.delete(row.index)) return
      stopTelemetry()
      this.stats.connected--
      row.connection = 'closed'
      this.#note(row, `disconnected: ${reason}`)
      this.#update(row)
      if (this.#sessions.size === 0) this.#wake?.()
    })
  }

  #note(row: DeviceRow, text: string): void {
    if (row.log.length >= MAX_LOG_LINES) row.log.splice(1, 1)
    row.log.push({ atMs: this.options.clock.now() - this.#t0, text })
  }
}

/** A twin document (`{desired, reported}`) with a desired patch merged in (null deletes, as on the hub). */
export function withDesired(twin: unknown, patch: Record<string, unknown>): unknown {
  const doc = typeof twin === 'object' && twin !== null ? (twin as { desired?: Record<string, unknown> }) : {}
  return { ...doc, desired: mergePatch(doc.desired ?? {}, patch) }
}

function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...target }
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else if (typeof v === 'object' && !Array.isArray(v) && typeof out[k] === 'object' && out[k] !== null && !Array.isArray(out[k])) {
      out[k] = mergePatch(out[k] as Record<string, unknown>, v as Record<string, unknown>)
    } else out[k] = v
  }
  return out
}

/** Properties without the hub's bookkeeping (`$version`, `$metadata`). */
export function withoutMetadata(props: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(props).filter(([k]) => !k.startsWith('$')))
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** The stable code of an SDK or DPS error: `errorCode` (DPS) first, then `code`, else the class name. */
export function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const e = error as { errorCode?: unknown; code?: unknown; name?: unknown }
    if (typeof e.errorCode === 'number' || typeof e.errorCode === 'string') return String(e.errorCode)
    if (typeof e.code === 'number' || typeof e.code === 'string') return String(e.code)
    if (typeof e.name === 'string' && e.name !== 'Error') return e.name
  }
  return 'ERROR'
}
