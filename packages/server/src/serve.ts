/**
 * `provisio serve`: everything wired together with embedded defaults. First start creates the
 * data directory with the SQLite database, a dev CA and server certificate, one DPS instance
 * (generated ID scope, service access policy) and one embedded hub linked to it; every start
 * writes `<data-dir>/endpoints.json` describing how to reach them.
 */
import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname, join } from 'node:path'
import type { AddressInfo, Socket } from 'node:net'
import Database from 'better-sqlite3'
import { bodyLimitFor, createDpsHttpHandler } from '@provisio/codec-http'
import { createEngine, MemoryStore, type Engine, type InstanceConfig, type Store } from '@provisio/engine'
import { createCaCertificateApi, createX509Verifier, trustedCaCertificates } from '@provisio/engine'
import { createTpmVerifier } from '@provisio/engine'
import {
  EmbeddedHub,
  HubDirectory,
  MemoryHubSessions,
  DirectMethods,
  type MethodRelayMessage,
  MemoryHubStore,
  CloudToDevice,
  MemoryC2dStore,
  type C2dStore,
  createHubDevices,
  createHubRegistryApi,
  createLocalHubGateway,
  createRestHubGateway,
  type HubStore,
  type TelemetryStore,
} from '@provisio/hub'
import { ProvisioError, SAS_DEFAULT_CLOCK_SKEW_SECONDS, formatSharedAccessKeyConnectionString, ipFilterVerdict, parseSasToken, type HubPermission, type IpFilterRule, type ServicePermission } from '@provisio/protocol'
import { createSqliteStore, GroupCommit, SqliteC2dStore, SqliteHubStore, SqliteTelemetryStore, startWalCheckpointer, type WalCheckpointer } from '@provisio/store-sqlite'
import type { NoticeChannel } from '@provisio/store-postgres'
import type { ServeConfig } from './config.js'
import { writeFileAtomic } from './files.js'
import { HubEventRelay } from './hub-events.js'
import { createHttpsListener, type OpsHandler } from './https.js'
import { ConnectionSet, guardConnections, listenOn } from './listen.js'
import { shareStateChanges, type SharedState } from './shared-state.js'
import { Metrics } from './metrics.js'
import { pooledRandom } from './random.js'
import { createEmulatorSite, findEmulatorDist } from './emulator.js'
import { withDevReasons } from './dev-reasons.js'
import { OriginPolicy } from './origins.js'
import { WebSocketRouter, type WebSocketHandler } from './websocket.js'
import { createAmqpTransport, listenAmqp } from './amqp.js'
import { routeAmqp } from '@provisio/codec-amqp'
import { createMqttTransport, listenMqtt } from './mqtt.js'
import type { Logger } from './logger.js'
import { ensureDevPki } from './pki.js'
import { DEFAULT_CREDENTIAL_POLICY, ISSUING_CA_FILES, loadIssuingCa, type LoadedIssuingCa } from './issuing-ca.js'
import { StateFile, loadOrCreateState, settleState, type PolicyState, type ServerState } from './state.js'
import { isPostgresStore, openPostgresStores, type PostgresStores } from './postgres.js'
import type { HubConfig } from './config.js'

/** A shared access policy as the Azure portal shows it: name, rights, both connection strings. */
export interface PolicyEndpoint {
  readonly name: string
  readonly rights: readonly string[]
  readonly primaryConnectionString: string
  readonly secondaryConnectionString: string
}

/** What `endpoints.json` holds: everything a script needs to provision against this server. */
export interface Endpoints {
  readonly idScope: string
  /** Host devices connect to (the "global endpoint"). */
  readonly deviceEndpoint: string
  readonly serviceConnectionString: string
  /** PEM of the CA to trust (NODE_EXTRA_CA_CERTS). */
  readonly caCertificate: string
  readonly ports: { readonly https: number; readonly amqp: number; readonly mqtt: number }
  readonly hubs: readonly { readonly hostName: string; readonly connectionString: string; readonly policies: readonly PolicyEndpoint[] }[]
  /** Every DPS shared access policy, as the Azure portal lists them. */
  readonly servicePolicies: readonly PolicyEndpoint[]
  /** URL of the browser device emulator, when its build is served (/emulator/). */
  readonly emulator?: string
  /** The rate limits devices meet (0: none), so load generators can say what they ran under. */
  readonly rateLimits: { readonly registrationsPerMinute: number; readonly pollsPer10Seconds: number }
}

export interface RunningServer {
  readonly endpoints: Endpoints
  /** WebSocket upgrades at /$iothub/websocket, by subprotocol. */
  readonly websockets: WebSocketRouter
  readonly metrics: Metrics
  readonly engine: Engine
  readonly hubs: HubDirectory
  /** The hubs' cloud-to-device queues (send, purge, feedback) in this process. */
  readonly c2d: CloudToDevice
  readonly state: ServerState
  /** The hubs' durable telemetry (on SQLite): reads by partition from a sequence number, an offset or a time. */
  readonly telemetryStore: TelemetryStore | undefined
  close(graceMs?: number): Promise<void>
}

/**
 * How the hub events of one process reach the device connections held by the other processes of
 * `--workers` (cluster.ts relays them through the primary). It carries HubEventRelay's messages
 * (hub-events.ts); instances on PostgreSQL use the database's channel instead, which every
 * process hears.
 */
