/**
 * The browser platform: HTTPS through the global fetch, MQTT over WebSocket through mqtt.js's
 * browser build, AMQP over WebSocket through rhea's self-contained UMD build and the global
 * WebSocket. A browser has no raw TCP and cannot present a client certificate: `mqtt`, `amqp` and
 * X.509 attestation are refused with UNSUPPORTED; TLS trust is the browser's own.
 */
import { Buffer } from 'buffer'
import rheaUmd from 'rhea/dist/rhea-umd.js'
import { DeviceError } from '../errors.js'
import { fetchRequester, type FetchLike, type Platform, type RheaLike, type WebSocketFactory } from '../transport.js'

interface BrowserGlobals {
  fetch?: FetchLike
  WebSocket?: WebSocketFactory
  crypto?: { randomUUID?: () => string; getRandomValues(bytes: Uint8Array): Uint8Array }
}

const g = globalThis as unknown as BrowserGlobals

function uuid(): string {
  if (typeof g.crypto?.randomUUID === 'function') return g.crypto.randomUUID()
  // Outside secure contexts randomUUID is missing; build a version-4 UUID from getRandomValues.
  const b = g.crypto!.getRandomValues(new Uint8Array(16))
  b[6] = (b[6]! & 0x0f) | 0x40
  b[8] = (b[8]! & 0x3f) | 0x80
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/** The browser platform. */
export const browserPlatform: Platform = {
  name: 'browser',
  transports: ['http', 'mqtt-ws', 'amqp-ws'],
  http(_tls, fetchOverride) {
    const f = fetchOverride ?? g.fetch?.bind(globalThis)
    if (f === undefined) throw new DeviceError('UNSUPPORTED', 'no global fetch: pass the fetch option')
    return { request: fetchRequester(f), close: () => undefined }
  },
  // mqtt.js's default browser timers (worker-timers) start a Worker from a blob: URL, which a page
  // whose Content-Security-Policy allows scripts from itself only refuses (and logs). Native
  // timers need no worker; the keep-alive of a hidden tab may then be throttled to once a minute,
  // well inside the hub's 180 s and DPS's keep-alive.
  mqttTlsOptions: () => ({ timerVariant: 'native' }),
  rhea: rheaUmd as unknown as RheaLike,
  amqpTlsOptions() {
    throw new DeviceError('UNSUPPORTED', 'AMQP over TLS sockets is not available in browsers; use amqp-ws')
  },
  webSocket() {
    if (g.WebSocket === undefined) throw new DeviceError('UNSUPPORTED', 'no global WebSocket in this runtime')
    return { impl: g.WebSocket, options: undefined }
  },
  binary: (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  uuid,
}
