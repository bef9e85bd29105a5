// TPM attestation with Microsoft's TPM client: azure-iot-security-tpm (tss.js) talks the Microsoft
// TPM-simulator protocol to our software TPM's TCP front, and azure-iot-provisioning-device-http
// registers it against `provisio serve`: HTTP 401 challenge, ActivateCredential + Import inside
// the TPM, SAS signed by TPM2_HMAC, hub key delivered as a second blob (docs/protocol.md §5, §11).
// Refusals (unknown EK, replayed challenge, bad SAS) are driven with the same client's TPM over
// raw HTTPS so each request can be shaped.
import { createRequire } from 'node:module'
import { createHmac } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { TpmSecurityClient } from 'azure-iot-security-tpm'
import { ProvisioningServiceClient } from 'azure-iot-provisioning-service'
import { startTpmSimulator, type TpmSimulator } from '@provisio/server'
import { startTestServer, type TestServer } from '../lib/server.js'
import { httpsRequest } from '../lib/https-client.js'

// The tss.js the TPM client itself uses (its own dependency).
const requireFromClient = createRequire(createRequire(import.meta.url).resolve('azure-iot-security-tpm'))
const { Tpm } = requireFromClient('tss.js') as { Tpm: new (useSimulator: boolean, host: string, port: number) => unknown }

let server: TestServer & { logs: string[] }
let service: ProvisioningServiceClient
const sims: TpmSimulator[] = []

interface TpmClient {
  getEndorsementKey(cb: (err?: Error, ek?: Buffer) => void): void
  getStorageRootKey(cb: (err?: Error, srk?: Buffer) => void): void
  getRegistrationId(cb: (err?: Error, id?: string) => void): void
  activateIdentityKey(key: Buffer, cb: (err?: Error) => void): void
  signWithIdentity(data: Buffer, cb: (err?: Error, sig?: Buffer) => void): void
}

async function tpmClient(seed: number): Promise<TpmClient> {
  const sim = await startTpmSimulator({ seed: new Uint8Array(32).fill(seed), port: 0 })
  sims.push(sim)
  return new TpmSecurityClient(undefined as unknown as string, new Tpm(true, sim.host, sim.port) as never) as unknown as TpmClient
}

function call<T>(fn: (cb: (err?: Error, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))))
}

async function enroll(registrationId: string, ek: Buffer): Promise<void> {
  await service.createOrUpdateIndividualEnrollment({ registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: ek.toString('base64') } } } as never)
}

function refusedFor(registrationId: string): string[] {
  return server.logs.filter((l) => l.includes('registration refused') && l.includes(registrationId))
}

beforeAll(async () => {
  server = (await startTestServer()) as TestServer & { logs: string[] }
  server.useAsDefaultHttpsAgent()
  service = ProvisioningServiceClient.fromConnectionString(server.endpoints.serviceConnectionString)
})

afterAll(async () => {
  for (const s of sims) await s.close()
  await server?.stop()
})