export interface HubRelay {
  /** Sends a message of this process to the other processes. */
  publish(message: string): void
  /** Subscribes to the other processes' messages; returns the unsubscribe. */
  subscribe(listener: (message: string) => void): () => void
}

/** How a process of `provisio serve --workers` differs from a lone server (cluster.ts). */
export interface StartOptions {
  /** Write `<data-dir>/endpoints.json` once listening (default true; with workers the primary writes it). */
  readonly writeEndpoints?: boolean
  /** TLS session-ticket keys (48 bytes) shared by every process on the ports, so a session resumes on any. */
  readonly ticketKeys?: Buffer
  /** Answers GET /metrics instead of this process's own metrics (every worker's, labelled). */
  readonly metricsText?: () => Promise<string>
  /** Desired-property changes and revoked identities to and from the other processes. */
  readonly hubRelay?: HubRelay
}

/** What the one-time set-up settled: the DPS instance, the TLS material, the served hubs. */
export interface ServeSetup {
  readonly state: ServerState
  readonly tls: { readonly key: string; readonly cert: string; readonly caPath: string }
  readonly hubStates: readonly (ServerState['hubs'][number] & { readonly config: HubConfig })[]
  readonly postgres: PostgresStores | undefined
  /** The CA issuing device certificates from CSRs (issuing-ca.ts). */
  readonly issuingCa: LoadedIssuingCa
}

/**
 * The data directory, the DPS instance (`state.json`, or the one shared through PostgreSQL), the
 * TLS material (configured files or the dev PKI) and the hubs to serve. Idempotent: the first
 * call creates what is missing, later ones load it.
 */
async function setUp(config: ServeConfig, log: Logger): Promise<ServeSetup> {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
  // Embedded hubs: as declared, or one named after the host.
  const hubConfigs: readonly HubConfig[] = config.hubs.length > 0 ? config.hubs : [{ hostName: config.host }]
  const local = loadOrCreateState(config.dataDir, hubConfigs.map((h) => h.hostName), config.servicePolicies)
  // ---- PostgreSQL (several instances on one database): opened first, since the DPS instance
  // state is shared through the database (see postgres.ts) ----
  const postgres: PostgresStores | undefined = isPostgresStore(config.store)
    ? await openPostgresStores(config.store, config.dataDir, local.state, log)
    : undefined
  // A shared state written by an older version gets rights and the default hub policies here too.
  const state = postgres === undefined ? local.state : settleState(postgres.state, [], config.servicePolicies).state
  const created = local.created && (postgres?.claimed ?? true)
  if (created) log.info('created a new DPS instance and embedded hub', { idScope: state.idScope, dataDir: config.dataDir })

  // TLS material: configured files, or the dev PKI in the data directory.
  let tls: { key: string; cert: string; caPath: string }
  try {
    if (config.certFile !== undefined && config.keyFile !== undefined) {
      tls = { key: readFileSync(config.keyFile, 'utf8'), cert: readFileSync(config.certFile, 'utf8'), caPath: config.certFile }
    } else {
      const names = unique([config.host, 'localhost', '127.0.0.1', ...config.hostNames, ...hubConfigs.map((h) => h.hostName)])
      const pki = await ensureDevPki(config.dataDir, names, Date.now())
      if (pki.created.ca) log.info('created a development CA', { path: pki.caCertificatePath })
      if (pki.created.server) log.info('issued a server certificate', { names: names.join(',') })
      tls = { key: pki.keyPem, cert: pki.certificatePem, caPath: pki.caCertificatePath }
    }
  } catch (error) {
    await postgres?.close()
    throw error
  }
  // The CA issuing device certificates from register calls' CSRs (docs/protocol.md §1.7).
  let issuingCa: LoadedIssuingCa
  try {
    issuingCa = await loadIssuingCa({
      dataDir: config.dataDir,
      idScope: state.idScope,
      ...(config.issuingCaCertFile === undefined ? {} : { certFile: config.issuingCaCertFile }),
      ...(config.issuingCaKeyFile === undefined ? {} : { keyFile: config.issuingCaKeyFile }),
      policy: { ...DEFAULT_CREDENTIAL_POLICY, validityDays: config.issuedCertificateDays },
      nowMs: Date.now(),
    })
    if (issuingCa.created) log.info('created an issuing CA for device certificates', { path: join(config.dataDir, ISSUING_CA_FILES.certificate) })
  } catch (error) {
    await postgres?.close()
    throw error
  }

  const declared = hubConfigs.map((c) => ({ config: c, state: state.hubs.find((h) => h.hostName.toLowerCase() === c.hostName.toLowerCase()) }))
  const hubStates = declared.flatMap((d) => (d.state === undefined ? [] : [{ ...d.state, config: d.config }]))
  if (hubStates.length !== declared.length) {
    log.warn('declared hubs missing from the shared state are not served', { missing: declared.filter((d) => d.state === undefined).map((d) => d.config.hostName).join(',') })
  }
  return { state, tls, hubStates, postgres, issuingCa }
}

