// Every connection ends, whatever the peer sends, and SIGTERM always ends the server. The built
// `provisio serve` runs in a child process (its file descriptors and its exit are what is checked):
// - the recorded hostile input fixtures/websocket-upgrade-leak.bin (a WebSocket upgrade with a
//   ~9 KB header and no subprotocol, refused with 400, followed by 7.7 KB of pipelined bytes)
//   replayed 20 times;
// - a bounded, seeded mutation fuzz of valid openings at every listener: MQTT CONNECT on MQTTS,
//   AMQP SASL header and init on AMQPS, an HTTP request and a WebSocket upgrade carrying MQTT on
//   the HTTPS port.
// After each run the open-connection gauges and the server's socket descriptors are back to their
// baseline, and SIGTERM, with a hostile connection still held open by its peer, exits 0 within the
// drain deadline.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connect, type TLSSocket } from 'node:tls'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import frames from 'rhea/lib/frames.js'
import { encodePacket } from '@provisio/codec-mqtt'
import { buildSasToken } from '@provisio/protocol'
import { connect as netConnect, type Socket } from 'node:net'
import { startServe, type ServeProcess } from '../lib/cli.js'
import { eventually, openConnections, startHostileServer } from '../lib/hostile.js'
import { parseHttpAnswers, rawTls } from '../lib/raw.js'

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'websocket-upgrade-leak.bin')
/** The server's drain deadline on SIGTERM (RunningServer.close's default). */
const DRAIN_DEADLINE_MS = 10_000

type Endpoints = { idScope: string; caCertificate: string; ports: { https: number; mqtt: number; amqp: number } }
let serve: ServeProcess<Endpoints> | undefined

afterEach(() => {
  serve?.stop()
  serve = undefined
})

async function startServer(): Promise<{ serve: ServeProcess<Endpoints>; ca: string }> {
  serve = await startServe<Endpoints>({ dataDirPrefix: 'provisio-connections-', args: ['--connect-timeout-ms', '2000', '--handshake-timeout-ms', '2000', '--log-level', 'info'] })
  return { serve, ca: readFileSync(serve.endpoints.caCertificate, 'utf8') }
}

/** The server's open sockets (its other descriptors, such as the SQLite WAL, come and go with its own work). */
function socketDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')
    } catch {
      return false // closed while listed
    }
  }).length
}

/** Sockets and gauges of the server at rest: the sockets before any client connected, the gauges (which count the /metrics request itself) after. */
async function baseline(s: ServeProcess<Endpoints>, ca: string): Promise<{ gauges: Record<string, number>; sockets: number }> {
  const sockets = socketDescriptors(s.child.pid!)
  return { sockets, gauges: await openConnections(s.endpoints.ports.https, ca) }
}

/** The gauges and the server's sockets are back to baseline (the last /metrics connection closes shortly after its answer). */
async function expectBackToBaseline(s: ServeProcess<Endpoints>, ca: string, base: { gauges: Record<string, number>; sockets: number }): Promise<void> {
  await eventually(async () => expect(await openConnections(s.endpoints.ports.https, ca)).toEqual(base.gauges), 15_000)
  await eventually(() => expect(socketDescriptors(s.child.pid!)).toBe(base.sockets), 5_000)
}

/** SIGTERM while `held` (a hostile connection whose peer never closes) is open: exit 0 within the drain deadline. */
async function expectSigtermExits(s: ServeProcess<Endpoints>, held: TLSSocket): Promise<void> {
  const started = Date.now()
  const exited = new Promise<number | null>((resolve) => s.child.once('exit', (code) => resolve(code)))
  s.child.kill('SIGTERM')
  const code = await Promise.race([exited, new Promise<'alive'>((resolve) => setTimeout(() => resolve('alive'), DRAIN_DEADLINE_MS + 5_000))])
  held.destroy()
  expect(code, `provisio serve after SIGTERM:\n${s.stderr.slice(-2000)}`).toBe(0)
  expect(Date.now() - started).toBeLessThan(DRAIN_DEADLINE_MS + 5_000)
  expect(s.stderr).toMatch(/"msg":"stopped"/)
}

/** A TLS connection that writes `bytes` and then neither reads nor closes. */
function holdOpen(port: number, ca: string, bytes: Buffer): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      socket.write(bytes)
      socket.pause()
      resolve(socket)
    })
    socket.on('error', reject)
  })
}

