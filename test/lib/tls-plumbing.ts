/**
 * Test-side plumbing that points Microsoft's unmodified clients at a test server:
 * - the WebSocket transports always dial port 443 (docs/protocol.md §11) but take an agent, so
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
    // Only the (port, host, options, callback) form: the https agent passes one options object,
    // made with a null prototype, which Number() cannot convert.
    if ((typeof args[0] === 'number' || typeof args[0] === 'string') && Number(args[0]) === port && typeof args[2] === 'object' && args[2] !== null) {
      return original(Number(args[0]), args[1] as string, { ...(args[2] as TlsModule.ConnectionOptions), ca }, args[3] as () => void)
    }
    return (original as (...a: unknown[]) => TlsModule.TLSSocket)(...args)
  }) as typeof tls.connect
  return () => {
    tls.connect = original
  }
}

/**
 * Sends mqtt.js's MQTTS connections to port 8883 (the only port azure-iot-device's `Mqtt` transport
 * dials: it builds `mqtts://<host>`) to the test server's MQTT port on loopback, trusting `ca`.
 * The TLS server name stays the hub host name the SDK dialled, so hubs need no DNS entry and the
 * server still sees the SNI. mqtt.js calls `tls.connect(options)` with one object. Returns the
 * function that undoes it.
 */
export function redirectMqtts(server: { readonly endpoints: { readonly ports: { readonly mqtt: number } }; readonly caPem: string }): () => void {
  const original = tls.connect
  tls.connect = ((...args: unknown[]) => {
    const first = args[0] as TlsModule.ConnectionOptions | undefined
    if (args.length === 1 && typeof first === 'object' && first !== null && Number(first.port) === 8883) {
      const host = first.host ?? 'localhost'
      return original({ ...first, host: '127.0.0.1', port: server.endpoints.ports.mqtt, servername: first.servername ?? host, ca: server.caPem })
    }
    return (original as (...a: unknown[]) => TlsModule.TLSSocket)(...args)
  }) as typeof tls.connect
  return () => {
    tls.connect = original
  }
}

/** An https.Agent for clients of a hub host name (REST, WebSockets): every connection goes to the server's HTTPS port on loopback, whatever the host, so hub names need no DNS entry. */
export function loopbackHttpsAgent(server: { readonly port: number; readonly caPem: string }): HttpsModule.Agent {
  const agent = new https.Agent({ keepAlive: false })
  ;(agent as unknown as { createConnection: (options: TlsModule.ConnectionOptions, callback?: () => void) => TlsModule.TLSSocket }).createConnection = (options, callback) =>
    tls.connect({ ...options, host: '127.0.0.1', port: server.port, ca: server.caPem, servername: 'localhost' }, callback)
  return agent
}

/**
 * Sends the AMQP connections Microsoft's hub clients make to `hosts` — AMQPS to port 5671 (rhea
 * calls `tls.connect(port, host, options, callback)`) and AMQP over WebSockets to port 443 (ws
 * calls `tls.connect(options)`) — to the test server's AMQP and HTTPS ports on loopback, trusting
 * its CA. The TLS server name stays the hub host name. Returns the function that undoes it.
 */
export function redirectHubAmqp(server: { readonly port: number; readonly endpoints: { readonly ports: { readonly amqp: number } }; readonly caPem: string }, hosts: readonly string[]): () => void {
  const original = tls.connect
  const ours = (host: unknown) => typeof host === 'string' && hosts.some((h) => h.toLowerCase() === host.toLowerCase())
  tls.connect = ((...args: unknown[]) => {
    // Only the (port, host, options, callback) form here: https agents pass one null-prototype object, which Number() cannot convert.
    if ((typeof args[0] === 'number' || typeof args[0] === 'string') && Number(args[0]) === 5671 && ours(args[1]) && typeof args[2] === 'object' && args[2] !== null) {
      const host = args[1] as string
      // The options' own host and port would win over the arguments: loopback goes into the options.
      const options = { ...(args[2] as TlsModule.ConnectionOptions), host: '127.0.0.1', port: server.endpoints.ports.amqp, servername: host, ca: server.caPem }
      return original(server.endpoints.ports.amqp, '127.0.0.1', options, args[3] as () => void)
    }
    const first = args[0] as TlsModule.ConnectionOptions | undefined
    if (args.length === 1 && typeof first === 'object' && first !== null && Number(first.port) === 443 && ours(first.host)) {
      return original({ ...first, host: '127.0.0.1', port: server.port, servername: first.host!, ca: server.caPem })
    }
    return (original as (...a: unknown[]) => TlsModule.TLSSocket)(...args)
  }) as typeof tls.connect
  return () => {
    tls.connect = original
  }
}