/** The engine's and the hubs' stores: SQLite in the data directory by default, one database for both. */
function openStores(
  config: ServeConfig,
  postgres: PostgresStores | undefined,
): { store: Store; hubStore: HubStore; c2dStore: C2dStore; group?: GroupCommit; db?: Database.Database; close: () => void } {
  if (config.store === 'memory') return { store: new MemoryStore(), hubStore: new MemoryHubStore(), c2dStore: new MemoryC2dStore(), close: () => {} }
  if (config.store === 'sqlite' || config.store.startsWith('sqlite:')) {
    const db = new Database(sqliteFile(config))
    try {
      // One group commit for the engine's and the hub's writes: the writes of an event-loop turn
      // share one transaction, each answered after its COMMIT (see GroupCommit).
      // With --workers the other processes write to the same file: the lock is taken without
      // waiting inside SQLite (which would stall the event loop).
      // Under load, writes of the next few milliseconds join the group (--commit-interval-ms).
      const group = new GroupCommit(db, { otherWriters: config.workers > 1, minIntervalMs: config.commitIntervalMs })
      const store = createSqliteStore(db, { groupCommit: group })
      const hubStore = new SqliteHubStore(db, group)
      const c2dStore = new SqliteC2dStore(db, group)
      return {
        store,
        hubStore,
        c2dStore,
        group,
        db,
        close: () => {
          group.flush()
          db.close()
        },
      }
    } catch (error) {
      db.close()
      throw error
    }
  }
  if (postgres !== undefined) return { store: postgres.store, hubStore: postgres.hubStore, c2dStore: postgres.store.c2dStore, close: () => {} }
  throw new Error(`store ${JSON.stringify(config.store)} is not supported (use sqlite, sqlite:<path>, postgres://… or memory)`)
}

function sqliteFile(config: ServeConfig): string {
  return config.store === 'sqlite' ? join(config.dataDir, 'provisio.db') : config.store.slice('sqlite:'.length)
}

/**
 * The one-time set-up of `provisio serve --workers`, run by the primary before it forks: the data
 * directory, the DPS instance, the TLS material, and the store opened once (schema migrations,
 * the hub table) and closed again. Every worker then finds it all in place.
 */
export async function prepareServe(config: ServeConfig, log: Logger): Promise<ServeSetup> {
  const setup = await setUp(config, log)
  try {
    openStores(config, setup.postgres).close()
  } finally {
    await setup.postgres?.close()
  }
  return { ...setup, postgres: undefined }
}

/** What `endpoints.json` says for a server listening on `ports`. */
export function endpointsFor(config: ServeConfig, setup: Pick<ServeSetup, 'state' | 'tls' | 'hubStates'>, ports: Endpoints['ports']): Endpoints {
  const emulatorDir = config.emulatorDir ?? findEmulatorDist()
  return {
    idScope: setup.state.idScope,
    deviceEndpoint: config.host,
    serviceConnectionString: policyEndpoint(config.host, setup.state.servicePolicies[0]!).primaryConnectionString,
    caCertificate: setup.tls.caPath,
    ports,
    hubs: setup.hubStates.map((h) => ({ hostName: h.hostName, connectionString: hubConnectionString(h), policies: h.policies.map((p) => policyEndpoint(h.hostName, p)) })),
    servicePolicies: setup.state.servicePolicies.map((p) => policyEndpoint(config.host, p)),
    rateLimits: { registrationsPerMinute: config.registrationsPerMinute, pollsPer10Seconds: config.pollsPer10Seconds },
    ...(emulatorDir !== undefined && existsSync(join(emulatorDir, 'index.html')) ? { emulator: `https://${config.host}:${ports.https}/emulator/` } : {}),
  }
}

/** Writes `<data-dir>/endpoints.json` (atomically). */
export function writeEndpoints(config: ServeConfig, endpoints: Endpoints): void {
  writeFileAtomic(join(config.dataDir, 'endpoints.json'), JSON.stringify(endpoints, null, 2) + '\n')
}

