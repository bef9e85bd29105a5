/**
 * Configuration of `provisio serve`. Sources, later ones winning: built-in defaults, a JSON config
 * file (`--config`, `PROVISIO_CONFIG`), environment variables (`PROVISIO_*`), command-line flags.
 * Every value is checked here, so a typo fails at start with the name of the setting.
 */
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import type { FaultProfile } from '@provisio/engine'
import { DPS_RIGHTS, DPS_OWNER_POLICY, parseIpFilterRules, parseRights, type IpFilterRule, type ServicePermission } from '@provisio/protocol'
import { MAX_COMMIT_INTERVAL_MS } from '@provisio/store-sqlite'
import { isLoopbackBind } from './dev-reasons.js'
import { DEFAULT_CORS_ORIGINS, normaliseOrigin } from './origins.js'
import type { MinTlsVersion } from './listen.js'

export type LogLevel = 'error' | 'warn' | 'info' | 'debug'

/** An embedded hub and how DPS allocates to it (docs/architecture.md §7). */
export interface HubConfig {
  readonly hostName: string
  /** Weight for hashed allocation, 1-1000 (default 1). */
  readonly allocationWeight?: number
  /** Whether the instance's allocation policy may choose it (default true). */
  readonly applyAllocationPolicy?: boolean
  /** IP filter rules of the hub (protocol ip-filter.ts; config file only). */
  readonly ipFilter?: readonly IpFilterRule[]
}

/** A DPS shared access policy declared in the configuration; its keys live in `state.json`. */
export interface PolicyConfig {
  readonly name: string
  /** Azure's rights (protocol access.ts DPS_RIGHTS). */
  readonly rights: readonly ServicePermission[]
}

export interface ServeConfig {
  /** Host name devices and SDKs use to reach this server (TLS SNI, certificate SAN). */
  readonly host: string
  /** Further names and addresses the server certificate must cover. */
  readonly hostNames: readonly string[]
  /** Embedded hubs linked to the DPS instance; none declared means one hub named after `host`. */
  readonly hubs: readonly HubConfig[]
  /** Address the listeners bind (default loopback only). */
  readonly bind: string
  readonly httpsPort: number
  readonly mqttPort: number
  readonly amqpPort: number
  readonly dataDir: string
  /** `sqlite` (default: <data-dir>/provisio.db), `sqlite:<path>`, `postgres://…` (postgres.ts) or `memory`. */
  readonly store: string
  /** PEM files replacing the generated dev PKI. */
  readonly certFile?: string
  readonly keyFile?: string
  /**
   * The CA that issues device certificates from CSRs (docs/protocol.md §1.7): a PEM chain (issuing CA
   * first) and its private key. Default: an issuing CA generated under the dev root in the data directory.
   */
  readonly issuingCaCertFile?: string
  readonly issuingCaKeyFile?: string
  /** Validity of issued device certificates, days (7-90, default 30). */
  readonly issuedCertificateDays: number
  readonly logLevel: LogLevel
  /** Seconds devices are told to wait between polls (Retry-After of 202 answers). */
  readonly retryAfterSeconds: number
  /**
   * How long register may wait for the assignment before answering 202 (0 = always 202, like DPS).
   * Default 5,000: a local assignment takes milliseconds, so register answers `200 assigned` and the
   * device never waits a Retry-After; every Microsoft device transport and @provisio/device accept it
   * (README "Fast path"). `0` gives Azure's exact flow: 202 `assigning`, then polls.
   */
  readonly assignmentBudgetMs: number
  /**
   * How long an operation stays leased to the instance running its assignment; after that any
   * instance polling it takes it over (an instance killed mid-assignment). Default 30,000.
   */
  readonly operationLeaseMs: number
  /** Register calls per minute per ID scope (DPS default 1,000); 0 turns the limit off. */
  readonly registrationsPerMinute: number
  /** Operation-status polls per device per 10 s (DPS default 5); 0 turns the limit off. */
  readonly pollsPer10Seconds: number
  /** A TLS handshake not finished this long after the TCP connect is cut (every listener). Default 10,000. */
  readonly handshakeTimeoutMs: number
  /**
   * After the handshake, how long a connection may take to open its protocol: the first HTTP
   * request's header block, the MQTT CONNECT, the AMQP header + SASL + open. Default 10,000.
   */
  readonly connectTimeoutMs: number
  /** An HTTP request (headers and body) not received in full this long after it began is cut with 408. Default 30,000. */
  readonly requestTimeoutMs: number
  /** Fault-injection profile applied to the DPS instance at start (engine faults.ts); none by default. */
  readonly faults?: FaultProfile
  /** IP filter rules of the DPS instance: first match wins, no match accepts (protocol ip-filter.ts). */
  readonly ipFilter: readonly IpFilterRule[]
  /** Oldest TLS version every listener accepts: 1.2 (default) or 1.3. */
  readonly minTlsVersion: MinTlsVersion
  /** DPS shared access policies besides `provisioningserviceowner` (state.ts keeps their keys). */
  readonly servicePolicies: readonly PolicyConfig[]
  /**
   * Origins of web pages (besides this server's own /emulator/) that may call the DPS device API
   * and open WebSockets at /$iothub/websocket; `*` allows any. Default: the emulator's Vite dev server.
   */
  readonly corsOrigins: readonly string[]
  /** Directory of the browser emulator's build served at /emulator/ (default: @provisio/emulator's dist, when installed). */
  readonly emulatorDir?: string
  /**
   * Server processes sharing the listening ports (node:cluster): 1 runs everything in this
   * process; more fork that many workers from a primary (`auto`: one per CPU). Needs a store
   * the processes share (SQLite or PostgreSQL).
   */
  readonly workers: number
  /**
   * SQLite store: least time between two group commits, ms (GroupCommit `minIntervalMs`). Under
   * load the writes of that span share one transaction; 0 commits every event-loop turn's writes
   * at once. Default 2.
   */
  readonly commitIntervalMs: number
  /**
   * Refused devices are told the service's reason in the error message, and MQTT / AMQP check
   * credentials at the request instead of CONNECT / SASL (dev-reasons.ts). Default: on when `bind`
   * is loopback only (resolveConfig), off when unset in code.
   */
  readonly devReasons?: boolean
  /** Partitions of each hub's stored telemetry, chosen by a hash of the device id (1 to 32, default 4). */
  readonly telemetryPartitions: number
  /** How long stored telemetry is kept, hours (1 to 168, default 24). */
  readonly telemetryRetentionHours: number
  /** Payload megabytes of telemetry kept per hub; beyond it the oldest go first (default 256). */
  readonly telemetryMaxMb: number
}

