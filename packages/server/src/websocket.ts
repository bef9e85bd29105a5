/**
 * WebSocket upgrades on the HTTPS listener at `/$iothub/websocket`, as DPS and IoT Hub serve
 * MQTT and AMQP over WebSockets (docs/protocol.md §3, §4). The upgrade is routed by subprotocol:
 * each transport registers a handler for its name (`mqtt`, `AMQPWSB10`), and the handler adapts
 * the WebSocket to its sans-IO session. No routing beyond that lives here.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { WebSocketServer, type WebSocket } from 'ws'
import { clientChain } from './https.js'
import type { Logger } from './logger.js'
import { OriginPolicy } from './origins.js'
import { isRefused, refuseConnection } from './listen.js'

/** Path of the WebSocket endpoint (fixed by the SDKs). */
export const WEBSOCKET_PATH = '/$iothub/websocket'

/** Largest WebSocket message accepted (the DPS limit is 96 KB; AMQP frames add a little). */
export const MAX_WEBSOCKET_MESSAGE = 256 * 1024

/** What a transport gets for each accepted WebSocket. */
export interface WebSocketConnection {
  readonly socket: WebSocket
  readonly request: IncomingMessage
  /** The TLS client certificate chain, DER, leaf first (X.509 devices). */
  readonly clientCertificates: readonly Uint8Array[]
}

export type WebSocketHandler = (connection: WebSocketConnection) => void

/** Routes WebSocket upgrades of `server` to the handler of the negotiated subprotocol. */
export class WebSocketRouter {
  readonly #handlers = new Map<string, WebSocketHandler>()
  readonly #wss: WebSocketServer

  /**
   * @param origins which browser pages may open WebSockets here (Origin header; same origin and the
   *   configured corsOrigins). Clients that send no Origin (the SDKs) are not concerned. Absent: no check.
   */
  constructor(
    server: HttpsServer | HttpServer,
    private readonly log: Logger,
    private readonly origins?: OriginPolicy,
  ) {
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_WEBSOCKET_MESSAGE,
      // Pick the first offered subprotocol that a transport serves (names compared case-insensitively).
      handleProtocols: (offered) => {
        for (const name of offered) if (this.#find(name) !== undefined) return name
        return false
      },
    })
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(request, socket, head))
  }

  /** Registers the handler of one subprotocol (e.g. 'mqtt', 'AMQPWSB10'). */
  register(subprotocol: string, handler: WebSocketHandler): void {
    this.#handlers.set(subprotocol.toLowerCase(), handler)
  }

  /** Closes every open WebSocket (used by graceful shutdown after the drain period). */
  closeAll(): void {
    for (const client of this.#wss.clients) client.terminate()
  }

  #find(name: string): WebSocketHandler | undefined {
    return this.#handlers.get(name.toLowerCase())
  }

  #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (request.url ?? '').split('?')[0]
    const offered = (request.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')
    const refuse = (status: 400 | 403 | 404, reason: string) => {
      this.log.debug('websocket upgrade refused', { path, offered, reason })
      const body = status === 403 ? reason + '\n' : ''
      const text = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found' }[status]
      // Node hands the upgraded socket over with reading stopped and the bytes the peer pipelined
      // unread: refuseConnection drains them and destroys the socket, whatever the peer does.
      refuseConnection(socket, `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
    }
    // Parsed from the chunk that crossed the header limit: the connection is refused already.
    if (isRefused(socket)) return
    if (path !== WEBSOCKET_PATH) return refuse(404, `no WebSocket endpoint at ${path}`)
    if (this.origins !== undefined && this.origins.judge(request.headers) === 'refused') {
      this.log.warn('websocket from a page of another origin refused', { origin: request.headers.origin, host: request.headers.host })
      return refuse(403, OriginPolicy.refusal(request.headers.origin))
    }
    if (!offered.some((name) => this.#find(name) !== undefined)) {
      return refuse(400, `none of the offered subprotocols [${offered.join(', ')}] is served (known: ${[...this.#handlers.keys()].join(', ') || 'none'})`)
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      const handler = this.#find(ws.protocol)
      if (handler === undefined) {
        ws.close(1002, 'unsupported subprotocol')
        return
      }
      handler({ socket: ws, request, clientCertificates: clientChain(request.socket as TLSSocket) })
    })
  }
}
