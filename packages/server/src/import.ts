/**
 * `provisio enrollments import <file>`: loads individual enrollments from JSON lines or CSV into
 * the data directory's SQLite database or a PostgreSQL database, through the engine's validation
 * (the rules of `PUT /enrollments/{id}`) and the store's batch put (`Store.putEnrollments`: one
 * transaction per batch).
 *
 * - A line that does not parse or breaks a rule is reported on stderr (`line N: field: reason`)
 *   and skipped; the others go on.
 * - An enrollment whose id is already stored is left as it is and counted as `already there`, so
 *   re-running an interrupted import finishes it: batches committed before the interruption are
 *   skipped, the batch that was in flight was committed whole or not at all.
 * - Progress goes to stderr every two seconds; the summary to stdout at the end.
 *
 * CSV (one record a line, first line the header; columns in any order, unknown ones refused):
 * see {@link CSV_COLUMNS} and README.md "Importing enrollments".
 */
import { createReadStream } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { createEngine, type Engine, type EnrollmentCreateResult, type HubGateway, type Store } from '@provisio/engine'
import { formatSharedAccessKeyConnectionString } from '@provisio/protocol'
import { createSqliteStore } from '@provisio/store-sqlite'
import { createPostgresStore } from '@provisio/store-postgres'
import { SERVER_STATE_SETTING } from './postgres.js'
import { pooledRandom } from './random.js'
import { readState, type ServerState } from './state.js'

/** Longest line accepted (an enrollment with two X.509 certificates fits many times over). */
export const MAX_IMPORT_LINE_BYTES = 256 * 1024
/** Enrollments per transaction by default, and the most allowed. */
export const DEFAULT_IMPORT_BATCH = 1000
export const MAX_IMPORT_BATCH = 10_000

/** The CSV columns; `registrationId` and `attestationType` are required. */
export const CSV_COLUMNS = [
  'registrationId',
  'attestationType', // symmetricKey | x509 | tpm
  'primaryKey', // symmetricKey (both generated when empty)
  'secondaryKey',
  'certificate', // x509: primary client certificate, base64 DER or PEM with \n written as the two characters \n
  'secondaryCertificate',
  'endorsementKey', // tpm
  'storageRootKey',
  'deviceId',
  'iotHubs', // host names separated by ;
  'allocationPolicy', // hashed | geoLatency | static | custom
  'provisioningStatus', // enabled | disabled
  'iotEdge', // true | false
  'tags', // JSON object: initialTwin.tags
  'desiredProperties', // JSON object: initialTwin.properties.desired
] as const

/** A refusal of the whole import (bad arguments, unreadable file, bad CSV header): exit code 2. */
export class ImportUsageError extends Error {
  override readonly name = 'ImportUsageError'
  readonly code = 'IMPORT_INVALID'
}

export interface ImportOptions {
  readonly file: string
  readonly dataDir: string
  /** PostgreSQL URL; without it the data directory's SQLite database (provisio.db). */
  readonly postgres?: string
  /** Default: from the file name (`.csv` is CSV, anything else JSON lines). */
  readonly format?: 'jsonl' | 'csv'
  readonly batchSize?: number
  /** Where progress and per-line errors go (default process.stderr). */
  readonly log?: (line: string) => void
  /** Milliseconds between progress lines (default 2000). */
  readonly progressEveryMs?: number
}

export interface ImportSummary {
  /** Records read (header and blank lines not counted). */
  readonly records: number
  readonly created: number
  /** Already stored (an earlier run, or an earlier line of this file): left unchanged. */
  readonly existing: number
  readonly failed: number
  readonly seconds: number
}

/** Runs an import; resolves with the summary (per-line failures are counted, not thrown). */
export async function runImport(options: ImportOptions): Promise<ImportSummary> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'))
  const batchSize = options.batchSize ?? DEFAULT_IMPORT_BATCH
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_IMPORT_BATCH) {
    throw new ImportUsageError(`--batch must be a whole number from 1 to ${MAX_IMPORT_BATCH}`)
  }
  const format = options.format ?? (options.file.toLowerCase().endsWith('.csv') ? 'csv' : 'jsonl')
  const target = await openTarget(options)
  try {
    const engine = importEngine(target.store, target.state)
    return await load(engine, target.state.idScope, options.file, format, batchSize, log, options.progressEveryMs ?? 2000)
  } finally {
    await target.close()
  }
}

interface Target {
  readonly store: Store
  readonly state: ServerState
  close(): Promise<void>
}

