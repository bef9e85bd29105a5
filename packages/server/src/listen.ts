import type { Server, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Server as TlsServer, TLSSocket, TlsOptions } from 'node:tls'

/** Oldest TLS version a listener accepts (`--min-tls-version`). */
export type MinTlsVersion = '1.2' | '1.3'

/**
 * The TLS settings every listener shares (HTTPS, MQTTS, AMQPS): TLS 1.2 or newer (1.3 only with
 * `minTlsVersion` 1.3); a client
 * certificate requested but judged by the X.509 verifier, not by TLS (DPS devices may present
 * none, or one chaining to a CA only the enrollment knows); a handshake cut after
 * `handshakeTimeoutMs`; session-ticket keys shared by the processes on a port (`--workers`).
 */
export function serverTlsOptions(o: { readonly key: string; readonly cert: string; readonly ticketKeys?: Buffer; readonly handshakeTimeoutMs?: number; readonly minTlsVersion?: MinTlsVersion }): TlsOptions {
  return {
    key: o.key,
    cert: o.cert,
    ...(o.ticketKeys === undefined ? {} : { ticketKeys: o.ticketKeys }),
    minVersion: o.minTlsVersion === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: o.handshakeTimeoutMs ?? 10_000,
  }
}

/**
 * Starts `server` on `host:port`; a failure says which protocol, which address, and which flag
 * picks another port (EADDRINUSE, EACCES for ports below 1024 without the capability).
 */
export function listenOn(server: Server, port: number, host: string, what: { readonly protocol: string; readonly flag: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const hint =
        error.code === 'EADDRINUSE'
          ? `port ${port} is in use; choose another with ${what.flag}`
          : error.code === 'EACCES'
            ? `port ${port} needs root or CAP_NET_BIND_SERVICE; choose one above 1023 with ${what.flag}`
            : error.message
      reject(new Error(`cannot listen for ${what.protocol} on ${host}:${port}: ${hint}`, { cause: error }))
    }
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
}

/** How long a refused connection may take to read its answer and close before it is destroyed. */
export const REFUSAL_LINGER_MS = 2000

/**
 * Ends a connection the server refuses, whatever the peer does next: writes `answer` (an HTTP
 * refusal, a CONNACK, a close frame), half-closes, and reads and drops whatever the peer still
 * sends. Input left unread would keep the socket from ever ending (Node hands an upgraded or
 * paused socket over with reading stopped), and closing a socket with unread input makes the
 * kernel send a reset that can overtake the answer. The socket is destroyed once both sides
 * have ended, or after `lingerMs` at the latest (a peer that neither reads nor closes).
 * Whoever was reading the socket (the HTTP parser) is detached first: nothing after a refusal
 * is parsed.
 */
export function refuseConnection(socket: Duplex, answer?: string | Uint8Array, lingerMs = REFUSAL_LINGER_MS): void {
  if (socket.destroyed) return
  if (refused.has(socket)) return
  refused.add(socket)
  const timer = setTimeout(() => socket.destroy(), lingerMs)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
  socket.removeAllListeners('data')
  socket.on('data', () => undefined)
  // With both sides ended the stream destroys itself (autoDestroy); an error ends it at once.
  socket.on('error', () => socket.destroy())
  socket.resume()
  if (socket.writableEnded) return
  if (answer === undefined) socket.end()
  else socket.end(answer)
}

/** Whether {@link refuseConnection} took `socket` (later refusals and requests on it are ignored). */
export function isRefused(socket: Duplex): boolean {
  return refused.has(socket)
}

const refused = new WeakSet<Duplex>()

/**
 * Every connection a listener holds, from the TCP accept on: before and during the TLS handshake,
 * while HTTP parses it, after a WebSocket upgrade or a refusal. Graceful shutdown destroys what is
 * left once its deadline passed (Node's `closeAllConnections` knows only the sockets its HTTP
 * parser still holds, so an upgraded or refused one would keep the listener, and the process, open).
 */
export class ConnectionSet {
  readonly #sockets = new Set<Duplex>()

  /** Holds every socket `server` accepts (and, for TLS servers, the TLS socket over it) until it closes. */
  watch(server: Server): void {
    server.on('connection', (socket: Socket) => this.add(socket))
    server.on('secureConnection', (socket: Duplex) => this.add(socket))
  }

  add(socket: Duplex): void {
    if (socket.destroyed) return
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
  }

  /** Connections open now. */
  get size(): number {
    return this.#sockets.size
  }

  /** Destroys every connection; returns how many there were. */
  destroyAll(): number {
    const n = this.#sockets.size
    for (const socket of [...this.#sockets]) socket.destroy()
    this.#sockets.clear()
    return n
  }
}

/**
 * Closes a TLS connection right after its handshake when `refuse` names a reason for it, judged
 * by the host name the client asked for (SNI: the DPS host or a hub's) and its address. Runs
 * before the listener's own connection handler, so nothing the client sends is read.
 */
export function guardConnections(server: TlsServer, refuse: (servername: string | undefined, address: string) => string | undefined, onRefused: (reason: string, address: string) => void): void {
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    const address = socket.remoteAddress ?? ''
    const servername = typeof socket.servername === 'string' ? socket.servername : undefined
    const reason = refuse(servername, address)
    if (reason === undefined) return
    onRefused(reason, address)
    socket.destroy()
  })
}
