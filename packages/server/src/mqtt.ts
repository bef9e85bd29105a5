/**
 * Node adapter of the MQTT codecs (docs/protocol.md §3): a TLS listener (default port 8883) and the
 * `mqtt` WebSocket handler on the HTTPS port (`/$iothub/websocket`). Each connection gets a
 * router that reads the CONNECT and hands the connection to a sans-IO DpsMqttSession or, when the
 * username names an embedded hub, a HubMqttSession; this file chooses and builds the session,
 * routes desired-property changes to the device's connection and logs why a connection ended.
 * Moving bytes, ticking (keep-alive, connect timeout) and draining are the attach helper's
 * (attach.ts).
 *
 * TLS: 1.2 and up (DPS requires 1.2, §3); client certificates are requested but never rejected
 * by TLS itself — X.509 devices are judged by the verifier (as for HTTPS).
 */
import { randomUUID } from 'node:crypto'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import {
  MqttRouter,
  createDpsMqttSession,
  createHubMqttSession,
  mqttDialectOf,
  type DpsMqttEvent,
  type DpsMqttSession,
  type HubDeviceApi,
  type HubMqttEvent,
  type HubMqttLimits,
  type HubMqttSession,
  type MqttCloseReason,
  type MqttLimits,
} from '@provisio/codec-mqtt'
import { ClientTable, dpsClientKey, hubClientKey, sniChecked, type DesiredChange, type DirectMethods, type IdentityRevoked, type MemoryHubSessions } from '@provisio/hub'
import { desiredPushMessage, type DeviceApi, type HubQueuedMessage } from '@provisio/protocol'
import { SessionSet, type Attachment } from './attach.js'
import { clientChain } from './https.js'
import type { Logger } from './logger.js'
import type { WebSocketConnection, WebSocketHandler } from './websocket.js'
import { listenOn, serverTlsOptions, type MinTlsVersion } from './listen.js'

/** The embedded hubs' device endpoint on the same listeners (IoT Hub's MQTT dialect). */
export interface MqttHubOptions {
  readonly api: HubDeviceApi
  /** Whether a host name (CONNECT username host, TLS SNI) names an embedded hub. */
  readonly isHub: (hostName: string) => boolean
  /** Subscribes to desired-property changes of every embedded hub; returns the unsubscribe. */
  readonly onDesiredChange: (listener: (change: DesiredChange) => void) => () => void
  /** Sees each desired-property change pushed to a connected device, and whether it was delivered (metrics). */
  readonly onDesiredPushed?: (delivered: boolean) => void
  /** Sees every hub session event (metrics); `closed` settles when the event's connection closes. */
  readonly onEvent?: (transport: 'mqtts' | 'mqtt-ws', event: HubMqttEvent, closed: Promise<void>) => void
  /** Subscribes to identities disabled or deleted on every embedded hub; returns the unsubscribe. */
  readonly onIdentityRevoked?: (listener: (event: IdentityRevoked) => void) => () => void
  readonly limits?: Partial<HubMqttLimits>
  /** Hub MQTT sessions kept between connections (clean session 0); without it every connection starts empty. */
  readonly sessions?: MemoryHubSessions
  /** Direct method calls in flight: told when a device subscribes, answers or disconnects. */
  readonly methods?: () => DirectMethods
}

export interface MqttTransportOptions {
  readonly key: string
  readonly cert: string
  /** TLS session-ticket keys (48 bytes) shared with other processes on the port (`--workers`). */
  readonly ticketKeys?: Buffer
  /** Oldest TLS version accepted (default 1.2). */
  readonly minTlsVersion?: MinTlsVersion
  /** The device API for MQTT over TLS (usually `metrics.instrument(engine, 'mqtt')`). */
  readonly device: DeviceApi
  /** The device API for MQTT over WebSockets; defaults to `device`. */
  readonly deviceWs?: DeviceApi
  readonly log: Logger
  readonly limits?: Partial<MqttLimits>
  /** Serve the embedded hubs' device dialect too (CONNECTs whose username names a hub). */
  readonly hub?: MqttHubOptions
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
   * Sends a message to a hub device's connection in this process when one of its subscriptions
   * matches; returns that connection, or undefined (no connection here, or not subscribed).
   */
  deliverToHubDevice(hostName: string, deviceId: string, message: HubQueuedMessage): object | undefined
  /**
   * Stops accepting, waits up to `graceMs` for requests in flight to be answered, then closes
   * every connection; resolves when they are gone.
   */
  close(graceMs: number): Promise<void>
}