async function openTarget(options: ImportOptions): Promise<Target> {
  if (options.postgres !== undefined) {
    const store = await createPostgresStore(options.postgres)
    try {
      const shared = await store.getSetting(SERVER_STATE_SETTING)
      const state = shared === undefined ? readState(options.dataDir) : (JSON.parse(shared) as ServerState)
      if (state === undefined) throw new ImportUsageError(`the database holds no DPS instance yet and there is no state.json in ${options.dataDir}: start provisio serve --store <url> once first`)
      return { store, state, close: () => store.close() }
    } catch (error) {
      await store.close()
      throw error
    }
  }
  const state = readState(options.dataDir)
  if (state === undefined) throw new ImportUsageError(`no state.json in ${options.dataDir}: start provisio serve there once first (it creates the DPS instance)`)
  const store = createSqliteStore(join(options.dataDir, 'provisio.db'))
  return { store, state, close: async () => store.close() }
}

/** An engine over the target store, with the instance's linked hubs (no hub is ever called). */
function importEngine(store: Store, state: ServerState): Engine {
  const unused = (): Promise<never> => Promise.reject(new Error('an import never reaches a hub'))
  const hubGateway: HubGateway = { createOrUpdateDevice: unused, getTwin: unused, deleteDevice: unused }
  const engine = createEngine({ store, clock: { now: () => Date.now() }, random: pooledRandom(), hubGateway })
  engine.addInstance({
    idScope: state.idScope,
    serviceHostName: 'localhost',
    accessPolicies: [],
    linkedHubs: state.hubs.map((h) => ({
      hostName: h.hostName,
      connectionString: formatSharedAccessKeyConnectionString({ hostName: h.hostName, sharedAccessKeyName: h.policies[0]!.name, sharedAccessKey: h.policies[0]!.primaryKey }),
    })),
  })
  return engine
}

async function load(
  engine: Engine,
  idScope: string,
  file: string,
  format: 'jsonl' | 'csv',
  batchSize: number,
  log: (line: string) => void,
  progressEveryMs: number,
): Promise<ImportSummary> {
  const started = performance.now()
  let records = 0
  let created = 0
  let existing = 0
  let failed = 0
  let lastProgress = started
  let batch: { line: number; item: unknown }[] = []
  const fail = (line: number, reason: string) => {
    failed++
    log(`line ${line}: ${reason}`)
  }
  const flush = async () => {
    if (batch.length === 0) return
    const results: EnrollmentCreateResult[] = await engine.importEnrollments(idScope, batch.map((b) => b.item))
    for (const [i, r] of results.entries()) {
      if (r.status === 'created') created++
      else if (r.status === 'exists') existing++
      else fail(batch[i]!.line, r.error.message)
    }
    batch = []
    const now = performance.now()
    if (now - lastProgress >= progressEveryMs) {
      lastProgress = now
      const rate = Math.round(records / ((now - started) / 1000))
      log(`progress: ${records} records, ${created} created, ${existing} already there, ${failed} failed (${rate}/s)`)
    }
  }

  const input = createReadStream(file)
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve())
    input.once('error', (error) => reject(new ImportUsageError(`cannot read ${file}: ${error.message}`)))
  })
  await opened
  const lines = createInterface({ input, crlfDelay: Infinity })
  let header: Map<string, number> | undefined
  let lineNo = 0
  try {
    for await (const raw of lines) {
      lineNo++
      // A byte-order mark (spreadsheet exports) is not part of the first column's name.
      const text = lineNo === 1 && raw.startsWith('\uFEFF') ? raw.slice(1) : raw
      if (text.trim() === '') continue
      if (text.length > MAX_IMPORT_LINE_BYTES) {
        records++
        fail(lineNo, `the line is ${text.length} characters long; at most ${MAX_IMPORT_LINE_BYTES} are accepted`)
        continue
      }
      if (format === 'csv' && header === undefined) {
        header = csvHeader(text)
        continue
      }
      records++
      let item: unknown
      try {
        item = format === 'csv' ? csvRecord(header!, text) : parseJsonLine(text)
      } catch (error) {
        fail(lineNo, (error as Error).message)
        continue
      }
      batch.push({ line: lineNo, item })
      if (batch.length >= batchSize) await flush()
    }
    await flush()
  } finally {
    lines.close()
    input.destroy()
  }
  return { records, created, existing, failed, seconds: (performance.now() - started) / 1000 }
}

