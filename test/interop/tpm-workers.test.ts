// TPM attestation over HTTPS against `provisio serve --workers 2` (the built CLI, SQLite):
// Microsoft's azure-iot-security-tpm (tss.js over our software TPM's simulator front) with
// azure-iot-provisioning-device-http. Every request opens a new connection (no keep-alive), so the
// two legs of a device — the challenge (HTTP 401) and the answer signed inside the TPM — reach
// whichever worker the connection lands on. The challenge lives in the store, so a device whose
// legs reached different workers (read from the per-worker series of /metrics) is admitted too.
import type * as HttpsModule from 'node:https'
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { TpmSecurityClient } from 'azure-iot-security-tpm'
import { ProvisioningServiceClient } from 'azure-iot-provisioning-service'
import { startTpmSimulator, type TpmSimulator } from '@provisio/server'
import { startServe, type ServeProcess } from '../lib/cli.js'
import { httpsRequest } from '../lib/https-client.js'

const https = createRequire(import.meta.url)('node:https') as typeof HttpsModule
const requireFromClient = createRequire(createRequire(import.meta.url).resolve('azure-iot-security-tpm'))
const { Tpm } = requireFromClient('tss.js') as { Tpm: new (useSimulator: boolean, host: string, port: number) => unknown }

interface Endpoints {
  idScope: string
  serviceConnectionString: string
  caCertificate: string
  ports: { https: number }
}

let serve: ServeProcess<Endpoints>
let ca: string
let service: ProvisioningServiceClient
const previousAgent = https.globalAgent
const sims: TpmSimulator[] = []

function call<T>(fn: (cb: (err?: Error, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))))
}

/** TPM attestation outcomes by worker: `result` is challenge (first leg) or success (second). */
async function tpmAttestations(): Promise<Map<string, number>> {
  const answer = await httpsRequest(serve.endpoints.ports.https, ca, 'GET', '/metrics')
  const counts = new Map<string, number>()
  for (const m of answer.body.matchAll(/^provisio_attestation_attempts_total\{kind="tpm",result="(\w+)",worker="(\d+)"\} (\d+)$/gm)) counts.set(`${m[1]}@${m[2]}`, Number(m[3]))
  return counts
}

/** The workers whose `result` count rose between two scrapes. */
function rose(before: Map<string, number>, after: Map<string, number>, result: string): string[] {
  return [...after].filter(([k, v]) => k.startsWith(`${result}@`) && v > (before.get(k) ?? 0)).map(([k]) => k.slice(result.length + 1))
}

beforeAll(async () => {
  // Round-robin scheduling: new connections alternate between the workers, so the legs of a device
  // land on different ones without depending on which worker wins an accept (the default).
  serve = await startServe<Endpoints>({ dataDirPrefix: 'provisio-tpm-workers-', args: ['--workers', '2', '--retry-after', '1', '--log-level', 'warn'], env: { NODE_CLUSTER_SCHED_POLICY: 'rr' } })
  ca = readFileSync(serve.endpoints.caCertificate, 'utf8')
  // Microsoft's HTTP clients connect to port 443 of the host: point the default agent at ours,
  // without keep-alive, so every request is a new connection that any worker may take.
  const agent = new https.Agent({ ca, keepAlive: false })
  ;(agent as unknown as { defaultPort: number }).defaultPort = serve.endpoints.ports.https
  https.globalAgent = agent
  service = ProvisioningServiceClient.fromConnectionString(serve.endpoints.serviceConnectionString)
})

afterAll(async () => {
  https.globalAgent = previousAgent
  for (const s of sims) await s.close()
  serve?.stop()
})

describe('azure-iot-security-tpm over HTTPS against provisio serve --workers 2', () => {
  it('admits TPM devices whose challenge and answer reach different workers', async () => {
    const legs: { registrationId: string; challenged: string[]; admitted: string[] }[] = []
    // Until one device's legs went to different workers (at least 3 devices, at most 16).
    for (let seed = 41; legs.length < 16; seed++) {
      const sim = await startTpmSimulator({ seed: new Uint8Array(32).fill(seed), port: 0 })
      sims.push(sim)
      const security = new TpmSecurityClient(undefined as unknown as string, new Tpm(true, sim.host, sim.port) as never)
      const ek = await call<Buffer>((cb) => security.getEndorsementKey(cb))
      const registrationId = await call<string>((cb) => security.getRegistrationId(cb))
      await service.createOrUpdateIndividualEnrollment({ registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: ek.toString('base64') } } } as never)
      const before = await tpmAttestations()
      const client = ProvisioningDeviceClient.create('localhost', serve.endpoints.idScope, new Http(), security as never)
      const result = await call<{ status: string; registrationState: { assignedHub: string; deviceId: string } }>((cb) => client.register(cb as never))
      expect(result.status).toBe('assigned')
      expect(result.registrationState).toMatchObject({ assignedHub: 'localhost', deviceId: registrationId })
      const after = await tpmAttestations()
      legs.push({ registrationId, challenged: rose(before, after, 'challenge'), admitted: rose(before, after, 'success') })
      const split = legs.some((l) => l.challenged.length === 1 && l.admitted.length === 1 && l.challenged[0] !== l.admitted[0])
      if (split && legs.length >= 3) break
    }
    console.info(`tpm/workers: ${legs.map((l) => `challenge on worker ${l.challenged.join('+')}, admitted on worker ${l.admitted.join('+')}`).join('; ')}`)
    expect(legs.some((l) => l.challenged.length === 1 && l.admitted.length === 1 && l.challenged[0] !== l.admitted[0])).toBe(true)
    // Every second leg was admitted exactly once: no device needed a second challenge.
    for (const l of legs) expect(l.admitted).toHaveLength(1)
  })
})