/** Most workers accepted (more processes than this on one SQLite file only contend). */
export const MAX_WORKERS = 64

export const DEFAULT_CONFIG: ServeConfig = Object.freeze({
  host: 'localhost',
  hostNames: [],
  hubs: [],
  servicePolicies: [],
  minTlsVersion: '1.2',
  ipFilter: [],
  bind: '127.0.0.1',
  httpsPort: 8443,
  mqttPort: 8883,
  amqpPort: 5671,
  dataDir: '.provisio',
  store: 'sqlite',
  logLevel: 'info',
  retryAfterSeconds: 3,
  assignmentBudgetMs: 5000,
  operationLeaseMs: 30_000,
  registrationsPerMinute: 1000,
  issuedCertificateDays: 30,
  pollsPer10Seconds: 5,
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  corsOrigins: DEFAULT_CORS_ORIGINS,
  workers: 1,
  commitIntervalMs: 2,
  telemetryPartitions: 4,
  telemetryRetentionHours: 24,
  telemetryMaxMb: 256,
})

/** One setting: its config-file key, environment variable and flag. */
interface Setting {
  readonly key: keyof ServeConfig
  readonly env: string
  readonly flag: string
  readonly kind: 'string' | 'port' | 'list' | 'level' | 'seconds' | 'ms' | 'timeout' | 'count' | 'hubs' | 'policies' | 'tls' | 'ipfilter' | 'faults' | 'origins' | 'workers' | 'switch'
  readonly help: string
}

