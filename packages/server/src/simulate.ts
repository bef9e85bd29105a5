/**
 * `provisio simulate` — a load generator built on @provisio/device: N devices register with a
 * DPS-compatible service over one transport and attestation, C at a time; progress on stderr (a bar
 * on a TTY, periodic lines otherwise) and a summary (count, rate, p50/p95/p99 latency, failures by
 * error code), or JSON with `--json`.
 *
 * Where the devices come from:
 * - symmetric: `--group-key <base64>` of an existing symmetric-key enrollment group, or
 *   `--create-group` (a new group with random keys, made through the service API);
 * - x509: a fresh root CA uploaded as a new X.509 enrollment group through the service API, and one
 *   device certificate per device (CN = registrationId);
 * - tpm: a software TPM per device (@provisio/tpm), each with an individual enrollment made through
 *   the service API (DPS has no TPM groups).
 * The service endpoint, ID scope, ports, CA and service connection string come from
 * `<data-dir>/endpoints.json` (written by `provisio serve`); flags override them.
 */
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Command } from 'commander'
import {
  DeviceError,
  ProvisioningClient,
  TRANSPORTS,
  createCertificateRequest,
  isDeviceError,
  softwareTpm,
  symmetricKey,
  tpm,
  x509,
  type SecurityProvider,
  type TransportName,
} from '@provisio/device'
import { issuePkiCertificate } from './pki-tools.js'
import { createServiceClient, type ServiceClient } from './service-client.js'

/** What `provisio simulate --help` says after the options. */
const SIMULATE_HELP = [
  'Registers N devices, C at a time, through @provisio/device, and prints a summary: count, rate,',
  'p50/p95/p99 latency, failures by error code (--json: one JSON object on stdout). Progress goes to',
  'stderr (a bar on a terminal, a line every 2 s otherwise). Endpoint, ID scope, ports, CA and service',
  'connection string come from <data-dir>/endpoints.json (default ./.provisio).',
  'symmetric: --group-key of an existing symmetric-key enrollment group, or --create-group to make one',
  'through the service API. x509: a new root CA and X.509 group, one certificate per device. tpm: a',
  'software TPM and an individual enrollment per device (service API). registrationIds are <prefix><n>.',
  'Exit code 0 when every device was assigned, 1 otherwise, 2 on usage errors.',
].join('\n')

/** The options of `provisio simulate`, as commander gives them (validated by runSimulate). */
export interface SimulateOptions {
  readonly devices?: string
  readonly concurrency?: string
  readonly transport?: string
  readonly attestation?: string
  readonly groupKey?: string
  readonly createGroup?: boolean
  readonly dataDir?: string
  readonly host?: string
  readonly port?: string
  readonly idScope?: string
  readonly ca?: string
  readonly prefix?: string
  readonly timeout?: string
  readonly json?: boolean
  readonly issueCertificates?: boolean
}

/** Adds the description and options of `provisio simulate` to a command (cli.ts, simulateCommand). */
export function defineSimulateOptions(command: Command): Command {
  return command
    .description('register N devices through @provisio/device against the service and summarise (a load generator)')
    .option('--devices <n>', 'devices to register (default 10)')
    .option('--concurrency <n>', 'registrations in flight (default 10)')
    .option('--transport <name>', `${TRANSPORTS.join(' | ')} (default http)`)
    .option('--attestation <kind>', 'symmetric | tpm | x509 (default symmetric)')
    .option('--group-key <base64>', 'symmetric: the key of an existing enrollment group')
    .option('--create-group', 'symmetric: make a new enrollment group through the service API')
    .option('--data-dir <dir>', 'where endpoints.json is (default ./.provisio)')
    .option('--host <host>', 'global endpoint (default: endpoints.json)')
    .option('--port <n>', "the transport's port (default: endpoints.json)")
    .option('--id-scope <scope>', 'default: endpoints.json')
    .option('--ca <file>', 'CA certificate to trust (default: endpoints.json)')
    .option('--prefix <text>', 'registrationIds are <prefix><n> (default sim-<random>-)')
    .option('--timeout <s>', 'deadline of one registration, seconds (default 120)')
    .option('--json', 'print the summary as one JSON object')
    .option('--issue-certificates', 'each device also sends a P-256 CSR and must get an issued certificate chain (docs/protocol.md §1.7)')
    .addHelpText('after', `\n${SIMULATE_HELP}`)
}

