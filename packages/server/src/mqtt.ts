/**
 * Node adapter of the MQTT codec (dps-protocol.md §3): a TLS listener (default port 8883) and the
 * `mqtt` WebSocket handler on the HTTPS port (`/$iothub/websocket`). Each connection gets one
 * sans-IO DpsMqttSession; this file only moves bytes, carries the TLS client chain, logs why a
 * connection ended, and ticks every session from one shared timer (keep-alive, connect timeout)
 * so an idle connection costs no timer of its own.
 *
 * TLS: 1.2 and up (DPS requires 1.2, §3); client certificates are requested but never rejected
 * by TLS itself — X.509 devices are judged by the verifier (as for HTTPS).
 */
import { randomUUID } from 'node:crypto'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import { createDpsMqttSession, type DpsMqttEvent, type DpsMqttSession, type MqttCloseReason, type MqttLimits } from '@provisio/codec-mqtt'
import type { DeviceApi } from '@provisio/protocol'
import { clientChain } from './https.js'
import type { Logger } from './logger.js'
import type { WebSocketConnection, WebSocketHandler } from './websocket.js'
import { listenOn } from './listen.js'

/** How often sessions are ticked; keep-alive and connect timeouts are judged at this grain. */
const TICK_MS = 1000

export interface MqttTransportOptions {
  readonly key: string
  readonly cert: string
  /** The device API for MQTT over TLS (usually `metrics.instrument(engine, 'mqtt')`). */
  readonly device: DeviceApi
  /** The device API for MQTT over WebSockets; defaults to `device`. */
  readonly deviceWs?: DeviceApi
  readonly log: Logger
  readonly limits?: Partial<MqttLimits>
  /** TLS handshake limit from the TCP accept (default 10,000 ms). */
  readonly handshakeTimeoutMs?: number
}

/** The MQTTS listener plus the sessions of both transports, for graceful shutdown. */
export interface MqttTransport {
  readonly server: Server
  /** Handler to register on the WebSocket router under 'mqtt'. */
  readonly websocket: WebSocketHandler
  /** Open sessions (both transports). */
  readonly connections: number
  /**
   * Stops accepting, waits up to `graceMs` for requests in flight to be answered, then closes
   * every connection; resolves when they are gone.
   */
  close(graceMs: number): Promise<void>
}

interface Live {
  readonly session: DpsMqttSession
  readonly destroy: () => void
  readonly closed: Promise<void>
}

