/**
 * Crash-test harness: `provisio serve` instances as child processes (the built CLI), killed
 * with SIGKILL and restarted, and a fleet of symmetric-key devices registering over every
 * transport, each device's SAS token built with @provisio/protocol from its group-derived key.
 *
 * HTTPS devices use plain requests (docs/protocol.md §1: PUT …/register, then GET
 * …/operations/{id} until final), spread their register calls over the instances and poll on a
 * *different* instance than the one that answered the register, so every completed device
 * proves that operations are shared through the store. MQTT, MQTT-WS, AMQP and AMQP-WS devices
 * (§3, §4) open one connection to an instance, register and poll on it, as Microsoft's clients
 * do; their client is the e2e bench's (bench/lib/device-clients.mjs), so tests and bench speak
 * to the server the same way. A device whose instance dies (request refused, connection
 * dropped) retries on another instance, or the same one once restarted, as a real device's
 * retry policy would: HTTPS repeats the request, the session transports reconnect and carry on
 * with the register or the poll where they were.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent, request } from 'node:https'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { deriveDeviceKey } from '@provisio/crypto'
import { buildSasToken } from '@provisio/protocol'
import { openDevice, type DeviceAnswer, type DeviceConnection, type DeviceTransport } from '../../bench/lib/device-clients.mjs'

export type { DeviceTransport }
/** Every transport a device may use; scale tests give device i the transport TRANSPORTS[i % 5]. */
export const TRANSPORTS: readonly DeviceTransport[] = ['https', 'mqtt', 'mqtt-ws', 'amqp', 'amqp-ws']

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'packages', 'server', 'dist', 'cli.js')
const API = 'api-version=2021-10-01'

export interface Endpoints {
  idScope: string
  serviceConnectionString: string
  caCertificate: string
  ports: { https: number; mqtt: number; amqp: number }
}

/** One `provisio serve` child process on a data directory; restartable. */
export class ServeProcess {
  readonly name: string
  readonly dataDir: string
  readonly args: readonly string[]
  child: ChildProcess | undefined
  endpoints: Endpoints | undefined
  ca = ''
  agent: Agent | undefined
  /** TLS session tickets of this instance (the session transports resume, as reconnecting devices do). */
  tlsSessions = new Map<string, Buffer>()
  /** Last lines of output, for failure messages. */
  output: string[] = []
  starts = 0

  /** Extra environment variables of the process (e.g. NODE_CLUSTER_SCHED_POLICY). */
  readonly env: Readonly<Record<string, string>>

  constructor(name: string, dataDir: string, args: readonly string[], env: Readonly<Record<string, string>> = {}) {
    this.name = name
    this.dataDir = dataDir
    this.args = args
    this.env = env
  }

  get alive(): boolean {
    return this.child !== undefined && this.agent !== undefined
  }

