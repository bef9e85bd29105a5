// @provisio/device against provisio serve's fault injection (engine.setFaultProfile), on every
// transport: a throttled register (429 + retry-after) and a poll answered 503 are retried — on AMQP
// they arrive as rejected deliveries, on MQTT as response topics, on HTTP as statuses — and the
// device is assigned; the chosen delays honour the service's retry-after. A 202 without an
// operationId is a PROTOCOL error.
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningClient, symmetricKey, DeviceError, TRANSPORTS, type TransportName } from '@provisio/device'
import { clientOptions } from '../lib/device.js'
import { startTestServer, type TestServer } from '../lib/server.js'

let server: TestServer
const GROUP_KEY = randomBytes(64).toString('base64')

function client(transport: TransportName, registrationId: string, delays: number[] = []): ProvisioningClient {
  return new ProvisioningClient(
    clientOptions(server, transport, symmetricKey({ registrationId, groupKey: GROUP_KEY }), { retry: { random: () => 0, initialDelayMs: 50 }, timeoutMs: 60_000 }),
    { onRetry: ({ delayMs, error }) => void delays.push(delayMs, error.status ?? 0) },
  )
}

beforeAll(async () => {
  // Azure's flow (202, then polls): the faults are injected on the polls and on the 202 itself.
  server = await startTestServer({ assignmentBudgetMs: 0 })
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'fault-fleet',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: randomBytes(64).toString('base64') } },
  })
})

afterAll(async () => {
  server?.engine.setFaultProfile(server.endpoints.idScope, undefined)
  await server?.stop()
})

describe.each(TRANSPORTS)('fault injection over %s', (transport) => {
  it('retries a throttled register and a 503 poll after their retry-after, then is assigned', async () => {
    server.engine.setFaultProfile(server.endpoints.idScope, {
      throttleRegister: { firstAttempts: 1, retryAfterSeconds: 1 },
      serverErrorPoll: { firstAttempts: 1, status: 503, retryAfterSeconds: 1 },
    })
    try {
      const delays: number[] = []
      const result = await client(transport, `fault-${transport}-1`, delays).register()
      expect(result).toMatchObject({ status: 'assigned', deviceId: `fault-${transport}-1`, retries: 2 })
      // [delay, status] pairs: the 429 and the 503, each after retry-after 1 s (jitter source fixed at 0).
      expect(delays).toEqual([1000, 429, 1000, 503])
    } finally {
      server.engine.setFaultProfile(server.endpoints.idScope, undefined)
    }
  })

  it('refuses a 202 without operationId as a PROTOCOL error', async () => {
    server.engine.setFaultProfile(server.endpoints.idScope, { missingOperationId: { firstAttempts: 1 } })
    try {
      const err = await client(transport, `fault-${transport}-2`).register().then(() => undefined, (e: unknown) => e as DeviceError)
      expect(err).toBeInstanceOf(DeviceError)
      expect(err).toMatchObject({ code: 'PROTOCOL' })
      expect(err!.message).toMatch(/without an operationId/)
    } finally {
      server.engine.setFaultProfile(server.endpoints.idScope, undefined)
    }
  })
})