describe('azure-iot-security-tpm over the simulator front + azure-iot-provisioning-device-http', () => {
  it('provisions with the default registrationId and holds the hub key in its TPM', async () => {
    const security = await tpmClient(21)
    const ek = await call<Buffer>((cb) => security.getEndorsementKey(cb))
    expect(ek.subarray(0, 12).toString('base64')).toBe('AToAAQALAAMAsgAg')
    const registrationId = await call<string>((cb) => security.getRegistrationId(cb))
    expect(registrationId).toMatch(/^[a-z2-7]{52}$/)
    await enroll(registrationId, ek)
    const client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(), security as never)
    // The TPM path answers with the whole RegistrationOperationStatus (tpm_registration.ts).
    const result = await call<{ status: string; registrationState: { assignedHub: string; deviceId: string } }>((cb) => client.register(cb as never))
    expect(result.status).toBe('assigned')
    expect(result.registrationState.assignedHub).toBe('localhost')
    expect(result.registrationState.deviceId).toBe(registrationId)
    // The client activated the second blob: its TPM now signs with the hub identity's key.
    const device = await server.hubs.get('localhost')!.getDevice(registrationId)
    const primaryKey = device?.authentication.symmetricKey?.primaryKey
    expect(primaryKey).toBeTruthy()
    const data = Buffer.from(`localhost%2Fdevices%2F${registrationId}\n1800000000`)
    const signature = await call<Buffer>((cb) => security.signWithIdentity(data, cb))
    expect(signature.toString('base64')).toBe(createHmac('sha256', Buffer.from(primaryKey!, 'base64')).update(data).digest('base64'))
  })

  it('refuses an unknown EK with the reason', async () => {
    const security = await tpmClient(22)
    const registrationId = await call<string>((cb) => security.getRegistrationId(cb))
    const client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(), security as never)
    const err = await call((cb) => client.register(cb as never)).then(() => undefined, (e: unknown) => e as Error)
    expect(err).toBeInstanceOf(Error)
    expect(refusedFor(registrationId).join('\n')).toMatch(/unknown EK/)
  })

  describe('shaped requests over raw HTTPS with the same TPM client', () => {
    const path = (id: string) => `/${server.endpoints.idScope}/registrations/${id}/register?api-version=2019-03-31`

    async function firstLeg(security: TpmClient, registrationId: string) {
      const ek = (await call<Buffer>((cb) => security.getEndorsementKey(cb))).toString('base64')
      const srk = (await call<Buffer>((cb) => security.getStorageRootKey(cb))).toString('base64')
      const body = JSON.stringify({ registrationId, tpm: { endorsementKey: ek, storageRootKey: srk } })
      const answer = await httpsRequest(server.port, server.caPem, 'PUT', path(registrationId), { headers: { 'content-type': 'application/json' }, body })
      expect(answer.status).toBe(401)
      const challenge = JSON.parse(answer.body) as { authenticationKey: string; keyName: string }
      expect(challenge.keyName).toBe('registration')
      await call((cb) => security.activateIdentityKey(Buffer.from(challenge.authenticationKey, 'base64'), cb))
      return body
    }

    async function sas(security: TpmClient, registrationId: string, se: number, signedSe = se): Promise<string> {
      const sr = encodeURIComponent(`${server.endpoints.idScope}/registrations/${registrationId}`)
      const sig = await call<Buffer>((cb) => security.signWithIdentity(Buffer.from(`${sr}\n${signedSe}`), cb))
      return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig.toString('base64'))}&se=${se}&skn=registration`
    }

    it('admits the answer once and refuses a replayed challenge', async () => {
      const security = await tpmClient(23)
      const registrationId = 'tpm-replay'
      await enroll(registrationId, await call<Buffer>((cb) => security.getEndorsementKey(cb)))
      const body = await firstLeg(security, registrationId)
      const se = Math.floor(Date.now() / 1000) + 3600
      const ok = await httpsRequest(server.port, server.caPem, 'PUT', path(registrationId), { headers: { 'content-type': 'application/json', authorization: await sas(security, registrationId, se) }, body })
      expect([200, 202]).toContain(ok.status)
      // A second token minted with the same challenge key.
      const replay = await httpsRequest(server.port, server.caPem, 'PUT', path(registrationId), { headers: { 'content-type': 'application/json', authorization: await sas(security, registrationId, se + 60) }, body })
      expect(replay.status).toBe(401)
      expect(refusedFor(registrationId).join('\n')).toMatch(/replayed TPM challenge/)
    })

    it('refuses a SAS not signed over what it says', async () => {
      const security = await tpmClient(24)
      const registrationId = 'tpm-bad-sas'
      await enroll(registrationId, await call<Buffer>((cb) => security.getEndorsementKey(cb)))
      const body = await firstLeg(security, registrationId)
      const se = Math.floor(Date.now() / 1000) + 3600
      const bad = await httpsRequest(server.port, server.caPem, 'PUT', path(registrationId), { headers: { 'content-type': 'application/json', authorization: await sas(security, registrationId, se, se + 1) }, body })
      expect(bad.status).toBe(401)
      expect(refusedFor(registrationId).join('\n')).toMatch(/not HMAC-SHA256 with the key of any of the 1 TPM challenge/)
    })
  })
})