  async start(): Promise<void> {
    // endpoints.json is rewritten on every start: its appearance says this start is listening.
    // Azure's exact flow (202, then polls; --assignment-budget-ms 0): the crash tests hold assignments
    // in webhooks and count on register answering at once with the operation to poll.
    rmSync(join(this.dataDir, 'endpoints.json'), { force: true })
    const child = spawn(process.execPath, [CLI, 'serve', '--data-dir', this.dataDir, '--https-port', '0', '--mqtt-port', '0', '--amqp-port', '0', '--log-level', 'warn', '--assignment-budget-ms', '0', ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env },
    })
    this.child = child
    this.starts++
    const keep = (c: Buffer) => {
      this.output.push(...c.toString().split('\n').filter((l) => l !== ''))
      if (this.output.length > 200) this.output.splice(0, this.output.length - 200)
    }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    const file = join(this.dataDir, 'endpoints.json')
    const deadline = Date.now() + 30_000
    while (!existsSync(file)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${this.name} did not start (exit ${child.exitCode}):\n${this.output.join('\n')}`)
      await sleep(25)
    }
    await sleep(20) // written atomically (rename), but give the listener's log a moment
    this.endpoints = JSON.parse(readFileSync(file, 'utf8')) as Endpoints
    this.ca = readFileSync(this.endpoints.caCertificate, 'utf8')
    this.agent = new Agent({ keepAlive: true, timeout: 5_000, maxSockets: 64, ca: this.ca })
  }

  /** SIGKILL: no drain, no close; in-flight assignments stay `assigning` in the store. */
  async kill(): Promise<void> {
    const child = this.child
    this.agent?.destroy()
    this.agent = undefined
    if (child === undefined || child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    this.child = undefined
  }

  /** SIGTERM: graceful stop (drain, close the store). Resolves with the exit code (null: killed after 15 s, or already gone). */
  async stop(): Promise<number | null> {
    const child = this.child
    this.agent?.destroy()
    this.agent = undefined
    if (child === undefined || child.exitCode !== null) return null
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    const code = await exited
    clearTimeout(timer)
    this.child = undefined
    return code
  }

  /** The pids of this process's children: the workers of `provisio serve --workers` (Linux /proc). */
  workerPids(): number[] {
    const pid = this.child?.pid
    if (pid === undefined) return []
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter((x) => x !== '').map(Number)
  }
}

export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One request to an instance over its keep-alive agent; rejects on connection errors. */
/** The SAS token of a device of a symmetric-key group (§1, derived key, `skn=registration`). */
export function deviceToken(idScope: string, groupKey: string, registrationId: string): string {
  const key = deriveDeviceKey(groupKey, registrationId)
  return buildSasToken({ resource: `${idScope}/registrations/${registrationId}`, key, keyName: 'registration', expiresAt: Math.floor(Date.now() / 1000) + 3600 })
}

export function call(instance: ServeProcess, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Answer> {
  const agent = instance.agent
  const port = instance.endpoints?.ports.https
  if (agent === undefined || port === undefined) return Promise.reject(new Error(`${instance.name} is down`))
  const payload = body === undefined ? undefined : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: 'localhost',
        port,
        method,
        path,
        agent,
        headers: { accept: 'application/json', ...(payload === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }), ...headers },
        timeout: 20_000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end(payload)
  })
}

function parseConnectionString(cs: string): Record<string, string> {
  return Object.fromEntries(cs.split(';').map((part) => {
    const i = part.indexOf('=')
    return [part.slice(0, i), part.slice(i + 1)]
  }))
}

/** Creates a symmetric-key enrollment group through the service API (§7), returns its key. */
export async function createGroup(instance: ServeProcess, groupId: string, primaryKey: string, extra: Record<string, unknown> = {}): Promise<void> {
  const cs = parseConnectionString(instance.endpoints!.serviceConnectionString)
  const token = buildSasToken({ resource: cs.HostName!, key: cs.SharedAccessKey!, keyName: cs.SharedAccessKeyName!, expiresAt: Math.floor(Date.now() / 1000) + 3600 })
  const answer = await call(instance, 'PUT', `/enrollmentGroups/${groupId}?${API}`, { authorization: token }, {
    enrollmentGroupId: groupId,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey: Buffer.alloc(32, 7).toString('base64') } },
    ...extra,
  })
  if (answer.status !== 200) throw new Error(`creating group ${groupId}: ${answer.status} ${answer.body}`)
}

/** What one device saw. */
export interface DeviceOutcome {
  readonly registrationId: string
  readonly operationId: string
  readonly assignedHub: string
  readonly deviceId: string
  /** Polls answered by an instance other than the one that answered the register. */
  readonly crossPolls: number
  /** Requests that failed at the connection level (instance killed or restarting). */
  readonly connectionErrors: number
  readonly transport: DeviceTransport
}

interface OperationStatus {
  operationId: string
  status: string
  registrationState?: { status?: string; assignedHub?: string; deviceId?: string; errorMessage?: string }
}

/**
 * Provisions one device to completion: register, poll (on another instance), retry on
 * connection errors and throttling; fails on any other answer.
 */
export async function provisionDevice(
  instances: readonly ServeProcess[],
  idScope: string,
  groupKey: string,
  registrationId: string,
  index: number,
  /** Skip the register: poll this operation, started on instance `registeredOn`. */
  started?: { operationId: string; registeredOn: number },
  transport: DeviceTransport = 'https',
): Promise<DeviceOutcome> {
  if (transport !== 'https') return provisionOverSession(instances, idScope, groupKey, registrationId, index, transport, started)
  const headers = { authorization: deviceToken(idScope, groupKey, registrationId) }
  let operationId: string | undefined = started?.operationId
  let registeredOn = started?.registeredOn ?? -1
  let crossPolls = 0
  let connectionErrors = 0
  for (let attempt = 0; attempt < 2000; attempt++) {
    // Registers spread by device index; polls go to the next instance.
    const preferred = operationId === undefined ? index % instances.length : (registeredOn + 1) % instances.length
    const target = pickAlive(instances, preferred)
    if (target === undefined) {
      await sleep(100)
      continue
    }
    let answer: Answer
    try {
      answer = operationId === undefined
        ? await call(instances[target]!, 'PUT', `/${idScope}/registrations/${registrationId}/register?${API}`, headers, { registrationId })
        : await call(instances[target]!, 'GET', `/${idScope}/registrations/${registrationId}/operations/${operationId}?${API}`, headers)
    } catch {
      connectionErrors++
      await sleep(50)
      continue
    }
    if (answer.status === 429 || answer.status === 503) {
      await sleep(retryAfterMs(answer))
      continue
    }
    if (answer.status === 404 && operationId !== undefined) {
      // The operation was replaced (a repeat register after its lease expired): register again.
      operationId = undefined
      continue
    }
    if (answer.status !== 200 && answer.status !== 202) {
      throw new Error(`device ${registrationId}: ${operationId === undefined ? 'register' : 'poll'} answered ${answer.status} ${answer.body.slice(0, 300)}`)
    }
    const body = JSON.parse(answer.body) as OperationStatus
    if (operationId === undefined) registeredOn = target
    else if (target !== registeredOn) crossPolls++
    operationId = body.operationId
    if (body.status === 'assigned') {
      return {
        registrationId,
        operationId,
        assignedHub: body.registrationState?.assignedHub ?? '',
        deviceId: body.registrationState?.deviceId ?? '',
        crossPolls,
        connectionErrors,
        transport,
      }
    }
    if (body.status !== 'assigning') throw new Error(`device ${registrationId}: operation ${operationId} ended ${body.status}: ${answer.body.slice(0, 300)}`)
    await sleep(retryAfterMs(answer))
  }
  throw new Error(`device ${registrationId}: not assigned after 2000 attempts`)
}

/** A device-side verdict (an answer the device must not retry): fails the test. */
class DeviceFailure extends Error {}

/** The port of `transport` on an instance (the WebSocket forms share the HTTPS port). */
function portOf(instance: ServeProcess, transport: DeviceTransport): number | undefined {
  const ports = instance.endpoints?.ports
  if (ports === undefined) return undefined
  return transport === 'mqtt' ? ports.mqtt : transport === 'amqp' ? ports.amqp : ports.https
}

/**
 * provisionDevice over MQTT, MQTT-WS, AMQP or AMQP-WS: one connection to an instance (registers
 * spread by device index), register, then poll on the same connection until final. A dropped
 * or refused connection, or a request left unanswered, counts as a connection error: the device
 * reconnects (to the next live instance) and repeats the register, or polls its operation
 * there. Throttling (429) and unavailability (503) are retried after Retry-After.
 */
async function provisionOverSession(
  instances: readonly ServeProcess[],
  idScope: string,
  groupKey: string,
  registrationId: string,
  index: number,
  transport: DeviceTransport,
  started?: { operationId: string; registeredOn: number },
): Promise<DeviceOutcome> {
  const sas = deviceToken(idScope, groupKey, registrationId)
  let operationId: string | undefined = started?.operationId
  let registeredOn = started?.registeredOn ?? -1
  let crossPolls = 0
  let connectionErrors = 0
  let preferred = operationId === undefined ? index % instances.length : (registeredOn + 1) % instances.length
  for (let attempt = 0; attempt < 200; attempt++) {
    const target = pickAlive(instances, preferred)
    const instance = target === undefined ? undefined : instances[target]
    const port = instance === undefined ? undefined : portOf(instance, transport)
    if (target === undefined || instance === undefined || port === undefined) {
      await sleep(100)
      continue
    }
    let device: DeviceConnection | undefined
    try {
      device = await openDevice({ transport, port, ca: instance.ca, idScope, registrationId, sas, tlsSessions: instance.tlsSessions, timeoutMs: 15_000 })
      for (let request = 0; request < 2000; request++) {
        const answer: DeviceAnswer = operationId === undefined ? await device.register() : await device.poll(operationId)
        if (answer.status === 429 || answer.status === 503) {
          await sleep(Math.min(answer.retryAfterMs ?? 250, 1000))
          continue
        }
        if (answer.status === 404 && operationId !== undefined) {
          operationId = undefined // replaced by a later register of this device: register again
          continue
        }
        if (answer.status !== 200 && answer.status !== 202) {
          throw new DeviceFailure(`device ${registrationId} (${transport}): ${operationId === undefined ? 'register' : 'poll'} answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`)
        }
        const body = answer.body
        if (operationId === undefined) registeredOn = target
        else if (target !== registeredOn) crossPolls++
        operationId = body.operationId
        if (body.status === 'assigned') {
          return {
            registrationId,
            operationId: operationId ?? '',
            assignedHub: body.registrationState?.assignedHub ?? '',
            deviceId: body.registrationState?.deviceId ?? '',
            crossPolls,
            connectionErrors,
            transport,
          }
        }
        if (body.status !== 'assigning' || operationId === undefined) {
          throw new DeviceFailure(`device ${registrationId} (${transport}): operation ${operationId} ended ${body.status}: ${JSON.stringify(body).slice(0, 300)}`)
        }
        await sleep(Math.min(answer.retryAfterMs ?? 250, 1000))
      }
      throw new DeviceFailure(`device ${registrationId} (${transport}): operation ${operationId} not final after 2000 requests`)
    } catch (error) {
      if (error instanceof DeviceFailure) throw error
      // MQTT CONNACK refusals other than "server unavailable" (3) are verdicts, not outages.
      const returnCode = (error as { returnCode?: number }).returnCode
      if (returnCode !== undefined && returnCode !== 3) throw new Error(`device ${registrationId} (${transport}): ${(error as Error).message}`)
      connectionErrors++
      preferred = target + 1
      await sleep(50)
    } finally {
      device?.close()
    }
  }
  throw new Error(`device ${registrationId} (${transport}): not assigned after 200 connections`)
}

/**
 * Polls one operation until it is final or gone: `assigned`, or `replaced` when the store no
 * longer knows it (404: a later register of the device replaced it). Fails on anything else.
 */
export async function pollOperation(instances: readonly ServeProcess[], idScope: string, groupKey: string, registrationId: string, operationId: string): Promise<'assigned' | 'replaced'> {
  const headers = { authorization: deviceToken(idScope, groupKey, registrationId) }
  for (let attempt = 0; attempt < 2000; attempt++) {
    const target = pickAlive(instances, attempt)
    if (target === undefined) {
      await sleep(100)
      continue
    }
    let answer: Answer
    try {
      answer = await call(instances[target]!, 'GET', `/${idScope}/registrations/${registrationId}/operations/${operationId}?${API}`, headers)
    } catch {
      await sleep(50)
      continue
    }
    if (answer.status === 404) return 'replaced'
    if (answer.status === 429 || answer.status === 503 || answer.status === 202) {
      await sleep(retryAfterMs(answer))
      continue
    }
    const body = answer.status === 200 ? (JSON.parse(answer.body) as OperationStatus) : undefined
    if (body?.status === 'assigned') return 'assigned'
    throw new Error(`device ${registrationId}: poll of ${operationId} answered ${answer.status} ${answer.body.slice(0, 300)}`)
  }
  throw new Error(`device ${registrationId}: operation ${operationId} not final after 2000 polls`)
}

function pickAlive(instances: readonly ServeProcess[], preferred: number): number | undefined {
  for (let i = 0; i < instances.length; i++) {
    const k = (preferred + i) % instances.length
    if (instances[k]!.alive) return k
  }
  return undefined
}

/** Retry-After in ms, capped at 1 s so the run stays short (the server says 1 s anyway). */
function retryAfterMs(answer: Answer): number {
  const seconds = Number(answer.headers['retry-after'])
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, 1000) : 250
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Runs `work(i)` for i in [0, count) with at most `concurrency` in flight; calls `onDone` with
 * the number completed after each one.
 */
export async function runPool<T>(count: number, concurrency: number, work: (i: number) => Promise<T>, onDone?: (done: number) => void): Promise<T[]> {
  const results: T[] = new Array<T>(count)
  let next = 0
  let done = 0
  const worker = async () => {
    while (next < count) {
      const i = next++
      results[i] = await work(i)
      onDone?.(++done)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  return results
}

/** "https 400, mqtt 400, …, retried: mqtt 12, …": how a run's devices went, for the log line. */
export function transportSummary(outcomes: readonly DeviceOutcome[]): string {
  const by = (keep: (o: DeviceOutcome) => boolean) => TRANSPORTS.map((t) => `${t} ${outcomes.filter((o) => o.transport === t && keep(o)).length}`).join(', ')
  return `${by(() => true)}; reconnected/retried: ${by((o) => o.connectionErrors > 0)}`
}

/** Device count of the scale tests: PROVISIO_SCALE_DEVICES, else the given default. */
export function deviceCount(fallback: number): number {
  const raw = process.env.PROVISIO_SCALE_DEVICES
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 10) throw new Error(`PROVISIO_SCALE_DEVICES must be an integer of at least 10, got ${JSON.stringify(raw)}`)
  return n
}

/** What the store holds after a run (bodies as the stores keep them). */
export interface FleetRows {
  readonly registrations: readonly { state: { registrationId: string; status: string; substatus?: string; assignedHub?: string; deviceId?: string } }[]
  readonly operations: readonly { operationId: string; registrationId: string; status: string }[]
  readonly hubDevices: readonly { device: { deviceId: string; authentication?: { symmetricKey?: { primaryKey?: string } } } }[]
}

/** The fleet's rows in a SQLite database (`provisio serve`'s default store) with hub `hub`'s identities. */
export function sqliteFleetRows(db: { prepare(sql: string): { all(): unknown[] } }, hub: string): FleetRows {
  const bodies = (sql: string) => (db.prepare(sql).all() as { body: string }[]).map((r) => JSON.parse(r.body) as never)
  return {
    registrations: bodies('SELECT body FROM registrations'),
    operations: bodies('SELECT body FROM operations'),
    hubDevices: bodies(`SELECT record AS body FROM hub_devices WHERE hub = '${hub.replaceAll("'", "''")}'`),
  }
}

