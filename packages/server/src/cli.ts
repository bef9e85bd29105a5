#!/usr/bin/env node
/**
 * `provisio` — the command line of Provisio.
 *
 *   provisio serve [options]   start the DPS + embedded hub with embedded defaults
 *   provisio sas [options]     print a device SAS token (for curl and scripts)
 *   provisio pki <kind> [...]  make test certificates for X.509 attestation (pki-tools.ts)
 *   provisio telemetry [...]   print the telemetry an embedded hub kept for a device (JSON lines)
 *   provisio policies [...]    shared access policies and their keys (policies.ts)
 *   provisio simulate [...]    register N devices through @provisio/device and summarise (simulate.ts)
 *   provisio help              this text
 */
import { existsSync, readFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { deriveDeviceKey } from '@provisio/crypto'
import { buildSasToken, deviceRegistrationResource, parseDpsServiceConnectionString, parseHubConnectionString } from '@provisio/protocol'
import type { HubTelemetryPage } from '@provisio/protocol'
import { ConfigError, DEFAULT_CONFIG, SETTINGS, resolveConfig } from './config.js'
import { createLogger } from './logger.js'
import { startServer, type Endpoints } from './serve.js'
import { issuePkiCertificate, type PkiKeyType, type PkiKind } from './pki-tools.js'
import { SIMULATE_USAGE, SimulateUsageError, simulateCommand } from './simulate.js'
import { POLICIES_USAGE, PoliciesError, runPolicies } from './policies.js'
import { isServeWorker, runPrimary, runWorker } from './cluster.js'

function usage(): string {
  const rows = SETTINGS.map((s) => `  --${s.flag.padEnd(22)} ${s.help}\n  ${''.padEnd(24)} env ${s.env}`)
  return [
    'Usage: provisio serve [options]',
    '',
    'Starts a local Azure DPS-compatible provisioning service and an embedded IoT hub.',
    '',
    'Options:',
    '  --config <file>          JSON config file with the settings below (env PROVISIO_CONFIG)',
    ...rows,
    '  --help                   show this text',
    '',
    `Defaults: https ${DEFAULT_CONFIG.httpsPort}, data directory ./${DEFAULT_CONFIG.dataDir}, SQLite store, loopback only.`,
    '',
    'Usage: provisio sas --registration-id <id> (--key <base64> | --group-key <base64>) [--id-scope <scope>] [--data-dir <dir>] [--ttl <s>]',
    '       provisio sas --service [--data-dir <dir>] [--ttl <s>]',
    '',
    'Prints a device SAS token for {idScope}/registrations/{id} (skn=registration). --group-key derives the',
    'device key from an enrollment group key. The ID scope defaults to the one in <data-dir>/endpoints.json.',
    'With --service, prints a service API token signed with the service connection string of endpoints.json.',
    '',
    PKI_USAGE,
    '',
    TELEMETRY_USAGE,
    '',
    POLICIES_USAGE,
    '',
    SIMULATE_USAGE,
  ].join('\n')
}

function sasCommand(args: string[]): number {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      'registration-id': { type: 'string' },
      key: { type: 'string' },
      'group-key': { type: 'string' },
      'id-scope': { type: 'string' },
      'data-dir': { type: 'string' },
      ttl: { type: 'string' },
      service: { type: 'boolean' },
    },
  })
  const ttl = Number(values.ttl ?? 3600)
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 365 * 86400) throw new UsageError('--ttl must be a whole number of seconds, 1 to 31536000')
  const expiresAt = Math.floor(Date.now() / 1000) + ttl
  const endpointsFile = join(resolve(values['data-dir'] ?? DEFAULT_CONFIG.dataDir), 'endpoints.json')
  const readEndpoints = (need: string): { idScope: string; serviceConnectionString: string } => {
    if (!existsSync(endpointsFile)) throw new UsageError(`${need} (no ${endpointsFile} to read it from; start provisio serve or pass --data-dir)`)
    return JSON.parse(readFileSync(endpointsFile, 'utf8')) as { idScope: string; serviceConnectionString: string }
  }
  if (values.service === true) {
    const cs = parseDpsServiceConnectionString(readEndpoints('the service connection string is needed').serviceConnectionString)
    process.stdout.write(buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt }) + '\n')
    return 0
  }
  const registrationId = values['registration-id']
  if (registrationId === undefined) throw new UsageError('--registration-id is required')
  if ((values.key === undefined) === (values['group-key'] === undefined)) throw new UsageError('give exactly one of --key and --group-key')
  const idScope = values['id-scope'] ?? readEndpoints('--id-scope is required').idScope
  const key = values.key ?? deriveDeviceKey(values['group-key']!, registrationId)
  const token = buildSasToken({
    resource: deviceRegistrationResource(idScope, registrationId),
    key,
    keyName: 'registration',
    expiresAt,
  })
  process.stdout.write(token + '\n')
  return 0
}

