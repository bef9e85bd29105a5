// The custom allocation policy against a REAL local HTTP server (node:http on 127.0.0.1, port 0)
// with Node's global fetch as the port and AbortSignal.timeout as the timeout factory.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ProvisioError, validateAllocationRequest, type IndividualEnrollment, type EnrollmentGroup } from '@provisio/protocol'
import { allocate, explainAllocation, type AllocationInput, type AllocationPorts, type LinkedHub } from '../src/index.js'

type Handler = (body: string, req: IncomingMessage, res: ServerResponse) => void

let server: Server
let base = ''
const routes = new Map<string, Handler>()
const received: Array<{ path: string; body: string; headers: IncomingMessage['headers'] }> = []
const pending = new Set<ServerResponse>()

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const path = (req.url ?? '').split('?')[0]
      received.push({ path, body, headers: req.headers })
      const handler = routes.get(path)
      if (handler === undefined) {
        res.writeHead(404).end()
        return
      }
      try {
        handler(body, req, res)
      } catch (error) {
        // A failed assertion inside a handler becomes a 599, which fails the test that caused it.
        res.writeHead(599).end(String(error))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  for (const res of pending) res.destroy()
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

const json = (res: ServerResponse, status: number, value: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value))
}

const linkedHubs: LinkedHub[] = [
  { hostName: 'hub1.azure-devices.net' },
  { hostName: 'hub2.azure-devices.net', allocationWeight: 5 },
  { hostName: 'off.azure-devices.net', applyAllocationPolicy: false },
]
const KEY = Buffer.alloc(64, 3).toString('base64')
const enrollment: IndividualEnrollment = {
  registrationId: 'dev-1',
  attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } },
  capabilities: { iotEdge: false },
  provisioningStatus: 'enabled',
  reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: true },
  allocationPolicy: 'custom',
  customAllocationDefinition: { webhookUrl: 'https://fn.example.net/api/alloc?code=enrollment-function-key', apiVersion: '2021-10-01' },
  initialTwin: { tags: { from: 'enrollment' } },
}
const ports: AllocationPorts<AbortSignal> = { fetch: globalThis.fetch, timeoutSignal: (ms) => AbortSignal.timeout(ms), timeoutMs: 2000 }

function input(path: string, extra: Partial<AllocationInput> = {}): AllocationInput {
  return {
    policy: 'custom',
    registrationId: 'dev-1',
    linkedHubs,
    initialTwin: enrollment.initialTwin,
    custom: {
      definition: { webhookUrl: `${base}${path}?code=secret-function-key`, apiVersion: '2021-10-01' },
      enrollment: { individualEnrollment: enrollment },
      runtime: { symmetricKey: {}, payload: { modelId: 'dtmi:com:example;1' } },
    },
    ...extra,
  }
}

async function failure(promise: Promise<unknown>): Promise<ProvisioError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(ProvisioError)
    return error as ProvisioError
  }
  throw new Error('expected a failure')
}

