// Throttling and fault injection as Microsoft's device SDK sees them. The limits and
// faults are switched on the way an operator does it — ServeConfig settings `registrationsPerMinute`
// (flag --registrations-per-minute) and `faults` (flag --faults, parsed here from the flag's JSON by
// resolveConfig) — and azure-iot-provisioning-device over HTTP and MQTT must see the 429 with
// retry-after, or the injected 503 / 500 / slow assignments, and still end up assigned.
//
// The two transports differ (docs/protocol.md §11): the MQTT transport retries 429 and 5xx itself,
// after the retry-after of the response topic; Node's HTTP transport fails register on any status
// >= 300 (its retry branch is unreachable), handing the application a ThrottlingError or
// ServiceUnavailableError with the response — so the HTTP device here does what an application
// must: wait the response's retry-after and call register again.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { ClientRequest, IncomingMessage } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { Mqtt } from 'azure-iot-provisioning-device-mqtt'
import { MqttBase } from 'azure-iot-mqtt-base'
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key'
import { resolveConfig } from '@provisio/server'
import { httpsRequest } from '../lib/https-client.js'
import { deviceToken, logLines, type HostileServer } from '../lib/hostile.js'
import { startTestServer } from '../lib/server.js'

const KEY = Buffer.alloc(32, 0x44).toString('base64')
let server: HostileServer

type Transport = 'http' | 'mqtt'

/** Response topics Microsoft's MQTT transport received (MqttBase re-emits every PUBLISH as 'message'). */
const mqttTopics: string[] = []

function register(transport: Transport, registrationId: string): Promise<{ assignedHub: string; deviceId: string }> {
  const make = () => {
    if (transport === 'http') return new Http()
    const base = new MqttBase()
    base.setOptions({ ca: server.caPem } as never)
    base.on('message', (topic: string) => mqttTopics.push(topic))
    return new Mqtt(base as never)
  }
  const host = transport === 'http' ? 'localhost' : `localhost:${server.endpoints.ports.mqtt}`
  // Two copies of azure-iot-common in node_modules make the SDK's own types disagree; the objects fit.
  const client = ProvisioningDeviceClient.create(host, server.endpoints.idScope, make() as never, new SymmetricKeySecurityClient(registrationId, KEY) as never)
  return new Promise((resolve, reject) => client.register((err?: Error, result?: unknown) => (err ? reject(err) : resolve(result as { assignedHub: string; deviceId: string }))))
}

/** Register as an application on the HTTP transport must: after a transient refusal, wait its retry-after and register again. */
async function registerRetryingTransient(transport: Transport, registrationId: string): Promise<{ result: { assignedHub: string; deviceId: string }; transient: number[] }> {
  const transient: number[] = []
  for (;;) {
    try {
      return { result: await register(transport, registrationId), transient }
    } catch (error) {
      const response = (error as { response?: IncomingMessage }).response
      const status = response?.statusCode ?? 0
      if (status < 429 || transient.length >= 5) throw error
      transient.push(status)
      await new Promise((r) => setTimeout(r, Number(response!.headers['retry-after'] ?? 1) * 1000))
    }
  }
}

async function enroll(registrationId: string): Promise<void> {
  await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
    registrationId,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } },
  })
}

/** What Node's HTTP client received for register calls while `run` ran (the SDK's own requests). */
async function observeRegisterAnswers<T>(run: () => Promise<T>): Promise<{ result: T; answers: { status: number; retryAfter: string | undefined }[] }> {
  const answers: { status: number; retryAfter: string | undefined }[] = []
  const onResponse = (message: unknown) => {
    const { request, response } = message as { request: ClientRequest; response: IncomingMessage }
    if (request.path.includes('/register')) answers.push({ status: response.statusCode ?? 0, retryAfter: response.headers['retry-after'] as string | undefined })
  }
  subscribe('http.client.response.finish', onResponse)
  try {
    return { result: await run(), answers }
  } finally {
    unsubscribe('http.client.response.finish', onResponse)
  }
}

