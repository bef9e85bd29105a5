// The WebSocket seam of the HTTPS listener: /$iothub/websocket, routed by subprotocol.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startTestServer, type TestServer } from '../lib/server.js'

let server: TestServer

beforeAll(async () => {
  server = await startTestServer()
  server.websockets.register('provisio-echo-test', ({ socket }) => {
    socket.on('message', (data) => socket.send(data))
  })
})

afterAll(async () => {
  await server?.stop()
})

function open(path: string, protocols: string[]): Promise<{ ws?: WebSocket; status?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://localhost:${server.port}${path}`, protocols, { ca: server.caPem })
    ws.on('open', () => resolve({ ws }))
    ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode }))
    ws.on('error', () => resolve({}))
  })
}

describe('WebSocket upgrades at /$iothub/websocket', () => {
  it('hands a socket with a served subprotocol to its transport', async () => {
    const { ws } = await open('/$iothub/websocket', ['unknown', 'provisio-echo-test'])
    expect(ws?.protocol).toBe('provisio-echo-test')
    const echoed = await new Promise<string>((resolve) => {
      ws!.on('message', (d) => resolve(d.toString()))
      ws!.send('ping')
    })
    expect(echoed).toBe('ping')
    ws!.close()
  })

  it('refuses an unserved subprotocol with 400 and another path with 404', async () => {
    expect((await open('/$iothub/websocket', ['nothing-here'])).status).toBe(400)
    expect((await open('/elsewhere', ['provisio-echo-test'])).status).toBe(404)
  })
})