export const SETTINGS: readonly Setting[] = [
  { key: 'host', env: 'PROVISIO_HOST', flag: 'host', kind: 'string', help: 'host name devices connect to (default localhost)' },
  { key: 'hubs', env: 'PROVISIO_HUBS', flag: 'hubs', kind: 'hubs', help: 'embedded hubs: host names, comma-separated (the config file also takes weights)' },
  { key: 'hostNames', env: 'PROVISIO_HOST_NAMES', flag: 'host-names', kind: 'list', help: 'extra certificate names, comma-separated' },
  { key: 'bind', env: 'PROVISIO_BIND', flag: 'bind', kind: 'string', help: 'listen address (default 127.0.0.1; 0.0.0.0 for all)' },
  { key: 'httpsPort', env: 'PROVISIO_HTTPS_PORT', flag: 'https-port', kind: 'port', help: 'HTTPS + WebSocket port (default 8443; 443 as root)' },
  { key: 'mqttPort', env: 'PROVISIO_MQTT_PORT', flag: 'mqtt-port', kind: 'port', help: 'MQTTS port (default 8883)' },
  { key: 'amqpPort', env: 'PROVISIO_AMQP_PORT', flag: 'amqp-port', kind: 'port', help: 'AMQPS port (default 5671)' },
  { key: 'dataDir', env: 'PROVISIO_DATA_DIR', flag: 'data-dir', kind: 'string', help: 'data directory (default ./.provisio)' },
  { key: 'store', env: 'PROVISIO_STORE', flag: 'store', kind: 'string', help: 'sqlite | sqlite:<path> | postgres://user@host/db[?schema=s] | memory (default sqlite)' },
  { key: 'certFile', env: 'PROVISIO_CERT_FILE', flag: 'cert', kind: 'string', help: 'TLS certificate PEM (default: generated dev PKI)' },
  { key: 'keyFile', env: 'PROVISIO_KEY_FILE', flag: 'key', kind: 'string', help: 'TLS private key PEM' },
  { key: 'issuingCaCertFile', env: 'PROVISIO_ISSUING_CA_CERT', flag: 'issuing-ca-cert', kind: 'string', help: 'CA issuing device certificates from CSRs: PEM chain, issuing CA first (default: generated under the dev root)' },
  { key: 'issuingCaKeyFile', env: 'PROVISIO_ISSUING_CA_KEY', flag: 'issuing-ca-key', kind: 'string', help: 'private key PEM of --issuing-ca-cert' },
  { key: 'issuedCertificateDays', env: 'PROVISIO_ISSUED_CERTIFICATE_DAYS', flag: 'issued-certificate-days', kind: 'count', help: 'validity of issued device certificates, days (7-90, default 30)' },
  { key: 'logLevel', env: 'PROVISIO_LOG_LEVEL', flag: 'log-level', kind: 'level', help: 'error | warn | info | debug (default info)' },
  { key: 'retryAfterSeconds', env: 'PROVISIO_RETRY_AFTER', flag: 'retry-after', kind: 'seconds', help: 'polling interval told to devices, s (default 3)' },
  { key: 'assignmentBudgetMs', env: 'PROVISIO_ASSIGNMENT_BUDGET_MS', flag: 'assignment-budget-ms', kind: 'ms', help: 'register answers 200 assigned when the assignment is done within this, ms (default 5000; 0 = always 202 assigning, then polls, as Azure DPS)' },
  { key: 'registrationsPerMinute', env: 'PROVISIO_REGISTRATIONS_PER_MINUTE', flag: 'registrations-per-minute', kind: 'count', help: 'register calls per minute per ID scope (default 1000, as DPS; 0 = no limit)' },
  { key: 'pollsPer10Seconds', env: 'PROVISIO_POLLS_PER_10S', flag: 'polls-per-10s', kind: 'count', help: 'status polls per device per 10 s (default 5, as DPS; 0 = no limit)' },
  { key: 'handshakeTimeoutMs', env: 'PROVISIO_HANDSHAKE_TIMEOUT_MS', flag: 'handshake-timeout-ms', kind: 'timeout', help: 'TLS handshake must finish within this, ms (default 10000)' },
  { key: 'connectTimeoutMs', env: 'PROVISIO_CONNECT_TIMEOUT_MS', flag: 'connect-timeout-ms', kind: 'timeout', help: 'after TLS: first HTTP header block, MQTT CONNECT, AMQP open within this, ms (default 10000)' },
  { key: 'requestTimeoutMs', env: 'PROVISIO_REQUEST_TIMEOUT_MS', flag: 'request-timeout-ms', kind: 'timeout', help: 'whole HTTP request (headers and body) within this, ms (default 30000)' },
  { key: 'ipFilter', env: 'PROVISIO_IP_FILTER', flag: 'ip-filter', kind: 'ipfilter', help: 'DPS IP filter: JSON [{filterName, action: Accept|Reject, ipMask}] or @file; first match wins' },
  { key: 'minTlsVersion', env: 'PROVISIO_MIN_TLS_VERSION', flag: 'min-tls-version', kind: 'tls', help: 'oldest TLS version of every listener: 1.2 (default) or 1.3' },
  { key: 'servicePolicies', env: 'PROVISIO_SERVICE_POLICIES', flag: 'service-policies', kind: 'policies', help: 'DPS access policies: name:Right+Right, comma-separated (config file: [{name, rights}])' },
  { key: 'faults', env: 'PROVISIO_FAULTS', flag: 'faults', kind: 'faults', help: 'fault-injection profile: JSON or @file with throttleRegister, serverErrorPoll … (testing only)' },
  { key: 'corsOrigins', env: 'PROVISIO_CORS_ORIGINS', flag: 'cors-origins', kind: 'origins', help: `web page origins allowed on the device API and WebSockets, comma-separated; * for any (default ${DEFAULT_CORS_ORIGINS.join(',')})` },
  { key: 'emulatorDir', env: 'PROVISIO_EMULATOR_DIR', flag: 'emulator-dir', kind: 'string', help: 'build of the browser emulator served at /emulator/ (default: @provisio/emulator dist)' },
  { key: 'operationLeaseMs', env: 'PROVISIO_OPERATION_LEASE_MS', flag: 'operation-lease-ms', kind: 'ms', help: 'lease of a running assignment; another instance takes over after it (default 30000)' },
  { key: 'commitIntervalMs', env: 'PROVISIO_COMMIT_INTERVAL_MS', flag: 'commit-interval-ms', kind: 'ms', help: 'SQLite: least time between two commits, ms; writes meanwhile share one (default 2; 0 = every turn)' },
  { key: 'telemetryPartitions', env: 'PROVISIO_TELEMETRY_PARTITIONS', flag: 'telemetry-partitions', kind: 'count', help: 'partitions of each hub\'s stored telemetry, by device id hash: 1 to 32 (default 4)' },
  { key: 'telemetryRetentionHours', env: 'PROVISIO_TELEMETRY_RETENTION_HOURS', flag: 'telemetry-retention-hours', kind: 'count', help: 'how long stored telemetry is kept, hours: 1 to 168 (default 24)' },
  { key: 'telemetryMaxMb', env: 'PROVISIO_TELEMETRY_MAX_MB', flag: 'telemetry-max-mb', kind: 'count', help: 'payload megabytes of telemetry kept per hub, oldest dropped first (default 256)' },
  { key: 'devReasons', env: 'PROVISIO_DEV_REASONS', flag: 'dev-reasons', kind: 'switch', help: 'tell refused devices the reason (true | false; default true when --bind is loopback only)' },
  { key: 'workers', env: 'PROVISIO_WORKERS', flag: 'workers', kind: 'workers', help: `server processes sharing the ports: 1 to ${MAX_WORKERS}, or auto (one per CPU); default 1 (needs sqlite or postgres)` },
]

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly code = 'CONFIG_INVALID'
}