/**
 * Every way a run can go wrong, as readable lines (empty = every device assigned exactly once,
 * one registration record and one operation each, and exactly the fleet's hub identities).
 */
export function fleetProblems(ids: readonly string[], outcomes: readonly DeviceOutcome[], rows: FleetRows, hub: string, groupKey: string): string[] {
  const problems: string[] = []
  const expected = new Set(ids.map((id) => id.toLowerCase()))
  const outcomeOf = new Map(outcomes.map((o) => [o.registrationId.toLowerCase(), o]))
  for (const id of ids) {
    const o = outcomeOf.get(id.toLowerCase())
    if (o === undefined) problems.push(`${id}: no outcome`)
    else if (o.assignedHub !== hub || o.deviceId !== id) problems.push(`${id}: device saw ${o.assignedHub}/${o.deviceId}`)
  }
  const count = (what: string, keys: string[]) => {
    const seen = new Map<string, number>()
    for (const k of keys) seen.set(k, (seen.get(k) ?? 0) + 1)
    for (const [k, n] of seen) if (n > 1) problems.push(`${what} ${k}: ${n} rows`)
    for (const k of seen.keys()) if (!expected.has(k)) problems.push(`${what} ${k}: not a device of the fleet (orphan)`)
    for (const k of expected) if (!seen.has(k)) problems.push(`${what} ${k}: missing`)
  }
  count('registration', rows.registrations.map((r) => r.state.registrationId.toLowerCase()))
  count('operation', rows.operations.map((r) => r.registrationId.toLowerCase()))
  count('hub identity', rows.hubDevices.map((r) => r.device.deviceId.toLowerCase()))
  for (const r of rows.registrations) {
    const s = r.state
    if (s.status !== 'assigned' || s.substatus !== 'initialAssignment' || s.assignedHub !== hub || s.deviceId !== s.registrationId) {
      problems.push(`registration ${s.registrationId}: ${s.status}/${s.substatus} at ${s.assignedHub} as ${s.deviceId}`)
    }
  }
  for (const op of rows.operations) {
    const o = outcomeOf.get(op.registrationId.toLowerCase())
    if (op.status !== 'assigned') problems.push(`operation ${op.operationId} of ${op.registrationId}: ${op.status}`)
    else if (o !== undefined && o.operationId !== op.operationId) problems.push(`operation of ${op.registrationId}: store has ${op.operationId}, device finished ${o.operationId} (assigned twice)`)
  }
  for (const d of rows.hubDevices) {
    if (d.device.authentication?.symmetricKey?.primaryKey !== deriveDeviceKey(groupKey, d.device.deviceId)) problems.push(`hub identity ${d.device.deviceId}: wrong key`)
  }
  return problems.slice(0, 50)
}

