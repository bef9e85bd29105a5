/**
 * The one place where a byte stream meets a sans-IO session (docs/architecture.md, "Sessions and
 * the attach helper"): a TLS socket or a WebSocket is attached to a TransportSession of
 * @provisio/protocol. Bytes read go to `push` (reading pauses while the peer does not take what
 * we write), the session's writes go to the transport, the transport's end is the session's
 * `abandon`, one shared timer `tick`s every live session, and graceful shutdown waits on the
 * sessions' in-flight-zero signal before ending them. The MQTT and AMQP adapters (mqtt.ts,
 * amqp.ts) only choose and build the session.
 */
import type { TLSSocket } from 'node:tls'
import type { IncomingMessage } from 'node:http'
import type { TransportSession } from '@provisio/protocol'
import type { WebSocket } from 'ws'
import type { Logger } from './logger.js'

/** How often sessions are ticked; keep-alive, open timeouts and heartbeats are judged at this grain. */
export const TICK_MS = 1000

/** How long a closing connection may take to flush before it is destroyed. */
const END_GRACE_MS = 2000

/** Bytes a WebSocket may hold unsent before reading from its peer pauses. */
const WEBSOCKET_HIGH_WATER = 256 * 1024

/** What the session factory learns of the connection it serves, and how it writes and ends it. */
export interface Attachment {
  /** Transport name for logs and metrics ('mqtts', 'mqtt-ws', 'amqps', 'amqp-ws'). */
  readonly transport: string
  readonly remote: string | undefined
  /** TLS SNI, when the client sent one. */
  readonly serverName: string | undefined
  /** The TLS client certificate chain, DER, leaf first. */
  readonly clientCertificates: readonly Uint8Array[]
  /** Sends bytes to the peer, in order. */
  write(bytes: Uint8Array): void
  /**
   * Flushes what was written, then closes (a WebSocket with `webSocketCode`, default 1000); a peer
   * that neither reads nor closes is destroyed after a short grace.
   */
  end(webSocketCode?: number, webSocketReason?: string): void
  /** Settles when the transport is closed. */
  readonly closed: Promise<void>
}

interface Live {
  readonly session: TransportSession
  readonly destroy: () => void
  readonly closed: Promise<void>
}

export interface AttachOptions {
  /** Transport name (see {@link Attachment.transport}). */
  readonly transport: string
  /** Protocol name heading the socket error logs ('mqtt', 'amqp'). */
  readonly protocol: string
  /** A TLS connection silent this long is destroyed (default: none). */
  readonly idleTimeoutMs?: number
  /**
   * A WebSocket text message (the MQTT and AMQP bindings carry bytes): 'bytes' feeds it to the
   * session like a binary one; a function is called instead (it usually ends the session).
   */
  readonly onTextMessage?: 'bytes' | ((session: TransportSession) => void)
}

/**
 * The live sessions of one protocol, over both of its transports: attaches connections, ticks
 * them from one timer (an idle connection costs no timer of its own), drains and ends them.
 */
export class SessionSet {
  readonly #live = new Set<Live>()
  readonly #log: Logger
  #ticker: ReturnType<typeof setInterval> | undefined

  constructor(log: Logger) {
    this.#log = log
  }

  /** Sessions open now. */
  get size(): number {
    return this.#live.size
  }