describe('the recorded WebSocket upgrade leak', () => {
  it('replayed 20 times: each gets its 400 and is closed, the gauge and descriptors return to baseline, SIGTERM exits 0 within the deadline', { timeout: 120_000 }, async () => {
    const fixture = readFileSync(FIXTURE)
    const { serve: s, ca } = await startServer()
    const base = await baseline(s, ca)
    for (let i = 0; i < 20; i++) {
      // The client closes as soon as it has the answer, as the probe did.
      const result = await rawTls(s.endpoints.ports.https, ca, [fixture], { until: (b) => b.includes('\r\n\r\n') && b.includes('none of the offered subprotocols') })
      expect(result.bytes.toString('latin1')).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
      expect(result.bytes.toString('latin1')).toMatch(/\r\nConnection: close\r\n/i)
    }
    await expectBackToBaseline(s, ca, base)
    await expectSigtermExits(s, await holdOpen(s.endpoints.ports.https, ca, fixture))
  })
})

// ---- the fuzz: valid openings, mutated ----

function mqttConnect(idScope: string): Buffer {
  const registrationId = 'fuzz-device'
  const token = buildSasToken({ resource: `${idScope}/registrations/${registrationId}`, key: Buffer.alloc(32, 1).toString('base64'), keyName: 'registration', expiresAt: Math.floor(Date.now() / 1000) + 600 })
  return Buffer.from(encodePacket({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: registrationId, username: `${idScope}/registrations/${registrationId}/api-version=2019-03-31`, password: Buffer.from(token) }))
}

function amqpOpening(idScope: string): Buffer {
  const init = frames.sasl_frame(frames.sasl_init({ mechanism: 'PLAIN', initial_response: Buffer.from(`\u0000${idScope}/registrations/fuzz-device\u0000SharedAccessSignature sr=x&sig=y&se=1`), hostname: 'localhost' }))
  return Buffer.concat([Buffer.from('AMQP\x03\x01\x00\x00', 'latin1'), Buffer.from(frames.write_frame(init)), Buffer.from('AMQP\x00\x01\x00\x00', 'latin1'), Buffer.from(frames.write_frame(frames.amqp_frame(0, frames.open({ container_id: 'fuzz' }))))])
}