/**
 * A custom-allocation webhook (docs/protocol.md §8) that holds the first call for each device
 * (the instance calling it stays mid-assignment, its operation `assigning`) and answers every
 * later call at once with the given hub: the take-over after a crash calls it again.
 */
export class HoldingWebhook {
  readonly held = new Map<string, ServerResponse>()
  readonly #server: Server
  #url = ''

  constructor(hub: string) {
    this.#server = createServer((req, res) => {
      let text = ''
      req.on('data', (c: Buffer) => (text += c.toString()))
      req.on('end', () => {
        const id = (JSON.parse(text) as { deviceRuntimeContext: { registrationId: string } }).deviceRuntimeContext.registrationId
        if (!this.held.has(id)) {
          this.held.set(id, res)
          return
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ iotHubHostName: hub }))
      })
    })
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.#url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/allocate`
    return this.#url
  }

  /** Group settings that route a group's devices through this webhook. */
  groupSettings(): Record<string, unknown> {
    return { allocationPolicy: 'custom', customAllocationDefinition: { webhookUrl: this.#url, apiVersion: '2021-10-01' } }
  }

  /** Resolves once `count` devices have a held call. */
  async waitForHeld(count: number): Promise<void> {
    while (this.held.size < count) await sleep(20)
  }

  close(): void {
    for (const res of this.held.values()) res.destroy()
    this.#server.closeAllConnections()
    this.#server.close()
  }
}

/**
 * Registers each device on `instance` (one request each, all at once, expecting 202) and returns
 * the operation ids it answered, in the order of `ids`. All at once, so that the held webhook
 * calls they start are all in place quickly even on a loaded machine: the first must not wait
 * for the last long enough to hit the instance's webhook timeout (10 s) before the kill.
 */
export async function startRegistrations(instance: ServeProcess, idScope: string, groupKey: string, ids: readonly string[]): Promise<string[]> {
  return Promise.all(
    ids.map(async (id) => {
      const answer = await call(instance, 'PUT', `/${idScope}/registrations/${id}/register?${API}`, { authorization: deviceToken(idScope, groupKey, id) }, { registrationId: id })
      if (answer.status !== 202) throw new Error(`register of ${id} on ${instance.name}: ${answer.status} ${answer.body.slice(0, 300)}`)
      return (JSON.parse(answer.body) as { operationId: string }).operationId
    }),
  )
}
