// Web pages on the device endpoints: CORS on the DPS device API (preflight and the headers of real
// answers) and the Origin check of WebSocket upgrades at /$iothub/websocket — same origin and the
// configured corsOrigins pass, other origins get a clear refusal, clients without Origin (the SDKs)
// are not concerned.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { buildSasToken, deviceRegistrationResource } from '@provisio/protocol'
import { httpsRequest } from '../lib/https-client.js'
import { startTestServer, type TestServer } from '../lib/server.js'

const DEV = 'http://localhost:5173'
const EVIL = 'https://evil.example'
const deviceKey = Buffer.alloc(32, 7).toString('base64')
let server: TestServer

beforeAll(async () => {
  // Azure's flow (202 with Retry-After, which a page must be able to read through CORS).
  server = await startTestServer({ assignmentBudgetMs: 0 })
  await server.engine.createOrUpdateEnrollment(server.endpoints.idScope, {
    registrationId: 'page-device',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: deviceKey, secondaryKey: Buffer.alloc(32, 8).toString('base64') } },
  })
  server.websockets.register('provisio-echo-test', ({ socket }) => socket.on('message', (d) => socket.send(d)))
})

afterAll(async () => {
  await server?.stop()
})

const registerPath = () => `/${server.endpoints.idScope}/registrations/page-device/register?api-version=2021-06-01`
const token = (key = deviceKey) =>
  buildSasToken({ resource: deviceRegistrationResource(server.endpoints.idScope, 'page-device'), key, keyName: 'registration', expiresAt: Math.floor(Date.now() / 1000) + 600 })

function preflight(origin: string, method = 'PUT', headers = 'authorization,content-type') {
  return httpsRequest(server.port, server.caPem, 'OPTIONS', registerPath(), {
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
  })
}

describe('CORS on the DPS device API', () => {
  it('answers a preflight from an allowed origin with the methods and headers a device uses', async () => {
    const res = await preflight(DEV)
    expect(res.status).toBe(204)
    expect(res.headers['access-control-allow-origin']).toBe(DEV)
    expect(String(res.headers['access-control-allow-methods']).split(', ')).toEqual(expect.arrayContaining(['GET', 'PUT', 'POST']))
    expect(String(res.headers['access-control-allow-headers']).split(', ')).toEqual(expect.arrayContaining(['authorization', 'content-type']))
    expect(res.headers['access-control-max-age']).toBe('600')
    expect(res.headers.vary).toBe('Origin')
  })

  it('refuses a preflight from another origin, or for a method or header the API does not take, saying why', async () => {
    const evil = await preflight(EVIL)
    expect(evil.status).toBe(403)
    expect(evil.headers['access-control-allow-origin']).toBeUndefined()
    expect(JSON.parse(evil.body).message).toMatch(/origin https:\/\/evil\.example is not allowed.*--cors-origins/)
    const del = await preflight(DEV, 'DELETE')
    expect(del.status).toBe(403)
    expect(JSON.parse(del.body).message).toMatch(/method DELETE/)
    const header = await preflight(DEV, 'PUT', 'authorization,x-evil')
    expect(header.status).toBe(403)
    expect(JSON.parse(header.body).message).toMatch(/x-evil/)
  })

  it('puts Access-Control-* on real answers, success and error alike, and exposes Retry-After', async () => {
    const ok = await httpsRequest(server.port, server.caPem, 'PUT', registerPath(), {
      headers: { origin: DEV, authorization: token(), 'content-type': 'application/json' },
      body: '{"registrationId":"page-device"}',
    })
    expect(ok.status).toBe(202)
    expect(ok.headers['access-control-allow-origin']).toBe(DEV)
    expect(String(ok.headers['access-control-expose-headers'])).toContain('retry-after')
    const refused = await httpsRequest(server.port, server.caPem, 'PUT', registerPath(), {
      headers: { origin: DEV, authorization: token(Buffer.alloc(32, 1).toString('base64')), 'content-type': 'application/json' },
      body: '{"registrationId":"page-device"}',
    })
    expect(refused.status).toBe(401)
    expect(refused.headers['access-control-allow-origin']).toBe(DEV)
    const other = await httpsRequest(server.port, server.caPem, 'PUT', registerPath(), {
      headers: { origin: EVIL, authorization: token(), 'content-type': 'application/json' },
      body: '{"registrationId":"page-device"}',
    })
    expect(other.headers['access-control-allow-origin']).toBeUndefined()
  })

  it('treats a page served by this server as same origin', async () => {
    const res = await preflight(`https://localhost:${server.port}`)
    expect(res.status).toBe(204)
    expect(res.headers['access-control-allow-origin']).toBe(`https://localhost:${server.port}`)
  })

  it('gives no CORS to the service API', async () => {
    const res = await httpsRequest(server.port, server.caPem, 'GET', '/enrollments/page-device?api-version=2021-10-01', { headers: { origin: DEV } })
    expect(res.headers['access-control-allow-origin']).toBeUndefined()
    const pre = await httpsRequest(server.port, server.caPem, 'OPTIONS', '/enrollments/page-device?api-version=2021-10-01', {
      headers: { origin: DEV, 'access-control-request-method': 'PUT' },
    })
    expect(pre.headers['access-control-allow-origin']).toBeUndefined()
  })

  it('allows any origin with corsOrigins *', async () => {
    const open = await startTestServer({ corsOrigins: ['*'] })
    try {
      const res = await httpsRequest(open.port, open.caPem, 'OPTIONS', `/${open.endpoints.idScope}/registrations/x/register`, {
        headers: { origin: EVIL, 'access-control-request-method': 'PUT' },
      })
      expect(res.status).toBe(204)
      expect(res.headers['access-control-allow-origin']).toBe(EVIL)
    } finally {
      await open.stop()
    }
  })
})

function openWs(origin: string | undefined): Promise<{ ws?: WebSocket; status?: number; body?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://localhost:${server.port}/$iothub/websocket`, ['provisio-echo-test'], {
      ca: server.caPem,
      ...(origin === undefined ? {} : { origin }),
    })
    ws.on('open', () => resolve({ ws }))
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }))
    })
    ws.on('error', () => resolve({}))
  })
}

describe('Origin of WebSocket upgrades at /$iothub/websocket', () => {
  it('accepts clients without Origin, the same origin and configured origins', async () => {
    for (const origin of [undefined, `https://localhost:${server.port}`, DEV, 'http://127.0.0.1:5173']) {
      const { ws } = await openWs(origin)
      expect(ws?.protocol, String(origin)).toBe('provisio-echo-test')
      ws?.close()
    }
  })

  it('refuses a page of another origin with 403 and the reason', async () => {
    for (const origin of [EVIL, 'null', `https://localhost:${server.port + 1}`, 'not a url']) {
      const res = await openWs(origin)
      expect(res.ws, origin).toBeUndefined()
      expect(res.status, origin).toBe(403)
      expect(res.body, origin).toMatch(/is not allowed: serve the page from this server or add the origin to corsOrigins/)
    }
  })
})
