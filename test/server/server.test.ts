// `provisio serve` over real TLS on loopback: error bodies, limits, TLS floor, health, metrics,
// graceful shutdown. (Microsoft-client interop lives in test/interop.)
import { connect } from 'node:tls'
import { request } from 'node:https'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildSasToken, deviceRegistrationResource } from '@provisio/protocol'
import { httpsRequest } from '../lib/https-client.js'
import { startTestServer, type TestServer } from '../lib/server.js'

let server: TestServer
const deviceKey = Buffer.alloc(32, 3).toString('base64')

function deviceToken(registrationId: string, key = deviceKey): string {
  return buildSasToken({
    resource: deviceRegistrationResource(server.endpoints.idScope, registrationId),
    key,
    keyName: 'registration',
    expiresAt: Math.floor(Date.now() / 1000) + 600,
  })
}

beforeAll(async () => {
  // Azure's exact flow: register answers 202 assigning, the device polls (the fast path: cli.test.ts).
  server = await startTestServer({ assignmentBudgetMs: 0 })
  await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
    registrationId: 'plain-1',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: deviceKey, secondaryKey: Buffer.alloc(32, 4).toString('base64') } },
  })
})

afterAll(async () => {
  await server?.stop()
})

const registerPath = (id: string) => `/${server.endpoints.idScope}/registrations/${id}/register?api-version=2021-06-01`

describe('device API over TLS', () => {
  it('answers 202 assigning with Retry-After, then the poll reaches assigned', async () => {
    const headers = { authorization: deviceToken('plain-1'), 'content-type': 'application/json' }
    const first = await httpsRequest(server.port, server.caPem, 'PUT', registerPath('plain-1'), { headers, body: '{"registrationId":"plain-1"}' })
    expect(first.status).toBe(202)
    expect(first.headers['retry-after']).toBe('1')
    const op = JSON.parse(first.body) as { operationId: string; status: string }
    expect(op.status).toBe('assigning')
    let status = 'assigning'
    for (let i = 0; i < 50 && status === 'assigning'; i++) {
      const poll = await httpsRequest(server.port, server.caPem, 'GET', `/${server.endpoints.idScope}/registrations/plain-1/operations/${op.operationId}?api-version=2021-06-01`, { headers })
      status = (JSON.parse(poll.body) as { status: string }).status
      if (status === 'assigning') await new Promise((r) => setTimeout(r, 20))
    }
    expect(status).toBe('assigned')
  })

  it('error bodies carry errorCode, trackingId, message, timestampUtc and x-ms-error-code', async () => {
    const res = await httpsRequest(server.port, server.caPem, 'PUT', registerPath('plain-1'), {
      headers: { authorization: deviceToken('plain-1', Buffer.alloc(32, 9).toString('base64')), 'content-type': 'application/json' },
      body: '{}',
    })
    expect(res.status).toBe(401)
    expect(res.headers['x-ms-error-code']).toBe('401002')
    const body = JSON.parse(res.body) as Record<string, unknown>
    expect(body).toMatchObject({ errorCode: 401002, trackingId: res.headers['x-ms-request-id'], message: 'Unauthorized' })
    expect(body.timestampUtc).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/)
  })

  it('invalid JSON and schema violations get 400 with the reason', async () => {
    const headers = { authorization: deviceToken('plain-1'), 'content-type': 'application/json' }
    const broken = await httpsRequest(server.port, server.caPem, 'PUT', registerPath('plain-1'), { headers, body: '{"registrationId": ' })
    expect(broken.status).toBe(400)
    expect(JSON.parse(broken.body).errorCode).toBe(400002)
    const wrongShape = await httpsRequest(server.port, server.caPem, 'PUT', registerPath('plain-1'), { headers, body: '{"payload": 42}' })
    expect(wrongShape.status).toBe(400)
    expect(JSON.parse(wrongShape.body).message).toMatch(/payload/)
  })

  it('refuses a body over 96 KB with 413 before reading it all', async () => {
    const res = await httpsRequest(server.port, server.caPem, 'PUT', registerPath('plain-1'), {
      headers: { authorization: deviceToken('plain-1'), 'content-type': 'application/json' },
      body: Buffer.alloc(96 * 1024 + 1, 0x20),
    })
    expect(res.status).toBe(413)
    expect(JSON.parse(res.body).errorCode).toBe(413001)
  })

  it('refuses TLS below 1.2 and accepts 1.2', async () => {
    // SECLEVEL=0 lets this client offer TLS 1.0/1.1 at all, so only the server can refuse.
    const handshake = (maxVersion: 'TLSv1.1' | 'TLSv1.2') =>
      new Promise<string>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: server.caPem, maxVersion, minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' })
        socket.on('secureConnect', () => {
          resolve(`connected ${socket.getProtocol()}`)
          socket.destroy()
        })
        socket.on('error', (e) => resolve(`refused: ${e.message}`))
      })
    expect(await handshake('TLSv1.1')).toMatch(/^refused: .*(protocol|version)/i)
    expect(await handshake('TLSv1.2')).toBe('connected TLSv1.2')
  })
})