  /** Attaches a TLS socket (the listener's secure connection) to the session `create` builds. */
  attachSocket(socket: TLSSocket, clientCertificates: readonly Uint8Array[], options: AttachOptions, create: (a: Attachment) => TransportSession): TransportSession {
    socket.setNoDelay(true)
    const remote = socket.remoteAddress
    let resolveClosed!: () => void
    const closed = new Promise<void>((resolve) => (resolveClosed = resolve))
    const session = create({
      transport: options.transport,
      remote,
      serverName: typeof socket.servername === 'string' ? socket.servername : undefined,
      clientCertificates,
      write: (bytes) => {
        // Back-pressure: stop reading from a peer that does not read what we send.
        if (!socket.write(bytes) && !socket.isPaused()) {
          socket.pause()
          socket.once('drain', () => socket.resume())
        }
      },
      end: () => {
        socket.end()
        setTimeout(() => socket.destroy(), END_GRACE_MS).unref()
      },
      closed,
    })
    if (options.idleTimeoutMs !== undefined) socket.setTimeout(options.idleTimeoutMs, () => socket.destroy())
    socket.on('data', (chunk: Buffer) => session.push(chunk))
    socket.on('error', (error) => this.#log.debug(`${options.protocol} socket error`, { remote, error: error.message }))
    socket.on('close', () => {
      session.abandon('socket closed')
      resolveClosed()
    })
    this.#track({ session, destroy: () => socket.destroy(), closed })
    return session
  }

  /** Attaches an upgraded WebSocket (binary messages carry the byte stream, in any split). */
  attachWebSocket(ws: WebSocket, request: IncomingMessage, clientCertificates: readonly Uint8Array[], options: AttachOptions, create: (a: Attachment) => TransportSession): TransportSession {
    const remote = request.socket.remoteAddress
    const tlsSocket = request.socket as TLSSocket
    let resolveClosed!: () => void
    const closed = new Promise<void>((resolve) => (resolveClosed = resolve))
    const resumeWhenFlushed = () => {
      if (ws.isPaused && ws.bufferedAmount < WEBSOCKET_HIGH_WATER / 2) ws.resume()
    }
    const session = create({
      transport: options.transport,
      remote,
      serverName: typeof tlsSocket.servername === 'string' ? tlsSocket.servername : undefined,
      clientCertificates,
      write: (bytes) => {
        ws.send(bytes, { binary: true }, resumeWhenFlushed)
        // Back-pressure: stop reading from a peer that does not read what we send.
        if (ws.bufferedAmount > WEBSOCKET_HIGH_WATER && !ws.isPaused) ws.pause()
      },
      end: (code = 1000, reason) => {
        ws.close(code, reason)
        setTimeout(() => ws.terminate(), END_GRACE_MS).unref()
      },
      closed,
    })
    const onText = options.onTextMessage ?? 'bytes'
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      if (!isBinary && onText !== 'bytes') return onText(session)
      if (Array.isArray(data)) for (const part of data) session.push(part)
      else session.push(data instanceof ArrayBuffer ? new Uint8Array(data) : data)
    })
    ws.on('error', (error) => this.#log.debug(`${options.protocol} websocket error`, { remote, error: error.message }))
    ws.on('close', () => {
      session.abandon('websocket closed')
      resolveClosed()
    })
    this.#track({ session, destroy: () => ws.terminate(), closed })
    return session
  }

  /** Resolves once no session has a request in flight, or when `graceMs` passed. */
  async drain(graceMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))
    try {
      await Promise.race([Promise.all([...this.#live].map((e) => e.session.idle())), deadline])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Tells every session the server is closing (each says goodbye as its protocol allows). */
  shutdownAll(reason?: string): void {
    for (const entry of [...this.#live]) entry.session.shutdown(reason)
  }

  /** Destroys every connection now. */
  destroyAll(): void {
    for (const entry of [...this.#live]) entry.destroy()
  }

  /** Resolves when every connection attached so far is closed. */
  async closedAll(): Promise<void> {
    await Promise.all([...this.#live].map((e) => e.closed))
  }

  /** Stops the tick timer (after shutdown). */
  stop(): void {
    if (this.#ticker !== undefined) clearInterval(this.#ticker)
    this.#ticker = undefined
  }

  #track(entry: Live): void {
    this.#live.add(entry)
    if (this.#ticker === undefined) {
      this.#ticker = setInterval(() => {
        for (const e of this.#live) e.session.tick()
      }, TICK_MS)
      this.#ticker.unref()
    }
    void entry.closed.then(() => {
      this.#live.delete(entry)
      if (this.#live.size === 0) this.stop()
    })
  }
}
