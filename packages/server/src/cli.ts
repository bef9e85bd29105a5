#!/usr/bin/env node
/**
 * `provisio` — the command line of Provisio.
 *
 *   provisio serve [options]   start the DPS + embedded hub with embedded defaults (the default command)
 *   provisio sas [options]     print a device SAS token (for curl and scripts)
 *   provisio pki <kind> [...]  make test certificates for X.509 attestation (pki-tools.ts)
 *   provisio telemetry [...]   print the telemetry an embedded hub kept for a device (JSON lines)
 *   provisio policies [...]    shared access policies and their keys (policies.ts)
 *   provisio simulate [...]    register N devices through @provisio/device and summarise (simulate.ts)
 *   provisio enrollments import <file>   load enrollments from JSON lines or CSV (import.ts)
 *   provisio help [command]    the commands, or one command's options (also `--help`, `-h`)
 *
 * Parsed with commander: every command answers `--help`/`-h` (exit 0), `provisio --version` prints
 * the version, unknown options and bad values exit 2 with the reason. serve's options are made from
 * SETTINGS (config.ts), which alone resolves them (flag > environment > config file > default).
 */
import { existsSync, readFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { join, resolve } from 'node:path'
import { Argument, Command, CommanderError, Option, type Help } from 'commander'
import { deriveDeviceKey } from '@provisio/crypto'
import { buildSasToken, deviceRegistrationResource, parseDpsServiceConnectionString, parseHubConnectionString } from '@provisio/protocol'
import type { HubTelemetryPage } from '@provisio/protocol'
import { ConfigError, DEFAULT_CONFIG, SETTINGS, resolveConfig } from './config.js'
import { createLogger } from './logger.js'
import type { Engine } from '@provisio/engine'
import { startServer, type Endpoints } from './serve.js'
import { issuePkiCertificate, type PkiKeyType, type PkiKind } from './pki-tools.js'
import { SimulateUsageError, defineSimulateOptions, runSimulate } from './simulate.js'
import { PoliciesError, runPolicies } from './policies.js'
import { isServeWorker, runPrimary, runWorker } from './cluster.js'
import { DEFAULT_IMPORT_BATCH, ImportUsageError, MAX_IMPORT_BATCH, runImport } from './import.js'
import { STATE_FILE } from './state.js'

interface SasOptions {
  readonly registrationId?: string
  readonly key?: string
  readonly groupKey?: string
  readonly idScope?: string
  readonly dataDir?: string
  readonly ttl?: string
  readonly service?: boolean
}

function sasCommand(values: SasOptions): number {
  const ttl = Number(values.ttl ?? 3600)
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 365 * 86400) throw new UsageError('--ttl must be a whole number of seconds, 1 to 31536000')
  const expiresAt = Math.floor(Date.now() / 1000) + ttl
  const endpointsFile = join(resolve(values.dataDir ?? DEFAULT_CONFIG.dataDir), 'endpoints.json')
  const readEndpoints = (need: string): { idScope: string; serviceConnectionString: string } => {
    if (!existsSync(endpointsFile)) throw new UsageError(`${need} (no ${endpointsFile} to read it from; start provisio serve or pass --data-dir)`)
    return JSON.parse(readFileSync(endpointsFile, 'utf8')) as { idScope: string; serviceConnectionString: string }
  }
  if (values.service === true) {
    const cs = parseDpsServiceConnectionString(readEndpoints('the service connection string is needed').serviceConnectionString)
    process.stdout.write(buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt }) + '\n')
    return 0
  }
  const registrationId = values.registrationId
  if (registrationId === undefined) throw new UsageError('--registration-id is required')
  if ((values.key === undefined) === (values.groupKey === undefined)) throw new UsageError('give exactly one of --key and --group-key')
  const idScope = values.idScope ?? readEndpoints('--id-scope is required').idScope
  const key = values.key ?? deriveDeviceKey(values.groupKey!, registrationId)
  const token = buildSasToken({
    resource: deviceRegistrationResource(idScope, registrationId),
    key,
    keyName: 'registration',
    expiresAt,
  })
  process.stdout.write(token + '\n')
  return 0
}

/** A command given wrong or missing options: exit code 2, with the reason. */
class UsageError extends Error {}