describe('operations', () => {
  it('GET /health answers ok with the ID scope', async () => {
    const res = await httpsRequest(server.port, server.caPem, 'GET', '/health')
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toMatchObject({ status: 'ok', idScope: server.endpoints.idScope })
  })

  it('GET /metrics exposes registration and attestation counters in Prometheus format', async () => {
    const res = await httpsRequest(server.port, server.caPem, 'GET', '/metrics')
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    const attempts = await server.metrics.attempts.get(['https', 'symmetricKey'])
    expect(attempts).toBe(2) // the good register and the wrong-key one; malformed bodies never reach the API
    expect(res.body).toContain(`provisio_registration_attempts_total{transport="https",attestation="symmetricKey"} ${attempts}`)
    expect(res.body).toMatch(/provisio_attestation_attempts_total\{kind="symmetricKey",result="failure"\} [1-9]/)
    expect(res.body).toMatch(/provisio_registrations_total\{status="assigned"\} [1-9]/)
    expect(res.body).toMatch(/provisio_device_responses_total\{transport="https",operation="register",status="202"\} [1-9]/)
    // The good register's latency, observed once when its poll answered assigned.
    expect(res.body).toMatch(/^provisio_registration_duration_seconds_count\{transport="https",attestation="symmetricKey"\} 1$/m)
    expect(res.body).toContain('# TYPE provisio_registration_duration_seconds histogram')
    // Node's process metrics beside them.
    expect(res.body).toMatch(/^process_cpu_user_seconds_total \d/m)
  })
})

describe('graceful shutdown', () => {
  it('finishes a request that is in flight, refuses new connections, then stops', async () => {
    const own = await startTestServer()
    try {
      const body = '{"registrationId":"nobody"}'
      // Send the headers and half the body, start closing, then finish the body.
      const pending = new Promise<number>((resolve, reject) => {
        const req = request(
          { host: 'localhost', port: own.port, ca: own.caPem, method: 'PUT', path: `/${own.endpoints.idScope}/registrations/nobody/register`, agent: false, headers: { 'content-type': 'application/json', 'content-length': String(body.length), authorization: 'SharedAccessSignature sr=x&sig=y&se=1&skn=registration' } },
          (res) => {
            res.resume()
            resolve(res.statusCode ?? 0)
          },
        )
        req.on('error', reject)
        req.write(body.slice(0, 5))
        setTimeout(() => req.end(body.slice(5)), 300)
      })
      await new Promise((r) => setTimeout(r, 100))
      const closing = own.close(5_000)
      const status = await pending
      expect(status).toBe(401) // answered, not dropped
      await closing
      await expect(httpsRequest(own.port, own.caPem, 'GET', '/health')).rejects.toThrow(/ECONNREFUSED/)
    } finally {
      await own.stop()
    }
  })
})

describe('start-up failures', () => {
  it('names the protocol, the port and the flag when a port is taken', async () => {
    const taken = await startTestServer()
    try {
      // HTTPS and AMQP start on free ports, MQTT collides (serve.ts then closes what did start).
      const error = await startTestServer({ mqttPort: taken.endpoints.ports.mqtt }).then(
        () => undefined,
        (e: unknown) => e as Error,
      )
      expect(error?.message).toBe(`cannot listen for MQTT on 127.0.0.1:${taken.endpoints.ports.mqtt}: port ${taken.endpoints.ports.mqtt} is in use; choose another with --mqtt-port`)
    } finally {
      await taken.stop()
    }
  })
})
