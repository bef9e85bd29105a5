// Slow and stuck peers: slowloris (a header block trickled byte by byte), TLS
// handshakes that never finish (a TCP connect that sends nothing, a partial ClientHello), an
// HTTPS connection that never sends a request, an MQTT client that never sends CONNECT, an AMQP
// client stuck after its header. The server cuts each after its configured timeout (short ones
// here: 1 s), logs why, and keeps serving good devices while they hang.
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { eventually, expectGoodRegistration, logLines, openConnections, startHostileServer, type HostileServer } from '../lib/hostile.js'

const TIMEOUT_MS = 1000
let server: HostileServer

beforeAll(async () => {
  server = await startHostileServer({ handshakeTimeoutMs: TIMEOUT_MS, connectTimeoutMs: TIMEOUT_MS, requestTimeoutMs: 3 * TIMEOUT_MS })
})

afterAll(async () => {
  await server?.stop()
})

/** A connection the test holds open; `cut` resolves when the server ends it, with the time it took and what it wrote. */
interface Held {
  readonly cut: Promise<{ afterMs: number; received: Buffer }>
  destroy(): void
}

function hold(socket: Socket | TLSSocket, startedAt: number): Held {
  const received: Buffer[] = []
  socket.on('data', (c: Buffer) => received.push(c))
  socket.on('error', () => undefined)
  const cut = new Promise<{ afterMs: number; received: Buffer }>((resolve) => socket.on('close', () => resolve({ afterMs: Date.now() - startedAt, received: Buffer.concat(received) })))
  return { cut, destroy: () => socket.destroy() }
}

/** Raw TCP to `port`, then `bytes` (nothing: a handshake that never starts). */
function tcp(port: number, bytes?: Buffer): Held {
  const started = Date.now()
  const socket = netConnect({ host: '127.0.0.1', port }, () => {
    if (bytes !== undefined) socket.write(bytes)
  })
  return hold(socket, started)
}

/** TLS that completes, then `bytes` trickled one per `gapMs` (or nothing). */
function tls(port: number, bytes = Buffer.alloc(0), gapMs = 100): Held {
  const started = Date.now()
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: server.caPem, servername: 'localhost' }, () => {
    let i = 0
    const trickle = setInterval(() => {
      if (i >= bytes.length || socket.destroyed) return clearInterval(trickle)
      socket.write(bytes.subarray(i, ++i))
    }, gapMs)
  })
  return hold(socket, started)
}

/** A WebSocket that completes its upgrade, then sends `messages` (or nothing). */
function ws(subprotocol: string, messages: Buffer[] = []): Held {
  const started = Date.now()
  const socket = new WebSocket(`wss://localhost:${server.port}/$iothub/websocket`, [subprotocol], { ca: server.caPem })
  socket.on('open', () => messages.forEach((m) => socket.send(m)))
  socket.on('error', () => undefined)
  const cut = new Promise<{ afterMs: number; received: Buffer }>((resolve) => socket.on('close', () => resolve({ afterMs: Date.now() - started, received: Buffer.alloc(0) })))
  return { cut, destroy: () => socket.terminate() }
}

/** Cut by the server no earlier than the timeout (and well before a generous bound). */
async function expectCutAfterTimeout(held: Held): Promise<Buffer> {
  const { afterMs, received } = await held.cut
  expect(afterMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 50)
  return received
}

/** A partial TLS ClientHello: a handshake record header announcing 512 bytes, and only a few of them. */
const PARTIAL_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])

describe('stuck TLS handshakes are cut at the handshake timeout on every listener', () => {
  it.each(['https', 'mqtt', 'amqp'] as const)('%s: silent TCP and a partial ClientHello', async (listener) => {
    const port = listener === 'https' ? server.port : server.endpoints.ports[listener]
    const silent = tcp(port)
    const partial = tcp(port, PARTIAL_CLIENT_HELLO)
    // Good devices register while both hang.
    await expectGoodRegistration(server)
    expect((await expectCutAfterTimeout(silent)).length).toBe(0)
    expect((await expectCutAfterTimeout(partial)).length).toBe(0)
    const name = listener === 'https' ? 'https' : `${listener}s`
    expect(logLines(server).filter((l) => l.msg === 'TLS handshake failed' && l.listener === name && l.code === 'ERR_TLS_HANDSHAKE_TIMEOUT').length).toBeGreaterThanOrEqual(2)
  })
})

describe('peers that finish TLS and then stall are cut at the connect timeout', () => {
  it('slowloris: a header block trickled one byte per 100 ms gets 408', async () => {
    const request = Buffer.from(`GET /health HTTP/1.1\r\nHost: localhost\r\n${'X-Slow: a\r\n'.repeat(20)}\r\n`)
    const loris = [tls(server.port, request), tls(server.port, request), tls(server.port, request)]
    await expectGoodRegistration(server)
    for (const l of loris) expect((await expectCutAfterTimeout(l)).toString('latin1')).toMatch(/^HTTP\/1\.1 408 .*"errorCode":408001/s)
  })

  it('an HTTPS connection that never sends a request gets 408', async () => {
    const idle = tls(server.port)
    await expectGoodRegistration(server)
    expect((await expectCutAfterTimeout(idle)).toString('latin1')).toMatch(/^HTTP\/1\.1 408 /)
  })

  it('an MQTT client that never sends CONNECT (TLS and WebSocket)', async () => {
    const before = server.logs.length
    const silent = [tls(server.endpoints.ports.mqtt), ws('mqtt')]
    await expectGoodRegistration(server)
    for (const s of silent) await expectCutAfterTimeout(s)
    const timeouts = logLines(server).slice(before).filter((l) => l.msg === 'mqtt connection dropped' && l.code === 'CONNECT_TIMEOUT')
    expect(timeouts.map((l) => l.transport).sort()).toEqual(['mqtt-ws', 'mqtts'])
  })

  it('an AMQP client stuck after its header (TLS and WebSocket)', async () => {
    const before = server.logs.length
    const header = Buffer.from('AMQP\x00\x01\x00\x00', 'latin1')
    const stuck = [tls(server.endpoints.ports.amqp, header, 1), ws('AMQPWSB10', [header])]
    await expectGoodRegistration(server)
    for (const s of stuck) await expectCutAfterTimeout(s)
    const timeouts = logLines(server).slice(before).filter((l) => l.msg === 'amqp connection refused' && l.code === 'OPEN_TIMEOUT')
    expect(timeouts.map((l) => l.transport).sort()).toEqual(['amqp-ws', 'amqps'])
  })

  it('a body trickled slower than the request timeout gets 408', async () => {
    const head = `PUT /${server.endpoints.idScope}/registrations/slow/register?api-version=2021-06-01 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n`
    const started = Date.now()
    const socket = tlsConnect({ host: '127.0.0.1', port: server.port, ca: server.caPem, servername: 'localhost' }, () => {
      socket.write(head)
      const trickle = setInterval(() => (socket.destroyed ? clearInterval(trickle) : socket.write(' ')), 200)
    })
    const held = hold(socket, started)
    const { afterMs, received } = await held.cut
    expect(afterMs).toBeGreaterThanOrEqual(3 * TIMEOUT_MS - 50)
    expect(received.toString('latin1')).toMatch(/^HTTP\/1\.1 408 /)
  })

  it('every hostile connection is gone afterwards', async () => {
    await eventually(async () => {
      expect(await openConnections(server.port, server.caPem)).toEqual({ https: 1, mqtts: 0, amqps: 0, 'mqtt-ws': 0, 'amqp-ws': 0 })
    })
  })
})