export async function startServer(config: ServeConfig, log: Logger, options: StartOptions = {}): Promise<RunningServer> {
  const { state, tls, hubStates, postgres, issuingCa } = await setUp(config, log)
  let stores: ReturnType<typeof openStores>
  try {
    stores = openStores(config, postgres)
  } catch (error) {
    await postgres?.close()
    throw error
  }
  const { store, hubStore, c2dStore, group } = stores
  const closeDb = stores.close
  // SQLite's WAL checkpoints on a thread of their own, not inside a COMMIT on the event loop.
  let checkpointer: WalCheckpointer | undefined
  if (stores.db !== undefined && !stores.db.memory) {
    try {
      checkpointer = await startWalCheckpointer(stores.db, { onError: (error) => log.warn('WAL checkpoint', { error: error.message }) })
    } catch (error) {
      // Not fatal: the connection keeps checkpointing itself, as SQLite does by default.
      log.warn('WAL checkpoint thread not started; SQLite checkpoints inside commits', { error: (error as Error).message })
    }
  }

  const clock = { now: () => Date.now() }
  const random = pooledRandom()
  const hubs = new HubDirectory(hubStates.map((h) => new EmbeddedHub(h.hostName, { store: hubStore, clock, random })))
  // Desired changes and revocations reach device connections in every process (hub-events.ts):
  // instances on one PostgreSQL database tell each other over LISTEN/NOTIFY, the workers of one
  // instance on SQLite through the cluster primary.
  const origin = `${hostname()}:${process.pid}:${randomUUID()}`
  const hubEvents = new HubEventRelay({ origin, hubs: hubs.values(), onError: (message) => log.warn(message) })
  let hubChannel: NoticeChannel | undefined
  let offRelay: (() => void) | undefined
  if (postgres !== undefined) {
    try {
      hubChannel = await postgres.store.openChannel('hub-events', (message) => hubEvents.receive(message), {
        onError: (error) => log.warn('hub event channel', { error: error.message, code: (error as { code?: string }).code }),
      })
    } catch (error) {
      await postgres.close()
      throw error
    }
    hubEvents.connect(hubChannel)
  } else if (options.hubRelay !== undefined) {
    // --workers on SQLite: the cluster primary passes messages between the workers.
    const relay = options.hubRelay
    hubEvents.connect({ publish: async (message) => relay.publish(message) })
    offRelay = relay.subscribe((message) => hubEvents.receive(message))
  }
  // Policy and key changes of the shared DPS instance state reach every instance (shared-state.ts).
  let sharedState: SharedState | undefined
  // On SQLite, telemetry is durable: stored in a database file of its own (telemetry writes do not
  // queue behind registrations on one write lock) before the device's message is acknowledged.
  const telemetryStore =
    stores.db !== undefined && !stores.db.memory
      ? new SqliteTelemetryStore(join(dirname(sqliteFile(config)), 'telemetry.db'), {
          retentionMs: config.telemetryRetentionHours * 3600_000,
          maxBytes: config.telemetryMaxMb * 1024 * 1024,
          otherWriters: config.workers > 1,
          // `metrics` is set up below; the first drop comes only once messages flow.
          onDropped: (hub, reason, count) => metrics.hubTelemetryDropped.inc([hub, reason], count),
        })
      : undefined
  const closeStores = async () => {
    offRelay?.()
    await sharedState?.close()
    await checkpointer?.close()
    telemetryStore?.close()
    closeDb()
    await hubChannel?.close()
    await postgres?.close()
  }

  const instance: InstanceConfig = {
    idScope: state.idScope,
    serviceHostName: config.host,
    linkedHubs: hubStates.map((h) => ({
      hostName: h.hostName,
      connectionString: hubConnectionString(h),
      ...(h.config.allocationWeight === undefined ? {} : { allocationWeight: h.config.allocationWeight }),
      ...(h.config.applyAllocationPolicy === undefined ? {} : { applyAllocationPolicy: h.config.applyAllocationPolicy }),
    })),
    accessPolicies: accessPolicies(state),
  }
  // Attestation beyond symmetric keys (built into the engine): X.509 (docs/protocol.md §6; the
  // transports hand the TLS client chain over as evidence) and TPM (§5: challenge over HTTP 401 or
  // AMQP SASL TPM, hub key delivered as a fresh activation blob).
  const x509Verifier = createX509Verifier()
  const tpmVerifier = createTpmVerifier({ random })
  const engine = createEngine({
    verifiers: [x509Verifier, tpmVerifier],
    store,
    clock,
    random,
    hubGateway: createLocalHubGateway(
      hubs,
      createRestHubGateway({
        clock,
        fetch: (url, init) => fetch(url, { ...init, signal: AbortSignal.timeout(30_000) }),
      }),
    ),
    fetch: async (url, init) => {
      const res = await fetch(url, { method: init.method, headers: init.headers, body: init.body, signal: AbortSignal.timeout(init.timeoutMs) })
      return { status: res.status, text: () => res.text() }
    },
    // The budget's timer is cleared as soon as the assignment settles (one per register otherwise
    // stays pending for the whole budget).
    timers: {
      delay: (ms, until) =>
        new Promise((resolve) => {
          const timer = setTimeout(resolve, ms)
          const stop = () => clearTimeout(timer)
          until?.then(stop, stop)
        }),
    },
    instances: [instance],
    certificateAuthorities: { forInstance: (idScope) => (idScope === state.idScope ? issuingCa : undefined) },
    retryAfterSeconds: config.retryAfterSeconds,
    assignmentBudgetMs: config.assignmentBudgetMs,
    operationLeaseMs: config.operationLeaseMs,
    rateLimits: {
      registrationsPerScope: config.registrationsPerMinute > 0 ? { limit: config.registrationsPerMinute, windowMs: 60_000 } : false,
      pollsPerDevice: config.pollsPer10Seconds > 0 ? { limit: config.pollsPer10Seconds, windowMs: 10_000 } : false,
    },
  })
  // Fault injection (testing device retry logic): the configured profile applies from the start.
  if (config.faults !== undefined) {
    engine.setFaultProfile(state.idScope, config.faults)
    log.warn('fault injection is on', { idScope: state.idScope, faults: JSON.stringify(config.faults) })
  }
  const metrics = new Metrics()
  if (group !== undefined) metrics.watchSqlite(() => group.stats)
  engine.on('registrationAssigned', (e) => {
    metrics.registrations.inc(['assigned'])
    log.info('device assigned', { idScope: e.idScope, registrationId: e.registrationId, hub: e.assignedHub, deviceId: e.deviceId, substatus: e.substatus })
  })
  engine.on('registrationFailed', (e) => {
    if (e.stage === 'assignment') metrics.registrations.inc(['failed'])
    log.warn('registration refused', { idScope: e.idScope, registrationId: e.registrationId, stage: e.stage, errorCode: e.errorCode, reason: e.reason })
  })
  engine.on('listenerError', (e) => log.error('event listener failed', { event: e.event, error: e.error }))

  const startedAt = Date.now()
  let draining = false
  const ops: OpsHandler = (method, path) => {
    if (method !== 'GET') return undefined
    if (path === '/health') {
      const status = draining ? 503 : 200
      const body = JSON.stringify({ status: draining ? 'draining' : 'ok', uptimeSeconds: Math.round((Date.now() - startedAt) / 1000), idScope: state.idScope })
      return { status, headers: { 'content-type': 'application/json; charset=utf-8' }, body }
    }
    if (path === '/metrics') {
      const headers = { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }
      const render = options.metricsText
      return (render ?? (() => metrics.render()))().then((body) => ({ status: 200, headers, body }))
    }
    return undefined
  }
  // Policies and keys follow state.json: `provisio policies` changes count from the next request.
  // On PostgreSQL they also reach the other instances at once, and theirs reach this one.
  const stateFile = new StateFile(config.dataDir, state, {
    onChange: (next, source) => {
      engine.updateInstance({ ...engine.getInstance(state.idScope)!, accessPolicies: accessPolicies(next) })
      if (source === 'shared') return
      log.info('shared access policies reloaded', { file: join(config.dataDir, 'state.json') })
      void sharedState?.publish(next).catch((error: unknown) => log.warn('policy change not shared with the other instances', { error: (error as Error).message }))
    },
    onError: (message) => log.warn(message),
  })
  if (postgres !== undefined) {
    try {
      sharedState = await shareStateChanges({ store: postgres.store, stateFile: () => stateFile, dataDir: config.dataDir, origin, log })
    } catch (error) {
      await closeStores()
      throw error
    }
  }
  const hubPoliciesOf = (name: string) =>
    (stateFile.current().hubs.find((h) => h.hostName.toLowerCase() === name.toLowerCase())?.policies ?? []).map((p) => ({ ...p, rights: p.rights as HubPermission[] }))
  // The hubs' device side (MQTT): authentication (device keys, certificates, policies granting
  // DeviceConnect), twin, telemetry kept in memory per instance.
  // Certificates the instance's CA issued admit their device without a separate enrollment (docs/protocol.md §1.7).
  const hubDevices = createHubDevices({
    hubs,
    clock,
    trustedCas: () => trustedCaCertificates(store, state.idScope),
    issuedCertificates: { issuers: () => Promise.resolve([issuingCa.chain[0]!]) },
    policiesOf: hubPoliciesOf,
    ...(telemetryStore === undefined ? {} : { telemetryStore, telemetryPartitions: config.telemetryPartitions }),
  })
  // Direct method calls (@provisio/hub methods.ts): delivered to the device's connection here, or
  // through the hub event relay to the process that holds it.
  const directMethods = new DirectMethods({
    timers: { set: (ms, fire) => setTimeout(fire, ms).unref(), clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout> | undefined) },
    random,
    origin,
    // The device's MQTT connection, else its AMQP connection with method links attached.
    deliver: (hostName, deviceId, message) => mqtt.deliverToHubDevice(hostName, deviceId, message) ?? amqp.deliverToHubDevice(hostName, deviceId, message),
    ...(hubEvents.relaying ? { publish: (message: MethodRelayMessage) => hubEvents.publishMethod(message) } : {}),
    onEvent: (event) => {
      if (event.type === 'invoked') {
        metrics.hubMethods.inc([event.hostName, 'invoked'])
        log.debug('hub method invoked', { hub: event.hostName, deviceId: event.deviceId, method: event.methodName, rid: event.rid })
      } else if (event.type === 'answered') {
        metrics.hubMethods.inc([event.hostName, 'answered'])
        log.info('hub method answered', { hub: event.hostName, deviceId: event.deviceId, method: event.methodName, rid: event.rid, status: event.status })
      } else if (event.type === 'failed') {
        metrics.hubMethods.inc([event.hostName, event.outcome])
        log.info('hub method failed', { hub: event.hostName, deviceId: event.deviceId, method: event.methodName, rid: event.rid, outcome: event.outcome, reason: event.reason })
      } else log.debug('hub method response matches no call in flight', { hub: event.hostName, deviceId: event.deviceId, rid: event.rid })
    },
  })
  const offMethodRelay = hubEvents.onMethodMessage((message) => directMethods.receive(message))
  // Cloud-to-device queues (@provisio/hub c2d.ts) in the server's store, shared by every process on it.
  const c2d = new CloudToDevice({
    store: c2dStore,
    now: clock.now,
    random,
    lookupDevice: async (hostName, deviceId) => {
      const hub = hubs.find(hostName)
      const device = hub === undefined ? undefined : await hub.getDevice(deviceId)
      return device === undefined ? undefined : { deviceId: device.deviceId, generationId: device.generationId }
    },
    timers: { set: (ms, fire) => setTimeout(fire, ms).unref(), clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout> | undefined) },
    onEvent: (event) => {
      if (event.type === 'refused') {
        metrics.hubC2d.inc([event.hostName, 'refused'])
        log.info('cloud-to-device message refused', { hub: event.hostName, deviceId: event.deviceId, code: event.code, reason: event.reason })
      } else if (event.type === 'purged') {
        metrics.hubC2d.inc([event.hostName, 'purged'], event.count)
        log.info('cloud-to-device queue purged', { hub: event.hostName, deviceId: event.deviceId, count: event.count })
      } else if (event.type === 'feedback') {
        metrics.hubC2dFeedback.inc([event.hostName], event.records)
      } else {
        metrics.hubC2d.inc([event.hostName, event.type])
        log.debug(`cloud-to-device message ${event.type}`, { hub: event.hostName, deviceId: event.deviceId })
      }
    },
  })
  // A deleted device's queue and its feedback not yet batched go with it (the registry API drops
  // them before answering; this covers deletions by other paths, such as bulk operations).
  const offDeleted = [...hubs.values()].map((hub) =>
    hub.onIdentityRevoked((event) => {
      if (event.why !== 'deleted') return
      c2d.deviceDeleted(event.hostName, event.deviceId).catch((error: unknown) => log.warn('cloud-to-device queue of a deleted device not dropped', { hub: event.hostName, deviceId: event.deviceId, error: String(error) }))
    }),
  )
  const hubRegistry = loggingRefusals(createHubRegistryApi(hubs, hubPoliciesOf, clock, hubDevices.telemetry, directMethods, c2d), 'authorizeHub', log)
  const service = loggingRefusals(engine, 'authorizeService', log, () => stateFile.current())
  // Development reasons (dev-reasons.ts): refusals tell the device why; off when the server is exposed.
  const deviceApi = config.devReasons === true ? withDevReasons(engine) : engine
  if (config.devReasons === true) log.info('development reasons are on: refused devices are told why (--dev-reasons false turns this off)')
  const handler = createDpsHttpHandler({
    hub: hubRegistry,
    // The hubs' HTTPS device API: telemetry into the same sink as MQTT's.
    hubDevice: hubDevices.api,
    onHubDeviceEvent: (event) => {
      if (event.type === 'telemetry') {
        metrics.hubHttps.inc([event.route, 'accepted'])
        metrics.hubTelemetry.inc(['https'], event.messages)
      } else {
        metrics.hubHttps.inc([event.route, event.code])
        log.info('hub https request refused', { route: event.route, code: event.code, reason: event.reason })
      }
    },
    device: metrics.instrument(deviceApi, 'https'),
    service,
    certificates: createCaCertificateApi({ store, clock, random }),
    clock,
    trackingId: randomUUID,
  })
  // The browser emulator at /emulator/ and the web origins allowed on the device endpoints.
  const origins = new OriginPolicy(config.corsOrigins)
  const emulatorDir = config.emulatorDir ?? findEmulatorDist()
  if (config.emulatorDir !== undefined && !existsSync(join(config.emulatorDir, 'index.html'))) {
    log.warn('the emulator directory holds no index.html; /emulator/ will answer 404', { emulatorDir: config.emulatorDir })
  }
  let listeningPort = 0
  const emulator = createEmulatorSite(emulatorDir, () => ({ idScope: state.idScope, host: config.host, port: listeningPort }))
  const https = createHttpsListener({
    key: tls.key,
    cert: tls.cert,
    ...(options.ticketKeys === undefined ? {} : { ticketKeys: options.ticketKeys }),
    minTlsVersion: config.minTlsVersion,
    handler,
    ops,
    emulator,
    origins,
    log,
    // Direct method calls carry up to 128 KB of payload; the codec holds other routes to the DPS limit.
    maxBodyBytes: (target) => bodyLimitFor(target),
    trackingId: randomUUID,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    headersTimeoutMs: config.connectTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
  })
  // WebSocket transports (MQTT-WS, AMQP-WS) register their subprotocol handlers here; pages of
  // other origins than this server and corsOrigins are refused.
  const websockets = new WebSocketRouter(https, log, origins)

  // ---- AMQP (docs/protocol.md §4): AMQPS on amqpPort, AMQP over WebSockets (AMQPWSB10) on the HTTPS port ----
  const amqp = createAmqpTransport({
    key: tls.key,
    cert: tls.cert,
    ...(options.ticketKeys === undefined ? {} : { ticketKeys: options.ticketKeys }),
    minTlsVersion: config.minTlsVersion,
    device: metrics.instrument(deviceApi, 'amqp'),
    deviceWs: metrics.instrument(deviceApi, 'amqp-ws'),
    log,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    connectTimeoutMs: config.connectTimeoutMs,
    // The embedded hubs share the AMQP listeners; the host name a connection names picks the hub (docs/protocol.md §12.1).
    hub: {
      route: (hint) =>
        routeAmqp(
          hint,
          (name, by) => (by === 'host' ? hubs.find(name)?.hostName : hubs.hostNames().find((h) => h.split('.')[0]!.toLowerCase() === name.toLowerCase())),
          (hostName) => [config.host, ...config.hostNames].some((h) => h.toLowerCase() === hostName.toLowerCase()),
        ),
      api: hubDevices.api,
      // The service's sends on /messages/devicebound go to the cloud-to-device queues (docs/protocol.md §12.5).
      c2d,
      authorizeService: async (hostName, token) => {
        const named = hubRegistry.authorizeHub(token, 'ServiceConnect')
        if (named.toLowerCase() !== hostName.toLowerCase()) throw new ProvisioError('SAS_WRONG_RESOURCE', `the token is for hub ${named}, not ${hostName}`)
        // Valid while now < se + the clock skew allowed, as device tokens (SAS_DEFAULT_CLOCK_SKEW_SECONDS).
        return { expiresAtMs: (parseSasToken(token).se + SAS_DEFAULT_CLOCK_SKEW_SECONDS) * 1000 }
      },
      onEvent: (transport, event) => {
        if (event.type === 'telemetry') metrics.hubTelemetry.inc([transport])
        else if (event.type === 'token' && event.status !== 200) log.info('hub put-token refused', { transport, audience: event.audience, status: event.status, reason: event.reason })
        else if (event.type === 'linkRefused' || event.type === 'linkExpired' || event.type === 'telemetryRefused' || event.type === 'methodResponseRefused') log.info(`hub amqp ${event.type}`, { transport, reason: event.reason })
        else if (event.type === 'twin') {
          metrics.hubTwin.inc([transport, event.operation === 'patchReported' ? 'reportedPatch' : event.operation, String(event.status)])
          if (event.reason !== undefined) log.debug('hub twin request answered', { transport, deviceId: event.deviceId, operation: event.operation, status: event.status, reason: event.reason })
        }
      },
      onDesiredChange: (listener) => hubEvents.onDesiredChange(listener),
      onDesiredPushed: (delivered) => metrics.hubDesiredPushes.inc([delivered ? 'sent' : 'not_sent']),
      onIdentityRevoked: (listener) => hubEvents.onIdentityRevoked(listener),
      methods: () => directMethods,
    },
  })
  websockets.register('AMQPWSB10', counted('amqp-ws', amqp.websocket))
  // ---- end AMQP ----

  // ---- MQTT (docs/protocol.md §3): MQTTS on mqttPort, MQTT over WebSockets (subprotocol mqtt) on the HTTPS port ----
  const mqtt = createMqttTransport({
    key: tls.key,
    cert: tls.cert,
    ...(options.ticketKeys === undefined ? {} : { ticketKeys: options.ticketKeys }),
    minTlsVersion: config.minTlsVersion,
    device: metrics.instrument(deviceApi, 'mqtt'),
    deviceWs: metrics.instrument(deviceApi, 'mqtt-ws'),
    log,
    // The embedded hubs' device endpoint shares the listeners; the CONNECT username picks the dialect.
    hub: {
      api: hubDevices.api,
      isHub: hubDevices.isHub,
      onDesiredChange: (listener) => hubEvents.onDesiredChange(listener),
      // Sessions of clean-session-0 devices, in memory per process (@provisio/hub README).
      sessions: new MemoryHubSessions(),
      onEvent: (transport, event, closed) => {
        if (event.type === 'connected') {
          metrics.hubConnections.inc([transport, 'accepted'])
          metrics.trackHubDevice(transport, closed)
        }
        else if (event.type === 'refused') metrics.hubConnections.inc([transport, `refused_${event.returnCode}`])
        else if (event.type === 'telemetry') metrics.hubTelemetry.inc([transport])
        else if (event.type === 'twin') metrics.hubTwin.inc([transport, event.operation, String(event.status)])
      },
      onIdentityRevoked: (listener) => hubEvents.onIdentityRevoked(listener),
      methods: () => directMethods,
      onDesiredPushed: (delivered) => metrics.hubDesiredPushes.inc([delivered ? 'sent' : 'not_sent']),
    },
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    limits: { connectTimeoutMs: config.connectTimeoutMs },
  })
  websockets.register('mqtt', counted('mqtt-ws', mqtt.websocket))
  // ---- end MQTT ----

  // Open connections per listener, from the TCP accept (before TLS), for /metrics; and every one
  // of them held for shutdown, which destroys what is left at its deadline.
  const connections = new ConnectionSet()
  // IP filters: the DPS instance's, and each hub's for connections to its host name.
  const refuseByIp = ipFilterGuard(config, hubStates)
  for (const [listener, server] of [['https', https], ['amqps', amqp.server], ['mqtts', mqtt.server]] as const) {
    metrics.connections.inc([listener], 0)
    server.on('connection', (socket: Socket) => metrics.track(listener, socket))
    connections.watch(server)
    if (refuseByIp !== undefined) guardConnections(server, refuseByIp, (reason, remote) => log.info('connection refused by IP filter', { listener, remote, reason }))
  }
  function counted(listener: string, handler: WebSocketHandler): WebSocketHandler {
    metrics.connections.inc([listener], 0)
    return (connection) => {
      metrics.track(listener, connection.socket)
      handler(connection)
    }
  }

  try {
    await listenOn(https, config.httpsPort, config.bind, { protocol: 'HTTPS', flag: '--https-port' })
    await listenAmqp(amqp.server, config.amqpPort, config.bind)
    await listenMqtt(mqtt.server, config.mqttPort, config.bind)
  } catch (error) {
    // Nothing half-started stays behind: close whatever did start, and the stores.
    for (const server of [https, amqp.server, mqtt.server]) if (server.listening) server.close()
    await closeStores()
    throw error
  }
  const port = (https.address() as AddressInfo).port
  listeningPort = port
  const amqpPort = (amqp.server.address() as AddressInfo).port
  const mqttPort = (mqtt.server.address() as AddressInfo).port

  const endpoints = endpointsFor(config, { state, tls, hubStates }, { https: port, amqp: amqpPort, mqtt: mqttPort })
  if (options.writeEndpoints !== false) writeEndpoints(config, endpoints)
  let closed = false
  return {
    endpoints,
    websockets,
    metrics,
    engine,
    hubs,
    c2d,
    state,
    telemetryStore,
    /**
     * Graceful shutdown: stop accepting connections, let in-flight requests finish (idle
     * keep-alive connections are closed at once), and at `graceMs` destroy every connection
     * still open on any listener, whatever its peer does (upgraded, refused, mid-handshake or
     * silent ones included); then wait for running assignments (bounded by `graceMs` again) and
     * close the database.
     */
    async close(graceMs = 10_000) {
      if (closed) return
      closed = true
      draining = true
      // Method calls waiting for devices are answered now (503) rather than holding the HTTPS close.
      offMethodRelay()
      directMethods.stop()
      c2d.stop()
      for (const off of offDeleted) off()
      let forced = 0
      const force = setTimeout(() => {
        https.closeAllConnections()
        websockets.closeAll()
        forced = connections.destroyAll()
      }, graceMs)
      force.unref()
      const amqpClosed = amqp.close(graceMs)
      const mqttClosed = mqtt.close(graceMs)
      const httpsClosed = new Promise<void>((resolve) => https.close(() => resolve()))
      https.closeIdleConnections()
      await Promise.all([httpsClosed, amqpClosed, mqttClosed])
      clearTimeout(force)
      if (forced > 0) log.info('connections still open at the shutdown deadline were destroyed', { connections: forced, graceMs })
      // Assignments answered with 202 may still be running: let them finish (bounded) before the
      // store closes, so none is left half-done.
      await Promise.race([engine.drain(), new Promise((resolve) => setTimeout(resolve, graceMs).unref())])
      await closeStores()
      log.info('stopped')
    },
  }
}

