// Hostile HTTP at the raw TLS socket of a real `provisio serve`: request smuggling
// shapes, oversized header blocks and bodies, bad methods, paths and encodings, invalid JSON and
// schema violations on device and service routes, and a bounded fuzz loop of random request bytes.
// Every refusal is a DPS error body (errorCode, message with the reason, trackingId), the
// connection is closed where framing cannot be trusted, and afterwards a good device still registers.
import { connect } from 'node:tls'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { httpsRequest } from '../lib/https-client.js'
import { deviceToken, expectDpsError, GOOD_DEVICE, expectServerUnharmed, type HostileServer, serviceToken, startHostileServer } from '../lib/hostile.js'
import { parseHttpAnswers, rawTls } from '../lib/raw.js'

let server: HostileServer

beforeAll(async () => {
  server = await startHostileServer({ connectTimeoutMs: 2000, requestTimeoutMs: 2500 })
})

afterEach(() => expectServerUnharmed(server))

afterAll(async () => {
  await server?.stop()
})

const registerLine = () => `PUT /${server.endpoints.idScope}/registrations/${'hostile-x'}/register?api-version=2021-06-01 HTTP/1.1\r\nHost: localhost\r\n`

/** Sends raw bytes; expects exactly one DPS error answer and the connection closed by the server. */
async function refusedOnce(chunks: string[], status: number, message: RegExp): Promise<void> {
  const result = await rawTls(server.port, server.caPem, chunks)
  expect(result.closedByServer).toBe(true)
  const answers = parseHttpAnswers(result.bytes)
  expect(answers).toHaveLength(1)
  expectDpsError(answers[0]!, status, message)
  expect(answers[0]!.headers.connection).toBe('close')
}

