import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import type { OperationRecord } from '@provisio/engine'
import { runStoreConformance } from '../../engine/test/store-conformance.js'
import { MIGRATIONS, PostgresStoreError, createPostgresStore, type PostgresStore } from '../src/index.js'
import { POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from './postgres-env.js'

const available = await postgresReachable()
const schemas: string[] = []
afterAll(async () => {
  for (const s of schemas) await dropSchema(s)
})

async function fresh(prefix = 'conf'): Promise<PostgresStore> {
  const schema = uniqueSchema(`provisio_test_${prefix}`)
  schemas.push(schema)
  return createPostgresStore(POSTGRES_URL, { schema, maxConnections: 4 })
}

function op(id: string, device: string, owner: string, until: number): OperationRecord {
  return {
    operationId: id,
    registrationId: device,
    status: 'assigning',
    createdAtMs: 1,
    updatedAtMs: 1,
    leaseOwner: owner,
    assigningUntilMs: until,
    request: {
      enrollment: { kind: 'individual', id: device },
      auth: { type: 'sas', primaryKey: 'cA==', secondaryKey: 'cw==' },
      attestation: {},
      payload: { nul: 'a\u0000b', emoji: '🙂' },
      forceRegistration: false,
      apiVersion: '2021-10-01',
    },
  }
}

describe.skipIf(!available)('PostgresStore', () => {
  runStoreConformance('PostgresStore (schema per test)', async () => {
    const store = await fresh()
    return { store, close: () => store.close() }
  })

  it('migrates once when several instances start at the same time', async () => {
    const schema = uniqueSchema('provisio_test_mig')
    schemas.push(schema)
    const stores = await Promise.all(Array.from({ length: 5 }, () => createPostgresStore(POSTGRES_URL, { schema, maxConnections: 2 })))
    for (const s of stores) expect(await s.schemaVersions()).toEqual(MIGRATIONS.map((m) => m.version))
    await Promise.all(stores.map((s) => s.close()))
  })

  it('takes the schema from the URL query and refuses a newer schema', async () => {
    const schema = uniqueSchema('provisio_test_url')
    schemas.push(schema)
    const store = await createPostgresStore(`${POSTGRES_URL}?schema=${schema}&pool_max=3`)
    expect(store.schema).toBe(schema)
    expect(store.pool.options.max).toBe(3)
    await store.pool.query(`INSERT INTO "${schema}".schema_migrations (version, name) VALUES (999, 'future')`)
    await store.close()
    await expect(createPostgresStore(POSTGRES_URL, { schema })).rejects.toMatchObject({ code: 'POSTGRES_SCHEMA_TOO_NEW', message: expect.stringMatching(/version 999, newer/) })
  })

  it('says where and why when the database is unreachable or the configuration is wrong', async () => {
    const error = await createPostgresStore('postgres://nobody@127.0.0.1:1/none', { connectionTimeoutMs: 2000 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PostgresStoreError)
    expect(error).toMatchObject({ code: 'POSTGRES_UNREACHABLE', message: expect.stringMatching(/127\.0\.0\.1:1\/none.*ECONNREFUSED/) })
    await expect(createPostgresStore(POSTGRES_URL, { schema: 'bad"name' })).rejects.toMatchObject({ code: 'POSTGRES_CONFIG_INVALID' })
    await expect(createPostgresStore('mysql://x@y/z')).rejects.toMatchObject({ code: 'POSTGRES_CONFIG_INVALID' })
    await expect(createPostgresStore(`${POSTGRES_URL}?pool_max=0`)).rejects.toMatchObject({ code: 'POSTGRES_CONFIG_INVALID', message: expect.stringMatching(/pool_max/) })
    const missingDb = await createPostgresStore(POSTGRES_URL.replace(/\/[^/]*$/, '/provisio_no_such_database')).catch((e: unknown) => e)
    expect(missingDb).toMatchObject({ code: 'POSTGRES_UNREACHABLE', message: expect.stringMatching(/provisio_no_such_database/) })
  })

  it('lets exactly one of many concurrent registers of a device begin its operation (two pools)', async () => {
    const a = await fresh('race')
    const b = await createPostgresStore(a.pool.options.connectionString ?? POSTGRES_URL, { schema: a.schema, maxConnections: 4 })
    const scope = '0ne00000001'
    for (let round = 0; round < 20; round++) {
      const device = `dev-${round}`
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).beginOperation(scope, op(`${round}.${i}.op`, i % 3 === 0 ? device.toUpperCase() : device, `owner-${i}`, 10_000), 5000)),
      )
      const created = results.filter((r) => r.created)
      expect(created.length).toBe(1)
      const winner = await a.getDeviceOperation(scope, device)
      for (const r of results) if (!r.created) expect(r.existing).toEqual(winner)
    }
    const { rows } = await a.pool.query(`SELECT count(*)::int AS n FROM "${a.schema}".operations`)
    expect(rows[0].n).toBe(20)
    await b.close()
    await a.close()
  })

  it('finishes a taken-over operation once: the old lease holder loses, one registration record', async () => {
    const a = await fresh('finish')
    const scope = '0ne00000001'
    const first = op('9.aa.op', 'dev', 'dead-instance', 1000)
    await a.beginOperation(scope, first, 0)
    const taken = await a.leaseOperation(scope, first.operationId, 'dead-instance', 'live-instance', 9000, 2000)
    expect(taken).toBeDefined()
    const record = { state: { registrationId: 'dev', status: 'assigned' as const, assignedHub: 'h', deviceId: 'dev', etag: '"r"' } }
    const outcomes = await Promise.all([
      a.finishOperation(scope, { ...taken!, status: 'assigned' }, 'live-instance', record),
      a.finishOperation(scope, { ...first, status: 'assigned' }, 'dead-instance', { ...record, state: { ...record.state, etag: '"stale"' } }),
      a.finishOperation(scope, { ...taken!, status: 'assigned' }, 'live-instance', record),
    ])
    expect(outcomes.filter(Boolean).length).toBe(1)
    expect((await a.getRegistration(scope, 'DEV'))?.state.etag).toBe('"r"')
    expect((await a.getOperation(scope, first.operationId))?.request.payload).toEqual({ nul: 'a\u0000b', emoji: '🙂' })
    await a.close()
  })

  it('keeps the hub registry and first-writer-wins settings', async () => {
    const a = await fresh('hub')
    const record = { deviceId: 'd1' } as never
    await a.hubStore.put('Hub.Local', 'd1', record)
    await a.hubStore.put('hub.local', 'd1', record)
    await a.hubStore.put('hub.local', 'd2', { deviceId: 'd2' } as never)
    expect(await a.hubStore.get('HUB.local', 'd1')).toEqual(record)
    expect((await a.hubStore.list('hub.local', { limit: 10 })).length).toBe(2)
    expect(await a.hubStore.list('hub.local', { after: 'd1', limit: 10 })).toEqual([{ deviceId: 'd2' }])
    expect(await a.hubStore.delete('hub.local', 'd1')).toBe(true)
    expect(await a.hubStore.delete('hub.local', 'd1')).toBe(false)
    const claimed = await Promise.all(['one', 'two', 'three'].map((v) => a.claimSetting('state', v)))
    expect(new Set(claimed).size).toBe(1)
    expect(await a.getSetting('state')).toBe(claimed[0])
    expect(await a.getSetting('other')).toBeUndefined()
    // putSetting replaces (a changed shared state) and creates.
    await a.putSetting('state', 'four')
    expect(await a.getSetting('state')).toBe('four')
    await a.putSetting('other', 'five')
    expect(await a.getSetting('other')).toBe('five')
    await a.close()
  })

  it('writes hub records conditionally: insert only when absent, update only when both etags still match', async () => {
    const a = await fresh('hubcas')
    const v1 = { device: { deviceId: 'd', etag: 'e1' }, twin: { etag: 't1' } } as never
    const v2 = { device: { deviceId: 'd', etag: 'e1' }, twin: { etag: 't2' } } as never
    expect(await a.hubStore.put('hub.local', 'd', v1, { absent: true })).toBe(true)
    expect(await a.hubStore.put('hub.local', 'd', v2, { absent: true })).toBe(false)
    // Two writers read v1; only the first conditional update lands.
    const outcomes = await Promise.all([a.hubStore.put('hub.local', 'd', v2, { deviceEtag: 'e1', twinEtag: 't1', modulesEtag: '' }), a.hubStore.put('hub.local', 'd', v2, { deviceEtag: 'e1', twinEtag: 't1', modulesEtag: '' })])
    expect(outcomes.filter(Boolean)).toHaveLength(1)
    expect(await a.hubStore.put('hub.local', 'd', v1, { deviceEtag: 'e1', twinEtag: 't1', modulesEtag: '' })).toBe(false)
    expect(await a.hubStore.get('hub.local', 'd')).toEqual(v2)
    expect(await a.hubStore.put('hub.local', 'gone', v1, { deviceEtag: 'e1', twinEtag: 't1', modulesEtag: '' })).toBe(false)
    expect(await a.hubStore.get('hub.local', 'gone')).toBeUndefined()
    // A module write changes only modulesEtag: a writer that read the record before it loses.
    const v3 = { device: { deviceId: 'd', etag: 'e1' }, twin: { etag: 't2' }, modulesEtag: 'm1' } as never
    expect(await a.hubStore.put('hub.local', 'd', v3, { deviceEtag: 'e1', twinEtag: 't2', modulesEtag: '' })).toBe(true)
    expect(await a.hubStore.put('hub.local', 'd', v1, { deviceEtag: 'e1', twinEtag: 't2', modulesEtag: '' })).toBe(false)
    expect(await a.hubStore.put('hub.local', 'd', v1, { deviceEtag: 'e1', twinEtag: 't2', modulesEtag: 'm1' })).toBe(true)
    await a.close()
  })

  it('migrates a schema a DBA created for a role that may not create schemas', async () => {
    const schema = uniqueSchema('provisio_test_role')
    const role = schema.replace('provisio_test_role', 'provisio_role')
    const admin = new pg.Client({ connectionString: POSTGRES_URL })
    await admin.connect()
    try {
      await admin.query(`CREATE ROLE "${role}" LOGIN`)
      await admin.query(`CREATE SCHEMA "${schema}" AUTHORIZATION "${role}"`)
      const url = new URL(POSTGRES_URL)
      url.username = role
      const store = await createPostgresStore(url.toString(), { schema })
      expect(await store.schemaVersions()).toEqual(MIGRATIONS.map((m) => m.version))
      await store.close()
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await admin.query(`DROP ROLE IF EXISTS "${role}"`)
      await admin.end()
    }
  })

  it('shares a pool it did not create between schemas, and leaves it open', async () => {
    const one = uniqueSchema('provisio_test_pool')
    const two = uniqueSchema('provisio_test_pool')
    schemas.push(one, two)
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 })
    const a = await createPostgresStore(pool, { schema: one })
    const b = await createPostgresStore(pool, { schema: two })
    // Different first statements on the one connection: prepared names must not clash.
    expect(await a.getEnrollment('0ne00000001', 'x')).toBeUndefined()
    expect(await b.groupsRevision('0ne00000001')).toBe(0)
    expect(await b.getEnrollment('0ne00000001', 'x')).toBeUndefined()
    expect(await a.groupsRevision('0ne00000001')).toBe(0)
    await a.close()
    await b.close()
    expect((await pool.query('SELECT 1 AS one')).rows[0].one).toBe(1)
    await pool.end()
  })
})
