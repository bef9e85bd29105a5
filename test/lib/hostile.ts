/**
 * Shared pieces of the hostile-input suites (test/hostile): a server with short, configurable
 * timeouts; the "good device still registers" check run after every attack; tokens; the
 * open-connections gauge read from /metrics; the server's JSON log lines.
 */
import { expect } from 'vitest'
import { buildSasToken, deviceRegistrationResource } from '@provisio/protocol'
import type { ServeConfig } from '@provisio/server'
import { httpsRequest } from './https-client.js'
import { startTestServer, type TestServer } from './server.js'

export const GOOD_KEY = Buffer.alloc(32, 0x5a).toString('base64')
export const GOOD_DEVICE = 'hostile-good-device'

export type HostileServer = TestServer & { logs: string[] }

/** A server for attacks: assignments answered at once (200 assigned), the good device enrolled. */
export async function startHostileServer(overrides: Partial<ServeConfig> = {}): Promise<HostileServer> {
  const server = (await startTestServer({ assignmentBudgetMs: 20_000, ...overrides })) as HostileServer
  await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
    registrationId: GOOD_DEVICE,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GOOD_KEY, secondaryKey: GOOD_KEY } },
  })
  return server
}

export function deviceToken(server: TestServer, registrationId: string, key = GOOD_KEY): string {
  return buildSasToken({ resource: deviceRegistrationResource(server.endpoints.idScope, registrationId), key, keyName: 'registration', expiresAt: Math.floor(Date.now() / 1000) + 600 })
}

export function serviceToken(server: TestServer): string {
  const policy = server.state.servicePolicies[0]!
  return buildSasToken({ resource: server.endpoints.deviceEndpoint, key: policy.primaryKey, keyName: policy.name, expiresAt: Math.floor(Date.now() / 1000) + 600 })
}

/** The good device registers over HTTPS and is assigned: the server still serves after an attack. */
export async function expectGoodRegistration(server: TestServer): Promise<void> {
  const res = await httpsRequest(server.port, server.caPem, 'PUT', `/${server.endpoints.idScope}/registrations/${GOOD_DEVICE}/register?api-version=2021-06-01`, {
    headers: { authorization: deviceToken(server, GOOD_DEVICE), 'content-type': 'application/json' },
    body: JSON.stringify({ registrationId: GOOD_DEVICE }),
  })
  expect(res.status, res.body).toBe(200)
  expect(JSON.parse(res.body)).toMatchObject({ status: 'assigned', registrationState: { deviceId: GOOD_DEVICE } })
}

/** `provisio_open_connections` by listener, read from GET /metrics. */
export async function openConnections(port: number, ca: string): Promise<Record<string, number>> {
  const res = await httpsRequest(port, ca, 'GET', '/metrics')
  const out: Record<string, number> = {}
  for (const m of res.body.matchAll(/^provisio_open_connections\{listener="([^"]+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2])
  return out
}

/** Polls until `check` passes (its last failure is thrown after `timeoutMs`). */
export async function eventually(check: () => Promise<void> | void, timeoutMs = 20_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      await check()
      return
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((r) => setTimeout(r, everyMs))
    }
  }
}

/** The server's log lines as objects. */
export function logLines(server: HostileServer): Record<string, unknown>[] {
  return server.logs.map((l) => JSON.parse(l) as Record<string, unknown>)
}

/**
 * What every attack must leave behind: the good device still registers, nothing a client sent made
 * the server log an error, and (eventually) no connection is open on `listeners` (names of
 * `provisio_open_connections`, e.g. `mqtts`, `mqtt-ws`).
 */
export async function expectServerUnharmed(server: HostileServer, listeners: readonly string[] = []): Promise<void> {
  await expectGoodRegistration(server)
  expect(logLines(server).filter((l) => l.level === 'error')).toEqual([])
  if (listeners.length === 0) return
  await eventually(async () => {
    const open = await openConnections(server.port, server.caPem)
    for (const listener of listeners) expect(open[listener], listener).toBe(0)
  })
}

/** A DPS error body: errorCode matching the status, a message, the tracking id of x-ms-request-id. */
export function expectDpsError(answer: { status: number; headers: Record<string, string | string[] | undefined>; body: string }, status: number, message?: RegExp): Record<string, unknown> {
  expect(answer.status, answer.body).toBe(status)
  const body = JSON.parse(answer.body) as Record<string, unknown>
  expect(Math.floor((body.errorCode as number) / 1000)).toBe(status)
  expect(body.trackingId).toBe(answer.headers['x-ms-request-id'])
  expect(body.trackingId).toMatch(/^[0-9a-f-]{36}$/)
  expect(typeof body.message).toBe('string')
  if (message !== undefined) expect(body.message).toMatch(message)
  return body
}