describe('request smuggling shapes are refused before any request is served', () => {
  it.each([
    ['Content-Length with Transfer-Encoding', 'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: localhost\r\n\r\n', /Transfer-Encoding can't be present with Content-Length/],
    ['two different Content-Lengths', 'Content-Length: 5\r\nContent-Length: 6\r\n\r\n{}{}{}', /Duplicate Content-Length/],
    ['two equal Content-Lengths', 'Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}', /Duplicate Content-Length/],
    ['an obs-fold header line', 'X-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\n{}', /HPE_INVALID_HEADER_TOKEN/],
    ['whitespace before the colon', 'Content-Length : 2\r\n\r\n{}', /Invalid header field char/],
    ['a chunk size that is not hex', 'Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n', /Invalid character in chunk size/],
    ['a chunk size that overflows', 'Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n', /Chunk size overflow/],
    ['an unknown transfer-coding', 'Transfer-Encoding: xchunked\r\n\r\n{}', /transfer-encoding/i],
    ['a transfer-coding besides chunked', 'Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n', /transfer-encoding "gzip, chunked" is not supported/],
    ['a Content-Length that is not a number', 'Content-Length: 1e3\r\n\r\n{}', /Content-Length/i],
  ])('%s', async (_name, rest, message) => {
    await refusedOnce([registerLine() + rest], 400, message)
    // The smuggled GET /health after the first case was never answered (exactly one answer above).
  })

  it('a body shorter than its Content-Length followed by a half-close is refused with the reason', async () => {
    const result = await rawTls(server.port, server.caPem, [registerLine() + 'Content-Length: 100\r\n\r\n{"registrationId":'], { endAfterWrite: true })
    expect(result.closedByServer).toBe(true)
    const answers = parseHttpAnswers(result.bytes)
    expect(answers).toHaveLength(1)
    expectDpsError(answers[0]!, 400, /EOF/)
  })

  it('a body shorter than its Content-Length is cut after the request timeout', async () => {
    const result = await rawTls(server.port, server.caPem, [registerLine() + 'Content-Length: 100\r\n\r\n{"registrationId":'], { deadlineMs: 30_000 })
    expect(result.closedByServer).toBe(true)
    const answers = parseHttpAnswers(result.bytes)
    expect(answers).toHaveLength(1)
    expectDpsError(answers[0]!, 408, /timeout/)
  })

  it('bytes past the Content-Length are parsed as the next request and refused with the reason', async () => {
    const result = await rawTls(server.port, server.caPem, [registerLine() + `Authorization: ${deviceToken(server, 'hostile-x')}\r\nContent-Length: 2\r\n\r\n{}` + 'smuggled garbage\r\n\r\n'])
    expect(result.closedByServer).toBe(true)
    const answers = parseHttpAnswers(result.bytes)
    expect(answers.length).toBeGreaterThanOrEqual(1)
    expectDpsError(answers.at(-1)!, 400, /HPE_INVALID_METHOD/)
  })
})

describe('oversized input', () => {
  it('a header block over 16 KiB gets 431 with the limit', async () => {
    await refusedOnce([registerLine() + `X-Big: ${'a'.repeat(20_000)}\r\n\r\n`], 431, /header block exceeds 16384 bytes/)
  })

  it('a client that reads only once its 8 MB header block is written gets the 431, not a reset', async () => {
    // As many clients do: the whole request first, then the answer. The server must read (and
    // drop) what arrives after its refusal until the client is done, or the client's writes fail
    // with ECONNRESET and the 431 is never read.
    const head = Buffer.from(registerLine() + `X-Big: ${'a'.repeat(8_000_000)}\r\n\r\n`, 'latin1')
    const result = await new Promise<{ bytes: Buffer; errors: string[] }>((resolve) => {
      const received: Buffer[] = []
      const errors: string[] = []
      const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.caPem, servername: 'localhost' }, () => {
        socket.pause()
        socket.write(head, (error) => {
          if (error) errors.push(`write: ${error.message}`)
          socket.resume()
        })
      })
      const deadline = setTimeout(() => socket.destroy(), 10_000)
      socket.on('data', (c: Buffer) => received.push(c))
      socket.on('error', (e) => errors.push(e.message))
      socket.on('close', () => {
        clearTimeout(deadline)
        resolve({ bytes: Buffer.concat(received), errors })
      })
    })
    expect(result.errors).toEqual([])
    const answers = parseHttpAnswers(result.bytes)
    expect(answers).toHaveLength(1)
    expectDpsError(answers[0]!, 431, /header block exceeds 16384 bytes/)
  })

  it('an unterminated 20 KB block of small headers is refused with 431 as it arrives, not after the header timeout', async () => {
    let headers = ''
    for (let i = 0; headers.length < 20_000; i++) headers += `x-h${i}: v\r\n`
    const started = Date.now()
    // No blank line: the block never ends. The header timeout of this server is 2 s.
    await refusedOnce([registerLine() + headers], 431, /header block exceeds 16384 bytes/)
    expect(Date.now() - started).toBeLessThan(1500)
  })

  it('a terminated 20 KB block of small headers gets 431 (every byte of the head counts)', async () => {
    let headers = ''
    for (let i = 0; headers.length < 20_000; i++) headers += `x-h${i}: v\r\n`
    await refusedOnce([registerLine() + headers + '\r\n'], 431, /header block exceeds 16384 bytes/)
  })

  it('on a kept-alive connection each request head is counted from its first byte, and bodies are not', async () => {
    // Two requests with 60 KB bodies and 9 KB heads pipelined on one connection: every head is
    // within the limit, and neither a body nor the two heads together count as one.
    const body = JSON.stringify({ registrationId: GOOD_DEVICE, payload: { pad: 'p'.repeat(60_000) } })
    const head = `PUT /${server.endpoints.idScope}/registrations/${GOOD_DEVICE}/register?api-version=2021-06-01 HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${deviceToken(server, GOOD_DEVICE)}\r\nContent-Type: application/json\r\nX-Pad: ${'x'.repeat(9000)}\r\nContent-Length: ${body.length}\r\n\r\n`
    const answered = (n: number) => (b: Buffer) => {
      try {
        return parseHttpAnswers(b).length === n
      } catch {
        return false // an answer still arriving
      }
    }
    const both = await rawTls(server.port, server.caPem, [head + body + head + body], { until: answered(2) })
    // Both served (the second register of an assigned device may answer 202 assigning), neither refused.
    const statuses = parseHttpAnswers(both.bytes).map((a) => a.status)
    expect(statuses).toHaveLength(2)
    for (const status of statuses) expect([200, 202]).toContain(status)
  })

  it('thousands of small headers get 431', async () => {
    await refusedOnce([registerLine() + Array.from({ length: 3000 }, (_, i) => `x-h${i}: v`).join('\r\n') + '\r\n\r\n'], 431, /header block exceeds/)
  })

  it('a declared body of 10 MB gets 413 before any of it is sent', async () => {
    await refusedOnce([registerLine() + `Content-Type: application/json\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`], 413, /exceeds 98304 bytes/)
  })

  it('a chunked body that grows past 96 KiB gets 413 and the connection is closed', async () => {
    const chunk = `${(16 * 1024).toString(16)}\r\n${' '.repeat(16 * 1024)}\r\n`
    await refusedOnce([registerLine() + 'Transfer-Encoding: chunked\r\n\r\n' + chunk.repeat(8)], 413, /exceeds 98304 bytes/)
  })
})

