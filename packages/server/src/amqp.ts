/**
 * Node adapter of the AMQP codec (docs/protocol.md §4): a TLS listener (default port 5671) and the
 * `AMQPWSB10` WebSocket handler on the HTTPS port. Each connection gets one sans-IO session — an
 * AmqpDeviceSession for DPS, an AmqpHubSession for an embedded hub, chosen by an AmqpConnection from
 * what the peer names first (docs/protocol.md §12.1); this file builds them and logs close reasons. Moving bytes, ticking (open
 * timeout, heartbeats) and bounding idle connections are the attach helper's (attach.ts).
 *
 * TLS: 1.2 and up; client certificates are requested but never rejected by TLS itself — X.509
 * devices are judged by the verifier at register (as for HTTPS).
 */
import { randomUUID } from 'node:crypto'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import {
  AmqpConnection,
  AmqpDeviceSession,
  AmqpHubSession,
  DEFAULT_AMQP_LIMITS,
  DEFAULT_HUB_AMQP_LIMITS,
  type AmqpCloseReason,
  type AmqpEndpoint,
  type AmqpHubEvent,
  type AmqpLimits,
  type AmqpRoute,
  type AmqpRouteHint,
  type C2dSendInput,
} from '@provisio/codec-amqp'
import { parseMethodRequestTopic, type DeviceApi, type HubDeviceApi } from '@provisio/protocol'
import { hubClientKey, type DesiredChange, type DirectMethods, type IdentityRevoked } from '@provisio/hub'
import { SessionSet, type Attachment } from './attach.js'
import { clientChain } from './https.js'
import type { Logger } from './logger.js'
import type { WebSocketConnection, WebSocketHandler } from './websocket.js'
import { listenOn, serverTlsOptions, type MinTlsVersion } from './listen.js'

/** Connections silent this long are dropped (we announce no idle-time-out; DPS exchanges are short). */
const IDLE_TIMEOUT_MS = 240_000

export interface AmqpListenerOptions {
  readonly key: string
  readonly cert: string
  /** TLS session-ticket keys (48 bytes) shared with other processes on the port (`--workers`). */
  readonly ticketKeys?: Buffer
  /** Oldest TLS version accepted (default 1.2). */
  readonly minTlsVersion?: MinTlsVersion
  /** The device API for AMQPS (usually `metrics.instrument(engine, 'amqp')`). */
  readonly device: DeviceApi
  /** The device API for AMQP over WebSockets; defaults to `device`. */
  readonly deviceWs?: DeviceApi
  readonly log: Logger
  readonly limits?: Partial<AmqpLimits>
  /** TLS handshake limit from the TCP accept (default 10,000 ms). */
  readonly handshakeTimeoutMs?: number
  /** Protocol header, SASL and open must be done within this of the connection starting (default 10,000 ms). */
  readonly connectTimeoutMs?: number
  /** The embedded hubs' AMQP endpoint on the same listeners (docs/protocol.md §12); without it every connection is DPS. */
  readonly hub?: AmqpHubEndpoint
}

/** What the hub side of the AMQP listeners needs. */
export interface AmqpHubEndpoint {
  /** Which service a connection names (routeAmqp, docs/protocol.md §12.1). */
  route(hint: AmqpRouteHint): AmqpRoute
  readonly api: HubDeviceApi
  /** Verifies a hub policy token granting ServiceConnect on `hostName`; resolves with its expiry. */
  authorizeService(hostName: string, token: string): Promise<{ readonly expiresAtMs?: number }>
  readonly onEvent?: (transport: string, event: AmqpHubEvent) => void
  /** The hubs' cloud-to-device queue (`CloudToDevice` of @provisio/hub); without it `/messages/devicebound` is refused as not served. */
  readonly c2d?: { send(hostName: string, deviceId: string, input: C2dSendInput): Promise<unknown> }
  /** Subscribes to desired-property changes of every embedded hub (pushed to devices subscribed on their twin links); returns the unsubscribe. */
  readonly onDesiredChange?: (listener: (change: DesiredChange) => void) => () => void
  /** Sees each desired-property change pushed to a device connected over AMQP, and whether it was sent (metrics). */
  readonly onDesiredPushed?: (delivered: boolean) => void
  /** Subscribes to identities disabled or deleted: their links on every connection are detached. */
  readonly onIdentityRevoked?: (listener: (event: IdentityRevoked) => void) => () => void
  /** Direct method calls in flight: told when a device attaches its method links, answers or goes away. */
  readonly methods?: () => DirectMethods
}

