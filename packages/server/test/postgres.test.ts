/**
 * `provisio serve --store postgres://…` in-process: two servers on one schema share the DPS
 * instance (state settled through the database and mirrored into each data directory), the
 * engine records and the embedded hub's registry; an unreachable database fails the start with
 * where and why; the operation lease is configurable.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, DEFAULT_CONFIG, resolveConfig, type ServeConfig } from '../src/config.js'
import { createLogger } from '../src/logger.js'
import { isPostgresStore } from '../src/postgres.js'
import { startServer, type RunningServer } from '../src/serve.js'
import { POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from '../../store-postgres/test/postgres-env.js'

const available = await postgresReachable()
const schema = uniqueSchema('provisio_test_serve')
const dirs: string[] = []
const running: RunningServer[] = []
afterAll(async () => {
  for (const s of running) await s.close(100)
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
  if (available) await dropSchema(schema)
})

function config(store: string): ServeConfig {
  const dataDir = mkdtempSync(join(tmpdir(), 'provisio-serve-pg-'))
  dirs.push(dataDir)
  return { ...DEFAULT_CONFIG, dataDir, store, httpsPort: 0, mqttPort: 0, amqpPort: 0, logLevel: 'error' }
}
const quiet = createLogger('error', () => {})

describe('store selection', () => {
  it('recognises PostgreSQL URLs and parses --operation-lease-ms', () => {
    expect(isPostgresStore('postgres://u@h/db')).toBe(true)
    expect(isPostgresStore('postgresql://u@h/db?schema=x')).toBe(true)
    expect(isPostgresStore('sqlite:/tmp/x.db')).toBe(false)
    expect(resolveConfig({ 'operation-lease-ms': '5000' }, {}, '/').operationLeaseMs).toBe(5000)
    expect(resolveConfig({}, { PROVISIO_OPERATION_LEASE_MS: '7000' }, '/').operationLeaseMs).toBe(7000)
    expect(resolveConfig({}, {}, '/').operationLeaseMs).toBe(30_000)
    expect(() => resolveConfig({ 'operation-lease-ms': 'soon' }, {}, '/')).toThrow(ConfigError)
  })

  it('refuses an unreachable database at start, saying where and why', async () => {
    const error = await startServer(config('postgres://nobody@127.0.0.1:1/nowhere'), quiet).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'POSTGRES_UNREACHABLE', message: expect.stringMatching(/cannot connect to PostgreSQL at 127\.0\.0\.1:1\/nowhere/) })
  })
})

describe.skipIf(!available)('two servers on one PostgreSQL schema', () => {
  it('share the DPS instance, the records and the hub registry', async () => {
    const store = `${POSTGRES_URL}?schema=${schema}`
    const a = await startServer(config(store), quiet)
    running.push(a)
    const configB = config(store)
    const b = await startServer(configB, quiet)
    running.push(b)
    expect(b.state).toEqual(a.state)
    expect(b.endpoints.serviceConnectionString).toBe(a.endpoints.serviceConnectionString)
    // The second data directory mirrors the shared state (for `provisio sas` and friends).
    expect(JSON.parse(readFileSync(join(configB.dataDir, 'state.json'), 'utf8'))).toEqual(a.state)
    // …keeping the local state it replaced beside it.
    const replaced = readdirSync(configB.dataDir).filter((f) => /^state\.0ne[0-9A-F]+\.replaced\.json$/.test(f))
    expect(replaced.length).toBe(1)
    expect(JSON.parse(readFileSync(join(configB.dataDir, replaced[0]!), 'utf8')).idScope).not.toBe(a.state.idScope)

    const idScope = a.state.idScope
    await a.engine.createOrUpdateEnrollment(idScope, {
      registrationId: 'shared-dev',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: Buffer.alloc(32, 1).toString('base64'), secondaryKey: Buffer.alloc(32, 2).toString('base64') } },
    })
    expect((await b.engine.getEnrollment(idScope, 'SHARED-DEV')).registrationId).toBe('shared-dev')

    const hubName = a.state.hubs[0]!.hostName.toLowerCase()
    await a.hubs.get(hubName)!.createOrUpdateDevice({ deviceId: 'hub-dev', authentication: { type: 'sas', symmetricKey: { primaryKey: Buffer.alloc(32, 3).toString('base64'), secondaryKey: Buffer.alloc(32, 4).toString('base64') } }, capabilities: { iotEdge: false } })
    expect((await b.hubs.get(hubName)!.getDevice('hub-dev'))?.deviceId).toBe('hub-dev')
  })
})