function parseValue(setting: Setting, raw: unknown, source: string, cwd: string): unknown {
  const where = `${setting.key} (${source})`
  switch (setting.kind) {
    case 'string':
      if (typeof raw !== 'string' || raw.trim() === '') throw new ConfigError(`${where} must be a non-empty string`)
      return raw.trim()
    case 'list': {
      const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined
      if (items === undefined || !items.every((x) => typeof x === 'string')) throw new ConfigError(`${where} must be a list of strings`)
      return items.map((x: string) => x.trim()).filter((x: string) => x !== '')
    }
    case 'port': {
      const n = typeof raw === 'number' ? raw : Number(raw)
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`${where} must be a port number 0-65535, got ${JSON.stringify(raw)}`)
      return n
    }
    case 'seconds':
    case 'ms': {
      const n = typeof raw === 'number' ? raw : Number(raw)
      const max = setting.kind === 'seconds' ? 300 : 60_000
      if (!Number.isInteger(n) || n < 0 || n > max) throw new ConfigError(`${where} must be an integer from 0 to ${max}, got ${JSON.stringify(raw)}`)
      if (setting.kind === 'seconds' && n < 1) throw new ConfigError(`${where} must be at least 1`)
      return n
    }
    case 'timeout': {
      const n = typeof raw === 'number' ? raw : Number(raw)
      if (!Number.isInteger(n) || n < 100 || n > 600_000) throw new ConfigError(`${where} must be an integer from 100 to 600000 (ms), got ${JSON.stringify(raw)}`)
      return n
    }
    case 'faults':
      return parseFaultProfile(raw, where, cwd)
    case 'count': {
      const n = typeof raw === 'number' ? raw : Number(raw)
      if (!Number.isInteger(n) || n < 0 || n > 1_000_000_000) throw new ConfigError(`${where} must be a whole number from 0 to 1000000000, got ${JSON.stringify(raw)}`)
      return n
    }
    case 'hubs': {
      // Flags and environment give host names; the config file may give objects with weights.
      const items: unknown[] = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',').map((x) => x.trim()).filter((x) => x !== '') : []
      if (!Array.isArray(raw) && typeof raw !== 'string') throw new ConfigError(`${where} must be a list of hubs`)
      if (items.length > 50) throw new ConfigError(`${where} may declare at most 50 hubs (DPS links at most 50)`)
      const hubs = items.map((item, i): HubConfig => {
        const hub = typeof item === 'string' ? { hostName: item } : item
        if (typeof hub !== 'object' || hub === null || Array.isArray(hub)) throw new ConfigError(`${where}[${i}] must be a host name or an object with hostName`)
        const { hostName, allocationWeight, applyAllocationPolicy, ipFilter, ...rest } = hub as Record<string, unknown>
        if (Object.keys(rest).length > 0) throw new ConfigError(`${where}[${i}] has unknown member "${Object.keys(rest)[0]}"`)
        if (typeof hostName !== 'string' || !/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(hostName)) {
          throw new ConfigError(`${where}[${i}].hostName must be a DNS host name`)
        }
        if (allocationWeight !== undefined && (!Number.isInteger(allocationWeight) || (allocationWeight as number) < 1 || (allocationWeight as number) > 1000)) {
          throw new ConfigError(`${where}[${i}].allocationWeight must be an integer from 1 to 1000`)
        }
        if (applyAllocationPolicy !== undefined && typeof applyAllocationPolicy !== 'boolean') {
          throw new ConfigError(`${where}[${i}].applyAllocationPolicy must be true or false`)
        }
        return {
          hostName,
          ...(allocationWeight === undefined ? {} : { allocationWeight: allocationWeight as number }),
          ...(applyAllocationPolicy === undefined ? {} : { applyAllocationPolicy }),
          ...(ipFilter === undefined ? {} : { ipFilter: parseIpFilter(ipFilter, `${where}[${i}].ipFilter`) }),
        }
      })
      const names = new Set(hubs.map((h) => h.hostName.toLowerCase()))
      if (names.size !== hubs.length) throw new ConfigError(`${where} names a hub twice`)
      return hubs
    }
    case 'ipfilter':
      return parseIpFilter(typeof raw === 'string' ? jsonValue(raw, where, cwd, 'a JSON list') : raw, where)
    case 'tls':
      if (raw !== '1.2' && raw !== '1.3') throw new ConfigError(`${where} must be 1.2 or 1.3, got ${JSON.stringify(raw)}`)
      return raw
    case 'policies':
      return parsePolicies(raw, where)
    case 'origins': {
      const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined
      if (items === undefined || !items.every((x) => typeof x === 'string')) throw new ConfigError(`${where} must be a list of origins`)
      const list = items.map((x: string) => x.trim()).filter((x: string) => x !== '')
      if (list.length > 100) throw new ConfigError(`${where} may list at most 100 origins`)
      return list.map((entry: string) => {
        try {
          return normaliseOrigin(entry)
        } catch (error) {
          throw new ConfigError(`${where}: ${(error as Error).message}`)
        }
      })
    }
    case 'workers': {
      if (raw === 'auto') return Math.min(MAX_WORKERS, availableParallelism())
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN
      if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw new ConfigError(`${where} must be a whole number from 1 to ${MAX_WORKERS}, or auto, got ${JSON.stringify(raw)}`)
      return n
    }
    case 'switch':
      if (raw === true || raw === 'true' || raw === 'on' || raw === '1') return true
      if (raw === false || raw === 'false' || raw === 'off' || raw === '0') return false
      throw new ConfigError(`${where} must be true or false, got ${JSON.stringify(raw)}`)
    case 'level':
      if (raw !== 'error' && raw !== 'warn' && raw !== 'info' && raw !== 'debug') {
        throw new ConfigError(`${where} must be one of error, warn, info, debug`)
      }
      return raw
  }
}

