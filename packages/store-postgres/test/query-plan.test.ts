/**
 * The PostgreSQL store's reads over 20,000 enrollments and registrations are index scans: the
 * queries the store actually sends for paging (first page, next page by continuation key, by
 * group) and point reads are captured from its pool and run again under EXPLAIN with the same
 * parameters, after ANALYZE. No sequential scan, no sort (paging walks the primary key order).
 */
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import type { RegistrationRecord } from '@provisio/engine'
import type { IndividualEnrollment } from '@provisio/protocol'
import { createPostgresStore } from '../src/index.js'
import { POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from './postgres-env.js'

const available = await postgresReachable()
const schema = uniqueSchema('provisio_test_plan')
afterAll(async () => {
  if (available) await dropSchema(schema)
})

const S = '0ne00000P1G'
const N = 20_000

function enrollment(i: number): IndividualEnrollment {
  return {
    registrationId: `Dev-${String(i).padStart(6, '0')}`,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: 'cHJpbWFyeQ==', secondaryKey: 'c2Vjb25kYXJ5' } },
    capabilities: { iotEdge: false },
    provisioningStatus: 'enabled',
    reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: true },
    etag: `"e${i}"`,
  }
}

describe.skipIf(!available)('PostgreSQL store query plans over 20,000 rows', () => {
  it('pages and reads through index scans', async () => {
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 4 })
    const store = await createPostgresStore(pool, { schema })
    try {
      for (let i = 0; i < N; i += 2000) {
        const batch = Array.from({ length: 2000 }, (_, j) => ({ enrollment: enrollment(i + j), condition: { ifNoneExists: true } }))
        expect((await store.putEnrollments(S, batch)).every((r) => r.ok)).toBe(true)
      }
      const values: string[] = []
      const rows: unknown[] = []
      for (let i = 0; i < N; i++) {
        const id = `Dev-${String(i).padStart(6, '0')}`
        const record: RegistrationRecord = { state: { registrationId: id, status: 'assigned', assignedHub: 'h', deviceId: id, etag: `"r${i}"` }, ...(i % 3 === 0 ? { enrollmentGroupId: `G-${i % 7}` } : {}) }
        values.push(`($1, $${rows.length + 2}, 'e', $${rows.length + 3}, $${rows.length + 4})`)
        rows.push(id.toLowerCase(), record.enrollmentGroupId?.toLowerCase() ?? null, JSON.stringify(record))
        if (values.length === 1000) {
          await pool.query(`INSERT INTO "${schema}".registrations (id_scope, id_key, etag, group_key, body) VALUES ${values.join(', ')}`, [S, ...rows])
          values.length = 0
          rows.length = 0
        }
      }
      await pool.query(`ANALYZE "${schema}".enrollments`)
      await pool.query(`ANALYZE "${schema}".registrations`)

      // Capture what the store sends for its reads.
      const captured: { text: string; values: unknown[] }[] = []
      const query = pool.query.bind(pool) as (...args: unknown[]) => unknown
      ;(pool as unknown as { query: (...args: unknown[]) => unknown }).query = (config: unknown, ...rest: unknown[]) => {
        if (typeof config === 'object' && config !== null && 'text' in config) {
          const c = config as { text: string; values?: unknown[] }
          captured.push({ text: c.text, values: c.values ?? [] })
        }
        return query(config, ...rest)
      }
      const first = await store.listEnrollments(S, { limit: 100 })
      const next = await store.listEnrollments(S, { after: first[99]!.registrationId.toLowerCase(), limit: 100 })
      expect(next[0]!.registrationId).toBe('Dev-000100')
      await store.listRegistrations(S, { after: 'dev-010000', limit: 100 })
      await store.listRegistrationsByGroup(S, 'G-0', { limit: 100 })
      await store.listRegistrationsByGroup(S, 'g-0', { after: 'dev-005000', limit: 100 })
      await store.getEnrollment(S, 'dev-012345')
      await store.getRegistration(S, 'dev-012345')
      ;(pool as unknown as { query: unknown }).query = query
      expect(captured.length).toBeGreaterThanOrEqual(7)

      for (const { text, values: params } of captured) {
        const { rows: plan } = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, params)
        const lines = plan.map((r) => r['QUERY PLAN']).join('\n')
        expect(lines, text).toMatch(/Index (Only )?Scan/)
        expect(lines, text).not.toMatch(/Seq Scan|Sort/)
      }

      // Keyset paging visits every row once.
      let after: string | undefined
      let seen = 0
      for (;;) {
        const page = await store.listEnrollments(S, { ...(after === undefined ? {} : { after }), limit: 1000 })
        if (page.length === 0) break
        seen += page.length
        after = page[page.length - 1]!.registrationId.toLowerCase()
      }
      expect(seen).toBe(N)
    } finally {
      await store.close()
      await pool.end()
    }
  }, 120_000)
})
