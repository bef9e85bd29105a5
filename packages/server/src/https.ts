/**
 * Node adapter of the HTTP codec: an `https` server that reads each request (bounded), hands it
 * to the sans-IO handler and writes the answer. No routing or policy lives here.
 *
 * TLS: 1.2 and up; client certificates are requested but never rejected by TLS itself — X.509
 * devices are judged by the verifier, which can explain a refusal (docs/architecture.md §9).
 */
import { createServer, type Server } from 'node:https'
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { TLSSocket, PeerCertificate, DetailedPeerCertificate } from 'node:tls'
import type { Duplex } from 'node:stream'
import { errorResponse, HeaderBlockMeter, type DpsHttpHandler, type HttpRequest } from '@provisio/codec-http'
import { ProvisioError } from '@provisio/protocol'
import type { Logger } from './logger.js'
import type { EmulatorSite } from './emulator.js'
import { applyCors, type OriginPolicy } from './origins.js'
import { isRefused, refuseConnection, serverTlsOptions, type MinTlsVersion } from './listen.js'

/** Operational endpoints served beside the DPS API (health, metrics). */
export type OpsHandler = (method: string, path: string) => OpsAnswer | Promise<OpsAnswer> | undefined

/** An answer of the operational endpoints. */
export interface OpsAnswer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

export interface HttpsListenerOptions {
  readonly ops?: OpsHandler
  /** The browser emulator's files at /emulator/ (emulator.ts). */
  readonly emulator?: EmulatorSite
  /** CORS on the DPS device API for pages of other origins (origins.ts). */
  readonly origins?: OriginPolicy
  readonly key: string
  readonly cert: string
  /** TLS session-ticket keys (48 bytes) shared with other processes on the port (`--workers`). */
  readonly ticketKeys?: Buffer
  /** Oldest TLS version accepted (default 1.2). */
  readonly minTlsVersion?: MinTlsVersion
  readonly handler: DpsHttpHandler
  readonly log: Logger
  /** The body limit of a request target (codec-http's bodyLimitFor): read no further, answer 413. */
  readonly maxBodyBytes: (target: string) => number
  /** Tracking id for answers the adapter gives itself (oversized bodies, unparsable requests). */
  readonly trackingId: () => string
  /** TLS handshake limit from the TCP accept (default 10,000 ms). */
  readonly handshakeTimeoutMs?: number
  /** A request's header block must arrive within this (default 10,000 ms); 408 after it. */
  readonly headersTimeoutMs?: number
  /** A whole request (headers and body) must arrive within this (default 30,000 ms); 408 after it. */
  readonly requestTimeoutMs?: number
}

/** Header block limit (Node's default is 16 KB; DPS requests carry a SAS and a few headers). */
export const MAX_HEADER_BYTES = 16 * 1024

/**
 * What an unparsable request is answered with, by Node's parser error code: 431 for a header
 * block over the limit, 408 for a timeout, 413 for an oversized chunk extension, 400 with the
 * parser's reason for everything else (smuggling shapes such as Content-Length together with
 * Transfer-Encoding, two Content-Lengths, obs-fold, bad chunk sizes, unknown methods).
 * undefined: nothing to answer (the peer reset the connection).
 */
export function clientErrorAnswer(error: NodeJS.ErrnoException & { reason?: string }): ProvisioError | undefined {
  const detail = typeof error.reason === 'string' && error.reason !== '' ? error.reason : error.message
  // TLS failures (https forwards them here too, e.g. a handshake timeout): no HTTP is spoken yet.
  if (error.code?.startsWith('ERR_TLS') === true || error.code?.startsWith('ERR_SSL') === true) return undefined
  switch (error.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return undefined
    case 'HPE_HEADER_OVERFLOW':
      return new ProvisioError('HEADERS_TOO_LARGE', `request header block exceeds ${MAX_HEADER_BYTES} bytes`, { deviceMessage: `request header block exceeds ${MAX_HEADER_BYTES} bytes` })
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADERS_TIMEOUT':
      return new ProvisioError('REQUEST_TIMEOUT', 'request not received within the server timeout', { deviceMessage: 'request not received within the server timeout' })
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new ProvisioError('PAYLOAD_TOO_LARGE', `malformed HTTP request: ${detail}`, { deviceMessage: `malformed HTTP request: ${detail}` })
    default:
      return new ProvisioError('BAD_REQUEST', `malformed HTTP request (${error.code ?? 'parse error'}): ${detail}`, {
        deviceMessage: `malformed HTTP request (${error.code ?? 'parse error'}): ${detail}`,
      })
  }
}

