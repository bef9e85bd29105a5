// Retry, backoff, deadline and cancellation of @provisio/device, proved against scripted servers
// over real TLS on loopback: an HTTPS server and an MQTT server (mqtt-packet) that answer each
// request from a script — 429 and 503 with retry-after, 5xx without it, refusals with an error
// body, dropped connections, silence. Delays are checked as the values the client chose
// (onRetry with a fixed jitter source), never as wall-clock durations.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqttPacket from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureDevPki, type ServerPki } from '@provisio/server'
import { ProvisioningClient, symmetricKey, DeviceError, backoffDelay, type TransportName } from '@provisio/device'

let pki: ServerPki
let dir: string
const KEY = Buffer.alloc(32, 7).toString('base64')
const SCOPE = '0ne00000A0A'

interface Seen {
  method: string
  url: string
  authorization: string | undefined
  body: string
}

type Step = (req: IncomingMessage, res: ServerResponse, body: string) => void

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Step => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify(body))
}
const errorBody = (errorCode: number) => ({ errorCode, trackingId: `t-${errorCode}`, message: `scripted ${errorCode}`, timestampUtc: '2026-01-01T00:00:00Z' })
const assigning = (retryAfter?: string) => json(202, { operationId: 'op-1', status: 'assigning' }, retryAfter === undefined ? {} : { 'retry-after': retryAfter })
const assigned = json(200, { operationId: 'op-1', status: 'assigned', registrationState: { registrationId: 'dev-1', assignedHub: 'hub.example', deviceId: 'dev-1', status: 'assigned', substatus: 'initialAssignment', payload: { hello: 1 } } })

/** An HTTPS server answering request n with script[n] (the last step repeats). */
async function scriptedHttps(script: Step[]): Promise<{ server: HttpsServer; port: number; seen: Seen[] }> {
  const seen: Seen[] = []
  const server = createHttpsServer({ cert: pki.certificatePem, key: pki.keyPem }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, body })
      const step = script[Math.min(seen.length - 1, script.length - 1)]!
      step(req, res, body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port, seen }
}

function client(transport: TransportName, port: number, extra: Partial<ConstructorParameters<typeof ProvisioningClient>[0]> = {}, delays: number[] = []): ProvisioningClient {
  return new ProvisioningClient(
    {
      idScope: SCOPE,
      globalEndpoint: 'localhost',
      port,
      transport,
      security: symmetricKey({ registrationId: 'dev-1', key: KEY }),
      ca: pki.caCertificatePem,
      retry: { random: () => 0, initialDelayMs: 40, maxDelayMs: 400 },
      timeoutMs: 30_000,
      ...extra,
    },
    { onRetry: ({ delayMs }) => void delays.push(delayMs) },
  )
}

const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as DeviceError)
const servers: { close(): void }[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'provisio-device-retry-'))
  pki = await ensureDevPki(dir, ['localhost'], Date.now())
})

