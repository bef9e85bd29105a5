// TPM attestation over AMQP: azure-iot-security-tpm (through our software TPM's simulator front)
// with azure-iot-provisioning-device-amqp's Amqp (AMQPS) and AmqpWs (WebSockets on the HTTPS
// port) transports: the SASL `TPM` mechanism carries EK, SRK, the chunked activation blob and the
// SAS signed inside the TPM (docs/protocol.md §5.3), then the register message; the hub key arrives
// as a second blob. Test-side plumbing as in amqp-symmetric-key.test.ts: the dev CA is added to
// rhea's tls.connect, and AmqpWs gets an agent that dials our HTTPS port.
import type * as TlsModule from 'node:tls'
import { createRequire } from 'node:module'
import { createHmac } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Amqp, AmqpWs } from 'azure-iot-provisioning-device-amqp'
import { TpmSecurityClient } from 'azure-iot-security-tpm'
import { startTpmSimulator, swtpmBackend, type TpmSimulator } from '@provisio/server'
import { startTestServer, type TestServer } from '../lib/server.js'
import { startSwtpm, swtpmAvailable, type Swtpm } from '../lib/swtpm.js'
import { webSocketAgent } from '../lib/tls-plumbing.js'

const require = createRequire(import.meta.url)
const tls = require('node:tls') as typeof TlsModule
const { Tpm } = createRequire(require.resolve('azure-iot-security-tpm'))('tss.js') as { Tpm: new (useSimulator: boolean, host: string, port: number) => unknown }

let server: TestServer & { logs: string[] }
let restoreTls: () => void
const sims: TpmSimulator[] = []
const swtpms: Swtpm[] = []

interface TpmClient {
  getEndorsementKey(cb: (err?: Error, ek?: Buffer) => void): void
  getRegistrationId(cb: (err?: Error, id?: string) => void): void
  signWithIdentity(data: Buffer, cb: (err?: Error, sig?: Buffer) => void): void
}

function call<T>(fn: (cb: (err?: Error, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))))
}

/** A TPM client on our software TPM (seed) or on a fresh swtpm, both through the simulator front. */
async function tpmClient(source: number | 'swtpm'): Promise<TpmClient> {
  let sim: TpmSimulator
  if (source === 'swtpm') {
    const swtpm = await startSwtpm()
    swtpms.push(swtpm)
    sim = await startTpmSimulator({ backend: swtpmBackend({ port: swtpm.port }), port: 0 })
  } else {
    sim = await startTpmSimulator({ seed: new Uint8Array(32).fill(source), port: 0 })
  }
  sims.push(sim)
  return new TpmSecurityClient(undefined as unknown as string, new Tpm(true, sim.host, sim.port) as never) as unknown as TpmClient
}

async function provision(transport: 'amqp' | 'amqp-ws', source: number | 'swtpm', enrolled = true) {
  const security = await tpmClient(source)
  const ek = await call<Buffer>((cb) => security.getEndorsementKey(cb))
  const registrationId = await call<string>((cb) => security.getRegistrationId(cb))
  if (enrolled) await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, { registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: ek.toString('base64') } } })
  let client: ReturnType<typeof ProvisioningDeviceClient.create>
  if (transport === 'amqp') {
    client = ProvisioningDeviceClient.create(`localhost:${server.endpoints.ports.amqp}`, server.endpoints.idScope, new Amqp() as never, security as never)
  } else {
    const ws = new AmqpWs()
    ws.setTransportOptions({ webSocketAgent: webSocketAgent(server) } as never)
    client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, ws as never, security as never)
  }
  if (!enrolled) {
    // Refused at the first SASL step, the Node client's connectingTpm state drops the connection
    // error and never calls back (azure-iot-provisioning-device-amqp 1.9.1): watch the server
    // instead, then cancel the client.
    client.register(() => {})
    await vi.waitFor(() => expect(server.logs.some((l) => l.includes(registrationId) && l.includes('unknown EK'))).toBe(true), { timeout: 10_000, interval: 50 })
    await new Promise<void>((resolve) => client.cancel(() => resolve()))
    return { security, registrationId, result: undefined, error: undefined }
  }
  const outcome = await call<{ status: string; registrationState: { assignedHub: string; deviceId: string } }>((cb) => client.register(cb as never)).then(
    (result) => ({ result, error: undefined }),
    (error: unknown) => ({ result: undefined, error: error as Error }),
  )
  return { security, registrationId, ...outcome }
}

beforeAll(async () => {
  server = (await startTestServer()) as TestServer & { logs: string[] }
  const original = tls.connect
  const amqpPort = server.endpoints.ports.amqp
  tls.connect = ((...args: unknown[]) => {
    if (Number(args[0]) === amqpPort && typeof args[2] === 'object' && args[2] !== null) {
      return original(Number(args[0]), args[1] as string, { ...(args[2] as TlsModule.ConnectionOptions), ca: server.caPem }, args[3] as () => void)
    }
    // The TPM path of AmqpWs ignores `webSocketAgent` and dials wss://localhost:443 through ws,
    // which calls tls.connect(options): send those connections to our HTTPS port.
    const options = args[0] as TlsModule.ConnectionOptions | undefined
    if (typeof options === 'object' && options !== null && Number(options.port) === 443 && (options.host === 'localhost' || options.servername === 'localhost')) {
      return original({ ...options, port: server.port, ca: server.caPem }, args[1] as () => void)
    }
    return (original as (...a: unknown[]) => TlsModule.TLSSocket)(...args)
  }) as typeof tls.connect
  restoreTls = () => {
    tls.connect = original
  }
})

afterAll(async () => {
  restoreTls?.()
  for (const s of sims) await s.close()
  for (const s of swtpms) s.stop()
  await server?.stop()
})

describe('azure-iot-security-tpm + azure-iot-provisioning-device-amqp', () => {
  const cases: [string, 'amqp' | 'amqp-ws', number | 'swtpm'][] = [
    ['software TPM', 'amqp', 31],
    ['software TPM', 'amqp-ws', 32],
  ]
  if (swtpmAvailable || process.env.CI) cases.push(['swtpm', 'amqp', 'swtpm'], ['swtpm', 'amqp-ws', 'swtpm'])
  for (const [name, transport, source] of cases) {
    it(`${transport} on ${name}: SASL TPM, register, hub key imported into the TPM`, async () => {
      const { security, registrationId, result, error } = await provision(transport, source)
      if (error) throw error
      expect(result!.status).toBe('assigned')
      expect(result!.registrationState.deviceId).toBe(registrationId)
      const primaryKey = (await server.hubs.get('localhost')!.getDevice(registrationId))?.authentication.symmetricKey?.primaryKey
      const data = Buffer.from(`localhost%2Fdevices%2F${registrationId}\n1800000000`)
      const signature = await call<Buffer>((cb) => security.signWithIdentity(data, cb))
      expect(signature.toString('base64')).toBe(createHmac('sha256', Buffer.from(primaryKey!, 'base64')).update(data).digest('base64'))
    })
  }

  it('amqp: an unknown EK is refused at SASL with the reason', async () => {
    const { registrationId } = await provision('amqp', 33, false)
    const lines = server.logs.filter((l) => l.includes(registrationId))
    expect(lines.join('\n')).toMatch(/unknown EK/)
    expect(lines.join('\n')).toMatch(/sasl-refused/)
  })
})