describe('bad methods, paths and encodings', () => {
  const scope = () => server.endpoints.idScope
  it.each([
    ['an unknown method', () => 'BREW /health HTTP/1.1\r\nHost: localhost\r\n\r\n', 400, /Invalid method/],
    ['a method the route does not serve', () => `PATCH /${scope()}/registrations/x/register?api-version=2021-06-01 HTTP/1.1\r\nHost: localhost\r\n\r\n`, 405, /PATCH is not served/],
    ['bad percent-encoding in the path', () => 'GET /%zz/registrations/x HTTP/1.1\r\nHost: localhost\r\n\r\n', 400, /invalid percent-encoding/],
    ['a dot-dot segment', () => `GET /${scope()}/registrations/../x HTTP/1.1\r\nHost: localhost\r\n\r\n`, 400, /must not be empty, "\." or "\.\."/],
    ['a path over the target limit', () => `GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: localhost\r\n\r\n`, 400, /over the limit/],
    ['a NUL in the path', () => 'GET /a\u0000b HTTP/1.1\r\nHost: localhost\r\n\r\n', 400, /Invalid char in url/],
    ['an absolute-form target', () => 'GET https://evil.example/health HTTP/1.1\r\nHost: localhost\r\n\r\n', 400, /origin-form/],
    ['an asterisk target', () => 'OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n', 405, /OPTIONS/],
    ['no Host header', () => 'GET /health HTTP/1.1\r\n\r\n', 400, /Host header/],
    ['bare LF line endings', () => 'GET /health HTTP/1.1\nHost: localhost\n\n', 400, /CRLF/],
    ['an HTTP/2 preface', () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, /HTTP\/2|H2/],
    ['binary garbage', () => '\u0000\u0001\u0002\u00ff garbage\r\n\r\n', 400, /Invalid method/],
  ])('%s', async (_name, request, status, message) => {
    const result = await rawTls(server.port, server.caPem, [request().replace(/\r\n\r\n$/, '\r\nConnection: close\r\n\r\n').replace(/\n\n$/, '\nConnection: close\n\n')])
    expect(result.closedByServer).toBe(true)
    const answers = parseHttpAnswers(result.bytes)
    expect(answers).toHaveLength(1)
    expectDpsError(answers[0]!, status, message)
  })

  const register = (headers: Record<string, string>, body: string | Buffer) =>
    httpsRequest(server.port, server.caPem, 'PUT', `/${server.endpoints.idScope}/registrations/hostile-x/register?api-version=2021-06-01`, {
      headers: { authorization: deviceToken(server, 'hostile-x'), ...headers },
      body,
    })

  it('a compressed body is refused with 415 rather than read as JSON', async () => {
    expectDpsError(await register({ 'content-type': 'application/json', 'content-encoding': 'gzip' }, Buffer.from([0x1f, 0x8b, 8, 0])), 415, /content-encoding "gzip" is not supported/)
  })

  it('a body that is not JSON by its content-type gets 415 with the type', async () => {
    expectDpsError(await register({ 'content-type': 'text/plain' }, '{}'), 415, /content-type "text\/plain" is not JSON/)
  })

  it('a body that is not UTF-8 gets 400', async () => {
    expectDpsError(await register({ 'content-type': 'application/json' }, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), 400)
  })
})

