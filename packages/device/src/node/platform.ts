/**
 * The Node platform: HTTPS through node:https (so a CA, a client certificate and keep-alive can be
 * given), MQTT/AMQP over TLS sockets, WebSockets through `ws` with the same TLS settings.
 */
import { Agent, request as httpsRequest } from 'node:https'
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { isIP } from 'node:net'
import WebSocket from 'ws'
import { DeviceError } from '../errors.js'
import { MAX_RESPONSE_BYTES, TRANSPORTS, fetchRequester, type HttpRequester, type Platform, type RheaLike, type TlsOptions, type WebSocketFactory } from '../transport.js'

const rhea = createRequire(import.meta.url)('rhea') as RheaLike

function tlsFields(tls: TlsOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (tls.ca !== undefined) out['ca'] = typeof tls.ca === 'string' ? tls.ca : [...tls.ca]
  if (tls.cert !== undefined) out['cert'] = tls.cert
  if (tls.key !== undefined) out['key'] = tls.key
  if (tls.rejectUnauthorized !== undefined) out['rejectUnauthorized'] = tls.rejectUnauthorized
  return out
}

/** Longest a kept-alive socket idles before it is dropped (Node's own global agent uses the same). */
const KEEP_ALIVE_IDLE_MS = 5_000

function nodeHttp(tls: TlsOptions): { request: HttpRequester; close(): void } {
  // An idle-socket timeout is what makes Node honour the server's `Keep-Alive: timeout=N` hint
  // (it then drops the socket a second before the server would); without one a kept socket is
  // reused however long it idled, and a request sent as the server closes it fails with ECONNRESET.
  const agent = new Agent({ keepAlive: true, timeout: KEEP_ALIVE_IDLE_MS, maxSockets: 4, ...tlsFields(tls) })
  const request: HttpRequester = (req) =>
    new Promise((resolve, reject) => {
      const url = new URL(req.url)
      const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
      const r = httpsRequest(
        {
          host,
          port: url.port === '' ? 443 : Number(url.port),
          path: url.pathname + url.search,
          method: req.method,
          headers: req.body === undefined ? req.headers : { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
          agent,
          servername: isIP(host) === 0 ? host : '',
          signal: req.signal,
        },
        (res) => {
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (chunk: Buffer) => {
            size += chunk.length
            if (size > MAX_RESPONSE_BYTES) {
              res.destroy()
              reject(new DeviceError('PROTOCOL', `the service's response body is over the limit of ${MAX_RESPONSE_BYTES} bytes`))
              return
            }
            chunks.push(chunk)
          })
          res.on('end', () => {
            const headers = res.headers
            resolve({
              status: res.statusCode ?? 0,
              header: (name) => {
                const v = headers[name.toLowerCase()]
                return Array.isArray(v) ? v[0] : v
              },
              text: Buffer.concat(chunks).toString('utf8'),
            })
          })
          res.on('error', reject)
        },
      )
      r.on('error', reject)
      r.end(req.body)
    })
  return { request, close: () => agent.destroy() }
}

/** The Node platform. */
export const nodePlatform: Platform = {
  name: 'node',
  transports: TRANSPORTS,
  http(tls, fetchOverride) {
    if (fetchOverride !== undefined) return { request: fetchRequester(fetchOverride), close: () => undefined }
    return nodeHttp(tls)
  },
  mqttTlsOptions: tlsFields,
  rhea,
  amqpTlsOptions(tls, host, port) {
    return { host, port, transport: 'tls', ...(isIP(host) === 0 ? { servername: host } : {}), ...tlsFields(tls) }
  },
  webSocket(tls) {
    return { impl: WebSocket as unknown as WebSocketFactory, options: tlsFields(tls) }
  },
  binary: (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  uuid: () => randomUUID(),
}
