// `--min-tls-version`: every TLS listener (HTTPS, MQTTS, AMQPS) refuses a client that offers only
// TLS 1.2 when the minimum is 1.3, and accepts it at the default 1.2.
import { connect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestServer, type TestServer } from '../lib/server.js'

let strict: TestServer
let lenient: TestServer

beforeAll(async () => {
  strict = await startTestServer({ minTlsVersion: '1.3' })
  lenient = await startTestServer()
})

afterAll(async () => {
  await strict?.stop()
  await lenient?.stop()
})

/** The protocol a TLS handshake ended with, or the error that ended it. */
function handshake(server: TestServer, port: number, maxVersion: 'TLSv1.2' | 'TLSv1.3'): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: server.caPem, maxVersion, timeout: 5_000 })
    socket.once('secureConnect', () => {
      resolve(socket.getProtocol() ?? 'unknown')
      socket.destroy()
    })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code ?? error.message}`))
    socket.once('timeout', () => {
      resolve('timeout')
      socket.destroy()
    })
  })
}

describe('minimum TLS version', () => {
  for (const listener of ['https', 'mqtt', 'amqp'] as const) {
    it(`${listener}: a TLS 1.2-only client is refused at 1.3 and served at the default 1.2`, async () => {
      expect(await handshake(strict, strict.endpoints.ports[listener], 'TLSv1.2')).toMatch(/^error /)
      expect(await handshake(strict, strict.endpoints.ports[listener], 'TLSv1.3')).toBe('TLSv1.3')
      expect(await handshake(lenient, lenient.endpoints.ports[listener], 'TLSv1.2')).toBe('TLSv1.2')
    })
  }
})
