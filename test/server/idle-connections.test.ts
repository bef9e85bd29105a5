// Connections that send no complete request in time are closed without an answer. Browsers open
// spare connections before they need them; a 400 written to one of those was read by Chromium as
// the answer to the page request it later sent on it (seen with the emulator page). A malformed
// request still gets 400.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:https'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHttpsListener, createLogger, ensureDevPki } from '@provisio/server'

let dir: string
let server: Server
let ca: string
const logs: string[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'provisio-idle-'))
  const pki = await ensureDevPki(dir, ['localhost'], Date.now())
  ca = pki.caCertificatePem
  server = createHttpsListener({
    key: pki.keyPem,
    cert: pki.certificatePem,
    handler: async () => ({ status: 200, headers: { 'content-type': 'text/plain' }, body: 'ok' }),
    log: createLogger('debug', (line) => void logs.push(line)),
    maxBodyBytes: 1024,
    trackingId: () => 'test',
    timeouts: { headersMs: 300, requestMs: 600, checkIntervalMs: 100 },
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
})

afterAll(async () => {
  server?.closeAllConnections()
  await new Promise((resolve) => server?.close(resolve))
  rmSync(dir, { recursive: true, force: true })
})

/** Opens a TLS connection, writes `send`, and collects what the server writes until it closes. */
function exchange(send: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: 'localhost', ca }, () => {
      if (send !== '') socket.write(send)
    })
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')))
    socket.on('error', reject)
  })
}

describe('connections without a complete request', () => {
  it('closes an idle connection after the header timeout without writing anything', async () => {
    expect(await exchange('')).toBe('')
    expect(logs.some((l) => l.includes('connection closed without a complete request'))).toBe(true)
  })

  it('closes a connection whose headers never finish, without an answer', async () => {
    expect(await exchange('GET /health HTTP/1.1\r\nHost: localhost\r\n')).toBe('')
  })

  it('still answers a malformed request with 400', async () => {
    expect(await exchange('NOT HTTP AT ALL\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 Bad Request/)
  })

  it('answers a complete request', async () => {
    expect(await exchange('GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*ok$/)
  })
})
