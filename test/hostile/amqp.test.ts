// Hostile AMQP on 5671 and on AMQP-over-WebSockets: wrong protocol headers, frames
// over max-frame-size or under the minimum, garbage after open, truncated frames, a client stuck
// after the header, and a bounded fuzz loop. Each ends in a clear refusal — our protocol header
// then a close (§2.2), an AMQP close with condition and description, or sasl-outcome — the server
// logs the reason, no connection stays open, and a good device still registers.
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import frames from 'rhea/lib/frames.js'
import { expectServerUnharmed, type HostileServer, logLines, startHostileServer } from '../lib/hostile.js'
import { rawTls, rawWs, type RawResult } from '../lib/raw.js'

let server: HostileServer

const AMQP_HEADER = Buffer.from('AMQP\x00\x01\x00\x00', 'latin1')
const SASL_HEADER = Buffer.from('AMQP\x03\x01\x00\x00', 'latin1')
const OPEN = Buffer.from(frames.write_frame(frames.amqp_frame(0, frames.open({ container_id: 'hostile' }))))

beforeAll(async () => {
  server = await startHostileServer({ connectTimeoutMs: 1000 })
})

afterEach(() => expectServerUnharmed(server, ['amqps', 'amqp-ws']))

afterAll(async () => {
  await server?.stop()
})

interface Seen {
  headers: string[]
  frames: { code: number; p: Record<string, unknown> }[]
}

/** Protocol headers and frames the server wrote. */
function parse(bytes: Buffer): Seen {
  const seen: Seen = { headers: [], frames: [] }
  let pos = 0
  while (pos + 8 <= bytes.length) {
    if (bytes.toString('latin1', pos, pos + 4) === 'AMQP') {
      seen.headers.push(bytes.toString('latin1', pos, pos + 8))
      pos += 8
      continue
    }
    const size = bytes.readUInt32BE(pos)
    if (size === 8) {
      pos += 8
      continue
    }
    const f = frames.read_frame(bytes.subarray(pos, pos + size))!
    seen.frames.push({ code: (f.performative!.constructor as unknown as { descriptor: { numeric: number } }).descriptor.numeric, p: f.performative as unknown as Record<string, unknown> })
    pos += size
  }
  return seen
}

const CLOSE = 0x18
const SASL_OUTCOME = 0x44
const TRANSPORT = { tls: 'amqps', ws: 'amqp-ws' } as const

async function exchange(kind: 'tls' | 'ws', chunks: Buffer[], options: { endAfterWrite?: boolean; deadlineMs?: number } = {}): Promise<{ result: RawResult; seen: Seen; refused: Record<string, unknown> | undefined }> {
  const before = server.logs.length
  const result = kind === 'tls' ? await rawTls(server.endpoints.ports.amqp, server.caPem, chunks, options) : await rawWs(server.port, server.caPem, 'AMQPWSB10', chunks, options)
  const refused = logLines(server)
    .slice(before)
    .find((l) => l.msg === 'amqp connection refused' && l.transport === TRANSPORT[kind])
  return { result, seen: parse(result.bytes), refused }
}

function closeError(seen: Seen): { condition: string; description: string } {
  const close = seen.frames.find((f) => f.code === CLOSE)
  expect(close, 'a close frame').toBeDefined()
  return close!.p['error'] as { condition: string; description: string }
}