afterAll(() => {
  for (const s of servers) s.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('backoffDelay', () => {
  it('waits at least retry-after (plus at most 10 % jitter) and grows exponentially without it, capped', () => {
    expect(backoffDelay(0, 3000, { random: () => 0 })).toBe(3000)
    expect(backoffDelay(5, 3000, { random: () => 0.999 })).toBeLessThanOrEqual(3300)
    expect(backoffDelay(0, undefined, { initialDelayMs: 100, random: () => 0 })).toBe(50)
    expect(backoffDelay(3, undefined, { initialDelayMs: 100, random: () => 0 })).toBe(400)
    expect(backoffDelay(3, undefined, { initialDelayMs: 100, random: () => 0.999 })).toBeGreaterThan(790)
    expect(backoffDelay(40, undefined, { initialDelayMs: 100, maxDelayMs: 1000, random: () => 1 })).toBe(1000)
  })
})

describe('HTTP against a scripted HTTPS server', () => {
  it('retries 429 and 503 after their retry-after, 5xx without it with backoff, then polls to assigned', async () => {
    const { server, port, seen } = await scriptedHttps([
      json(429, errorBody(429001), { 'retry-after': '1' }),
      json(503, errorBody(503001), { 'retry-after': '1' }),
      assigning('1'),
      json(500, errorBody(500001)),
      json(502, {}),
      assigned,
    ])
    servers.push(server)
    const delays: number[] = []
    const result = await client('http', port, {}, delays).register({ payload: { p: 1 } })
    expect(result).toMatchObject({ status: 'assigned', assignedHub: 'hub.example', deviceId: 'dev-1', substatus: 'initialAssignment', payload: { hello: 1 }, requests: 6, retries: 4 })
    // retry-after 1 s honoured exactly (jitter source fixed at 0); then 40·2^n/2 backoff for the poll.
    expect(delays).toEqual([1000, 1000, 20, 40])
    expect(seen.map((s) => `${s.method} ${s.url.split('?')[0]}`)).toEqual([
      ...Array(3).fill(`PUT /${SCOPE}/registrations/dev-1/register`),
      ...Array(3).fill(`GET /${SCOPE}/registrations/dev-1/operations/op-1`),
    ])
    // The same register request is re-sent, with the SAS each time.
    expect(new Set(seen.slice(0, 3).map((s) => s.body))).toEqual(new Set([JSON.stringify({ registrationId: 'dev-1', payload: { p: 1 } })]))
    for (const s of seen) expect(s.authorization).toMatch(new RegExp(`^SharedAccessSignature sr=${SCOPE}%2Fregistrations%2Fdev-1&sig=.+&se=\\d+&skn=registration$`))
    expect(seen[0]!.url).toContain('api-version=2019-03-31')
  })

  it('refuses at once on a 4xx with the error body in a typed error', async () => {
    const { server, port, seen } = await scriptedHttps([json(401, errorBody(401002))])
    servers.push(server)
    const err = await failure(client('http', port).register())
    expect(err).toBeInstanceOf(DeviceError)
    expect(err).toMatchObject({ code: 'REFUSED', status: 401, errorCode: 401002, trackingId: 't-401002', serverMessage: 'scripted 401002', transient: false })
    expect(seen).toHaveLength(1)
  })

  it('reports a failed registration with its errorCode', async () => {
    const { server, port } = await scriptedHttps([json(200, { operationId: 'op-1', status: 'failed', registrationState: { registrationId: 'dev-1', status: 'failed', errorCode: 400207, errorMessage: 'Custom allocation failed with status code: 400' } })])
    servers.push(server)
    const err = await failure(client('http', port).register())
    expect(err).toMatchObject({ code: 'REGISTRATION_FAILED', errorCode: 400207, status: 400, serverMessage: 'Custom allocation failed with status code: 400' })
  })

  it('gives up after maxRetries with RETRIES_EXHAUSTED and the last answer', async () => {
    const { server, port, seen } = await scriptedHttps([json(429, errorBody(429001))])
    servers.push(server)
    const err = await failure(client('http', port, { retry: { random: () => 0, initialDelayMs: 10, maxRetries: 3 } }).register())
    expect(err).toMatchObject({ code: 'RETRIES_EXHAUSTED', status: 429, errorCode: 429001, transient: true })
    expect(seen).toHaveLength(4)
  })

  it('stops at the deadline with DEADLINE_EXCEEDED, keeping the last failure', async () => {
    const { server, port, seen } = await scriptedHttps([json(503, errorBody(503001), { 'retry-after': '1' })])
    servers.push(server)
    const err = await failure(client('http', port, { timeoutMs: 2500 }).register())
    expect(err).toBeInstanceOf(DeviceError)
    expect(err!.code).toBe('DEADLINE_EXCEEDED')
    expect(err!.errorCode).toBe(503001)
    expect((err!.cause as DeviceError).code).toBe('RETRIES_EXHAUSTED')
    expect(seen.length).toBeGreaterThanOrEqual(1)
  })

  it('is cancelled by an AbortSignal while the service is silent', async () => {
    let arrived!: () => void
    const first = new Promise<void>((resolve) => (arrived = resolve))
    const { server, port } = await scriptedHttps([() => arrived()])
    servers.push(server)
    const controller = new AbortController()
    const pending = failure(client('http', port).register({ signal: controller.signal }))
    await first
    controller.abort()
    const err = await pending
    expect(err).toBeInstanceOf(DeviceError)
    expect(err!.code).toBe('ABORTED')
    server.closeAllConnections()
  })

  it('is cancelled by an AbortSignal during a retry wait', async () => {
    const { server, port, seen } = await scriptedHttps([json(429, errorBody(429001), { 'retry-after': '60' })])
    servers.push(server)
    const controller = new AbortController()
    const c = new ProvisioningClient(
      { idScope: SCOPE, globalEndpoint: 'localhost', port, transport: 'http', security: symmetricKey({ registrationId: 'dev-1', key: KEY }), ca: pki.caCertificatePem },
      { onRetry: () => controller.abort() },
    )
    const err = await failure(c.register({ signal: controller.signal }))
    expect(err!.code).toBe('ABORTED')
    expect(seen).toHaveLength(1)
  })

  it('retries a dropped connection (transient TRANSPORT error) and then succeeds', async () => {
    const { server, port, seen } = await scriptedHttps([(req) => req.socket.destroy(), assigned])
    servers.push(server)
    const delays: number[] = []
    const result = await client('http', port, {}, delays).register()
    expect(result.deviceId).toBe('dev-1')
    expect(seen).toHaveLength(2)
    expect(delays).toEqual([20])
  })

  it("drops a kept-alive socket before the server's Keep-Alive hint runs out instead of reusing it", async () => {
    // The server announces `Keep-Alive: timeout=3` and closes idle sockets at 3.5 s; the poll comes
    // 3 s after the register. Reusing the register's socket then races the server's close
    // (ECONNRESET when they meet); honouring the hint means the poll opens a second connection.
    const { server, port, seen } = await scriptedHttps([assigning('3'), assigned])
    server.keepAliveTimeout = 3_500
    let connections = 0
    server.on('secureConnection', () => void connections++)
    servers.push(server)
    const result = await client('http', port).register()
    expect(result.deviceId).toBe('dev-1')
    expect(seen.map((s) => s.method)).toEqual(['PUT', 'GET'])
    expect(connections).toBe(2)
  })
})

// ---- MQTT --------------------------------------------------------------------------------------

interface MqttScript {
  connack?: number
  /** Answers to the device's PUBLISHes in order: [status, body, retry-after?]. */
  answers: [number, unknown, number?][]
}

async function scriptedMqtt(script: MqttScript): Promise<{ server: TlsServer; port: number; topics: string[]; connects: mqttPacket.IConnectPacket[] }> {
  const topics: string[] = []
  const connects: mqttPacket.IConnectPacket[] = []
  let answered = 0
  const server = createTlsServer({ cert: pki.certificatePem, key: pki.keyPem }, (socket: TLSSocket) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    const send = (p: Record<string, unknown>) => socket.write(mqttPacket.generate(p as unknown as mqttPacket.Packet))
    socket.on('data', (d) => parser.parse(d))
    socket.on('error', () => undefined)
    parser.on('packet', (packet) => {
      if (packet.cmd === 'connect') {
        connects.push(packet)
        send({ cmd: 'connack', returnCode: script.connack ?? 0, sessionPresent: false })
        if ((script.connack ?? 0) !== 0) socket.end()
      } else if (packet.cmd === 'subscribe') {
        send({ cmd: 'suback', messageId: packet.messageId, granted: packet.subscriptions.map(() => 1) })
      } else if (packet.cmd === 'publish') {
        topics.push(packet.topic)
        if (packet.qos === 1) send({ cmd: 'puback', messageId: packet.messageId })
        const rid = /\?\$rid=([^&]+)/.exec(packet.topic)![1]
        const [status, body, retryAfter] = script.answers[Math.min(answered++, script.answers.length - 1)]!
        const topic = `$dps/registrations/res/${status}/?$rid=${rid}${retryAfter === undefined ? '' : `&retry-after=${retryAfter}`}`
        send({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(body)), qos: 0, retain: false, dup: false })
      } else if (packet.cmd === 'pingreq') send({ cmd: 'pingresp' })
      else if (packet.cmd === 'disconnect') socket.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port, topics, connects }
}

describe('MQTT against a scripted MQTT server', () => {
  it('retries 429 and 503 from the response topic after their retry-after, then polls to assigned', async () => {
    const { server, port, topics, connects } = await scriptedMqtt({
      answers: [
        [429, errorBody(429001), 1],
        [503, errorBody(503001), 1],
        [202, { operationId: 'op-1', status: 'assigning' }, 1],
        [500, errorBody(500001)],
        [200, { operationId: 'op-1', status: 'assigned', registrationState: { registrationId: 'dev-1', assignedHub: 'hub.example', deviceId: 'dev-1', status: 'assigned' } }],
      ],
    })
    servers.push(server)
    const delays: number[] = []
    const result = await client('mqtt', port, {}, delays).register()
    expect(result).toMatchObject({ assignedHub: 'hub.example', deviceId: 'dev-1', requests: 5, retries: 3 })
    expect(delays).toEqual([1000, 1000, 20])
    expect(connects).toHaveLength(1)
    expect(connects[0]).toMatchObject({ clientId: 'dev-1', clean: true, protocolVersion: 4 })
    expect(connects[0]!.username).toBe(`${SCOPE}/registrations/dev-1/api-version=2019-03-31&ClientVersion=provisio-device%2F0.1.0`)
    expect(String(connects[0]!.password)).toMatch(/^SharedAccessSignature sr=/)
    expect(topics.slice(0, 3).every((t) => /^\$dps\/registrations\/PUT\/iotdps-register\/\?\$rid=[0-9a-f-]{36}$/.test(t))).toBe(true)
    expect(topics.slice(3).every((t) => /^\$dps\/registrations\/GET\/iotdps-get-operationstatus\/\?\$rid=[0-9a-f-]{36}&operationId=op-1$/.test(t))).toBe(true)
  })

  it('maps CONNACK return code 5 to REFUSED/401 without retrying', async () => {
    const { server, port, connects } = await scriptedMqtt({ connack: 5, answers: [] })
    servers.push(server)
    const err = await failure(client('mqtt', port).register())
    expect(err).toMatchObject({ code: 'REFUSED', status: 401 })
    expect(connects).toHaveLength(1)
  })

  it('stops at the deadline while the service keeps throttling', async () => {
    const { server, port } = await scriptedMqtt({ answers: [[429, errorBody(429001), 1]] })
    servers.push(server)
    const err = await failure(client('mqtt', port, { timeoutMs: 2500 }).register())
    expect(err).toMatchObject({ code: 'DEADLINE_EXCEEDED', errorCode: 429001, status: 429 })
  })
})
