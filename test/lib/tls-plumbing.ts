/**
 * Test-side plumbing that points Microsoft's unmodified clients at a test server:
 * - the WebSocket transports always dial port 443 (dps-protocol.md §11) but take an agent, so
 *   `webSocketAgent` gives one whose TLS connections go to the server's HTTPS port;
 * - the Amqp transport passes no CA to rhea's `tls.connect`, so `trustCaOnPort` adds the dev CA to
 *   connections to one port (rhea calls `tls.connect(port, host, options, callback)`).
 */
import type * as HttpsModule from 'node:https'
import type * as TlsModule from 'node:tls'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
// CommonJS module objects: their properties can be replaced (an ES namespace is read-only).
const tls = require('node:tls') as typeof TlsModule
const https = require('node:https') as typeof HttpsModule

/** An https.Agent whose TLS connections dial `localhost:port`, trusting `ca`. */
export function webSocketAgent(server: { readonly port: number; readonly caPem: string }): HttpsModule.Agent {
  const agent = new https.Agent({ keepAlive: false })
  ;(agent as unknown as { createConnection: (options: TlsModule.ConnectionOptions, callback?: () => void) => TlsModule.TLSSocket }).createConnection = (options, callback) =>
    tls.connect({ ...options, port: server.port, ca: server.caPem, servername: 'localhost' }, callback)
  return agent
}

/** Adds `ca` to rhea's TLS connections to `port`; returns the function that undoes it. */
export function trustCaOnPort(port: number, ca: string): () => void {
  const original = tls.connect
  tls.connect = ((...args: unknown[]) => {
    if (Number(args[0]) === port && typeof args[2] === 'object' && args[2] !== null) {
      return original(Number(args[0]), args[1] as string, { ...(args[2] as TlsModule.ConnectionOptions), ca }, args[3] as () => void)
    }
    return (original as (...a: unknown[]) => TlsModule.TLSSocket)(...args)
  }) as typeof tls.connect
  return () => {
    tls.connect = original
  }
}