describe.each(['tls', 'ws'] as const)('AMQP over %s', (kind) => {
  it.each([
    ['AMQP 0-10', Buffer.from('AMQP\x01\x01\x00\x0a', 'latin1')],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['TLS-in-TLS (a second ClientHello)', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00])],
  ])('a wrong protocol header (%s) is answered with ours, then the connection ends', async (_name, header) => {
    const { result, seen, refused } = await exchange(kind, [header])
    expect(result.closedByServer).toBe(true)
    expect(seen.headers).toEqual([SASL_HEADER.toString('latin1')])
    expect(refused).toMatchObject({ code: 'BAD_PROTOCOL_HEADER', reason: expect.stringMatching(/is not AMQP 1\.0/) })
  })

  it('a frame over max-frame-size is refused with a framing error before its body arrives', async () => {
    const { seen, refused } = await exchange(kind, [AMQP_HEADER, OPEN, Buffer.from([0x7f, 0xff, 0xff, 0xff, 2, 0, 0, 0])])
    expect(closeError(seen)).toMatchObject({ condition: 'amqp:connection:framing-error', description: expect.stringMatching(/exceeds the max-frame-size/) })
    expect(refused).toMatchObject({ code: 'FRAME_TOO_LARGE' })
  })

  it('a frame size under 8 is a framing error', async () => {
    const { seen, refused } = await exchange(kind, [AMQP_HEADER, OPEN, Buffer.from([0, 0, 0, 4, 2, 0, 0, 0])])
    expect(closeError(seen).condition).toBe('amqp:connection:framing-error')
    expect(refused?.code).toBe('FRAMING_ERROR')
  })

  it('garbage after open is a decode error with the reason', async () => {
    const { seen, refused } = await exchange(kind, [AMQP_HEADER, OPEN, Buffer.from([0, 0, 0, 0x0c, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0xff])])
    expect(closeError(seen)).toMatchObject({ condition: 'amqp:decode-error', description: expect.stringMatching(/unknown type code 0xff/) })
    expect(refused?.code).toBe('DECODE_ERROR')
  })

  it('a client stuck after the AMQP header is closed at the connect timeout with the reason', async () => {
    const { result, seen, refused } = await exchange(kind, [AMQP_HEADER], { deadlineMs: 20_000 })
    expect(result.closedByServer).toBe(true)
    expect(closeError(seen)).toMatchObject({ condition: 'amqp:resource-limit-exceeded', description: expect.stringMatching(/did not open within 1000 ms/) })
    expect(refused).toMatchObject({ code: 'OPEN_TIMEOUT' })
  })

  it('a client stuck after the SASL header gets sasl-outcome sys-temp at the connect timeout', async () => {
    const { result, seen, refused } = await exchange(kind, [SASL_HEADER], { deadlineMs: 20_000 })
    expect(result.closedByServer).toBe(true)
    expect(seen.frames.map((f) => f.code)).toEqual([0x40, SASL_OUTCOME])
    expect(seen.frames[1]!.p['code']).toBe(4)
    expect(refused).toMatchObject({ code: 'OPEN_TIMEOUT', reason: expect.stringMatching(/stuck at sasl/) })
  })

  it('a truncated frame before open is cut at the connect timeout', async () => {
    const { result, refused } = await exchange(kind, [AMQP_HEADER, OPEN.subarray(0, OPEN.length - 3)], { deadlineMs: 20_000 })
    expect(result.closedByServer).toBe(true)
    expect(refused).toMatchObject({ code: 'OPEN_TIMEOUT', reason: expect.stringMatching(/open-wait/) })
  })
})

describe('AMQP over WebSockets', () => {
  it('a WebSocket message over 256 KiB is refused with close code 1009, logged', async () => {
    const before = server.logs.length
    const result = await rawWs(server.port, server.caPem, 'AMQPWSB10', [AMQP_HEADER, OPEN, Buffer.alloc(300 * 1024, 0x30)])
    expect(result.closedByServer).toBe(true)
    expect(result.closeCode).toBe(1009)
    expect(logLines(server).slice(before).find((l) => l.msg === 'amqp websocket error')?.error).toMatch(/Max payload size exceeded/)
  })

  it('a text message is not AMQP: the connection is closed with the reason', async () => {
    const before = server.logs.length
    const ws = await import('ws')
    const result = await new Promise<{ code: number }>((resolve, reject) => {
      const socket = new ws.default(`wss://localhost:${server.port}/$iothub/websocket`, ['AMQPWSB10'], { ca: server.caPem })
      socket.on('open', () => socket.send('AMQP\u0000\u0001\u0000\u0000'))
      socket.on('close', (code) => resolve({ code }))
      socket.on('error', reject)
    })
    expect(result.code).toBe(1000)
    expect(logLines(server).slice(before).find((l) => l.msg === 'amqp connection refused')).toMatchObject({ code: 'TEXT_MESSAGE', reason: expect.stringMatching(/text WebSocket messages are not AMQP frames/) })
  })
})

describe('fuzzed AMQP bytes (bounded)', () => {
  it.each(['tls', 'ws'] as const)('random bytes, alone or after header and open, over %s', async (kind) => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.uint8Array({ minLength: 1, maxLength: 512 }), async (afterOpen, bytes) => {
        const chunks = afterOpen ? [AMQP_HEADER, OPEN, Buffer.from(bytes)] : [Buffer.from(bytes)]
        const { result, seen } = await exchange(kind, chunks, { endAfterWrite: true, deadlineMs: 200 })
        // What the server wrote parses as AMQP: a protocol header first, then frames.
        if (result.bytes.length > 0) expect(seen.headers.length).toBeGreaterThanOrEqual(1)
        for (const close of seen.frames.filter((f) => f.code === CLOSE)) {
          const error = close.p['error'] as { condition?: string; description?: string } | undefined
          expect(error?.condition).toMatch(/^amqp:/)
          expect(error?.description).toEqual(expect.any(String))
        }
      }),
      { numRuns: 20, seed: 78 },
    )
  })
})
