/**
 * Every statement the engine's SQLite store prepares, over 20,000 enrollments and registrations,
 * is answered through an index: EXPLAIN QUERY PLAN shows SEARCH (a key or index lookup), never a
 * SCAN of a table and never a temporary B-tree for ORDER BY (paging walks the key order). Paging
 * then visits every row once, page by page, with continuation keys.
 */
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import type { IndividualEnrollment } from '@provisio/protocol'
import type { RegistrationRecord } from '@provisio/engine'
import { createSqliteStore } from '../src/index.js'

const S = '0ne00000P1N'
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

function registration(i: number): RegistrationRecord {
  const id = `Dev-${String(i).padStart(6, '0')}`
  return {
    state: { registrationId: id, status: 'assigned', assignedHub: 'hub.example', deviceId: id, etag: `"r${i}"` },
    ...(i % 3 === 0 ? { enrollmentGroupId: `Group-${i % 7}` } : {}),
  }
}

describe('SQLite store query plans over 20,000 rows', () => {
  it('uses an index for every statement, and pages in key order with continuation keys', async () => {
    const db = new Database(':memory:')
    // Record every statement the store prepares (its whole set of queries).
    const prepared: string[] = []
    const prepare = db.prepare.bind(db)
    ;(db as { prepare: typeof db.prepare }).prepare = ((source: string) => {
      prepared.push(source)
      return prepare(source)
    }) as typeof db.prepare
    const store = createSqliteStore(db)
    try {
      for (let i = 0; i < N; i += 1000) {
        const batch = Array.from({ length: 1000 }, (_, j) => ({ enrollment: enrollment(i + j), condition: { ifNoneExists: true } }))
        expect((await store.putEnrollments(S, batch)).every((r) => r.ok)).toBe(true)
      }
      for (let i = 0; i < N; i++) await store.putRegistration(S, registration(i))
      db.exec('ANALYZE')

      const reads = prepared.filter((sql) => /^\s*(SELECT|UPDATE|DELETE)\b/i.test(sql) || /\bWHERE\b/i.test(sql))
      expect(reads.length).toBeGreaterThan(10)
      const tables = ['enrollments', 'enrollment_groups', 'registrations', 'operations', 'ca_certificates', 'tpm_challenges', 'scope_state']
      for (const sql of reads) {
        const params = (sql.match(/\?/g) ?? []).map(() => null)
        const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail)
        const text = plan.join(' | ')
        for (const line of plan) {
          const full = line.match(/^SCAN (\w+)/)
          if (full !== null && tables.includes(full[1]!)) {
            expect.fail(`full scan of ${full[1]} in: ${sql.replace(/\s+/g, ' ')} → ${text}`)
          }
        }
        expect(text, sql).not.toMatch(/USE TEMP B-TREE FOR ORDER BY/)
      }

      // Keyset paging: every row once, in order, each page from the key after the last one.
      let after: string | undefined
      const seen: string[] = []
      for (;;) {
        const page = await store.listEnrollments(S, { ...(after === undefined ? {} : { after }), limit: 1000 })
        if (page.length === 0) break
        seen.push(...page.map((e) => e.registrationId))
        after = page[page.length - 1]!.registrationId.toLowerCase()
      }
      expect(seen).toHaveLength(N)
      expect(new Set(seen).size).toBe(N)
      expect(seen[0]).toBe('Dev-000000')
      expect(seen[N - 1]).toBe(`Dev-0${N - 1}`)

      const byGroup = await store.listRegistrationsByGroup(S, 'group-0', { limit: N })
      expect(byGroup.length).toBe(Array.from({ length: N }, (_, i) => i).filter((i) => i % 3 === 0 && i % 7 === 0).length)
    } finally {
      store.close()
      db.close()
    }
  })
})