export function createMqttTransport(options: MqttTransportOptions): MqttTransport {
  const live = new Set<Live>()
  // MQTT-3.1.4-2: one connection per client; a new CONNECT of the same clientId (= registrationId
  // in its ID scope) closes the older connection.
  const byClient = new Map<string, DpsMqttSession>()
  const log = options.log
  let ticker: ReturnType<typeof setInterval> | undefined

  const tickAll = () => {
    for (const entry of live) entry.session.tick()
  }
  const track = (entry: Live) => {
    live.add(entry)
    if (ticker === undefined) {
      ticker = setInterval(tickAll, TICK_MS)
      ticker.unref()
    }
    void entry.closed.then(() => {
      live.delete(entry)
      if (live.size === 0 && ticker !== undefined) {
        clearInterval(ticker)
        ticker = undefined
      }
    })
  }

  const claim = (session: DpsMqttSession, closed: Promise<void>) => {
    const key = `${session.idScope}\u0000${session.registrationId!.toLowerCase()}`
    const previous = byClient.get(key)
    byClient.set(key, session)
    if (previous !== undefined && previous !== session) previous.end('TAKEN_OVER', 'a newer connection CONNECTed with the same clientId (MQTT-3.1.4-2)')
    void closed.then(() => {
      if (byClient.get(key) === session) byClient.delete(key)
    })
  }

  const onEvent = (transport: string, remote: string | undefined, connected: () => void) => (event: DpsMqttEvent) => {
    switch (event.type) {
      case 'connected':
        connected()
        log.debug('mqtt device connected', { transport, remote, idScope: event.idScope, registrationId: event.registrationId, apiVersion: event.apiVersion, clientVersion: event.clientVersion })
        return
      case 'refused':
        log.info('mqtt connect refused', { transport, remote, returnCode: event.returnCode, registrationId: event.registrationId, reason: event.reason })
        return
      case 'response':
        if (event.error !== undefined || !event.delivered) {
          log.debug('mqtt request answered', { transport, remote, operation: event.operation, status: event.status, delivered: event.delivered, reason: event.error?.reason })
        }
        return
    }
  }

  const closeLogger = (transport: string, remote: string | undefined) => (reason: MqttCloseReason) => {
    const fields = { transport, remote, code: reason.code, reason: reason.reason }
    switch (reason.code) {
      case 'CLIENT_DISCONNECT':
      case 'CONNECTION_LOST':
      case 'SERVER_CLOSING':
      case 'TAKEN_OVER':
        log.debug('mqtt connection closed', fields)
        return
      case 'INTERNAL_ERROR':
        log.error('mqtt session failed', fields)
        return
      default:
        // Malformed packets, protocol violations, timeouts, refusals: the connection is dropped
        // and the reason logged; nothing else on the server is affected.
        log.info('mqtt connection dropped', fields)
    }
  }

  const server = createServer(
    { key: options.key, cert: options.cert, minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false, handshakeTimeout: options.handshakeTimeoutMs ?? 10_000 },
    (socket: TLSSocket) => {
      const remote = socket.remoteAddress
      socket.setNoDelay(true)
      let resolveClosed!: () => void
      const closed = new Promise<void>((resolve) => (resolveClosed = resolve))
      const logClose = closeLogger('mqtts', remote)
      const session = createDpsMqttSession({
        api: options.device,
        clock: { now: () => Date.now() },
        trackingId: randomUUID,
        clientCertificates: clientChain(socket),
        ...(options.limits === undefined ? {} : { limits: options.limits }),
        write: (bytes) => void socket.write(bytes),
        close: (reason) => {
          logClose(reason)
          // Flush what the session wrote last (a CONNACK refusal, a SUBACK), then close.
          socket.end()
          setTimeout(() => socket.destroy(), 2000).unref()
        },
        onEvent: onEvent('mqtts', remote, () => claim(session, closed)),
      })
      track({ session, destroy: () => socket.destroy(), closed })
      socket.on('data', (chunk: Buffer) => session.push(chunk))
      socket.on('error', (error) => log.debug('mqtt socket error', { remote, error: error.message }))
      socket.on('close', () => {
        session.end('CONNECTION_LOST', 'socket closed')
        resolveClosed()
      })
    },
  )
  server.on('tlsClientError', (error, socket) => {
    log.debug('TLS handshake failed', { listener: 'mqtts', error: error.message, code: (error as NodeJS.ErrnoException).code, remote: socket.remoteAddress })
    // Node only reports a handshake timeout; the socket must be destroyed here or it stays open.
    socket.destroy()
  })

  const websocket: WebSocketHandler = ({ socket, request, clientCertificates }: WebSocketConnection) => {
    const remote = request.socket.remoteAddress
    let resolveClosed!: () => void
    const closed = new Promise<void>((resolve) => (resolveClosed = resolve))
    const logClose = closeLogger('mqtt-ws', remote)
    const session = createDpsMqttSession({
      api: options.deviceWs ?? options.device,
      clock: { now: () => Date.now() },
      trackingId: randomUUID,
      clientCertificates,
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      write: (bytes) => socket.send(bytes, { binary: true }),
      close: (reason) => {
        logClose(reason)
        // 1000 for endings the client asked for, 1002 (protocol error) for the rest.
        const normal = reason.code === 'CLIENT_DISCONNECT' || reason.code === 'SERVER_CLOSING' || reason.code === 'CONNECTION_LOST' || reason.code === 'TAKEN_OVER'
        socket.close(normal ? 1000 : 1002, reason.code)
        setTimeout(() => socket.terminate(), 2000).unref()
      },
      onEvent: onEvent('mqtt-ws', remote, () => claim(session, closed)),
    })
    track({ session, destroy: () => socket.terminate(), closed })
    socket.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      // MQTT over WebSockets carries the byte stream in binary messages of any split (MQTT 3.1.1 §6).
      if (Array.isArray(data)) for (const part of data) session.push(part)
      else session.push(data instanceof ArrayBuffer ? new Uint8Array(data) : data)
    })
    socket.on('error', (error) => log.debug('mqtt websocket error', { remote, error: error.message }))
    socket.on('close', () => {
      session.end('CONNECTION_LOST', 'websocket closed')
      resolveClosed()
    })
  }

  return {
    server,
    websocket,
    get connections() {
      return live.size
    },
    async close(graceMs: number) {
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()))
      // Let answers in flight reach their devices, bounded by the grace period.
      const deadline = Date.now() + graceMs
      while (Date.now() < deadline && [...live].some((e) => e.session.inFlight > 0)) {
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      const entries = [...live]
      for (const entry of entries) entry.session.end('SERVER_CLOSING', 'server shutting down')
      for (const entry of entries) entry.destroy()
      await Promise.all(entries.map((e) => e.closed))
      await serverClosed
      if (ticker !== undefined) clearInterval(ticker)
      ticker = undefined
    },
  }
}

/** Listens with an error naming the setting to change. */
export function listenMqtt(server: Server, port: number, host: string): Promise<void> {
  return listenOn(server, port, host, { protocol: 'MQTT', flag: '--mqtt-port' })
}