// ---- provisio telemetry (what devices sent to an embedded hub) ----
const TELEMETRY_HELP = [
  'Prints the device-to-cloud messages an embedded hub kept for a device, one JSON object a line',
  '(sequenceNumber, enqueuedTimeUtc, properties, systemProperties, body, bodyEncoding, size), read from',
  'GET /devices/{id}/messages/events with the hub connection string of <data-dir>/endpoints.json.',
  'The buffer is in memory per server instance: bounded, oldest dropped first (counted in "dropped").',
].join('\n')

interface TelemetryOptions {
  readonly device?: string
  readonly hub?: string
  readonly after?: string
  readonly limit?: string
  readonly follow?: boolean
  readonly dataDir?: string
}

async function telemetryCommand(values: TelemetryOptions): Promise<number> {
  const deviceId = values.device
  if (deviceId === undefined || deviceId === '') throw new UsageError('--device is required')
  let after = Number(values.after ?? 0)
  const limit = Number(values.limit ?? 1000)
  if (!Number.isSafeInteger(after) || after < 0) throw new UsageError('--after must be a whole number, 0 or more')
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit must be a whole number from 1 to 1000')
  const endpointsFile = join(resolve(values.dataDir ?? DEFAULT_CONFIG.dataDir), 'endpoints.json')
  if (!existsSync(endpointsFile)) throw new UsageError(`no ${endpointsFile} (start provisio serve or pass --data-dir)`)
  const endpoints = JSON.parse(readFileSync(endpointsFile, 'utf8')) as Endpoints
  const hub = values.hub === undefined ? endpoints.hubs[0] : endpoints.hubs.find((h) => h.hostName.toLowerCase() === values.hub!.toLowerCase())
  if (hub === undefined) throw new UsageError(`no embedded hub ${JSON.stringify(values.hub ?? '')} in ${endpointsFile} (hubs: ${endpoints.hubs.map((h) => h.hostName).join(', ')})`)
  const cs = parseHubConnectionString(hub.connectionString)
  const ca = readFileSync(endpoints.caCertificate, 'utf8')
  const read = (from: number) =>
    new Promise<HubTelemetryPage>((resolvePage, reject) => {
      const token = buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt: Math.floor(Date.now() / 1000) + 300 })
      // Every embedded hub is served by this instance's HTTPS listener; the token names the hub.
      const req = httpsRequest(
        {
          host: endpoints.deviceEndpoint,
          port: endpoints.ports.https,
          ca,
          method: 'GET',
          path: `/devices/${encodeURIComponent(deviceId)}/messages/events?api-version=2021-04-12&after=${from}&limit=${limit}`,
          headers: { authorization: token, accept: 'application/json' },
          timeout: 30_000,
        },
        (res) => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (c: string) => (body += c))
          res.on('end', () => {
            if (res.statusCode === 200) return resolvePage(JSON.parse(body) as HubTelemetryPage)
            reject(new Error(`hub ${cs.hostName} answered ${res.statusCode}: ${body.slice(0, 300)}`))
          })
        },
      )
      req.on('timeout', () => req.destroy(new Error('no answer within 30 s')))
      req.on('error', reject)
      req.end()
    })
  let reportedDropped = 0
  for (;;) {
    const page = await read(after)
    if (page.dropped > reportedDropped) {
      process.stderr.write(`provisio telemetry: ${page.dropped - reportedDropped} older message(s) of ${page.deviceId} were dropped by the bounded buffer\n`)
      reportedDropped = page.dropped
    }
    for (const m of page.messages) process.stdout.write(JSON.stringify(m) + '\n')
    if (page.messages.length > 0) after = page.messages[page.messages.length - 1]!.sequenceNumber
    if (page.messages.length === limit) continue
    if (values.follow !== true) return 0
    await new Promise((r) => setTimeout(r, 1000))
  }
}
// ---- end provisio telemetry ----

// ---- provisio pki (X.509 test PKI, docs/protocol.md §6) ----
const PKI_KINDS = ['root', 'intermediate', 'device', 'verification'] as const

