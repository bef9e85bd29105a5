/**
 * Raw MQTT against a test server, for the wire suites: a client built on @provisio/codec-mqtt's
 * packet codec over TLS (to the MQTT port) or over a WebSocket (`/$iothub/websocket`), and the
 * service token of an embedded hub.
 */
import { connect as tlsConnect } from 'node:tls'
import WebSocket from 'ws'
import { MqttDecoder, encodePacket, type MqttPacket } from '@provisio/codec-mqtt'
import { buildSasToken, parseHubConnectionString } from '@provisio/protocol'
import { httpsRequest } from './https-client.js'
import type { TestServer } from './server.js'

/** A raw MQTT connection: send packets, await the next packet, know when the server closed it. */
export interface RawMqttClient {
  send(packet: Parameters<typeof encodePacket>[0]): void
  sendBytes(bytes: Uint8Array): void
  next(): Promise<MqttPacket>
  readonly closed: Promise<void>
  end(): void
}

export interface RawMqttOptions {
  /** `tls` (default) dials the MQTT port; `ws` the WebSocket endpoint on the HTTPS port. */
  readonly transport?: 'tls' | 'ws'
  /** TLS only: the host dialled (default `localhost`) and the SNI sent (default: the host). */
  readonly host?: string
  readonly servername?: string
  /** Largest server packet decoded (default: the decoder's). */
  readonly maxPacketBytes?: number
}

/** Opens a raw MQTT connection to `server`; resolves once TLS or the WebSocket is up. */
export function rawMqttClient(server: TestServer, options: RawMqttOptions = {}): Promise<RawMqttClient> {
  const decoder = new MqttDecoder(options.maxPacketBytes === undefined ? {} : { maxPacketBytes: options.maxPacketBytes })
  const queue: MqttPacket[] = []
  const waiters: ((p: MqttPacket) => void)[] = []
  const deliver = (chunk: Uint8Array) => {
    const r = decoder.push(chunk)
    if (r.error) throw r.error
    for (const p of r.packets) {
      const w = waiters.shift()
      if (w) w(p)
      else queue.push(p)
    }
  }
  const next = () =>
    new Promise<MqttPacket>((resolve) => {
      const p = queue.shift()
      if (p) resolve(p)
      else waiters.push(resolve)
    })
  return new Promise((resolve, reject) => {
    if (options.transport !== 'ws') {
      const tlsOptions = { host: options.host ?? 'localhost', port: server.endpoints.ports.mqtt, ca: server.caPem, ...(options.servername === undefined ? {} : { servername: options.servername }) }
      const socket = tlsConnect(tlsOptions, () => {
        resolve({ send: (p) => socket.write(encodePacket(p)), sendBytes: (b) => socket.write(b), next, closed, end: () => socket.destroy() })
      })
      const closed = new Promise<void>((r) => socket.on('close', () => r()))
      socket.on('data', deliver)
      socket.on('error', reject)
    } else {
      const ws = new WebSocket(`wss://localhost:${server.port}/$iothub/websocket`, ['mqtt'], { ca: server.caPem })
      const closed = new Promise<void>((r) => ws.on('close', () => r()))
      ws.on('open', () => resolve({ send: (p) => ws.send(encodePacket(p)), sendBytes: (b) => ws.send(b), next, closed, end: () => ws.terminate() }))
      ws.on('message', (data: Buffer) => deliver(data))
      ws.on('error', reject)
    }
  })
}

/** A service SAS token of the embedded hub `hostName` (default: the first), valid `ttlSeconds`. */
export function hubServiceToken(server: TestServer, hostName?: string, ttlSeconds = 600): string {
  const hub = hostName === undefined ? server.endpoints.hubs[0] : server.endpoints.hubs.find((h) => h.hostName === hostName)
  if (hub === undefined) throw new Error(`no embedded hub ${hostName ?? ''}`)
  const cs = parseHubConnectionString(hub.connectionString)
  return buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt: Math.floor(Date.now() / 1000) + ttlSeconds })
}

/** One device-to-cloud message as the embedded hub's HTTP API returns it. */
export interface HubTelemetryMessage {
  readonly body: string
  readonly properties: Record<string, string>
  readonly systemProperties: Record<string, string>
  readonly sequenceNumber: number
}

/** Reads the telemetry the embedded hub `hostName` kept for `deviceId`, through its HTTP API. */
export async function readHubTelemetry(server: TestServer, hostName: string, deviceId: string): Promise<{ status: number; body: { messages: HubTelemetryMessage[]; dropped: number } }> {
  const res = await httpsRequest(server.port, server.caPem, 'GET', `/devices/${encodeURIComponent(deviceId)}/messages/events?api-version=2021-04-12`, { headers: { authorization: hubServiceToken(server, hostName, 300) } })
  return { status: res.status, body: JSON.parse(res.body) as never }
}
