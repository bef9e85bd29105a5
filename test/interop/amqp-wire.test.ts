// AMQP listener faults over real TLS and WSS (a malformed frame closes that connection
// with a reason; frame size limits): raw bytes on a socket to `provisio serve`, the answer read
// back with rhea's frame decoder.
import { connect, type TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import frames from 'rhea/lib/frames.js'
import { startTestServer, type TestServer } from '../lib/server.js'

let server: TestServer

const AMQP_HEADER = Buffer.from('AMQP\x00\x01\x00\x00', 'latin1')
const SASL_HEADER = Buffer.from('AMQP\x03\x01\x00\x00', 'latin1')

function frame(performative: ReturnType<typeof frames.open>, channel = 0): Buffer {
  return Buffer.from(frames.write_frame(frames.amqp_frame(channel, performative)))
}

interface Seen {
  headers: string[]
  frames: { name: string; p: Record<string, unknown> }[]
}

const NAMES: Record<number, string> = { 0x10: 'open', 0x18: 'close', 0x40: 'sasl-mechanisms', 0x44: 'sasl-outcome' }

function parse(bytes: Buffer): Seen {
  const seen: Seen = { headers: [], frames: [] }
  let pos = 0
  while (pos + 8 <= bytes.length) {
    if (bytes.toString('latin1', pos, pos + 4) === 'AMQP') {
      seen.headers.push(bytes.subarray(pos, pos + 8).toString('hex'))
      pos += 8
      continue
    }
    const size = bytes.readUInt32BE(pos)
    if (size === 8) {
      // Empty frame (heartbeat, §2.4.5).
      seen.frames.push({ name: 'empty', p: {} })
      pos += size
      continue
    }
    const f = frames.read_frame(bytes.subarray(pos, pos + size))!
    const code = (f.performative!.constructor as unknown as { descriptor: { numeric: number } }).descriptor.numeric
    seen.frames.push({ name: NAMES[code] ?? String(code), p: f.performative as unknown as Record<string, unknown> })
    pos += size
  }
  return seen
}

/** Sends `bytes` over AMQPS and collects everything until the server ends the connection. */
function exchange(bytes: Buffer): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket: TLSSocket = connect({ host: 'localhost', port: server.endpoints.ports.amqp, ca: server.caPem, servername: 'localhost' }, () => socket.write(bytes))
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', reject)
    socket.on('end', () => socket.end())
    socket.on('close', () => resolve(parse(Buffer.concat(chunks))))
    socket.setTimeout(10_000, () => reject(new Error('server did not close the connection')))
  })
}

beforeAll(async () => {
  server = await startTestServer()
})

afterAll(async () => {
  await server?.stop()
})

describe('AMQPS listener faults', () => {
  it('closes with amqp:decode-error and the reason when a frame body is malformed', async () => {
    // Open, then a begin whose list claims 200 elements in 3 bytes.
    const garbage = Buffer.from([0, 0, 0, 0x10, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0xc0, 0x03, 0xc8, 0x40, 0x40])
    const seen = await exchange(Buffer.concat([AMQP_HEADER, frame(frames.open({ container_id: 'raw' })), garbage]))
    expect(seen.headers).toEqual([AMQP_HEADER.toString('hex')])
    expect(seen.frames.map((f) => f.name)).toEqual(['open', 'close'])
    const error = seen.frames[1]!.p['error'] as { condition: string; description: string }
    expect(error.condition).toBe('amqp:decode-error')
    expect(error.description).toContain('claims 200 elements')
  })

  it('refuses a frame above max-frame-size with a framing error before its body arrives', async () => {
    const seen = await exchange(Buffer.concat([AMQP_HEADER, frame(frames.open({ container_id: 'raw' })), Buffer.from([0x00, 0x10, 0x00, 0x00, 2, 0, 0, 0])]))
    const error = seen.frames.at(-1)!.p['error'] as { condition: string; description: string }
    expect(error.condition).toBe('amqp:connection:framing-error')
    expect(error.description).toContain('exceeds the max-frame-size')
  })

  it('answers a non-AMQP header with its own header and hangs up', async () => {
    const seen = await exchange(Buffer.from('PUT / HTTP/1.1\r\nHost: x\r\n\r\n'))
    expect(seen.headers).toEqual([SASL_HEADER.toString('hex')])
    expect(seen.frames).toEqual([])
  })

  it('refuses a PLAIN identity whose SAS does not verify with sasl-outcome auth', async () => {
    const init = frames.sasl_init({ mechanism: 'PLAIN', initial_response: Buffer.from(`\0${server.endpoints.idScope}/registrations/nobody\0SharedAccessSignature sr=x&sig=y&se=1&skn=registration`) })
    const seen = await exchange(Buffer.concat([SASL_HEADER, Buffer.from(frames.write_frame(frames.sasl_frame(init)))]))
    expect(seen.frames.map((f) => f.name)).toEqual(['sasl-mechanisms', 'sasl-outcome'])
    expect(seen.frames[1]!.p['code']).toBe(1)
  })
})

describe('AMQPS heartbeats', () => {
  it('sends empty frames when the device announces an idle-time-out', async () => {
    const empty = Buffer.from([0, 0, 0, 8, 2, 0, 0, 0])
    const received = await new Promise<Buffer>((resolve, reject) => {
      let all = Buffer.alloc(0)
      const socket = connect({ host: 'localhost', port: server.endpoints.ports.amqp, ca: server.caPem, servername: 'localhost' }, () =>
        socket.write(Buffer.concat([AMQP_HEADER, frame(frames.open({ container_id: 'idle', idle_time_out: 2000 }))])),
      )
      socket.on('data', (c: Buffer) => {
        all = Buffer.concat([all, c])
        // Header and open first, then the heartbeat.
        if (parse(all).frames.some((f) => f.name === 'empty')) {
          socket.destroy()
          resolve(all)
        }
      })
      socket.on('error', reject)
      socket.setTimeout(15_000, () => reject(new Error('no heartbeat arrived')))
    })
    expect(parse(received).frames.map((f) => f.name)).toEqual(['open', 'empty'])
    expect(received.subarray(received.length - 8)).toEqual(empty)
  })
})

describe('AMQP over WebSocket faults', () => {
  it('closes with amqp:decode-error on a malformed frame', async () => {
    const received: Buffer[] = []
    await new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`wss://localhost:${server.port}/$iothub/websocket`, ['AMQPWSB10'], { ca: server.caPem })
      ws.on('open', () => {
        ws.send(AMQP_HEADER)
        ws.send(frame(frames.open({ container_id: 'raw-ws' })))
        ws.send(Buffer.from([0, 0, 0, 0x0c, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0xff]))
      })
      ws.on('message', (data: Buffer) => received.push(Buffer.from(data)))
      ws.on('close', () => resolve())
      ws.on('error', reject)
    })
    const seen = parse(Buffer.concat(received))
    expect(seen.frames.map((f) => f.name)).toEqual(['open', 'close'])
    expect((seen.frames[1]!.p['error'] as { condition: string; description: string }).description).toContain('unknown type code 0xff')
  })
})