export function createHttpsListener(options: HttpsListenerOptions): Server {
  const server = createServer(
    {
      ...serverTlsOptions(options),
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: options.headersTimeoutMs ?? 10_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      // A missing Host is refused below with a DPS error body rather than Node's bare 400.
      requireHostHeader: false,
      // How often Node checks the two timeouts above (its default, 30 s, would stretch them).
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor((options.headersTimeoutMs ?? 10_000) / 4))),
    },
    (req, res) => {
      // A request parsed from the chunk that crossed the header limit: its connection was refused.
      if (isRefused(req.socket)) return
      serve(options, req, res).catch((error: unknown) => {
        if (req.destroyed || (error as NodeJS.ErrnoException).code === 'ECONNRESET') {
          // The peer went away (or sent something unparsable) in the middle of its body: nothing to answer.
          options.log.debug('http request aborted', { error: (error as Error).message, remote: req.socket.remoteAddress })
          res.destroy()
          return
        }
        options.log.error('http adapter failure', { error })
        if (!res.headersSent) {
          res.writeHead(500)
          res.end()
        } else res.destroy()
      })
    },
  )
  server.keepAliveTimeout = 5_000
  server.on('tlsClientError', (error, socket) => {
    options.log.debug('TLS handshake failed', { listener: 'https', error: error.message, code: (error as NodeJS.ErrnoException).code, remote: socket.remoteAddress })
    // Nothing more can be said on it (a handshake timeout leaves the socket open otherwise).
    socket.destroy()
  })
  // A refusal is written before the connection closes, and nothing after it is parsed.
  const refuse = (socket: Duplex, refusal: ProvisioError, fields: Record<string, unknown>) => {
    options.log.info('malformed HTTP request refused', { status: refusal.httpStatus, reason: refusal.message, ...fields })
    const answer = errorResponse(refusal, options.trackingId(), Date.now(), { connection: 'close' })
    const payload = Buffer.from(answer.body, 'utf8')
    const head = [`HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? 'Error'}`, ...Object.entries({ ...answer.headers, 'content-length': String(payload.length) }).map(([k, v]) => `${k}: ${v}`)]
    refuseConnection(socket, Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'), payload]))
  }
  // The header-block limit on the bytes as they arrive (HeaderBlockMeter), ahead of Node's parser,
  // which counts only names and values and leaves an unterminated block to the header timeout.
  const meters = new WeakMap<Duplex, HeaderBlockMeter>()
  server.on('secureConnection', (socket: TLSSocket) => {
    const meter = new HeaderBlockMeter(MAX_HEADER_BYTES)
    meters.set(socket, meter)
    socket.prependListener('data', (chunk: Buffer) => {
      if (meter.push(chunk) === 'over' && !isRefused(socket)) {
        refuse(socket, clientErrorAnswer({ name: 'Error', message: 'header block over the limit', code: 'HPE_HEADER_OVERFLOW' })!, { code: 'HPE_HEADER_OVERFLOW', remote: socket.remoteAddress })
      }
    })
  })
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // The connection's next request is counted from its first byte once this one is answered and
    // its body read to the end (a body is not a head).
    let open = 2
    const done = () => {
      if (--open === 0) meters.get(req.socket)?.next()
    }
    res.once('finish', done)
    req.once('end', done)
  })
  server.on('clientError', (error: NodeJS.ErrnoException & { reason?: string }, socket: Duplex) => {
    // Refused already (the parser reports each later chunk again): the answer is on its way.
    if (isRefused(socket)) return
    const refusal = clientErrorAnswer(error)
    const remote = (socket as { remoteAddress?: string }).remoteAddress
    // An answer already on its way on this connection is not interleaved with a second one.
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage
    if (refusal === undefined || !socket.writable || inFlight?.headersSent === true) {
      options.log.debug('http connection ended mid-request', { error: error.message, code: error.code, remote })
      socket.destroy()
      return
    }
    refuse(socket, refusal, { code: error.code, remote })
  })
  return server
}

async function serve(options: HttpsListenerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const framing = framingRefusal(req)
  if (framing !== undefined) {
    options.log.info('malformed HTTP request refused', { status: framing.httpStatus, reason: framing.message, remote: req.socket.remoteAddress })
    write(res, errorResponse(framing, options.trackingId(), Date.now(), { connection: 'close' }))
    res.on('finish', () => req.destroy())
    return
  }
  const method = req.method ?? 'GET'
  const path = (req.url ?? '/').split('?')[0]!
  // A CORS preflight is answered here; other device API requests get their Access-Control-* headers.
  if (options.origins !== undefined && applyCors(options.origins, req, res, path)) return
  const ops = options.ops?.(method, path)
  if (ops !== undefined) {
    req.resume()
    write(res, await ops)
    return
  }
  if (options.emulator?.owns(path)) {
    req.resume()
    await options.emulator.serve(req, res, path)
    return
  }
  const maxBodyBytes = options.maxBodyBytes(req.url ?? '/')
  const body = await readBody(req, maxBodyBytes)
  if (body === undefined) {
    const reason = `request body exceeds ${maxBodyBytes} bytes`
    const tooLarge = new ProvisioError('PAYLOAD_TOO_LARGE', reason, { deviceMessage: reason })
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
    // The caller closed its connection before the answer was written (a direct method call stops).
    abandoned: new Promise<void>((resolve) => res.on('close', () => !res.writableFinished && resolve())),
  }
  write(res, await options.handler(request))
}

/**
 * What Node's parser lets through but this server does not serve: a transfer-coding other than
 * plain `chunked` (the body would be handed on still encoded; RFC 9112 §6.1), and an HTTP/1.1
 * request without Host (RFC 9112 §3.2).
 */
function framingRefusal(req: IncomingMessage): ProvisioError | undefined {
  const te = req.headers['transfer-encoding']
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
    const reason = `transfer-encoding ${JSON.stringify(te.slice(0, 40))} is not supported (only chunked)`
    return new ProvisioError('BAD_REQUEST', reason, { deviceMessage: reason })
  }
  if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1 && req.headers.host === undefined) {
    const reason = 'an HTTP/1.1 request must carry a Host header'
    return new ProvisioError('BAD_REQUEST', reason, { deviceMessage: reason })
  }
  return undefined
}

function write(res: ServerResponse, answer: OpsAnswer): void {
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