export class SimulateUsageError extends Error {}

export type Attestation = 'symmetric' | 'tpm' | 'x509'

/** What one run measured. */
export interface SimulationSummary {
  readonly transport: TransportName
  readonly attestation: Attestation
  readonly devices: number
  readonly concurrency: number
  readonly succeeded: number
  readonly failed: number
  /** Wall time of the run, seconds (per-device credentials — TPM keys, certificates — are made inside it; latency excludes them). */
  readonly durationSeconds: number
  /** Assigned devices per second. */
  readonly ratePerSecond: number
  /** register() latency of assigned devices, milliseconds. */
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number }
  /** Failures by DeviceError code (and DPS errorCode when the service sent one), e.g. "REFUSED/401002". */
  readonly failures: Readonly<Record<string, number>>
  /** Transient failures the SDK retried (429, 5xx, dropped connections). */
  readonly retries: number
  /** The first failure messages (at most 5), for diagnosis. */
  readonly sampleErrors: readonly string[]
  readonly hubs: Readonly<Record<string, number>>
  /** With --issue-certificates: assigned devices whose answer carried an issued certificate chain. */
  readonly certificatesIssued?: number
  /**
   * Where the devices' registration time went, summed over every device, ms: `service` in
   * requests (connecting, TLS, the service's own time, and the device's own work between them, such
   * as a TPM's activation), `waiting` before polls and retries (the service's retry-after, else the
   * polling interval or backoff), split into `pollWaits` and `retryWaits`.
   */
  readonly timeMs: { readonly service: number; readonly waiting: number; readonly pollWaits: number; readonly retryWaits: number }
  /** 429 answers met, in all and by the limit that answered (from the DPS errorCode). */
  readonly throttled: { readonly total: number; readonly byLimit: Readonly<Record<string, number>> }
  /** The rate limits the server enforces, as its endpoints.json states them (0: none); absent when it states none. */
  readonly rateLimits?: { readonly registrationsPerMinute: number; readonly pollsPer10Seconds: number }
  /** Devices whose registration did not end within the deadline and its grace (counted as failed, code UNFINISHED). */
  readonly unfinished: number
  /** The key of the symmetric-key group `--create-group` made (reuse it with --group-key). */
  readonly groupKey?: string
}

/** After the registration deadline, how long a device may take to end before it is counted UNFINISHED. */
const UNFINISHED_GRACE_MS = 10_000

/** The limit behind a 429 answer, by its DPS errorCode (the message devices get is only "Too many requests."). */
export function throttleLimit(error: Pick<DeviceError, 'errorCode'>): string {
  switch (error.errorCode) {
    case 429001:
      return 'registrations per ID scope (429001)'
    case 429002:
      return 'status polls per device (429002)'
    case 429003:
      return 'service API operations (429003)'
    default:
      return error.errorCode === undefined ? 'no errorCode' : String(error.errorCode)
  }
}

interface Endpoints {
  idScope?: string
  deviceEndpoint?: string
  serviceConnectionString?: string
  caCertificate?: string
  ports?: { https?: number; mqtt?: number; amqp?: number }
  rateLimits?: { registrationsPerMinute?: number; pollsPer10Seconds?: number }
}

