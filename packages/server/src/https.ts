/**
 * Node adapter of the HTTP codec: an `https` server that reads each request (bounded), hands it
 * to the sans-IO handler and writes the answer. No routing or policy lives here.
 *
 * TLS: 1.2 and up; client certificates are requested but never rejected by TLS itself — X.509
 * devices are judged by the verifier, which can explain a refusal (DESIGN.md "Ports, hosts, TLS").
 */
import { createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket, PeerCertificate, DetailedPeerCertificate } from 'node:tls'
import { errorResponse, type DpsHttpHandler, type HttpRequest } from '@provisio/codec-http'
import { ProvisioError } from '@provisio/protocol'
import type { Logger } from './logger.js'
import type { EmulatorSite } from './emulator.js'
import { applyCors, type OriginPolicy } from './origins.js'

/** Operational endpoints served beside the DPS API (health, metrics). */
export type OpsHandler = (method: string, path: string) => { status: number; headers: Record<string, string>; body: string } | undefined

export interface HttpsListenerOptions {
  readonly ops?: OpsHandler
  /** The browser emulator's files at /emulator/ (emulator.ts). */
  readonly emulator?: EmulatorSite
  /** CORS on the DPS device API for pages of other origins (origins.ts). */
  readonly origins?: OriginPolicy
  readonly key: string
  readonly cert: string
  readonly handler: DpsHttpHandler
  readonly log: Logger
  readonly maxBodyBytes: number
  /** Tracking id for answers the adapter gives itself (oversized bodies). */
  readonly trackingId: () => string
  /** Timeouts (ms); the defaults suit production, tests shorten them. */
  readonly timeouts?: { readonly headersMs?: number; readonly requestMs?: number; readonly checkIntervalMs?: number }
}

/** Header block limit (Node's default is 16 KB; DPS requests carry a SAS and a few headers). */
const MAX_HEADER_BYTES = 16 * 1024

export function createHttpsListener(options: HttpsListenerOptions): Server {
  const server = createServer(
    {
      key: options.key,
      cert: options.cert,
      minVersion: 'TLSv1.2',
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: 10_000,
      maxHeaderSize: MAX_HEADER_BYTES,
      connectionsCheckingInterval: options.timeouts?.checkIntervalMs ?? 30_000,
    },
    (req, res) => {
      serve(options, req, res).catch((error: unknown) => {
        options.log.error('http adapter failure', { error: (error as Error).message })
        if (!res.headersSent) {
          res.writeHead(500)
          res.end()
        } else res.destroy()
      })
    },
  )
  server.headersTimeout = options.timeouts?.headersMs ?? 10_000
  server.requestTimeout = options.timeouts?.requestMs ?? 30_000
  server.keepAliveTimeout = 5_000
  server.on('tlsClientError', (error, socket) => {
    options.log.debug('TLS handshake failed', { error: error.message, remote: socket.remoteAddress })
  })
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    // A connection that sent no complete request in time is closed without an answer: browsers open
    // spare connections ahead of need, and a 400 (or 408) written to one of them would be read as
    // the answer to the request they later send on it. Closed, the client retries on a new one.
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || error.code === 'ECONNRESET') {
      options.log.debug('connection closed without a complete request', { reason: error.message })
      socket.destroy()
      return
    }
    options.log.debug('malformed HTTP request', { error: error.message, code: error.code ?? '' })
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    else socket.destroy()
  })
  return server
}

async function serve(options: HttpsListenerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = req.method ?? 'GET'
  const path = (req.url ?? '/').split('?')[0]!
  // A CORS preflight is answered here; other device API requests get their Access-Control-* headers.
  if (options.origins !== undefined && applyCors(options.origins, req, res, path)) return
  const ops = options.ops?.(method, path)
  if (ops !== undefined) {
    req.resume()
    write(res, ops)
    return
  }
  const page = options.emulator?.answer(method, path, req.headers)
  if (page !== undefined) {
    req.resume()
    const body = typeof page.body === 'string' ? Buffer.from(page.body, 'utf8') : page.body
    res.writeHead(page.status, { ...page.headers, 'content-length': String(body.length) })
    res.end(method === 'HEAD' || page.status === 304 ? undefined : body)
    return
  }
  const body = await readBody(req, options.maxBodyBytes)
  if (body === undefined) {
    const tooLarge = new ProvisioError('PAYLOAD_TOO_LARGE', `request body exceeds ${options.maxBodyBytes} bytes`)
    write(res, errorResponse(tooLarge, options.trackingId(), Date.now(), { connection: 'close' }))
    // Stop reading the rest of an oversized upload.
    res.on('finish', () => req.destroy())
    return
  }
  const request: HttpRequest = {
    method: req.method ?? 'GET',
    target: req.url ?? '/',
    headers: req.headers,
    body,
    clientCertificates: clientChain(req.socket as TLSSocket),
  }
  write(res, await options.handler(request))
}

function write(res: ServerResponse, answer: { status: number; headers: Record<string, string>; body: string }): void {
  const payload = Buffer.from(answer.body, 'utf8')
  res.writeHead(answer.status, { ...answer.headers, 'content-length': String(payload.length) })
  res.end(payload)
}

/** Reads the body; undefined when it exceeds `max` bytes (declared or actual). */
function readBody(req: IncomingMessage, max: number): Promise<Uint8Array | undefined> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > max) return Promise.resolve(undefined)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    req.on('data', (chunk: Buffer) => {
      if (over) return
      size += chunk.length
      if (size > max) {
        over = true
        chunks.length = 0
        resolve(undefined)
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => {
      if (!over) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))
    })
    req.on('error', reject)
  })
}

/** The chain the client presented, leaf first, as DER (empty when it sent none). */
export function clientChain(socket: TLSSocket): Uint8Array[] {
  if (typeof socket.getPeerCertificate !== 'function') return []
  const chain: Uint8Array[] = []
  let cert: PeerCertificate | DetailedPeerCertificate | undefined = socket.getPeerCertificate(true)
  const seen = new Set<string>()
  while (cert !== undefined && cert.raw !== undefined && chain.length < 10) {
    const fp = cert.fingerprint256
    if (seen.has(fp)) break
    seen.add(fp)
    chain.push(new Uint8Array(cert.raw))
    const next: DetailedPeerCertificate | undefined = (cert as DetailedPeerCertificate).issuerCertificate
    if (next === undefined || next === cert) break
    cert = next
  }
  return chain
}