function hubConnectionString(h: ServerState['hubs'][number]): string {
  return policyEndpoint(h.hostName, h.policies[0]!).primaryConnectionString
}

function policyEndpoint(hostName: string, p: PolicyState): PolicyEndpoint {
  const cs = (key: string) => formatSharedAccessKeyConnectionString({ hostName, sharedAccessKeyName: p.name, sharedAccessKey: key })
  return { name: p.name, rights: p.rights, primaryConnectionString: cs(p.primaryKey), secondaryConnectionString: cs(p.secondaryKey) }
}

function accessPolicies(state: ServerState): InstanceConfig['accessPolicies'] {
  return state.servicePolicies.map((p) => ({ name: p.name, primaryKey: p.primaryKey, secondaryKey: p.secondaryKey, permissions: p.rights as ServicePermission[] }))
}

/**
 * The same API whose `method` (a token check) first runs `before` and logs a refusal with its
 * reason (which policy lacked which right, or why the token failed); the client sees Azure's
 * generic answer only.
 */
function loggingRefusals<T extends object, K extends keyof T & string>(api: T, method: K, log: Logger, before?: () => void): T {
  const check = api[method] as unknown as (...args: unknown[]) => unknown
  const wrapped = Object.create(api) as T
  Object.defineProperty(wrapped, method, {
    value: (...args: unknown[]) => {
      before?.()
      try {
        return check.apply(api, args)
      } catch (error) {
        const err = error as { code?: string; reason?: string }
        log.warn('service request refused', { check: method, code: err.code, reason: err.reason ?? String(error) })
        throw error
      }
    },
  })
  return wrapped
}