export function createMqttTransport(options: MqttTransportOptions): MqttTransport {
  const live = new SessionSet(options.log)
  // MQTT-3.1.4-2: one connection per client (the take-over rule of @provisio/hub ClientTable).
  const byClient = new ClientTable<DpsMqttSession | HubMqttSession>()
  const log = options.log
  const hub = options.hub

  // Desired-property changes reach the device's current connection, if it subscribed, or wait in
  // its kept session (clean session 0, subscribed at QoS 1) for its next connection.
  const offDesired = hub?.onDesiredChange((change) => {
    const session = byClient.get(hubClientKey(change.hostName, change.deviceId)) as HubMqttSession | undefined
    const message = desiredPushMessage(change.patch, change.version)
    const sent = session !== undefined ? session.deliver(message) : (hub.sessions?.offer(change.hostName, change.deviceId, message) ?? false)
    if (session !== undefined) hub.onDesiredPushed?.(sent)
    if (session !== undefined || sent) log.debug('hub desired properties pushed', { hub: change.hostName, deviceId: change.deviceId, version: change.version, delivered: sent, connected: session !== undefined })
  })

  // A disabled or deleted identity loses its connection (it would be refused at its next CONNECT).
  const offRevoked = hub?.onIdentityRevoked?.((event) => {
    const session = byClient.get(hubClientKey(event.hostName, event.deviceId)) as HubMqttSession | undefined
    session?.revoke(`device ${event.deviceId} was ${event.why} on hub ${event.hostName}`)
    // A device created again under the same id starts without the old one's session.
    if (event.why === 'deleted') hub?.sessions?.forget(event.hostName, event.deviceId)
  })

  const onDpsEvent = (transport: string, remote: string | undefined, connected: () => void) => (event: DpsMqttEvent) => {
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

  const onHubEvent = (transport: 'mqtts' | 'mqtt-ws', remote: string | undefined, closed: Promise<void>, session: () => HubMqttSession, connected: (hostName: string, deviceId: string) => void) => (event: HubMqttEvent) => {
    hub?.onEvent?.(transport, event, closed)
    const methods = hub?.methods?.()
    switch (event.type) {
      case 'connected':
        connected(event.hostName, event.deviceId)
        log.debug('hub device connected', { transport, remote, hub: event.hostName, deviceId: event.deviceId, apiVersion: event.apiVersion, clientType: event.clientType, clean: event.clean })
        // A kept session may already hold a methods subscription.
        methods?.deviceReady(event.hostName, event.deviceId)
        return
      case 'subscribed':
        if (event.kinds.includes('methods')) methods?.deviceReady(session().hostName!, session().deviceId!)
        return
      case 'methodResponse':
        methods?.respond(session().hostName!, session().deviceId!, event.rid, event.status, event.payload)
        return
      case 'methodResponseRefused':
        log.warn('hub method response dropped', { transport, remote, hub: session().hostName, deviceId: session().deviceId, rid: event.rid, reason: event.reason })
        return
      case 'refused':
        log.info('hub connect refused', { transport, remote, returnCode: event.returnCode, hub: event.hostName, deviceId: event.deviceId, reason: event.reason })
        return
      case 'twin':
        if (event.error !== undefined || !event.delivered) {
          log.debug('hub twin request answered', { transport, remote, operation: event.operation, status: event.status, delivered: event.delivered, reason: event.error?.reason })
        }
        return
      case 'telemetryRefused':
        log.warn('hub telemetry not stored', { transport, remote, reason: event.reason })
        return
      case 'telemetry':
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

  /** One connection: a router that creates the DPS or the hub session once the CONNECT is read. */
  const accept = (c: Attachment, transport: 'mqtts' | 'mqtt-ws', dpsApi: DeviceApi) => {
    const logClose = closeLogger(c.transport, c.remote)
    const close = (reason: MqttCloseReason) => {
      logClose(reason)
      // Over WebSockets: 1000 for endings the client asked for, 1002 (protocol error) for the rest.
      const normal = reason.code === 'CLIENT_DISCONNECT' || reason.code === 'SERVER_CLOSING' || reason.code === 'CONNECTION_LOST' || reason.code === 'TAKEN_OVER'
      // Flush what the session wrote last (a CONNACK refusal, a SUBACK), then close.
      c.end(normal ? 1000 : 1002, reason.code)
    }
    const clock = { now: () => Date.now() }
    const router = new MqttRouter({
      clock,
      ...(options.limits?.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.limits.connectTimeoutMs }),
      close,
      choose: (connect) => {
        if (hub !== undefined && mqttDialectOf(connect?.username, hub.isHub) === 'hub') {
          const session: HubMqttSession = createHubMqttSession({
            api: sniChecked(hub.api, c.serverName, hub.isHub),
            clock,
            trackingId: randomUUID,
            clientCertificates: c.clientCertificates,
            limits: { ...options.limits, ...hub.limits },
            ...(hub.sessions === undefined ? {} : { sessions: hub.sessions }),
            write: c.write,
            close,
            onEvent: onHubEvent(
              transport,
              c.remote,
              c.closed,
              () => session,
              (hostName, deviceId) => {
                byClient.claim(hubClientKey(hostName, deviceId), session, c.closed)
                // Method calls delivered on this connection end with it (404103 to their callers).
                void c.closed.then(() => hub.methods?.().deviceGone(hostName, deviceId, session))
              },
            ),
          })
          return session
        }
        const session: DpsMqttSession = createDpsMqttSession({
          api: dpsApi,
          clock,
          trackingId: randomUUID,
          clientCertificates: c.clientCertificates,
          ...(options.limits === undefined ? {} : { limits: options.limits }),
          write: c.write,
          close,
          onEvent: onDpsEvent(c.transport, c.remote, () => byClient.claim(dpsClientKey(session.idScope!, session.registrationId!), session, c.closed)),
        })
        return session
      },
    })
    return router
  }

  const server = createServer(serverTlsOptions(options), (socket: TLSSocket) => {
    live.attachSocket(socket, clientChain(socket), { protocol: 'mqtt', transport: 'mqtts' }, (c) => accept(c, 'mqtts', options.device))
  })
  server.on('tlsClientError', (error, socket) => {
    log.debug('TLS handshake failed', { listener: 'mqtts', error: error.message, code: (error as NodeJS.ErrnoException).code, remote: socket.remoteAddress })
    // Node only reports a handshake timeout; the socket must be destroyed here or it stays open.
    socket.destroy()
  })

  // MQTT over WebSockets carries the byte stream in binary messages of any split (MQTT 3.1.1 §6).
  const websocket: WebSocketHandler = ({ socket, request, clientCertificates }: WebSocketConnection) => {
    live.attachWebSocket(socket, request, clientCertificates, { protocol: 'mqtt', transport: 'mqtt-ws' }, (c) => accept(c, 'mqtt-ws', options.deviceWs ?? options.device))
  }

  return {
    server,
    websocket,
    get connections() {
      return live.size
    },
    deliverToHubDevice(hostName, deviceId, message) {
      const session = byClient.get(hubClientKey(hostName, deviceId)) as HubMqttSession | undefined
      return session !== undefined && session.deliver(message) ? session : undefined
    },
    async close(graceMs: number) {
      offDesired?.()
      offRevoked?.()
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()))
      // Let answers in flight reach their devices, bounded by the grace period.
      await live.drain(graceMs)
      live.shutdownAll('server shutting down')
      live.destroyAll()
      await live.closedAll()
      await serverClosed
      live.stop()
    },
  }
}

/** Listens with an error naming the setting to change. */
export function listenMqtt(server: Server, port: number, host: string): Promise<void> {
  return listenOn(server, port, host, { protocol: 'MQTT', flag: '--mqtt-port' })
}