describe('invalid JSON and schema violations', () => {
  const device = (path: string, body: string | Buffer, method = 'PUT') =>
    httpsRequest(server.port, server.caPem, method, `/${server.endpoints.idScope}/registrations/hostile-x/${path}?api-version=2021-06-01`, {
      headers: { authorization: deviceToken(server, 'hostile-x'), 'content-type': 'application/json' },
      body,
    })
  const service = (method: string, path: string, body: string) =>
    httpsRequest(server.port, server.caPem, method, `${path}?api-version=2021-10-01`, { headers: { authorization: serviceToken(server), 'content-type': 'application/json' }, body })

  it.each([
    ['truncated JSON', '{"registrationId": ', /JSON/i],
    ['a JSON array', '[1,2,3]', /object/i],
    ['a number registrationId', '{"registrationId": 5}', /registrationId/],
    ['a payload that is a string of 97 KB', `{"payload":"${'x'.repeat(97 * 1024)}"}`, /98304|exceeds|large/i],
    ['JSON arrays nested 20,000 deep', `{"payload":${'['.repeat(20_000)}${']'.repeat(20_000)}}`, /payload/],
    ['JSON objects nested 10,000 deep', `{"payload":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`, /payload|deep|depth|nest/i],
    ['a duplicate key', '{"registrationId":"hostile-x","registrationId":"other"}', /registrationId|duplicate/i],
  ])('device register: %s', async (_name, body, message) => {
    const answer = await device('register', body)
    expectDpsError(answer, answer.status === 413 ? 413 : 400, message)
  })

  it('device registration status lookup with a broken body', async () => {
    expectDpsError(await device('', '{"registrationId":', 'POST'), 400, /JSON/i)
  })

  it.each([
    ['PUT', '/enrollments/hostile-e', '{', /JSON/i],
    ['PUT', '/enrollments/hostile-e', '{"registrationId":"hostile-e"}', /attestation/],
    ['PUT', '/enrollments/hostile-e', '{"registrationId":"hostile-e","attestation":{"type":"carrier-pigeon"}}', /type|attestation/],
    ['PUT', '/enrollments/hostile-e', '{"registrationId":"hostile-e","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"%%%"}}}', /primaryKey|base64|key/i],
    ['PUT', '/enrollmentGroups/hostile-g', '{"enrollmentGroupId":"hostile-g","attestation":null}', /attestation/],
    ['POST', '/enrollments/query', '{"query": 42}', /query/],
    ['POST', '/enrollments', '{"mode":"explode","enrollments":[]}', /mode/],
  ])('service %s %s %s', async (method, path, body, message) => {
    const answer = await service(method, path, body)
    const parsed = expectDpsError(answer, 400, message)
    expect(parsed.message).not.toMatch(/^(Bad request|The request body is (invalid|not valid JSON))\.$/)
  })
})

describe('fuzzed request bytes (bounded)', () => {
  /** Every answer is a DPS error or a served request; nothing is a 5xx. */
  const judge = (bytes: Buffer) => {
    for (const answer of parseHttpAnswers(bytes)) {
      expect(answer.status).toBeLessThan(500)
      if (answer.status >= 400) expectDpsError({ ...answer }, answer.status)
    }
  }

  it('random bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 2048 }), async (bytes) => {
        const result = await rawTls(server.port, server.caPem, [Buffer.from(bytes)], { endAfterWrite: true })
        judge(result.bytes)
      }),
      { numRuns: 40, seed: 12 },
    )
  })

  it('request-shaped bytes with mutated lines', async () => {
    const token = fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD', 'G\u0000T', 'PUT ', '')
    const target = fc.oneof(
      fc.constant(`/${server.endpoints.idScope}/registrations/hostile-x/register?api-version=2021-06-01`),
      fc.constant('/enrollments/hostile-e?api-version=2021-10-01'),
      fc.string({ maxLength: 60 }).map((s) => '/' + s),
    )
    const headerLine = fc.oneof(
      fc.constant('Content-Length: 2'),
      fc.constant('Transfer-Encoding: chunked'),
      fc.constant('Content-Type: application/json'),
      fc.constant(`Authorization: ${deviceToken(server, 'hostile-x')}`),
      fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 40 })).map(([k, v]) => `${k}: ${v}`),
    )
    const body = fc.oneof(fc.constant('{}'), fc.constant('0\r\n\r\n'), fc.json({ maxDepth: 3 }), fc.string({ maxLength: 200 }))
    await fc.assert(
      fc.asyncProperty(token, target, fc.array(headerLine, { maxLength: 6 }), body, fc.constantFrom('\r\n', '\n', '\r'), async (method, path, headers, payload, eol) => {
        const request = [`${method} ${path} HTTP/1.1`, 'Host: localhost', ...headers, '', payload].join(eol)
        const result = await rawTls(server.port, server.caPem, [request], { endAfterWrite: true })
        judge(result.bytes)
      }),
      { numRuns: 60, seed: 34 },
    )
  })
})