/**
 * Resolves the configuration.
 * @param flags parsed command-line flags, by flag name (strings)
 * @param env the process environment
 * @param cwd base of relative paths
 */
export function resolveConfig(flags: Readonly<Record<string, string | undefined>>, env: NodeJS.ProcessEnv, cwd: string): ServeConfig {
  const out: Record<string, unknown> = { ...DEFAULT_CONFIG }
  const file = flags.config ?? env.PROVISIO_CONFIG
  if (file !== undefined) {
    let json: unknown
    try {
      json = JSON.parse(readFileSync(resolve(cwd, file), 'utf8'))
    } catch (error) {
      throw new ConfigError(`config file ${file}: ${(error as Error).message}`)
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`config file ${file} must hold a JSON object`)
    for (const [k, v] of Object.entries(json)) {
      const setting = SETTINGS.find((s) => s.key === k)
      if (setting === undefined) throw new ConfigError(`config file ${file}: unknown setting "${k}" (known: ${SETTINGS.map((s) => s.key).join(', ')})`)
      out[k] = parseValue(setting, v, `config file ${file}`, cwd)
    }
  }
  for (const s of SETTINGS) {
    const v = env[s.env]
    if (v !== undefined && v !== '') out[s.key] = parseValue(s, v, `environment ${s.env}`, cwd)
  }
  for (const s of SETTINGS) {
    const v = flags[s.flag]
    if (v !== undefined) out[s.key] = parseValue(s, v, `--${s.flag}`, cwd)
  }
  const config = out as unknown as ServeConfig
  if (config.connectTimeoutMs > config.requestTimeoutMs) {
    throw new ConfigError(`connectTimeoutMs (${config.connectTimeoutMs}) must not exceed requestTimeoutMs (${config.requestTimeoutMs}): the header block is part of the request`)
  }
  if (config.telemetryPartitions < 1 || config.telemetryPartitions > 32) throw new ConfigError(`telemetryPartitions must be 1 to 32, got ${config.telemetryPartitions}`)
  if (config.telemetryRetentionHours < 1 || config.telemetryRetentionHours > 168) throw new ConfigError(`telemetryRetentionHours must be 1 to 168, got ${config.telemetryRetentionHours}`)
  if (config.telemetryMaxMb < 1) throw new ConfigError(`telemetryMaxMb must be at least 1, got ${config.telemetryMaxMb}`)
  if (config.commitIntervalMs > MAX_COMMIT_INTERVAL_MS) {
    throw new ConfigError(`commitIntervalMs must be 0 to ${MAX_COMMIT_INTERVAL_MS} ms, got ${config.commitIntervalMs}: a longer pause only delays every answer`)
  }
  if ((config.certFile === undefined) !== (config.keyFile === undefined)) throw new ConfigError('--cert and --key must be given together')
  if ((config.issuingCaCertFile === undefined) !== (config.issuingCaKeyFile === undefined)) throw new ConfigError('--issuing-ca-cert and --issuing-ca-key must be given together')
  if (config.issuedCertificateDays < 7 || config.issuedCertificateDays > 90) {
    throw new ConfigError(`issuedCertificateDays must be 7 to 90, got ${config.issuedCertificateDays} (the credential policy range, docs/protocol.md §1.7)`)
  }
  if (config.workers > 1 && config.store === 'memory') {
    throw new ConfigError(`workers (${config.workers}) need a store the processes share: the memory store lives in one process (use sqlite, sqlite:<path> or postgres://…)`)
  }
  return {
    ...config,
    devReasons: config.devReasons ?? isLoopbackBind(config.bind),
    dataDir: resolve(cwd, config.dataDir),
    ...(config.emulatorDir === undefined ? {} : { emulatorDir: resolve(cwd, config.emulatorDir) }),
  }
}