const PKI_HELP = [
  'Kinds: root (--cn), intermediate (--cn, --issuer), device (--cn <registrationId>, --issuer),',
  'verification (--cn <verificationCode>, --issuer).',
  'Writes <dir>/<file>.pem, <file>-key.pem and, below a root, <file>-chain.pem (the certificate and its',
  'intermediates: what the device presents). --dir defaults to ./pki, --name to the CN, --key to ec (P-256).',
  '"verification" makes the proof-of-possession certificate for POST /certificates/{name}/verify.',
].join('\n')

interface PkiOptions {
  readonly cn?: string
  readonly name?: string
  readonly issuer?: string
  readonly key?: string
  readonly days?: string
  readonly pathLen?: string
  readonly dir?: string
}

async function pkiCommand(kind: PkiKind, values: PkiOptions): Promise<number> {
  if (values.cn === undefined) throw new UsageError('--cn is required')
  const keyType = values.key ?? 'ec'
  if (!['rsa', 'ec', 'ec384'].includes(keyType)) throw new UsageError('--key must be rsa, ec or ec384')
  // What pki-tools refuses (a missing issuer, a bad --days) is the user's input: a usage error.
  const result = await issuePkiCertificate({
    kind,
    dir: resolve(values.dir ?? 'pki'),
    name: values.name ?? (kind === 'verification' ? 'verification' : values.cn.replace(/[^A-Za-z0-9_.-]/g, '-')),
    commonName: values.cn,
    ...(values.issuer === undefined ? {} : { issuer: values.issuer }),
    keyType: keyType as PkiKeyType,
    ...(values.days === undefined ? {} : { days: Number(values.days) }),
    ...(values.pathLen === undefined ? {} : { pathLength: Number(values.pathLen) }),
    nowMs: Date.now(),
  }).catch((error: unknown) => {
    throw new UsageError((error as Error).message)
  })
  process.stdout.write([result.certificatePath, result.keyPath, result.chainPath].filter((p) => p !== undefined).join('\n') + '\n')
  return 0
}
// ---- end provisio pki ----

export function describeEndpoints(e: Endpoints, workers = 1): string {
  const lines = [
    '',
    'Provisio is running.',
    `  Device endpoint (global)   ${e.deviceEndpoint}  (HTTPS ${e.ports.https}, MQTTS ${e.ports.mqtt}, AMQPS ${e.ports.amqp}; WebSockets at /$iothub/websocket)`,
    `  ID scope                   ${e.idScope}`,
    `  Service connection string  ${e.serviceConnectionString}`,
    ...e.hubs.map((h) => `  Hub ${h.hostName.padEnd(23)}${h.connectionString}`),
    `  Service policies           ${e.servicePolicies.map((p) => `${p.name} (${p.rights.join(', ')})`).join('; ')}`,
    ...e.hubs.map((h) => `  Hub policies               ${h.policies.map((p) => p.name).join(', ')} (provisio policies list shows their connection strings)`),
    `  CA certificate             ${e.caCertificate}`,
    ...(e.emulator === undefined ? [] : [`  Browser device emulator    ${e.emulator}`]),
    ...(workers > 1 ? [`  Workers                    ${workers} processes sharing the ports`] : []),
    '',
    'Trust the CA in Node-based SDKs and tools with:',
    `  export NODE_EXTRA_CA_CERTS=${e.caCertificate}`,
    '',
  ]
  return lines.join('\n')
}

/** The version of @provisio/server (dist/cli.js reads ../package.json). */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
}

/**
 * The top-level help: the commands first, then the options, then where each command's options are.
 * (Commander's own layout puts the commands last, under the global options.)
 */
function formatTopHelp(cmd: Command, helper: Help): string {
  const width = helper.padWidth(cmd, helper)
  const row = (term: string, text: string) => `  ${term.padEnd(width)}  ${text}`
  return [
    `Usage: ${helper.commandUsage(cmd)}`,
    '',
    helper.commandDescription(cmd),
    '',
    'Commands:',
    ...helper.visibleCommands(cmd).map((c) => row(helper.subcommandTerm(c), helper.subcommandDescription(c))),
    '',
    'Options:',
    ...helper.visibleOptions(cmd).map((o) => row(helper.optionTerm(o), helper.optionDescription(o))),
    '',
    'Run `provisio help <command>` or `provisio <command> --help` for the options of a command.',
    '',
  ].join('\n')
}