function httpRequest(idScope: string): Buffer {
  const body = '{"registrationId":"fuzz-device"}'
  return Buffer.from(`PUT /${idScope}/registrations/fuzz-device/register?api-version=2021-06-01 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAuthorization: SharedAccessSignature sr=x&sig=y&se=1\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 'latin1')
}

/** A WebSocket upgrade offering `mqtt`, then the CONNECT in one masked binary frame. */
function websocketOpening(idScope: string): Buffer {
  const upgrade = 'GET /$iothub/websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n'
  const payload = mqttConnect(idScope)
  const mask = Buffer.from([1, 2, 3, 4])
  const head = payload.length < 126 ? Buffer.from([0x82, 0x80 | payload.length]) : Buffer.from([0x82, 0x80 | 126, payload.length >> 8, payload.length & 0xff])
  return Buffer.concat([Buffer.from(upgrade, 'latin1'), head, mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))])
}

type Mutation = { kind: 'flip'; at: number; bit: number } | { kind: 'cut'; at: number } | { kind: 'insert'; at: number; bytes: number[] } | { kind: 'repeat'; at: number; length: number; times: number }

function mutate(input: Buffer, mutations: readonly Mutation[]): Buffer {
  let out = Buffer.from(input)
  for (const m of mutations) {
    const at = out.length === 0 ? 0 : m.at % out.length
    if (m.kind === 'flip') out[at] = out[at]! ^ (1 << m.bit)
    else if (m.kind === 'cut') out = out.subarray(0, at)
    else if (m.kind === 'insert') out = Buffer.concat([out.subarray(0, at), Buffer.from(m.bytes), out.subarray(at)])
    else out = Buffer.concat([out.subarray(0, at), ...Array.from({ length: m.times }, () => out.subarray(at, at + m.length)), out.subarray(at)])
  }
  return out
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 64 }) }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 512 }), times: fc.integer({ min: 1, max: 40 }) }),
)

describe('a seeded mutation fuzz of valid openings at every listener', () => {
  it('leaves no connection or descriptor behind, and SIGTERM exits 0 within the deadline', { timeout: 180_000 }, async () => {
    const { serve: s, ca } = await startServer()
    const { idScope, ports } = s.endpoints
    const openings: readonly { name: string; port: number; bytes: Buffer }[] = [
      { name: 'mqtts', port: ports.mqtt, bytes: mqttConnect(idScope) },
      { name: 'amqps', port: ports.amqp, bytes: amqpOpening(idScope) },
      { name: 'https', port: ports.https, bytes: httpRequest(idScope) },
      { name: 'websocket', port: ports.https, bytes: websocketOpening(idScope) },
    ]
    const base = await baseline(s, ca)
    // 120 seeded cases, 8 connections at a time.
    const cases = fc.sample(fc.tuple(fc.constantFrom(...openings), fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 4 }), fc.boolean()), { seed: 20261207, numRuns: 120 })
    const run = async ([opening, mutations, pieces, halfClose]: (typeof cases)[number]) => {
      const bytes = mutate(opening.bytes, mutations)
      const size = Math.max(1, Math.ceil(bytes.length / pieces))
      const chunks = Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size))
      // The server answers, refuses or times the connection out (connect timeout 2 s); the client gives up after 3 s.
      const result = await rawTls(opening.port, ca, chunks, { endAfterWrite: halfClose, deadlineMs: 3000 })
      // An HTTP answer arrives whole: a refusal is never cut short by a reset.
      if (opening.name === 'https' && result.bytes.toString('latin1', 0, 5) === 'HTTP/') expect(() => parseHttpAnswers(result.bytes)).not.toThrow()
    }
    for (let i = 0; i < cases.length; i += 8) await Promise.all(cases.slice(i, i + 8).map(run))
    await expectBackToBaseline(s, ca, base)
    await expectSigtermExits(s, await holdOpen(ports.https, ca, websocketOpening(idScope)))
  })
})

describe('graceful shutdown keeps its deadline', () => {
  it('close(1000) destroys every connection still open at its deadline, whatever the peers do, and returns', async () => {
    // Timeouts far beyond the deadline: only the shutdown can end these connections.
    const server = await startHostileServer({ handshakeTimeoutMs: 60_000, connectTimeoutMs: 60_000, requestTimeoutMs: 60_000 })
    const { ports } = server.endpoints
    const peers: (Socket | TLSSocket)[] = []
    const closed: Promise<void>[] = []
    const keep = <S extends Socket | TLSSocket>(socket: S): S => {
      socket.on('error', () => undefined)
      peers.push(socket)
      closed.push(new Promise((resolve) => socket.once('close', () => resolve())))
      return socket
    }
    try {
      // Silent TCP (no TLS handshake) on every listener.
      for (const port of [ports.https, ports.mqtt, ports.amqp]) keep(netConnect({ host: '127.0.0.1', port }))
      // Half a request head on HTTPS; a WebSocket upgraded to MQTT that never sends CONNECT; AMQP stuck after its header.
      keep(await holdOpen(ports.https, server.caPem, Buffer.from('GET /health HTTP/1.1\r\nHost: loc')))
      keep(await holdOpen(ports.https, server.caPem, websocketOpening(server.endpoints.idScope).subarray(0, websocketOpening(server.endpoints.idScope).indexOf('\r\n\r\n') + 4)))
      keep(await holdOpen(ports.amqp, server.caPem, Buffer.from('AMQP\x03\x01\x00\x00', 'latin1')))
      await eventually(async () => {
        const open = await openConnections(server.port, server.caPem)
        expect((open.https ?? 0) + (open.mqtts ?? 0) + (open.amqps ?? 0)).toBeGreaterThanOrEqual(peers.length)
      })
      const started = Date.now()
      await server.close(1000)
      expect(Date.now() - started).toBeLessThan(3000)
      // Every peer sees its connection end once it reads again.
      for (const p of peers) p.resume()
      await Promise.all(closed)
      expect(server.logs.some((l) => l.includes('connections still open at the shutdown deadline were destroyed'))).toBe(true)
    } finally {
      for (const p of peers) p.destroy()
      await server.stop()
    }
  })
})
