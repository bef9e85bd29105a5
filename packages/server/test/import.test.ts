/**
 * `provisio enrollments import` in-process (runImport): JSON lines and CSV with bad lines among
 * good ones (each bad line reported with its number, field and reason, the rest loaded), a re-run
 * that creates nothing and duplicates nothing, the rules of the service API (linked hubs, keys
 * generated), and the same on PostgreSQL. The kill-and-resume case runs the built CLI
 * (test/server/import-resume.test.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { createSqliteStore } from '@provisio/store-sqlite'
import { createPostgresStore } from '@provisio/store-postgres'
import { ImportUsageError, runImport, splitCsv } from '../src/import.js'
import { POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from '../../store-postgres/test/postgres-env.js'

const ID_SCOPE = '0ne00012345'
const HUB = 'import-hub.example.net'
const KEY = Buffer.alloc(32, 7).toString('base64')
const dirs: string[] = []
const schemas: string[] = []
const available = await postgresReachable()
afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
  for (const s of schemas) await dropSchema(s)
})

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'provisio-import-'))
  dirs.push(dir)
  const state = { version: 1, idScope: ID_SCOPE, servicePolicies: [], hubs: [{ hostName: HUB, policies: [{ name: 'iothubowner', primaryKey: KEY, secondaryKey: KEY }] }] }
  writeFileSync(join(dir, 'state.json'), JSON.stringify(state))
  return dir
}

function good(i: number): Record<string, unknown> {
  return {
    registrationId: `dev-${String(i).padStart(6, '0')}`,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } },
    iotHubs: [HUB],
    initialTwin: { tags: { n: i } },
  }
}

function collect(): { lines: string[]; log: (line: string) => void } {
  const lines: string[] = []
  return { lines, log: (line) => lines.push(line) }
}

function counts(dir: string): { rows: number; distinct: number } {
  const db = new Database(join(dir, 'provisio.db'), { readonly: true })
  try {
    const r = db.prepare('SELECT COUNT(*) AS n, COUNT(DISTINCT id_key) AS d FROM enrollments WHERE id_scope = ?').get(ID_SCOPE) as { n: number; d: number }
    return { rows: r.n, distinct: r.d }
  } finally {
    db.close()
  }
}

describe('provisio enrollments import (JSON lines)', () => {
  it('loads 20,000 good lines, reports each bad line by number, field and reason, and a re-run adds nothing', async () => {
    const dir = dataDir()
    const file = join(dir, 'in.jsonl')
    const lines: string[] = []
    const bad = new Map<number, RegExp>()
    for (let i = 0; i < 20_000; i++) {
      lines.push(JSON.stringify(good(i)))
      if (i === 10) {
        lines.push('{"registrationId": "broken"')
        bad.set(lines.length, /not JSON/)
      }
      if (i === 500) {
        lines.push(JSON.stringify({ ...good(0), registrationId: 'bad id with spaces' }))
        bad.set(lines.length, /registrationId/)
      }
      if (i === 7000) {
        lines.push(JSON.stringify({ ...good(0), registrationId: 'unlinked-hub', iotHubs: ['elsewhere.example.net'] }))
        bad.set(lines.length, /iotHubs\[0\].*not a hub linked/)
      }
      if (i === 12_000) {
        lines.push(JSON.stringify({ registrationId: 'no-attestation' }))
        bad.set(lines.length, /attestation.*required/)
      }
      if (i === 15_000) {
        lines.push('[1, 2]')
        bad.set(lines.length, /JSON object/)
      }
      if (i === 19_999) {
        lines.push('') // blank lines are skipped, not errors
        lines.push(JSON.stringify(good(5))) // a repeat inside the file: already there
      }
    }
    writeFileSync(file, lines.join('\n') + '\n')
    const out = collect()
    const summary = await runImport({ file, dataDir: dir, batchSize: 700, log: out.log })
    expect(summary).toMatchObject({ records: 20_006, created: 20_000, existing: 1, failed: 5 })
    const errors = out.lines.filter((l) => l.startsWith('line '))
    expect(errors).toHaveLength(5)
    for (const [line, why] of bad) {
      const reported = errors.find((l) => l.startsWith(`line ${line}: `))
      expect(reported, `line ${line} is reported`).toBeDefined()
      expect(reported).toMatch(why)
    }
    expect(counts(dir)).toEqual({ rows: 20_000, distinct: 20_000 })

    // What was stored went through the service rules: defaults and the initial twin kept.
    const store = createSqliteStore(join(dir, 'provisio.db'))
    try {
      const e = await store.getEnrollment(ID_SCOPE, 'DEV-000042')
      expect(e).toMatchObject({ registrationId: 'dev-000042', provisioningStatus: 'enabled', iotHubs: [HUB], initialTwin: { tags: { n: 42 } } })
      expect(e?.etag).toMatch(/\S/)
      expect(e?.createdDateTimeUtc).toMatch(/^\d{4}-\d\d-\d\dT/)
    } finally {
      store.close()
    }

    const again = await runImport({ file, dataDir: dir, log: collect().log })
    expect(again).toMatchObject({ records: 20_006, created: 0, existing: 20_001, failed: 5 })
    expect(counts(dir)).toEqual({ rows: 20_000, distinct: 20_000 })
  })

  it('refuses a line longer than the limit, and a data directory without an instance', async () => {
    const dir = dataDir()
    const file = join(dir, 'long.jsonl')
    writeFileSync(file, [JSON.stringify(good(1)), JSON.stringify({ ...good(2), pad: 'x'.repeat(300 * 1024) }), JSON.stringify(good(3))].join('\n'))
    const out = collect()
    const summary = await runImport({ file, dataDir: dir, log: out.log })
    expect(summary).toMatchObject({ records: 3, created: 2, failed: 1 })
    expect(out.lines.find((l) => l.startsWith('line 2: '))).toMatch(/at most 262144/)
    const empty = mkdtempSync(join(tmpdir(), 'provisio-import-empty-'))
    dirs.push(empty)
    await expect(runImport({ file, dataDir: empty, log: () => {} })).rejects.toThrow(ImportUsageError)
    await expect(runImport({ file: join(dir, 'missing.jsonl'), dataDir: dir, log: () => {} })).rejects.toThrow(/cannot read/)
    await expect(runImport({ file, dataDir: dir, batchSize: 0, log: () => {} })).rejects.toThrow(/--batch/)
  })
})

describe('provisio enrollments import (CSV)', () => {
  it('maps the columns onto enrollments, generates missing keys, and reports bad records', async () => {
    const dir = dataDir()
    const file = join(dir, 'in.csv')
    const rows = ['\uFEFFregistrationId,attestationType,primaryKey,secondaryKey,iotHubs,iotEdge,tags,desiredProperties,provisioningStatus']
    for (let i = 0; i < 10_000; i++) {
      rows.push(`csv-${i},symmetricKey,${KEY},${KEY},${HUB},${i % 2 === 0},"{""row"":${i}}","{""mode"":""a,b""}",enabled`)
    }
    rows.push('csv-genkeys,symmetricKey,,,,,,,') // line 10,002: keys generated
    rows.push('csv-badtype,password,,,,,,,') // 10,003
    rows.push('csv-badedge,symmetricKey,,,,yes,,,') // 10,004
    rows.push('csv-badjson,symmetricKey,,,,,{not json},,') // 10,005
    rows.push('csv-short,symmetricKey') // 10,006
    rows.push('csv-status,symmetricKey,,,,,,,paused') // 10,007
    rows.push('"csv-open,symmetricKey,,,,,,,') // 10,008
    writeFileSync(file, rows.join('\r\n') + '\r\n')
    const out = collect()
    const summary = await runImport({ file, dataDir: dir, log: out.log })
    expect(summary).toMatchObject({ records: 10_007, created: 10_001, existing: 0, failed: 6 })
    const errors = out.lines.filter((l) => l.startsWith('line '))
    expect(errors.find((l) => l.startsWith('line 10003: '))).toMatch(/attestationType: must be symmetricKey, x509 or tpm/)
    expect(errors.find((l) => l.startsWith('line 10004: '))).toMatch(/iotEdge: must be true or false/)
    expect(errors.find((l) => l.startsWith('line 10005: '))).toMatch(/tags: not JSON/)
    expect(errors.find((l) => l.startsWith('line 10006: '))).toMatch(/2 fields; the header has 9/)
    expect(errors.find((l) => l.startsWith('line 10007: '))).toMatch(/provisioningStatus/)
    expect(errors.find((l) => l.startsWith('line 10008: '))).toMatch(/quoted field is not closed/)
    const store = createSqliteStore(join(dir, 'provisio.db'))
    try {
      expect(await store.getEnrollment(ID_SCOPE, 'csv-8')).toMatchObject({
        attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } },
        iotHubs: [HUB],
        capabilities: { iotEdge: true },
        initialTwin: { tags: { row: 8 }, properties: { desired: { mode: 'a,b' } } },
      })
      const generated = await store.getEnrollment(ID_SCOPE, 'csv-genkeys')
      expect(generated?.attestation.type).toBe('symmetricKey')
      const sk = (generated?.attestation as { symmetricKey: { primaryKey: string; secondaryKey: string } }).symmetricKey
      expect(Buffer.from(sk.primaryKey, 'base64')).toHaveLength(64)
      expect(sk.secondaryKey).not.toBe(sk.primaryKey)
    } finally {
      store.close()
    }
    expect(counts(dir)).toEqual({ rows: 10_001, distinct: 10_001 })
  })

  it('refuses an unknown or incomplete header as a whole, and splits quoted fields', async () => {
    const dir = dataDir()
    const file = join(dir, 'h.csv')
    writeFileSync(file, 'registrationId,attestationType,colour\nx,symmetricKey,red\n')
    await expect(runImport({ file, dataDir: dir, log: () => {} })).rejects.toThrow(/unknown column "colour"/)
    writeFileSync(file, 'registrationId,primaryKey\nx,abc\n')
    await expect(runImport({ file, dataDir: dir, log: () => {} })).rejects.toThrow(/column attestationType is required/)
    expect(splitCsv('a,"b,c","d""e",,')).toEqual(['a', 'b,c', 'd"e', '', ''])
    expect(() => splitCsv('"a"b')).toThrow(/after a closing quote/)
  })
})

describe.skipIf(!available)('provisio enrollments import --postgres', () => {
  it('loads into PostgreSQL with the same rules, and a re-run adds nothing', async () => {
    const dir = dataDir()
    const schema = uniqueSchema('provisio_test_import')
    schemas.push(schema)
    const url = `${POSTGRES_URL}?schema=${schema}`
    const file = join(dir, 'in.jsonl')
    const lines = Array.from({ length: 12_000 }, (_, i) => JSON.stringify(good(i)))
    lines.splice(100, 0, JSON.stringify({ ...good(0), registrationId: 'x', iotHubs: ['nope.example.net'] }))
    lines.push(JSON.stringify(good(3)))
    writeFileSync(file, lines.join('\n'))
    const out = collect()
    expect(await runImport({ file, dataDir: dir, postgres: url, batchSize: 1000, log: out.log })).toMatchObject({ records: 12_002, created: 12_000, existing: 1, failed: 1 })
    expect(out.lines.find((l) => l.startsWith('line 101: '))).toMatch(/not a hub linked/)
    expect(await runImport({ file, dataDir: dir, postgres: url, log: () => {} })).toMatchObject({ created: 0, existing: 12_001, failed: 1 })
    const store = await createPostgresStore(url)
    try {
      const { rows } = await store.pool.query<{ n: string; d: string }>(`SELECT COUNT(*) AS n, COUNT(DISTINCT id_key) AS d FROM "${schema}".enrollments`)
      expect(rows[0]).toEqual({ n: '12000', d: '12000' })
      expect(await store.getEnrollment(ID_SCOPE, 'dev-011999')).toMatchObject({ initialTwin: { tags: { n: 11_999 } } })
    } finally {
      await store.close()
    }
  })
})
