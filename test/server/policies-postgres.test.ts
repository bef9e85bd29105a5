// Access-policy changes across two instances on one PostgreSQL database (server/src/shared-state.ts):
// each instance has its own data directory; `provisio policies regenerate` on A's directory must
// reach B at once — the old key's fresh tokens refused by B, the other key still working — proved
// with Microsoft's azure-iot-provisioning-service talking to B over TLS.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type * as HttpsModule from 'node:https'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningServiceClient } from 'azure-iot-provisioning-service'
import { DEFAULT_CONFIG, createLogger, runPolicies, startServer, type RunningServer } from '@provisio/server'
import { POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from '../lib/postgres.js'

const https = createRequire(import.meta.url)('node:https') as typeof HttpsModule
const available = await postgresReachable()
const schema = uniqueSchema('provisio_policies_pg')

interface Instance {
  readonly server: RunningServer
  readonly dataDir: string
  /** Resolves at the next log line whose message is `msg`, rejects after `withinMs`. */
  next(msg: string, withinMs: number): Promise<Record<string, unknown>>
}

async function start(name: string): Promise<Instance> {
  const dataDir = mkdtempSync(join(tmpdir(), `provisio-policies-pg-${name}-`))
  const waiters: { msg: string; resolve: (line: Record<string, unknown>) => void }[] = []
  const log = createLogger('info', (line) => {
    const parsed = JSON.parse(line) as Record<string, unknown>
    for (const w of [...waiters]) {
      if (parsed['msg'] !== w.msg) continue
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve(parsed)
    }
  })
  const server = await startServer({ ...DEFAULT_CONFIG, dataDir, store: `${POSTGRES_URL}?schema=${schema}`, httpsPort: 0, amqpPort: 0, mqttPort: 0, logLevel: 'info' }, log, { writeEndpoints: false })
  return {
    server,
    dataDir,
    next: (msg, withinMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "${msg}" log line within ${withinMs} ms`)), withinMs)
        waiters.push({ msg, resolve: (line) => (clearTimeout(timer), resolve(line)) })
      }),
  }
}

let a: Instance | undefined
let b: Instance | undefined
const previousAgent = https.globalAgent

beforeAll(async () => {
  if (!available) return
  a = await start('a')
  b = await start('b')
  // Microsoft's service client talks to port 443 of the connection string's host: route it to B.
  const agent = new https.Agent({ ca: readFileSync(b.server.endpoints.caCertificate, 'utf8'), keepAlive: true, timeout: 5_000 })
  ;(agent as unknown as { defaultPort: number }).defaultPort = b.server.endpoints.ports.https
  https.globalAgent = agent
}, 60_000)

afterAll(async () => {
  https.globalAgent.destroy()
  https.globalAgent = previousAgent
  await a?.server.close(1000)
  await b?.server.close(1000)
  for (const i of [a, b]) if (i !== undefined) rmSync(i.dataDir, { recursive: true, force: true })
  if (available) await dropSchema(schema)
})

const unauthorized = { name: 'UnauthorizedError', response: expect.objectContaining({ statusCode: 401 }) }

describe.skipIf(!available)('policy changes across instances on one PostgreSQL database', () => {
  it('a key regenerated on instance A is refused by instance B at once; the other key keeps working on B', async () => {
    const owner = b!.server.endpoints.servicePolicies.find((p) => p.name === 'provisioningserviceowner')!
    // One DPS instance, shared: B serves A's keys.
    expect(a!.server.endpoints.servicePolicies.find((p) => p.name === 'provisioningserviceowner')!.primaryConnectionString).toBe(owner.primaryConnectionString)
    const page = await ProvisioningServiceClient.fromConnectionString(owner.primaryConnectionString).createIndividualEnrollmentQuery({ query: '*' }).next()
    expect(Array.isArray(page.responseBody)).toBe(true)

    const adopted = b!.next('shared access policies reloaded', 10_000)
    const [done] = runPolicies({ dataDir: a!.dataDir, action: 'regenerate', name: 'provisioningserviceowner', key: 'primary' })
    expect(done).toMatch(/regenerated the primary key of policy provisioningserviceowner/)
    // B heard of it from A (A noticed its own state.json change without a request).
    expect(await adopted).toMatchObject({ from: 'another instance' })

    // Fresh tokens signed with the old primary key: refused by B.
    await expect(ProvisioningServiceClient.fromConnectionString(owner.primaryConnectionString).createIndividualEnrollmentQuery({ query: '*' }).next()).rejects.toMatchObject(unauthorized)
    // The secondary key was not touched.
    const second = await ProvisioningServiceClient.fromConnectionString(owner.secondaryConnectionString).createIndividualEnrollmentQuery({ query: '*' }).next()
    expect(Array.isArray(second.responseBody)).toBe(true)
    // The new primary key works on B, and B's data directory mirrors the shared state.
    const listed = runPolicies({ dataDir: b!.dataDir, action: 'list', host: b!.server.endpoints.deviceEndpoint }).join('\n')
    const fresh = /primary {4}(HostName=[^\n]*SharedAccessKeyName=provisioningserviceowner;[^\n]*)/.exec(listed)?.[1]
    expect(fresh).toBeDefined()
    expect(fresh).not.toBe(owner.primaryConnectionString)
    const third = await ProvisioningServiceClient.fromConnectionString(fresh!).createIndividualEnrollmentQuery({ query: '*' }).next()
    expect(Array.isArray(third.responseBody)).toBe(true)
  })
})