describe('the registration rate limit (--registrations-per-minute 12)', () => {
  beforeAll(async () => {
    // Azure's flow (202, then polls; --assignment-budget-ms 0), whose answers these cases count.
    server = (await startTestServer({ registrationsPerMinute: 12, assignmentBudgetMs: 0 })) as HostileServer
    server.useAsDefaultHttpsAgent()
    await enroll('throttled-http')
    await enroll('throttled-mqtt')
  })

  afterAll(async () => {
    await server?.stop()
  })

  /** Uses up the ID scope's register budget with calls of an unknown device (the limit is checked before attestation, as in DPS). */
  async function exhaust(): Promise<void> {
    const path = `/${server.endpoints.idScope}/registrations/nobody/register?api-version=2021-06-01`
    const headers = { 'content-type': 'application/json', authorization: deviceToken(server, 'nobody') }
    const answers = await Promise.all(Array.from({ length: 24 }, () => httpsRequest(server.port, server.caPem, 'PUT', path, { headers, body: '{"registrationId":"nobody"}' })))
    expect(answers.some((a) => a.status === 429)).toBe(true)
  }

  it('HTTP: the SDK gets 429 with retry-after; registering again after it succeeds', async () => {
    await exhaust()
    const { result, answers } = await observeRegisterAnswers(() => registerRetryingTransient('http', 'throttled-http'))
    expect(result.result.deviceId).toBe('throttled-http')
    expect(result.transient[0]).toBe(429)
    const throttled = answers.find((a) => a.status === 429)
    expect(throttled, JSON.stringify(answers)).toBeDefined()
    // 12 per minute refill one every 5 s.
    expect(Number(throttled!.retryAfter)).toBeGreaterThanOrEqual(1)
    expect(Number(throttled!.retryAfter)).toBeLessThanOrEqual(5)
    expect(answers.at(-1)!.status).toBe(202)
  })

  it('MQTT: the SDK gets 429 (retry-after on the response topic), waits, and registers', async () => {
    const throttledBefore = await server.metrics.responses.get(['mqtt', 'register', '429'])
    await exhaust()
    mqttTopics.length = 0
    const result = await register('mqtt', 'throttled-mqtt')
    expect(result.deviceId).toBe('throttled-mqtt')
    const throttled = mqttTopics.find((t) => t.startsWith('$dps/registrations/res/429/'))
    expect(throttled, mqttTopics.join('\n')).toMatch(/[?&]retry-after=[1-5]\b/)
    expect(await server.metrics.responses.get(['mqtt', 'register', '429'])).toBeGreaterThan(throttledBefore)
    expect(await server.metrics.responses.get(['mqtt', 'register', '202'])).toBeGreaterThanOrEqual(1)
  })
})

describe('a fault profile from --faults (503 on the first register, 500 on the first poll, 1 slow poll)', () => {
  const flag = JSON.stringify({
    serverErrorRegister: { firstAttempts: 1, status: 503, retryAfterSeconds: 1 },
    serverErrorPoll: { firstAttempts: 1, status: 500 },
    slowAssigningPolls: 1,
  })

  beforeAll(async () => {
    const { faults } = resolveConfig({ faults: flag }, {}, process.cwd())
    // Azure's flow (202, then polls; --assignment-budget-ms 0): the faults act on the polls.
    server = (await startTestServer({ faults: faults!, assignmentBudgetMs: 0 })) as HostileServer
    server.useAsDefaultHttpsAgent()
    await enroll('faulty-http')
    await enroll('faulty-mqtt')
  })

  afterAll(async () => {
    await server?.stop()
  })

  it('is announced in the log at start', () => {
    expect(logLines(server).find((l) => l.msg === 'fault injection is on')).toMatchObject({ idScope: server.endpoints.idScope, faults: expect.stringContaining('serverErrorRegister') })
  })

  // The two devices run side by side: faults are counted per device.
  it.concurrent('mqtt: the SDK retries through the injected errors by itself and is assigned', async ({ expect }) => {
    const result = await register('mqtt', 'faulty-mqtt')
    expect(result).toMatchObject({ deviceId: 'faulty-mqtt', assignedHub: 'localhost' })
    expect(await server.metrics.responses.get(['mqtt', 'register', '503'])).toBe(1)
    expect(await server.metrics.responses.get(['mqtt', 'operationStatus', '500'])).toBe(1)
    // A poll answered "assigning" after the assignment was done, then the final one.
    expect(await server.metrics.responses.get(['mqtt', 'operationStatus', '202'])).toBeGreaterThanOrEqual(1)
    expect(await server.hubs.get('localhost')!.getDevice('faulty-mqtt')).toBeDefined()
  })

  it.concurrent('http: the SDK reports each transient error with its retry-after; registering again survives them', async ({ expect }) => {
    const { result, answers } = await observeRegisterAnswers(() => registerRetryingTransient('http', 'faulty-http'))
    expect(result.result).toMatchObject({ deviceId: 'faulty-http', assignedHub: 'localhost' })
    expect(result.transient).toEqual([503, 500])
    expect(answers.map((a) => a.status)).toEqual([503, 202, 202])
    expect(answers[0]!.retryAfter).toBe('1')
    expect(await server.metrics.responses.get(['https', 'operationStatus', '500'])).toBe(1)
    expect(await server.hubs.get('localhost')!.getDevice('faulty-http')).toBeDefined()
  })
})