/** The placeholder of a serve setting's value in the help (`--https-port <port>`). */
function placeholder(kind: string): string {
  switch (kind) {
    case 'port':
      return 'port'
    case 'seconds':
      return 's'
    case 'ms':
    case 'timeout':
      return 'ms'
    case 'count':
      return 'n'
    case 'list':
    case 'hubs':
    case 'origins':
      return 'list'
    case 'level':
      return 'level'
    case 'workers':
      return 'n|auto'
    case 'faults':
      return 'json|@file'
    default:
      return 'value'
  }
}

/** Builds the command line; each action stores the command's exit code in `result.code`. */
function buildProgram(result: { code: number }): Command {
  const program = new Command('provisio')
    .description('A self-hostable device provisioning service, wire-compatible with Azure IoT Hub DPS, with an embedded IoT hub.')
    .version(version(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show this help')
    .helpCommand('help [command]', 'the commands, or the options of one command')
    .showHelpAfterError()
    .exitOverride()

  // ---- serve: its options are SETTINGS; config.ts resolves them with the environment and the file ----
  const serve = program
    .command('serve', { isDefault: true })
    .description('start the DPS-compatible service and its embedded IoT hub (the default command)')
    .option('--config <file>', 'JSON config file with the settings below; env PROVISIO_CONFIG')
  const serveOptions = SETTINGS.map((s) => ({ setting: s, option: new Option(`--${s.flag} <${placeholder(s.kind)}>`, `${s.help}; env ${s.env}`) }))
  for (const { option } of serveOptions) serve.addOption(option)
  serve.addHelpText('after', [
    '',
    'Each setting comes from, first found: its flag, its environment variable, the config file, the default.',
    `Defaults: https ${DEFAULT_CONFIG.httpsPort}, data directory ./${DEFAULT_CONFIG.dataDir}, SQLite store, loopback only;`,
    `register answers 200 assigned when the assignment is done within ${DEFAULT_CONFIG.assignmentBudgetMs} ms (--assignment-budget-ms 0: always 202, then poll, as Azure DPS).`,
  ].join('\n'))
  serve.action(async (opts: Record<string, string | undefined>) => {
    const flags: Record<string, string | undefined> = { config: opts.config }
    for (const { setting, option } of serveOptions) flags[setting.flag] = opts[option.attributeName()]
    result.code = await serveCommand(flags)
  })

  program
    .command('sas')
    .description('print a device SAS token, or with --service a service API token (for curl and scripts)')
    .option('--registration-id <id>', 'the device (resource {idScope}/registrations/{id}, skn=registration)')
    .option('--key <base64>', "the device's symmetric key")
    .option('--group-key <base64>', 'an enrollment group key: the device key is derived from it')
    .option('--id-scope <scope>', 'default: the one in <data-dir>/endpoints.json')
    .option('--data-dir <dir>', `where endpoints.json is (default ./${DEFAULT_CONFIG.dataDir})`)
    .option('--ttl <s>', 'lifetime of the token, seconds (default 3600)')
    .option('--service', 'a service API token signed with the service connection string of endpoints.json')
    .addHelpText('after', '\nGive --registration-id and exactly one of --key and --group-key, or --service alone.')
    .action((opts: SasOptions) => {
      result.code = sasCommand(opts)
    })

  program
    .command('pki')
    .description('make test certificates for X.509 attestation: roots, intermediates, devices, proof of possession')
    .addArgument(new Argument('<kind>', 'what to make').choices(PKI_KINDS))
    .option('--cn <name>', 'common name (the registrationId of a device, the verification code)')
    .option('--issuer <file>', 'name of the issuing certificate in --dir (not for root)')
    .option('--name <file>', 'file name (default: the CN)')
    .option('--key <type>', 'rsa | ec | ec384 (default ec, P-256)')
    .option('--days <n>', 'validity in days')
    .option('--path-len <n>', 'basic constraints path length of a CA')
    .option('--dir <dir>', 'output directory (default ./pki)')
    .addHelpText('after', `\n${PKI_HELP}`)
    .action(async (kind: PkiKind, opts: PkiOptions) => {
      result.code = await pkiCommand(kind, opts)
    })

  program
    .command('telemetry')
    .description('print the telemetry an embedded hub kept for a device (JSON lines)')
    .option('--device <deviceId>', 'the device (required)')
    .option('--hub <hostName>', 'the embedded hub, when there are several (default: the first)')
    .option('--after <seq>', 'only messages after this sequence number (default 0)')
    .option('--limit <n>', 'messages per request, 1 to 1000 (default 1000)')
    .option('--follow', 'keep polling, every second')
    .option('--data-dir <dir>', `where endpoints.json is (default ./${DEFAULT_CONFIG.dataDir})`)
    .addHelpText('after', `\n${TELEMETRY_HELP}`)
    .action(async (opts: TelemetryOptions) => {
      result.code = await telemetryCommand(opts)
    })

  program
    .command('policies')
    .description('shared access policies of the DPS instance and the hubs: list, add, rights, remove, regenerate keys')
    .argument('[action]', 'list | add | rights | remove | regenerate (runPolicies names an unknown one)', 'list')
    .argument('[name]', 'the policy (every action but list)')
    .option('--hub <host>', "an embedded hub's policies instead of the DPS instance's")
    .option('--rights <list>', 'rights, comma-separated (add, rights)')
    .option('--key <which>', 'primary | secondary (regenerate)')
    .option('--host <host>', 'DPS host name in the connection strings list prints (default localhost)')
    .option('--data-dir <dir>', `the data directory (default ./${DEFAULT_CONFIG.dataDir})`)
    .addHelpText('after', '\nPolicies live in <data-dir>/state.json; a running server picks up the change without a restart.')
    .action((action: string, name: string | undefined, opts: { hub?: string; rights?: string; key?: string; host?: string; dataDir?: string }) => {
      const { dataDir, ...rest } = opts
      const lines = runPolicies({ ...rest, action, ...(name === undefined ? {} : { name }), dataDir: resolve(dataDir ?? DEFAULT_CONFIG.dataDir) })
      process.stdout.write(lines.join('\n') + '\n')
      result.code = 0
    })

  const enrollments = program.command('enrollments').description('individual enrollments in bulk: import from JSON lines or CSV')
  enrollments
    .command('import')
    .description('load individual enrollments from a JSON-lines or CSV file into the store, validated as the service API does')
    .argument('<file>', 'JSON lines (one enrollment body a line) or CSV (header line first; columns in README.md)')
    .option('--format <format>', 'jsonl | csv (default: csv when the file name ends in .csv)')
    .option('--batch <n>', `enrollments per transaction (default ${DEFAULT_IMPORT_BATCH}, at most ${MAX_IMPORT_BATCH})`)
    .option('--postgres <url>', 'a PostgreSQL database (postgres://…) instead of <data-dir>/provisio.db')
    .option('--data-dir <dir>', `the data directory (default ./${DEFAULT_CONFIG.dataDir})`)
    .addHelpText('after', [
      '',
      'Existing enrollments are never replaced: an id already stored is counted as "already there", so',
      'running the same import again after an interruption finishes it without duplicates. A bad line is',
      'reported on stderr (line number, field, reason) and the rest goes on. Exit code 1 when a line failed.',
    ].join('\n'))
    .action(async (file: string, opts: { format?: string; batch?: string; postgres?: string; dataDir?: string }) => {
      if (opts.format !== undefined && opts.format !== 'jsonl' && opts.format !== 'csv') throw new UsageError('--format must be jsonl or csv')
      const batchSize = opts.batch === undefined ? undefined : Number(opts.batch)
      const summary = await runImport({
        file: resolve(file),
        dataDir: resolve(opts.dataDir ?? DEFAULT_CONFIG.dataDir),
        ...(opts.postgres === undefined ? {} : { postgres: opts.postgres }),
        ...(opts.format === undefined ? {} : { format: opts.format }),
        ...(batchSize === undefined ? {} : { batchSize }),
      })
      process.stdout.write(
        `imported ${file}: ${summary.records} records, ${summary.created} created, ${summary.existing} already there, ` +
          `${summary.failed} failed, in ${summary.seconds.toFixed(1)} s\n`,
      )
      result.code = summary.failed === 0 ? 0 : 1
    })

  defineSimulateOptions(program.command('simulate')).action(async (opts: Parameters<typeof runSimulate>[0]) => {
    result.code = await runSimulate(opts)
  })

  program.configureHelp({ formatHelp: formatTopHelp })
  return program
}

/** `provisio serve` with its flags (by flag name); resolves when the server stopped. */
async function serveCommand(flags: Record<string, string | undefined>): Promise<number> {
  const config = resolveConfig(flags, process.env, process.cwd())
  const log = createLogger(config.logLevel)
  const reused = existsSync(join(config.dataDir, STATE_FILE))
  if (config.workers > 1) {
    return runPrimary(config, log, (endpoints) => {
      process.stdout.write(describeEndpoints(endpoints, config.workers) + (reused ? describeReuse(config.dataDir, endpoints) : '') + '\n')
      log.info('endpoints written', { file: `${config.dataDir}/endpoints.json` })
    })
  }
  const server = await startServer(config, log)
  const counts = reused ? await countEnrollments(server.engine, server.endpoints.idScope) : undefined
  process.stdout.write(describeEndpoints(server.endpoints) + (reused ? describeReuse(config.dataDir, server.endpoints, counts) : '') + '\n')
  log.info('endpoints written', { file: `${config.dataDir}/endpoints.json` })
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('stopping', { signal })
      server.close().then(resolve, resolve)
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  return 0
}

/** Enrollments and groups of the instance, counted up to `cap` each (a page of 1,000 at a time). */
async function countEnrollments(engine: Engine, idScope: string, cap = 10_000): Promise<{ enrollments: string; groups: string }> {
  const count = async (page: (continuationToken: string | undefined) => Promise<{ items: unknown[]; continuationToken?: string }>): Promise<string> => {
    let n = 0
    let token: string | undefined
    do {
      const p = await page(token)
      n += p.items.length
      token = p.continuationToken
    } while (token !== undefined && n < cap)
    return token === undefined ? String(n) : `${n}+`
  }
  const options = (continuationToken: string | undefined) => ({ pageSize: 1000, ...(continuationToken === undefined ? {} : { continuationToken }) })
  return {
    enrollments: await count((t) => engine.queryEnrollments(idScope, undefined, options(t))),
    groups: await count((t) => engine.queryEnrollmentGroups(idScope, undefined, options(t))),
  }
}

/** The banner's note that a data directory from an earlier start was reused. */
function describeReuse(dataDir: string, e: Endpoints, counts?: { enrollments: string; groups: string }): string {
  const what = counts === undefined ? '' : `: ${counts.enrollments} individual enrollment(s), ${counts.groups} enrollment group(s)`
  return [
    `Reusing the existing state in ${dataDir} (ID scope ${e.idScope}, keys and certificates kept${what}).`,
    `Remove that directory, or pass another --data-dir, to start afresh.`,
    '',
  ].join('\n')
}

/** Stable exit codes: 0 done (and help, version), 1 failed, 2 wrong usage. */
async function main(argv: string[]): Promise<number> {
  // A worker of `provisio serve --workers` (forked by the primary; its settings come over IPC).
  if (isServeWorker()) return runWorker()
  const result = { code: 0 }
  const program = buildProgram(result)
  // A first word that is neither an option nor a command would reach serve (the default) as an argument.
  const first = argv[0]
  if (first !== undefined && !first.startsWith('-') && first !== 'help' && !program.commands.some((c) => c.name() === first)) {
    process.stderr.write(`error: unknown command '${first}'\n\n${program.helpInformation()}`)
    return 2
  }
  try {
    await program.parseAsync(argv, { from: 'user' })
    return result.code
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander printed the message (and the usage hint) already.
      return error.exitCode === 0 ? 0 : 2
    }
    const name = argv.find((a) => program.commands.some((c) => c.name() === a)) ?? 'serve'
    if (error instanceof PoliciesError) {
      process.stderr.write(`provisio ${name}: ${error.message}\n`)
      return 1
    }
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof SimulateUsageError || error instanceof ImportUsageError) {
      process.stderr.write(`provisio ${name}: ${error.message}\n(run provisio ${name} --help for the usage)\n`)
      return 2
    }
    process.stderr.write(`provisio ${name}: ${(error as Error).message}\n`)
    return 1
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`provisio: ${(error as Error).message}\n`)
    process.exit(1)
  },
)