/** DPS policies from the config file (`[{name, rights}]`) or a flag (`name:Right+Right,…`). */
function parsePolicies(raw: unknown, where: string): PolicyConfig[] {
  const items: unknown[] = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',').map((x) => x.trim()).filter((x) => x !== '') : []
  if (!Array.isArray(raw) && typeof raw !== 'string') throw new ConfigError(`${where} must be a list of policies`)
  if (items.length > 16) throw new ConfigError(`${where} may declare at most 16 policies`)
  const policies = items.map((item, i): PolicyConfig => {
    const entry = typeof item === 'string' ? { name: item.split(':')[0], rights: item.split(':')[1]?.split('+') ?? [] } : item
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new ConfigError(`${where}[${i}] must be name:Right+Right or an object with name and rights`)
    const { name, rights, ...rest } = entry as Record<string, unknown>
    if (Object.keys(rest).length > 0) throw new ConfigError(`${where}[${i}] has unknown member "${Object.keys(rest)[0]}"`)
    if (typeof name !== 'string' || !POLICY_NAME.test(name)) throw new ConfigError(`${where}[${i}].name must be 1-64 letters, digits, '-', '_' or '.'`)
    if (name === DPS_OWNER_POLICY) throw new ConfigError(`${where}[${i}]: ${DPS_OWNER_POLICY} always exists with every right`)
    if (!Array.isArray(rights)) throw new ConfigError(`${where}[${i}].rights must be a list of rights`)
    try {
      return { name, rights: parseRights(rights as string[], DPS_RIGHTS) }
    } catch (error) {
      throw new ConfigError(`${where}[${i}].rights: ${(error as { reason?: string }).reason ?? String(error)}`)
    }
  })
  if (new Set(policies.map((p) => p.name)).size !== policies.length) throw new ConfigError(`${where} names a policy twice`)
  return policies
}

