// @provisio/device against a real `provisio serve` on loopback: symmetric-key devices (individual
// and group-derived keys, custom payload) register over every transport, and refusals reach the
// caller as typed DeviceErrors with the service's errorCode.
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningClient, symmetricKey, DeviceError, TRANSPORTS, type TransportName, type SecurityProvider } from '@provisio/device'
import { clientOptions } from '../lib/device.js'
import { startTestServer, type TestServer } from '../lib/server.js'

let server: TestServer
const GROUP_KEY = randomBytes(64).toString('base64')

function client(transport: TransportName, security: SecurityProvider): ProvisioningClient {
  return new ProvisioningClient(clientOptions(server, transport, security, { timeoutMs: 60_000 }))
}

beforeAll(async () => {
  server = await startTestServer()
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'device-sdk-fleet',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: randomBytes(64).toString('base64') } },
    initialTwin: { properties: { desired: { fleet: 'sdk' } } },
  })
})

afterAll(async () => {
  await server?.stop()
})

describe.each(TRANSPORTS)('@provisio/device over %s with a symmetric key', (transport) => {
  const id = (name: string) => `sdk-${transport}-${name}`

  it('registers an individual enrollment and lands on the embedded hub', async () => {
    const key = randomBytes(32).toString('base64')
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId: id('individual'),
      deviceId: id('device'),
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key, secondaryKey: randomBytes(32).toString('base64') } },
    })
    const label = transport === 'http' ? 'https' : transport
    const before = await server.metrics.attempts.get([label, 'symmetricKey'])
    const result = await client(transport, symmetricKey({ registrationId: id('individual'), key })).register()
    expect(result.status).toBe('assigned')
    expect(result.assignedHub).toBe('localhost')
    expect(result.deviceId).toBe(id('device'))
    expect(result.substatus).toBe('initialAssignment')
    expect(result.registrationState.registrationId).toBe(id('individual'))
    expect(result.transport).toBe(transport)
    const device = await server.hubs.get('localhost')!.getDevice(id('device'))
    expect(device?.authentication.symmetricKey?.primaryKey).toBe(key)
    // It really came through this transport.
    expect(await server.metrics.attempts.get([label, 'symmetricKey'])).toBeGreaterThan(before)
  })

  it('registers through the group with a derived key and carries a payload', async () => {
    const registrationId = id('member-1')
    const result = await client(transport, symmetricKey({ registrationId, groupKey: GROUP_KEY })).register({ payload: { modelId: 'dtmi:provisio:sdk;1' } })
    expect(result.deviceId).toBe(registrationId)
    const state = await server.engine.getRegistrationState(server.endpoints.idScope, registrationId)
    expect(state?.status).toBe('assigned')
    expect((await server.hubs.get('localhost')!.getTwin(registrationId))?.properties.desired).toMatchObject({ fleet: 'sdk' })
  })

  it('refuses a wrong key with REFUSED and status 401', async () => {
    const err = await client(transport, symmetricKey({ registrationId: id('stranger'), key: randomBytes(32).toString('base64') }))
      .register()
      .then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(DeviceError)
    const e = err as DeviceError
    expect(e.code).toBe('REFUSED')
    expect(e.status).toBe(401)
    expect(e.transient).toBe(false)
    // HTTP and AMQP carry the DPS error body; MQTT refuses at CONNECT (return code 5) without one.
    if (transport === 'http' || transport.startsWith('amqp')) expect(e.errorCode ?? 401002).toBe(401002)
  })
})

describe('@provisio/device over http with a caller-supplied fetch (the browser entry\'s code path)', () => {
  it('sends every request through the given WHATWG fetch', async () => {
    // Node's own fetch (undici) trusting the test CA: its Agent class is reachable through the
    // global dispatcher once a first fetch has made it.
    await fetch('http://127.0.0.1:1/').catch(() => undefined)
    const Agent = (globalThis as unknown as Record<symbol, { constructor: new (o: unknown) => unknown }>)[Symbol.for('undici.globalDispatcher.1')]!.constructor
    const dispatcher = new Agent({ connect: { ca: server.caPem } })
    const urls: string[] = []
    const viaFetch = ((url: string, init: RequestInit) => {
      urls.push(`${init.method} ${new URL(url).pathname}`)
      return fetch(url, { ...init, dispatcher } as RequestInit)
    }) as never
    const key = randomBytes(32).toString('base64')
    await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
      registrationId: 'sdk-fetch',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: key, secondaryKey: randomBytes(32).toString('base64') } },
    })
    const result = await new ProvisioningClient({
      idScope: server.endpoints.idScope,
      globalEndpoint: 'localhost',
      port: server.port,
      transport: 'http',
      security: symmetricKey({ registrationId: 'sdk-fetch', key }),
      fetch: viaFetch,
    }).register()
    expect(result.deviceId).toBe('sdk-fetch')
    expect(urls[0]).toBe(`PUT /${server.endpoints.idScope}/registrations/sdk-fetch/register`)
    expect(urls.slice(1).every((u) => u.startsWith(`GET /${server.endpoints.idScope}/registrations/sdk-fetch/operations/`))).toBe(true)
  })
})