/** The p-th percentile (nearest rank) of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

function positiveInt(text: string | undefined, flag: string, dflt: number, max: number): number {
  if (text === undefined) return dflt
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > max) throw new SimulateUsageError(`${flag} must be a whole number from 1 to ${max}, got ${JSON.stringify(text)}`)
  return n
}

/** Progress on stderr: a redrawn bar on a TTY, a plain line every 2 s otherwise. */
function progressReporter(total: number, stream: NodeJS.WriteStream | NodeJS.WritableStream, isTty: boolean) {
  let done = 0
  let failed = 0
  const started = performance.now()
  let lastLine = 0
  const render = (final: boolean) => {
    const elapsed = (performance.now() - started) / 1000
    const rate = elapsed > 0 ? (done - failed) / elapsed : 0
    if (isTty) {
      const width = 30
      const filled = Math.round((done / total) * width)
      stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ok ${done - failed} failed ${failed} ${rate.toFixed(1)}/s${final ? '\n' : ''}`)
    } else {
      stream.write(`simulate: ${done}/${total} done, ${done - failed} assigned, ${failed} failed, ${rate.toFixed(1)}/s\n`)
    }
  }
  return {
    tick(ok: boolean) {
      done++
      if (!ok) failed++
      const now = performance.now()
      if (isTty || now - lastLine >= 2000) {
        lastLine = now
        if (done < total) render(false)
      }
    },
    finish: () => render(true),
  }
}

type SimulateIo = { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; stderrIsTty: boolean }

/** Runs `provisio simulate` with its arguments (as after `simulate` on the command line); returns the exit code. */
export async function simulateCommand(args: string[], io?: SimulateIo): Promise<number> {
  const command = defineSimulateOptions(new Command('simulate')).exitOverride()
  command.parse(args, { from: 'user' })
  return runSimulate(command.opts<SimulateOptions>(), io)
}

/** Runs `provisio simulate` with its options; returns the exit code. */
export async function runSimulate(values: SimulateOptions, io: SimulateIo = { stdout: process.stdout, stderr: process.stderr, stderrIsTty: process.stderr.isTTY === true }): Promise<number> {
  const devices = positiveInt(values.devices, '--devices', 10, 1_000_000)
  const concurrency = positiveInt(values.concurrency, '--concurrency', 10, 10_000)
  const timeoutMs = positiveInt(values.timeout, '--timeout', 120, 3600) * 1000
  const transport = (values.transport ?? 'http') as TransportName
  if (!TRANSPORTS.includes(transport)) throw new SimulateUsageError(`--transport must be one of ${TRANSPORTS.join(', ')}, got ${JSON.stringify(values.transport)}`)
  const attestation = (values.attestation ?? 'symmetric') as Attestation
  if (!['symmetric', 'tpm', 'x509'].includes(attestation)) throw new SimulateUsageError(`--attestation must be symmetric, tpm or x509, got ${JSON.stringify(values.attestation)}`)
  if (attestation === 'tpm' && (transport === 'mqtt' || transport === 'mqtt-ws')) throw new SimulateUsageError('TPM attestation is not offered over MQTT by DPS; use http, amqp or amqp-ws')
  if (attestation === 'symmetric' && (values.groupKey === undefined) === (values.createGroup !== true)) {
    throw new SimulateUsageError('symmetric attestation needs exactly one of --group-key <base64> and --create-group')
  }
  if (attestation !== 'symmetric' && values.groupKey !== undefined) throw new SimulateUsageError('--group-key is for --attestation symmetric')

  const dataDir = resolve(values.dataDir ?? '.provisio')
  const endpointsFile = join(dataDir, 'endpoints.json')
  const endpoints: Endpoints = existsSync(endpointsFile) ? (JSON.parse(readFileSync(endpointsFile, 'utf8')) as Endpoints) : {}
  const idScope = values.idScope ?? endpoints.idScope
  if (idScope === undefined) throw new SimulateUsageError(`--id-scope is required (no ${endpointsFile} to read it from)`)
  const host = values.host ?? endpoints.deviceEndpoint ?? 'localhost'
  const caFile = values.ca ?? endpoints.caCertificate
  const ca = caFile === undefined ? undefined : readFileSync(caFile, 'utf8')
  const ports = endpoints.ports ?? {}
  const port = values.port !== undefined
    ? positiveInt(values.port, '--port', 0, 65535)
    : transport === 'mqtt' ? ports.mqtt ?? 8883 : transport === 'amqp' ? ports.amqp ?? 5671 : ports.https ?? 443
  const prefix = values.prefix ?? `sim-${randomBytes(3).toString('hex')}-`
  const needsService = attestation !== 'symmetric' || values.createGroup === true
  if (needsService && endpoints.serviceConnectionString === undefined) {
    throw new SimulateUsageError(`creating enrollments needs the service connection string of ${endpointsFile} (start provisio serve or pass --data-dir)`)
  }
  const serviceClient: ServiceClient | undefined = needsService
    ? createServiceClient({ host, port: ports.https ?? 443, ...(ca === undefined ? {} : { ca }), connectionString: endpoints.serviceConnectionString! })
    : undefined
  const service = serviceClient === undefined ? undefined : (_method: 'PUT', path: string, body: unknown) => serviceClient.put(path, body)
  const ids = Array.from({ length: devices }, (_, i) => `${prefix}${i + 1}`)

  // ---- enrollments and credentials ----
  let pkiDir: string | undefined
  let securityOf: (registrationId: string) => Promise<SecurityProvider>
  let createdGroupKey: string | undefined
  try {
    if (attestation === 'symmetric') {
      let groupKey = values.groupKey
      if (groupKey === undefined) {
        groupKey = randomBytes(64).toString('base64')
        const groupId = `${prefix}group`.replace(/[^a-z0-9-]/gi, '-').toLowerCase()
        await service!('PUT', `/enrollmentGroups/${groupId}`, { enrollmentGroupId: groupId, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: randomBytes(64).toString('base64') } } })
        io.stderr.write(`simulate: created symmetric-key enrollment group ${groupId} (reuse it with --group-key ${groupKey})\n`)
        createdGroupKey = groupKey
      }
      const key = groupKey
      securityOf = (registrationId) => Promise.resolve(symmetricKey({ registrationId, groupKey: key }))
    } else if (attestation === 'x509') {
      pkiDir = mkdtempSync(join(tmpdir(), 'provisio-simulate-'))
      const dir = pkiDir
      await issuePkiCertificate({ kind: 'root', dir, name: 'root', commonName: `${prefix}root`, keyType: 'ec', nowMs: Date.now() })
      const groupId = `${prefix}x509`.replace(/[^a-z0-9-]/gi, '-').toLowerCase()
      await service!('PUT', `/enrollmentGroups/${groupId}`, { enrollmentGroupId: groupId, attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: readFileSync(join(dir, 'root.pem'), 'utf8') } } } } })
      io.stderr.write(`simulate: created X.509 enrollment group ${groupId} on a new root CA\n`)
      securityOf = async (registrationId) => {
        const r = await issuePkiCertificate({ kind: 'device', dir, name: registrationId.replace(/[^A-Za-z0-9_.-]/g, '-'), commonName: registrationId, issuer: 'root', keyType: 'ec', nowMs: Date.now() })
        return x509({ cert: readFileSync(r.chainPath ?? r.certificatePath, 'utf8'), key: readFileSync(r.keyPath, 'utf8'), registrationId })
      }
    } else {
      securityOf = async (registrationId) => {
        const t = softwareTpm(randomBytes(32))
        const ek = Buffer.from(await t.endorsementKey()).toString('base64')
        await service!('PUT', `/enrollments/${encodeURIComponent(registrationId)}`, { registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: ek } } })
        return tpm({ tpm: t, registrationId })
      }
    }

    // ---- the run ----
    const latencies: number[] = []
    const failures: Record<string, number> = {}
    const hubs: Record<string, number> = {}
    const sampleErrors: string[] = []
    const throttledBy: Record<string, number> = {}
    const time = { service: 0, waiting: 0, pollWaits: 0, retryWaits: 0 }
    let retries = 0
    let unfinished = 0
    let certificatesIssued = 0
    const progress = progressReporter(devices, io.stderr, io.stderrIsTty)
    const fail = (registrationId: string, key: string, error: unknown) => {
      failures[key] = (failures[key] ?? 0) + 1
      if (sampleErrors.length < 5) sampleErrors.push(`${registrationId}: ${error instanceof Error ? error.message : String(error)}`)
    }
    let next = 0
    const started = performance.now()
    const worker = async () => {
      while (next < ids.length) {
        const registrationId = ids[next++]!
        let ok = false
        try {
          const security = await securityOf(registrationId)
          const csr = values.issueCertificates === true ? (await createCertificateRequest(registrationId, 'P-256')).csr : undefined
          const waited = { poll: 0, retry: 0 }
          const client = new ProvisioningClient(
            { idScope, globalEndpoint: host, port, transport, security, timeoutMs, ...(ca === undefined ? {} : { ca }) },
            {
              onRetry: ({ error }) => {
                retries++
                if (error.status === 429) {
                  const limit = throttleLimit(error)
                  throttledBy[limit] = (throttledBy[limit] ?? 0) + 1
                }
              },
              onWait: ({ reason, delayMs }) => {
                waited[reason] += delayMs
              },
            },
          )
          const t0 = performance.now()
          try {
            // Every device ends, assigned or failed: one that outlives its deadline by the grace is counted UNFINISHED.
            const result = await settleWithin(client, timeoutMs + UNFINISHED_GRACE_MS, csr)
            if (csr !== undefined && (result.issuedCertificateChain?.length ?? 0) < 2) {
              throw new DeviceError('PROTOCOL', 'the service assigned the device but issued no certificate chain for its CSR')
            }
            if (csr !== undefined) certificatesIssued++
            latencies.push(performance.now() - t0)
            hubs[result.assignedHub] = (hubs[result.assignedHub] ?? 0) + 1
            ok = true
          } finally {
            const elapsed = performance.now() - t0
            const waiting = Math.min(elapsed, waited.poll + waited.retry)
            time.service += elapsed - waiting
            time.waiting += waiting
            time.pollWaits += Math.min(waited.poll, waiting)
            time.retryWaits += Math.max(0, waiting - waited.poll)
          }
        } catch (error) {
          if (error instanceof UnfinishedError) unfinished++
          fail(registrationId, error instanceof UnfinishedError ? 'UNFINISHED' : isDeviceError(error) ? `${error.code}${error.errorCode === undefined ? '' : `/${error.errorCode}`}` : 'SETUP', error)
        }
        progress.tick(ok)
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, devices) }, worker))
    const durationSeconds = (performance.now() - started) / 1000
    progress.finish()
    latencies.sort((a, b) => a - b)
    const round = (n: number) => Math.round(n * 10) / 10
    const summary: SimulationSummary = {
      transport,
      attestation,
      devices,
      concurrency,
      succeeded: latencies.length,
      failed: devices - latencies.length,
      durationSeconds: round(durationSeconds),
      ratePerSecond: round(durationSeconds > 0 ? latencies.length / durationSeconds : 0),
      latencyMs: { p50: round(percentile(latencies, 50)), p95: round(percentile(latencies, 95)), p99: round(percentile(latencies, 99)), max: round(latencies.at(-1) ?? 0) },
      failures,
      retries,
      sampleErrors,
      hubs,
      ...(values.issueCertificates === true ? { certificatesIssued } : {}),
      timeMs: { service: Math.round(time.service), waiting: Math.round(time.waiting), pollWaits: Math.round(time.pollWaits), retryWaits: Math.round(time.retryWaits) },
      throttled: { total: Object.values(throttledBy).reduce((a, b) => a + b, 0), byLimit: throttledBy },
      ...(endpoints.rateLimits === undefined ? {} : { rateLimits: { registrationsPerMinute: endpoints.rateLimits.registrationsPerMinute ?? 0, pollsPer10Seconds: endpoints.rateLimits.pollsPer10Seconds ?? 0 } }),
      unfinished,
      ...(createdGroupKey === undefined ? {} : { groupKey: createdGroupKey }),
    }
    io.stdout.write(values.json === true ? JSON.stringify(summary) + '\n' : formatSummary(summary))
    return summary.failed === 0 ? 0 : 1
  } finally {
    serviceClient?.close()
    if (pkiDir !== undefined) rmSync(pkiDir, { recursive: true, force: true })
  }
}

/** A registration that did not end within its deadline and the grace after it. */
class UnfinishedError extends Error {}

/**
 * The client's registration, or UnfinishedError once `ms` passed (the registration is then
 * aborted). The timer also keeps the process alive until every device has ended.
 */
function settleWithin(client: ProvisioningClient, ms: number, csr?: Uint8Array): ReturnType<ProvisioningClient['register']> {
  const abort = new AbortController()
  let timer: ReturnType<typeof setTimeout> | undefined
  const watchdog = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const error = new UnfinishedError(`the registration did not end within ${Math.round(ms / 1000)} s (its deadline and ${UNFINISHED_GRACE_MS / 1000} s more)`)
      abort.abort(error)
      reject(error)
    }, ms)
  })
  return Promise.race([client.register({ signal: abort.signal, ...(csr === undefined ? {} : { csr }) }), watchdog]).finally(() => clearTimeout(timer))
}

function perLimit(n: number, what: string): string {
  return n === 0 ? `no limit on ${what}` : `${n} ${what}`
}

function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

/** The human summary. */
export function formatSummary(s: SimulationSummary): string {
  const lines = [
    `Simulated ${s.devices} devices (${s.attestation} over ${s.transport}, concurrency ${s.concurrency})`,
    `  assigned      ${s.succeeded}`,
    `  failed        ${s.failed}`,
    `  duration      ${s.durationSeconds} s`,
    `  rate          ${s.ratePerSecond} registrations/s`,
    `  latency (ms)  p50 ${s.latencyMs.p50}  p95 ${s.latencyMs.p95}  p99 ${s.latencyMs.p99}  max ${s.latencyMs.max}`,
    `  retries       ${s.retries}`,
    `  time          ${formatSeconds(s.timeMs.service)} in requests, ${formatSeconds(s.timeMs.waiting)} waiting (retry-after and polling: polls ${formatSeconds(s.timeMs.pollWaits)}, retries ${formatSeconds(s.timeMs.retryWaits)}), summed over devices`,
    `  throttled     ${s.throttled.total === 0 ? 'no 429 answers' : `${s.throttled.total} × 429: ${Object.entries(s.throttled.byLimit).map(([limit, n]) => `${limit} (${n})`).join(', ')}`}`,
    `  rate limits   ${s.rateLimits === undefined ? 'not stated by the server (no rateLimits in endpoints.json)' : `${perLimit(s.rateLimits.registrationsPerMinute, 'registrations per minute per ID scope')}, ${perLimit(s.rateLimits.pollsPer10Seconds, 'status polls per 10 s per device')}`}`,
  ]
  if (s.certificatesIssued !== undefined) lines.push(`  certificates  ${s.certificatesIssued} issued from the devices' CSRs`)
  if (s.unfinished > 0) lines.push(`  unfinished    ${s.unfinished} (did not end within the deadline; counted as failed)`)
  if (s.groupKey !== undefined) lines.push(`  group key     ${s.groupKey}`)
  const hubs = Object.entries(s.hubs)
  if (hubs.length > 0) lines.push(`  hubs          ${hubs.map(([h, n]) => `${h} ${n}`).join(', ')}`)
  const failures = Object.entries(s.failures)
  if (failures.length > 0) {
    lines.push('  failures by code:')
    for (const [code, n] of failures.sort((a, b) => b[1] - a[1])) lines.push(`    ${code.padEnd(28)} ${n}`)
    for (const e of s.sampleErrors) lines.push(`    e.g. ${e}`)
  }
  return lines.join('\n') + '\n'
}