class UsageError extends Error {}

// ---- provisio telemetry (what devices sent to an embedded hub) ----
const TELEMETRY_USAGE = [
  'Usage: provisio telemetry --device <deviceId> [--hub <hostName>] [--after <seq>] [--limit <n>] [--follow] [--data-dir <dir>]',
  '',
  'Prints the device-to-cloud messages an embedded hub kept for a device, one JSON object a line',
  '(sequenceNumber, enqueuedTimeUtc, properties, systemProperties, body, bodyEncoding, size), read from',
  'GET /devices/{id}/messages/events with the hub connection string of <data-dir>/endpoints.json.',
  '--hub picks the hub when several are embedded (default: the first). --follow keeps polling every second.',
  'The buffer is in memory per server instance: bounded, oldest dropped first (counted in "dropped").',
].join('\n')

async function telemetryCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      device: { type: 'string' },
      hub: { type: 'string' },
      after: { type: 'string' },
      limit: { type: 'string' },
      follow: { type: 'boolean' },
      'data-dir': { type: 'string' },
    },
  })
  const deviceId = values.device
  if (deviceId === undefined || deviceId === '') throw new UsageError('--device is required')
  let after = Number(values.after ?? 0)
  const limit = Number(values.limit ?? 1000)
  if (!Number.isSafeInteger(after) || after < 0) throw new UsageError('--after must be a whole number, 0 or more')
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit must be a whole number from 1 to 1000')
  const endpointsFile = join(resolve(values['data-dir'] ?? DEFAULT_CONFIG.dataDir), 'endpoints.json')
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
const PKI_USAGE = [
  'Usage: provisio pki root         --cn <name> [--name <file>] [--key rsa|ec|ec384] [--days <n>] [--path-len <n>] [--dir <dir>]',
  '       provisio pki intermediate --cn <name> --issuer <file> [--name <file>] [--key …] [--days <n>] [--path-len <n>] [--dir <dir>]',
  '       provisio pki device       --cn <registrationId> --issuer <file> [--name <file>] [--key …] [--days <n>] [--dir <dir>]',
  '       provisio pki verification --cn <verificationCode> --issuer <file> [--dir <dir>]',
  '',
  'Writes <dir>/<file>.pem, <file>-key.pem and, below a root, <file>-chain.pem (the certificate and its',
  'intermediates: what the device presents). --dir defaults to ./pki, --name to the CN, --key to ec (P-256).',
  '"verification" makes the proof-of-possession certificate for POST /certificates/{name}/verify.',
].join('\n')

