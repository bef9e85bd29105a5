// `provisio policies regenerate` (the built CLI) against `provisio serve --workers 2`: every
// worker refuses the old key's fresh tokens from the next request on, and the other key keeps
// working in every worker; no restart.
import { execFile } from 'node:child_process'
import { request } from 'node:https'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildSasToken, parseDpsServiceConnectionString } from '@provisio/protocol'
import type { Endpoints } from '@provisio/server'
import { CLI, startServe, type ServeProcess } from '../lib/cli.js'

let serve: ServeProcess<Endpoints>
let ca: string

beforeAll(async () => {
  // Round-robin: consecutive connections alternate between the two workers.
  serve = await startServe<Endpoints>({ dataDirPrefix: 'provisio-policies-workers-', args: ['--workers', '2', '--log-level', 'warn'], env: { NODE_CLUSTER_SCHED_POLICY: 'rr' } })
  ca = readFileSync(serve.endpoints.caCertificate, 'utf8')
}, 60_000)

afterAll(() => {
  serve?.stop()
})

/** Status of GET /enrollments/nobody on a fresh connection, with a fresh token of `connectionString`. */
function status(connectionString: string): Promise<number> {
  const cs = parseDpsServiceConnectionString(connectionString)
  const token = buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt: Math.floor(Date.now() / 1000) + 600 })
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: serve.endpoints.ports.https, servername: 'localhost', ca, agent: false, path: '/enrollments/nobody?api-version=2021-10-01', headers: { authorization: token, connection: 'close' }, timeout: 10_000 },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')))
    req.on('error', reject)
    req.end()
  })
}

async function statuses(connectionString: string, n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(await status(connectionString))
  return out
}

function cli(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, 'policies', ...args, '--data-dir', serve.dataDir], { timeout: 20_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)))
  })
}

describe('provisio policies with provisio serve --workers 2', () => {
  it('a regenerated primary key is refused by every worker at once; the secondary keeps working in every worker', async () => {
    const owner = serve.endpoints.servicePolicies.find((p) => p.name === 'provisioningserviceowner')!
    // Authorized: the enrollment does not exist.
    expect(await statuses(owner.primaryConnectionString, 4)).toEqual([404, 404, 404, 404])
    expect(await cli(['regenerate', 'provisioningserviceowner', '--key', 'primary'])).toMatch(/regenerated the primary key of policy provisioningserviceowner/)
    expect(await statuses(owner.primaryConnectionString, 4)).toEqual([401, 401, 401, 401])
    expect(await statuses(owner.secondaryConnectionString, 4)).toEqual([404, 404, 404, 404])
    const listed = await cli(['list'])
    const fresh = /primary {4}(HostName=[^\n]*SharedAccessKeyName=provisioningserviceowner;[^\n]*)/.exec(listed)?.[1]
    expect(fresh).toBeDefined()
    expect(fresh).not.toBe(owner.primaryConnectionString)
    expect(await statuses(fresh!, 4)).toEqual([404, 404, 404, 404])
  })

  it('refuses an unknown action, naming it', async () => {
    await expect(cli(['rotate', 'x'])).rejects.toThrow(/unknown action "rotate"/)
  })
})