function parseIpFilter(raw: unknown, where: string): IpFilterRule[] {
  try {
    return parseIpFilterRules(raw, where)
  } catch (error) {
    throw new ConfigError((error as { reason?: string }).reason ?? String(error))
  }
}

/** A JSON value given inline or as `@path` (relative to the working directory). */
function jsonValue(text: string, where: string, cwd: string, what = 'a JSON object'): unknown {
  try {
    const trimmed = text.trim()
    return JSON.parse(trimmed.startsWith('@') ? readFileSync(resolve(cwd, trimmed.slice(1)), 'utf8') : trimmed)
  } catch (error) {
    throw new ConfigError(`${where} must be ${what} or @file of one: ${(error as Error).message}`)
  }
}

/** What a shared access policy may be called (as Azure: letters, digits, `-`, `_`, `.`). */
export const POLICY_NAME = /^[A-Za-z0-9._-]{1,64}$/

const SCHEDULED_FAULTS = ['throttleRegister', 'throttlePoll', 'serverErrorRegister', 'serverErrorPoll', 'missingOperationId'] as const

/**
 * A fault profile (engine faults.ts) from the config file (an object) or a flag/environment value
 * (inline JSON, or `@path` of a JSON file, relative to the working directory). Every member is checked, so a typo fails at start.
 */
function parseFaultProfile(raw: unknown, where: string, cwd: string): FaultProfile {
  const value = typeof raw === 'string' ? jsonValue(raw, where, cwd) : raw
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${where} must be a JSON object`)
  const int = (v: unknown, name: string, min: number, max: number): number => {
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) throw new ConfigError(`${where}: ${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`)
    return v as number
  }
  const out: Record<string, unknown> = {}
  for (const [key, member] of Object.entries(value as Record<string, unknown>)) {
    if (key === 'slowAssigningPolls') {
      out[key] = int(member, key, 0, 1000)
      continue
    }
    if (key === 'webhookFailureStatus') {
      out[key] = int(member, key, 100, 599)
      continue
    }
    if (!(SCHEDULED_FAULTS as readonly string[]).includes(key)) {
      throw new ConfigError(`${where}: unknown fault "${key}" (known: ${[...SCHEDULED_FAULTS, 'slowAssigningPolls', 'webhookFailureStatus'].join(', ')})`)
    }
    if (typeof member !== 'object' || member === null || Array.isArray(member)) throw new ConfigError(`${where}: ${key} must be an object`)
    const schedule: Record<string, number> = {}
    for (const [field, v] of Object.entries(member as Record<string, unknown>)) {
      if (field === 'firstAttempts') schedule[field] = int(v, `${key}.${field}`, 0, 1_000_000)
      else if (field === 'everyNth') schedule[field] = int(v, `${key}.${field}`, 1, 1_000_000)
      else if (field === 'retryAfterSeconds' && key !== 'missingOperationId') schedule[field] = int(v, `${key}.${field}`, 1, 300)
      else if (field === 'status' && key.startsWith('serverError')) {
        if (v !== 500 && v !== 503) throw new ConfigError(`${where}: ${key}.status must be 500 or 503`)
        schedule[field] = v
      } else throw new ConfigError(`${where}: ${key} has unknown member "${field}"`)
    }
    out[key] = schedule
  }
  return out as FaultProfile
}