async function pkiCommand(args: string[]): Promise<number> {
  const [kind, ...rest] = args
  const kinds: readonly string[] = ['root', 'intermediate', 'device', 'verification']
  if (kind === undefined || !kinds.includes(kind)) throw new UsageError(`the first argument must be one of ${kinds.join(', ')}\n\n${PKI_USAGE}`)
  const { values } = parseArgs({
    args: rest,
    strict: true,
    options: {
      cn: { type: 'string' },
      name: { type: 'string' },
      issuer: { type: 'string' },
      key: { type: 'string' },
      days: { type: 'string' },
      'path-len': { type: 'string' },
      dir: { type: 'string' },
    },
  })
  if (values.cn === undefined) throw new UsageError('--cn is required')
  const keyType = values.key ?? 'ec'
  if (!['rsa', 'ec', 'ec384'].includes(keyType)) throw new UsageError('--key must be rsa, ec or ec384')
  const result = await issuePkiCertificate({
    kind: kind as PkiKind,
    dir: resolve(values.dir ?? 'pki'),
    name: values.name ?? (kind === 'verification' ? 'verification' : values.cn.replace(/[^A-Za-z0-9_.-]/g, '-')),
    commonName: values.cn,
    ...(values.issuer === undefined ? {} : { issuer: values.issuer }),
    keyType: keyType as PkiKeyType,
    ...(values.days === undefined ? {} : { days: Number(values.days) }),
    ...(values['path-len'] === undefined ? {} : { pathLength: Number(values['path-len']) }),
    nowMs: Date.now(),
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

async function main(argv: string[]): Promise<number> {
  // A worker of `provisio serve --workers` (forked by the primary; its settings come over IPC).
  if (isServeWorker()) return runWorker()
  const [command = 'serve', ...rest] = argv
  if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(usage() + '\n')
    return 0
  }
  if (command === 'sas') {
    try {
      return sasCommand(rest)
    } catch (error) {
      process.stderr.write(`provisio sas: ${(error as Error).message}\n`)
      return 2
    }
  }
  if (command === 'pki') {
    try {
      return await pkiCommand(rest)
    } catch (error) {
      process.stderr.write(`provisio pki: ${(error as Error).message}\n`)
      return 2
    }
  }
  if (command === 'telemetry') {
    try {
      return await telemetryCommand(rest)
    } catch (error) {
      process.stderr.write(`provisio telemetry: ${(error as Error).message}\n`)
      return error instanceof UsageError ? 2 : 1
    }
  }
  if (command === 'policies') {
    try {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { 'data-dir': { type: 'string' }, hub: { type: 'string' }, rights: { type: 'string' }, key: { type: 'string' }, host: { type: 'string' } },
      })
      const [action = 'list', name] = positionals
      const lines = runPolicies({ ...values, action, ...(name === undefined ? {} : { name }), dataDir: resolve(values['data-dir'] ?? DEFAULT_CONFIG.dataDir) })
      process.stdout.write(lines.join('\n') + '\n')
      return 0
    } catch (error) {
      process.stderr.write(`provisio policies: ${(error as Error).message}\n${error instanceof PoliciesError ? '' : `\n${POLICIES_USAGE}\n`}`)
      return error instanceof PoliciesError ? 1 : 2
    }
  }
  if (command === 'simulate') {
    try {
      return await simulateCommand(rest)
    } catch (error) {
      if (error instanceof SimulateUsageError || (error as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (error as { code?: unknown }).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || (error as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
        process.stderr.write(`provisio simulate: ${(error as Error).message}\n\n${SIMULATE_USAGE}\n`)
        return 2
      }
      process.stderr.write(`provisio simulate: ${(error as Error).message}\n`)
      return 1
    }
  }
  if (command !== 'serve') {
    process.stderr.write(`provisio: unknown command "${command}"\n\n${usage()}\n`)
    return 2
  }
  const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' }, help: { type: 'boolean' } }
  for (const s of SETTINGS) options[s.flag] = { type: 'string' }
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({ args: rest, options, strict: true, allowPositionals: false }).values
  } catch (error) {
    process.stderr.write(`provisio: ${(error as Error).message}\n\n${usage()}\n`)
    return 2
  }
  if (values.help === true) {
    process.stdout.write(usage() + '\n')
    return 0
  }
  const flags: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(values)) if (typeof v === 'string') flags[k] = v
  let config
  try {
    config = resolveConfig(flags, process.env, process.cwd())
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`provisio: ${error.message}\n`)
      return 2
    }
    throw error
  }
  const log = createLogger(config.logLevel)
  if (config.workers > 1) {
    return runPrimary(config, log, (endpoints) => {
      process.stdout.write(describeEndpoints(endpoints, config.workers) + '\n')
      log.info('endpoints written', { file: `${config.dataDir}/endpoints.json` })
    })
  }
  const server = await startServer(config, log)
  process.stdout.write(describeEndpoints(server.endpoints) + '\n')
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`provisio: ${(error as Error).message}\n`)
    process.exit(1)
  },
)