/** The AMQPS listener plus the sessions of both transports, for graceful shutdown. */
export interface AmqpTransport {
  readonly server: Server
  /** Handler to register on the WebSocket router under 'AMQPWSB10'. */
  readonly websocket: WebSocketHandler
  /** Stops accepting, closes every session with `amqp:connection:forced`, resolves when sockets are gone. */
  close(graceMs: number): Promise<void>
  /**
   * Delivers a direct method request (`$iothub/methods/POST/{name}/?$rid=` as DirectMethods words it)
   * to a connection of the device here with its method links attached; returns that connection or undefined.
   */
  deliverToHubDevice(hostName: string, deviceId: string, message: { readonly topic: string; readonly payload: string }): object | undefined
}

export function createAmqpTransport(options: AmqpListenerOptions): AmqpTransport {
  const live = new SessionSet(options.log)
  // Hub connections by hub host name, and the ones holding a device's method links (by hub and device).
  const hubSessions = new Set<{ readonly hostName: string; readonly session: AmqpHubSession }>()
  const methodLinks = new Map<string, Set<AmqpHubSession>>()
  const offDesired = options.hub?.onDesiredChange?.((change) => {
    for (const h of hubSessions) {
      if (h.hostName.toLowerCase() !== change.hostName.toLowerCase()) continue
      const sent = h.session.pushDesired(change.deviceId, change.patch)
      if (sent) options.log.debug('hub desired properties pushed', { transport: 'amqp', hub: change.hostName, deviceId: change.deviceId, version: change.version })
      options.hub?.onDesiredPushed?.(sent)
    }
  })
  const offRevoked = options.hub?.onIdentityRevoked?.((event) => {
    for (const h of hubSessions) {
      if (h.hostName.toLowerCase() === event.hostName.toLowerCase()) h.session.revoke(event.deviceId, `device ${event.deviceId} was ${event.why} on hub ${event.hostName}`)
    }
  })

  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000
  const open = (c: Attachment, device: DeviceApi): AmqpEndpoint => {
    const clock = { now: () => Date.now() }
    const close = (reason: AmqpCloseReason) => {
      const fields = { transport: c.transport, remote: c.remote, code: reason.code, reason: reason.reason }
      if (reason.code === 'peer-closed' || reason.code === 'shutdown') options.log.debug('amqp connection closed', fields)
      else options.log.info('amqp connection refused', fields)
      // A peer that neither reads nor closes is not waited for.
      c.end()
    }
    const dps = (write: (bytes: Uint8Array) => void) =>
      new AmqpDeviceSession({
        device,
        clock,
        trackingId: randomUUID,
        clientCertificates: c.clientCertificates,
        ...(options.limits === undefined ? {} : { limits: options.limits }),
        // A connection that does not open in time is refused (slow or stuck peers hold no socket for long).
        openTimeoutMs: connectTimeoutMs,
        write,
        close,
      })
    const hub = options.hub
    if (hub === undefined) return dps(c.write)
    return new AmqpConnection({
      write: c.write,
      close,
      clock,
      openTimeoutMs: connectTimeoutMs,
      // What both sessions announce alike until one is chosen (the hub's link count: Node opens up to 9 links in one session).
      limits: { maxFrameSize: DEFAULT_AMQP_LIMITS.maxFrameSize, maxSessions: DEFAULT_AMQP_LIMITS.maxSessions, maxLinksPerSession: DEFAULT_HUB_AMQP_LIMITS.maxLinksPerSession },
      containerId: 'provisio',
      select: (hint, write) => {
        const route = hub.route(hint)
        if (route === 'undecided') return undefined
        if (route === 'dps') return dps(write)
        const hostName = route.hub
        // Devices whose method links this connection holds (calls delivered here end with it).
        const withMethods = new Set<string>()
        const forgetMethods = (deviceId: string) => {
          const key = hubClientKey(hostName, deviceId)
          const set = methodLinks.get(key)
          set?.delete(hubSession)
          if (set?.size === 0) methodLinks.delete(key)
          hub.methods?.().deviceGone(hostName, deviceId, hubSession)
        }
        const methodsEvent = (event: AmqpHubEvent) => {
          const methods = hub.methods?.()
          if (event.type === 'methodsReady') {
            const key = hubClientKey(hostName, event.deviceId)
            withMethods.add(event.deviceId)
            let set = methodLinks.get(key)
            if (set === undefined) methodLinks.set(key, (set = new Set()))
            set.add(hubSession)
            methods?.deviceReady(hostName, event.deviceId)
          } else if (event.type === 'methodsGone') {
            withMethods.delete(event.deviceId)
            forgetMethods(event.deviceId)
          } else if (event.type === 'methodResponse') methods?.respond(hostName, event.deviceId, event.rid, event.status, event.payload)
        }
        const hubSession: AmqpHubSession = new AmqpHubSession({
          hostName,
          containerId: 'provisio',
          api: hub.api,
          authorizeService: (token) => hub.authorizeService(hostName, token),
          clock,
          clientCertificates: c.clientCertificates,
          openTimeoutMs: connectTimeoutMs,
          write,
          close,
          onEvent: (event: AmqpHubEvent) => {
            methodsEvent(event)
            hub.onEvent?.(c.transport, event)
          },
          ...(hub.c2d === undefined ? {} : { c2d: hub.c2d }),
        })
        const registered = { hostName, session: hubSession }
        hubSessions.add(registered)
        // When the transport is gone, so are the connection's method links (their calls end with 404103).
        void c.closed.then(() => {
          hubSessions.delete(registered)
          for (const deviceId of [...withMethods]) forgetMethods(deviceId)
          withMethods.clear()
        })
        return hubSession
      },
    })
  }

  const server = createServer(serverTlsOptions(options), (socket: TLSSocket) => {
    live.attachSocket(socket, clientChain(socket), { protocol: 'amqp', transport: 'amqps', idleTimeoutMs: IDLE_TIMEOUT_MS }, (c) => open(c, options.device))
  })
  server.on('tlsClientError', (error, socket) => {
    options.log.debug('TLS handshake failed', { listener: 'amqps', error: error.message, code: (error as NodeJS.ErrnoException).code, remote: socket.remoteAddress })
    // Node only reports a handshake timeout; the socket must be destroyed here or it stays open.
    socket.destroy()
  })

  const websocket: WebSocketHandler = ({ socket, request, clientCertificates }: WebSocketConnection) => {
    live.attachWebSocket(
      socket,
      request,
      clientCertificates,
      {
        protocol: 'amqp',
        transport: 'amqp-ws',
        // AMQPWSB10 carries AMQP bytes in binary messages only.
        onTextMessage: (session) => {
          options.log.info('amqp connection refused', { transport: 'amqp-ws', remote: request.socket.remoteAddress, code: 'TEXT_MESSAGE', reason: 'text WebSocket messages are not AMQP frames' })
          session.shutdown('text WebSocket messages are not AMQP frames')
        },
      },
      (c) => open(c, options.deviceWs ?? options.device),
    )
  }

  return {
    server,
    websocket,
    deliverToHubDevice(hostName, deviceId, message) {
      const request = parseMethodRequestTopic(message.topic)
      if (request === undefined) return undefined
      for (const session of methodLinks.get(hubClientKey(hostName, deviceId)) ?? []) {
        if (session.deliverMethod(deviceId, request.methodName, request.rid, message.payload)) return session
      }
      return undefined
    },
    async close(graceMs: number) {
      offDesired?.()
      offRevoked?.()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      live.shutdownAll()
      const force = setTimeout(() => live.destroyAll(), graceMs)
      force.unref()
      await closed
      clearTimeout(force)
      live.stop()
    },
  }
}

/** Listens on `host:port`, with a hint when the port is taken or privileged. */
export function listenAmqp(server: Server, port: number, host: string): Promise<void> {
  return listenOn(server, port, host, { protocol: 'AMQP', flag: '--amqp-port' })
}