/**
 * The IP filter check of a connection, or undefined when no rule is configured: the DPS
 * instance's rules apply to connections for its host (and to those naming no known host), a hub's
 * to connections for the hub's host name; a hub sharing the DPS host name needs both to accept.
 */
function ipFilterGuard(config: ServeConfig, hubStates: ServeSetup['hubStates']): ((servername: string | undefined, address: string) => string | undefined) | undefined {
  const filters = new Map<string, { readonly what: string; readonly rules: readonly IpFilterRule[] }[]>()
  const add = (host: string, what: string, rules: readonly IpFilterRule[] | undefined) => {
    if (rules === undefined || rules.length === 0) return
    const key = host.toLowerCase()
    filters.set(key, [...(filters.get(key) ?? []), { what, rules }])
  }
  add(config.host, `DPS ${config.host}`, config.ipFilter)
  for (const h of hubStates) add(h.hostName, `hub ${h.hostName}`, h.config.ipFilter)
  if (filters.size === 0) return undefined
  const dps = filters.get(config.host.toLowerCase()) ?? []
  const hubHosts = new Set(hubStates.map((h) => h.hostName.toLowerCase()))
  return (servername, address) => {
    const name = servername?.toLowerCase()
    const applying = name !== undefined && hubHosts.has(name) ? (filters.get(name) ?? []) : dps
    for (const f of applying) {
      const verdict = ipFilterVerdict(f.rules, address)
      if (verdict.action === 'Reject') return `${f.what}: rule ${verdict.rule ?? '?'} rejects ${address}`
    }
    return undefined
  }
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => n.toLowerCase()))]
}