function parseJsonLine(text: string): unknown {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new Error(`not JSON: ${(error as Error).message}`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('must be a JSON object (an individual enrollment)')
  return value
}

function splitCsvHeader(text: string): string[] {
  try {
    return splitCsv(text)
  } catch (error) {
    throw new ImportUsageError(`CSV header: ${(error as Error).message}`)
  }
}

/** The header line: column name → index. Unknown, repeated or missing required columns refuse the file. */
function csvHeader(text: string): Map<string, number> {
  const names = splitCsvHeader(text).map((n) => n.trim())
  const known = new Set<string>(CSV_COLUMNS)
  const columns = new Map<string, number>()
  for (const [i, name] of names.entries()) {
    if (!known.has(name)) throw new ImportUsageError(`CSV header: unknown column ${JSON.stringify(name)} (columns: ${CSV_COLUMNS.join(', ')})`)
    if (columns.has(name)) throw new ImportUsageError(`CSV header: column ${name} appears twice`)
    columns.set(name, i)
  }
  for (const required of ['registrationId', 'attestationType']) {
    if (!columns.has(required)) throw new ImportUsageError(`CSV header: column ${required} is required`)
  }
  return columns
}

/**
 * Splits one CSV record (RFC 4180 quoting: `"a,b"`, `""` inside quotes). Records are one line
 * each, so line numbers name records and a re-run can count them.
 */
export function splitCsv(text: string): string[] {
  const fields: string[] = []
  let i = 0
  for (;;) {
    if (text[i] === '"') {
      let value = ''
      i++
      for (;;) {
        const q = text.indexOf('"', i)
        if (q < 0) throw new Error(`column ${fields.length + 1}: a quoted field is not closed`)
        value += text.slice(i, q)
        if (text[q + 1] === '"') {
          value += '"'
          i = q + 2
          continue
        }
        i = q + 1
        break
      }
      fields.push(value)
      if (i === text.length) return fields
      if (text[i] !== ',') throw new Error(`column ${fields.length}: text after a closing quote`)
      i++
    } else {
      const comma = text.indexOf(',', i)
      if (comma < 0) {
        fields.push(text.slice(i))
        return fields
      }
      fields.push(text.slice(i, comma))
      i = comma + 1
    }
  }
}

/** One CSV record as the service API's enrollment body. */
function csvRecord(columns: Map<string, number>, text: string): unknown {
  const fields = splitCsv(text)
  if (fields.length !== columns.size) throw new Error(`has ${fields.length} fields; the header has ${columns.size}`)
  const get = (name: (typeof CSV_COLUMNS)[number]): string | undefined => {
    const at = columns.get(name)
    const v = at === undefined ? undefined : fields[at]!.trim()
    return v === '' ? undefined : v
  }
  const json = (name: 'tags' | 'desiredProperties'): unknown => {
    const v = get(name)
    if (v === undefined) return undefined
    try {
      return JSON.parse(v)
    } catch (error) {
      throw new Error(`${name}: not JSON: ${(error as Error).message}`)
    }
  }
  const type = get('attestationType')
  let attestation: unknown
  switch (type) {
    case 'symmetricKey':
      attestation = { type, symmetricKey: { ...opt('primaryKey', get('primaryKey')), ...opt('secondaryKey', get('secondaryKey')) } }
      break
    case 'x509': {
      const cert = (v: string | undefined) => (v === undefined ? undefined : { certificate: v.replaceAll('\\n', '\n') })
      attestation = { type, x509: { clientCertificates: { ...opt('primary', cert(get('certificate'))), ...opt('secondary', cert(get('secondaryCertificate'))) } } }
      break
    }
    case 'tpm':
      attestation = { type, tpm: { ...opt('endorsementKey', get('endorsementKey')), ...opt('storageRootKey', get('storageRootKey')) } }
      break
    default:
      throw new Error(`attestationType: must be symmetricKey, x509 or tpm, got ${JSON.stringify(type ?? '')}`)
  }
  const iotEdge = get('iotEdge')
  if (iotEdge !== undefined && iotEdge !== 'true' && iotEdge !== 'false') throw new Error(`iotEdge: must be true or false, got ${JSON.stringify(iotEdge)}`)
  const tags = json('tags')
  const desired = json('desiredProperties')
  const twin = tags === undefined && desired === undefined ? undefined : { ...opt('tags', tags), ...(desired === undefined ? {} : { properties: { desired } }) }
  const hubs = get('iotHubs')
  return {
    registrationId: get('registrationId') ?? '',
    attestation,
    ...opt('deviceId', get('deviceId')),
    ...(hubs === undefined ? {} : { iotHubs: hubs.split(';').map((h) => h.trim()).filter((h) => h !== '') }),
    ...opt('allocationPolicy', get('allocationPolicy')),
    ...opt('provisioningStatus', get('provisioningStatus')),
    ...(iotEdge === undefined ? {} : { capabilities: { iotEdge: iotEdge === 'true' } }),
    ...opt('initialTwin', twin),
  }
}

function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V }
}