describe('custom allocation webhook', () => {
  it('sends a DPS AllocationRequest without secrets and honours hub, initialTwin and payload', async () => {
    routes.set('/ok', (body, _req, res) => {
      const request = validateAllocationRequest(JSON.parse(body))
      json(res, 200, {
        iotHubHostName: request.linkedHubs[request.linkedHubs.length - 1].toUpperCase(),
        initialTwin: { tags: { from: 'webhook' }, properties: { desired: { interval: 30 } } },
        payload: { assignedBy: 'webhook', echo: request.deviceRuntimeContext.payload },
      })
    })
    const result = await allocate(input('/ok', { currentHub: 'hub1.azure-devices.net', currentDeviceId: 'dev-1' }), ports)
    expect(result).toEqual({
      policy: 'custom',
      hostName: 'hub2.azure-devices.net',
      initialTwin: { tags: { from: 'webhook' }, properties: { desired: { interval: 30 } } },
      initialTwinSource: 'webhook',
      payload: { assignedBy: 'webhook', echo: { modelId: 'dtmi:com:example;1' } },
    })
    const sent = received.filter((r) => r.path === '/ok').at(-1)!
    expect(sent.headers['content-type']).toMatch(/^application\/json/)
    expect(sent.body).not.toContain(KEY)
    expect(sent.body).not.toContain('function-key')
    const request = JSON.parse(sent.body)
    expect(request.individualEnrollment.customAllocationDefinition.webhookUrl).toBe('https://fn.example.net/api/alloc')
    expect(request.individualEnrollment.attestation).toEqual({ type: 'symmetricKey', symmetricKey: {} })
    expect(request.linkedHubs).toEqual(['hub1.azure-devices.net', 'hub2.azure-devices.net'])
    expect(request.deviceRuntimeContext).toEqual({
      registrationId: 'dev-1',
      currentIotHubHostName: 'hub1.azure-devices.net',
      currentDeviceId: 'dev-1',
      symmetricKey: {},
      payload: { modelId: 'dtmi:com:example;1' },
    })
    // The caller's enrollment keeps its keys: stripping copies.
    expect(enrollment.attestation).toMatchObject({ symmetricKey: { primaryKey: KEY } })
  })

  it("keeps the enrollment's initial twin when the webhook returns none, and strips group keys", async () => {
    routes.set('/bare', (_body, _req, res) => json(res, 200, { iotHubHostName: 'hub1.azure-devices.net' }))
    const group: EnrollmentGroup = {
      enrollmentGroupId: 'g1',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY } },
      capabilities: { iotEdge: false },
      provisioningStatus: 'enabled',
      reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: true },
    }
    const base = input('/bare')
    const r = await allocate({ ...base, custom: { ...base.custom!, enrollment: { enrollmentGroup: group } } }, ports)
    expect(r).toEqual({ policy: 'custom', hostName: 'hub1.azure-devices.net', initialTwin: { tags: { from: 'enrollment' } }, initialTwinSource: 'enrollment' })
    const sent = received.filter((x) => x.path === '/bare').at(-1)!
    expect(sent.body).not.toContain(KEY)
    expect(JSON.parse(sent.body).enrollmentGroup.enrollmentGroupId).toBe('g1')
  })

  it.each([400, 404, 500, 503])('maps HTTP %i to 400207 with the DPS message', async (status) => {
    routes.set(`/status${status}`, (_b, _r, res) => json(res, status, { error: 'nope' }))
    const err = await failure(allocate(input(`/status${status}`), ports))
    expect(err.code).toBe('CUSTOM_ALLOCATION_FAILED')
    expect(err.errorCode).toBe(400207)
    expect(err.deviceMessage).toBe(`Custom allocation failed with status code: ${status}`)
    expect(err.reason).toContain(`answered HTTP ${status}`)
    // The function key in the query string never reaches logs.
    expect(err.reason).not.toContain('secret-function-key')
  })

  it('times out a slow webhook through the injected signal', async () => {
    routes.set('/slow', (_b, _r, res) => {
      pending.add(res) // never answered; destroyed in afterAll
    })
    const err = await failure(allocate(input('/slow'), { ...ports, timeoutMs: 200 }))
    expect(err.errorCode).toBe(400207)
    expect(err.reason).toMatch(/did not answer within 200 ms/)
    expect(err.deviceMessage).toMatch(/timed out/)
  })

  it('rejects a body that is not JSON, not an AllocationResponse, or too large', async () => {
    routes.set('/garbage', (_b, _r, res) => res.writeHead(200).end('{"iotHubHostName": '))
    const a = await failure(allocate(input('/garbage'), ports))
    expect(a.errorCode).toBe(400207)
    expect(a.reason).toMatch(/invalid AllocationResponse: \(body\): must be valid JSON/)
    routes.set('/shape', (_b, _r, res) => json(res, 200, { hub: 'hub1.azure-devices.net' }))
    const b = await failure(allocate(input('/shape'), ports))
    expect(b.reason).toMatch(/iotHubHostName: is required/)
    routes.set('/big', (_b, _r, res) => json(res, 200, { iotHubHostName: 'hub1.azure-devices.net', payload: { x: 'y'.repeat(2000) } }))
    const c = await failure(allocate(input('/big'), { ...ports, maxResponseBytes: 1000 }))
    expect(c.reason).toMatch(/must be at most 1000 bytes/)
  })

  it('rejects a hub that is not linked or not eligible', async () => {
    routes.set('/rogue', (_b, _r, res) => json(res, 200, { iotHubHostName: 'rogue.azure-devices.net' }))
    const a = await failure(allocate(input('/rogue'), ports))
    expect(a.errorCode).toBe(400207)
    expect(a.reason).toMatch(/rogue.azure-devices.net, which is not one of the linked hubs/)
    routes.set('/off', (_b, _r, res) => json(res, 200, { iotHubHostName: 'off.azure-devices.net' }))
    const b = await failure(allocate(input('/off'), ports))
    expect(b.reason).toMatch(/not one of the linked hubs \(hub1.azure-devices.net, hub2.azure-devices.net\)/)
  })

  it('reports an unreachable webhook and a missing fetch port', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const dead = input('/x')
    const err = await failure(
      allocate({ ...dead, custom: { ...dead.custom!, definition: { webhookUrl: `http://127.0.0.1:${port}/x`, apiVersion: '2021-10-01' } } }, ports),
    )
    expect(err.errorCode).toBe(400207)
    expect(err.reason).toMatch(/could not be reached/)
    const none = await failure(allocate(input('/ok'), {}))
    expect(none.reason).toMatch(/no fetch port/)
  })

  it('explains a custom decision by asking the webhook', async () => {
    routes.set('/explain', (_b, _r, res) => json(res, 200, { iotHubHostName: 'hub1.azure-devices.net', payload: { why: 'test' } }))
    const e = await explainAllocation(input('/explain'), ports)
    expect(e).toMatchObject({ hostName: 'hub1.azure-devices.net', payload: { why: 'test' }, initialTwinSource: 'enrollment' })
    routes.set('/explain-fail', (_b, _r, res) => json(res, 500, {}))
    const f = await explainAllocation(input('/explain-fail'), ports)
    expect(f.error).toMatchObject({ code: 'CUSTOM_ALLOCATION_FAILED', errorCode: 400207 })
  })
})
