// The default fast path: `provisio serve` answers register with `200 assigned` when the assignment
// is done within --assignment-budget-ms (default 5,000), so a device never waits a Retry-After.
// Real DPS answers 202 `assigning` and the device polls; this proves that each of Microsoft's
// device transports (Http, Mqtt, MqttWs, Amqp, AmqpWs) and @provisio/device on each of its own
// ends the flow on that first answer: assigned, and not one operation-status poll. Azure's exact
// flow (--assignment-budget-ms 0) stays proved by mqtt-wire.test.ts and mqtt-symmetric-key.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key'
import { ProvisioningClient, symmetricKey, TRANSPORTS } from '@provisio/device'
import { deriveDeviceKey } from '@provisio/crypto'
import { DEFAULT_CONFIG } from '@provisio/server'
import { startTestServer, type TestServer } from '../lib/server.js'
import { trustCaOnPort } from '../lib/tls-plumbing.js'
import { clientOptions } from '../lib/device.js'
import { PROVISIONING_TRANSPORTS, registerOver } from '../lib/provisioning-transports.js'

const GROUP_KEY = Buffer.alloc(64, 0x3c).toString('base64')
let server: TestServer
let restoreTls: () => void

/** Register answers and operation-status polls the server counted for a transport. */
async function answers(transport: string): Promise<{ registered200: number; polls: number }> {
  const label = transport === 'http' ? 'https' : transport
  const get = (operation: string, status: string) => server.metrics.responses.get([label, operation, status])
  const polls = (await Promise.all(['200', '202', '429'].map((status) => get('operationStatus', status)))).reduce((a, b) => a + b, 0)
  return { registered200: await get('register', '200'), polls }
}

beforeAll(async () => {
  expect(DEFAULT_CONFIG.assignmentBudgetMs).toBeGreaterThan(0)
  // The defaults of provisio serve, but for the test server's ports and data directory.
  server = await startTestServer({ retryAfterSeconds: DEFAULT_CONFIG.retryAfterSeconds, assignmentBudgetMs: DEFAULT_CONFIG.assignmentBudgetMs })
  server.useAsDefaultHttpsAgent()
  restoreTls = trustCaOnPort(server.endpoints.ports.amqp, server.caPem)
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'fast-path',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: Buffer.alloc(64, 0x3d).toString('base64') } },
  })
})

afterAll(async () => {
  restoreTls?.()
  await server?.stop()
})

describe('register answered 200 assigned at once (the default)', () => {
  it.each(PROVISIONING_TRANSPORTS)("Microsoft's %s transport takes it as the end of the flow", async (transport) => {
    const registrationId = `fast-ms-${transport}`
    const before = await answers(transport)
    const started = Date.now()
    const result = await registerOver(server, transport, new SymmetricKeySecurityClient(registrationId, deriveDeviceKey(GROUP_KEY, registrationId)))
    expect(result).toMatchObject({ assignedHub: server.endpoints.hubs[0]!.hostName, deviceId: registrationId })
    const after = await answers(transport)
    expect(after.registered200).toBe(before.registered200 + 1)
    expect(after.polls).toBe(before.polls)
    // No Retry-After was waited (it is 3 s by default).
    expect(Date.now() - started).toBeLessThan(DEFAULT_CONFIG.retryAfterSeconds * 1000)
  })

  it.each(TRANSPORTS)('@provisio/device over %s takes it as the end of the flow', async (transport) => {
    const registrationId = `fast-own-${transport}`
    const result = await new ProvisioningClient(clientOptions(server, transport, symmetricKey({ registrationId, groupKey: GROUP_KEY }))).register()
    expect(result).toMatchObject({ status: 'assigned', deviceId: registrationId, requests: 1 })
  })
})
