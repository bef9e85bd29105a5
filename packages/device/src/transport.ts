/**
 * What the registration flow needs from a transport, and what a platform (Node or browser) gives
 * the transports. The flow (client.ts) is the same on every transport; only how a request travels
 * and how the device authenticates differ.
 */
import { DeviceError } from './errors.js'

/** The five DPS device transports. */
export type TransportName = 'http' | 'mqtt' | 'mqtt-ws' | 'amqp' | 'amqp-ws'

/** Every transport name, in a stable order. */
export const TRANSPORTS: readonly TransportName[] = ['http', 'mqtt', 'mqtt-ws', 'amqp', 'amqp-ws']

/** Largest response body accepted (DPS messages are ≤ 96 KB, §9). */
export const MAX_RESPONSE_BYTES = 256 * 1024

/** TLS settings of a connection (Node; a browser uses its own trust store and rejects client certificates). */
export interface TlsOptions {
  /** Extra trusted CA certificates (PEM). */
  readonly ca?: string | readonly string[]
  /** Client certificate chain (PEM, leaf first): X.509 attestation. */
  readonly cert?: string
  /** Client private key (PEM). */
  readonly key?: string
  /** Default true. */
  readonly rejectUnauthorized?: boolean
}

/** A device registration request body (docs/protocol.md §1.2). */
export interface RegistrationBody {
  registrationId: string
  tpm?: { endorsementKey: string; storageRootKey: string }
  payload?: unknown
  /** Base64 DER PKCS#10 (docs/protocol.md §1.7). */
  csr?: string
}

/** One answer of the service: status (HTTP status, MQTT topic status, or derived for AMQP), JSON body, retry-after. */
export interface DpsReply {
  readonly status: number
  readonly body: unknown
  readonly retryAfterMs: number | undefined
}

/** How the device authenticates on a connection-oriented transport. */
export type ConnectAuth =
  | { readonly kind: 'sas'; readonly token: string }
  | { readonly kind: 'x509' }
  | { readonly kind: 'none' }
  /** AMQP SASL mechanism `TPM` (§5.3): `answer` activates the blob and returns the SAS token. */
  | { readonly kind: 'tpm'; readonly endorsementKey: Uint8Array; readonly storageRootKey: Uint8Array; answer(blob: Uint8Array): Promise<string> }

/** Everything a transport needs to open a session. */
export interface SessionParams {
  readonly host: string
  readonly port: number
  readonly idScope: string
  readonly registrationId: string
  readonly apiVersion: string
  readonly userAgent: string
  readonly tls: TlsOptions
  readonly auth: ConnectAuth
  readonly platform: Platform
  /** Fires when the registration is cancelled or its deadline passes. */
  readonly signal: AbortSignal
  /** Longest wait for a connection (ms). */
  readonly connectTimeoutMs: number
}

/** An open conversation with the service (one connection for MQTT/AMQP; stateless for HTTP). */
export interface DpsSession {
  /** PUT register; `authorization` is the SAS header for HTTP (ignored by the connection transports). */
  register(body: RegistrationBody, authorization: string | undefined, forceRegistration: boolean): Promise<DpsReply>
  /** GET the operation's status. */
  poll(operationId: string, authorization: string | undefined): Promise<DpsReply>
  close(): Promise<void>
}

/** An HTTP request as the platform sends it. */
export interface HttpRequest {
  readonly method: 'PUT' | 'GET' | 'POST' | 'PATCH' | 'DELETE'
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: string
  readonly signal: AbortSignal
}

/** An HTTP response with its whole (bounded) body. */
export interface HttpResponse {
  readonly status: number
  header(name: string): string | undefined
  readonly text: string
}

/** Sends one HTTP request. */
export type HttpRequester = (request: HttpRequest) => Promise<HttpResponse>

/** The subset of the WHATWG fetch the SDK uses (pass your own through the `fetch` option). */
export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal }) => Promise<{
  status: number
  headers: { get(name: string): string | null }
  text(): Promise<string>
}>

/** A WebSocket constructor as rhea's websocket_connect calls it. */
export type WebSocketFactory = new (url: string, protocols: string[], options?: unknown) => unknown

/** The slice of rhea's container the SDK uses (typed here so the core names neither rhea's types nor Node's). */
export interface RheaLike {
  create_container(options?: { id?: string }): RheaContainerLike
  message: { data_section(bytes: unknown): unknown }
}

/** A rhea container. */
export interface RheaContainerLike {
  connect(options: Record<string, unknown>): RheaConnectionLike
  websocket_connect(impl: WebSocketFactory): (url: string, protocols: string[], options?: unknown) => unknown
}

/** An event target in rhea's style. */
export interface RheaEmitterLike {
  on(event: string, handler: (context: RheaContextLike) => void): unknown
  once(event: string, handler: (context: RheaContextLike) => void): unknown
}

/** A rhea connection. */
export interface RheaConnectionLike extends RheaEmitterLike {
  open_sender(options: Record<string, unknown>): RheaSenderLike
  open_receiver(options: Record<string, unknown>): RheaEmitterLike
  close(): void
  is_open(): boolean
  error?: unknown
}

/** A rhea sender link. */
export interface RheaSenderLike extends RheaEmitterLike {
  sendable(): boolean
  send(message: Record<string, unknown>): { id: number }
}

/** What rhea passes to its event handlers. */
export interface RheaContextLike {
  readonly connection?: RheaConnectionLike & { error?: unknown }
  readonly message?: { correlation_id?: unknown; body?: unknown; application_properties?: Record<string, unknown> }
  readonly delivery?: { id: number; remote_state?: { error?: { condition?: unknown; description?: unknown; info?: unknown } } }
  readonly error?: unknown
  readonly receiver?: unknown
  readonly sender?: unknown
}

/** What differs between Node and browsers. */
export interface Platform {
  readonly name: 'node' | 'browser'
  /** The HTTP client for the given TLS settings (Node: node:https; browser: fetch). */
  http(tls: TlsOptions, fetchOverride: FetchLike | undefined): { readonly request: HttpRequester; close(): void }
  /** Transports this platform can open (a browser has no raw TCP: only http, mqtt-ws, amqp-ws). */
  readonly transports: readonly TransportName[]
  /** Options merged into mqtt.js connect options for TLS (Node: ca/cert/key; browser: none). */
  mqttTlsOptions(tls: TlsOptions): Record<string, unknown>
  /** rhea (Node: the package; browser: its self-contained UMD build). */
  readonly rhea: RheaLike
  /** rhea options for a TLS socket (Node) — browsers have only WebSockets. */
  amqpTlsOptions(tls: TlsOptions, host: string, port: number): Record<string, unknown>
  /** WebSocket for rhea and the options to construct it with (Node: ws with TLS; browser: the global). */
  webSocket(tls: TlsOptions): { impl: WebSocketFactory; options: unknown }
  /** Binary data as rhea expects it (a Buffer). */
  binary(bytes: Uint8Array): unknown
  /** Random UUID (correlation-id, $rid). */
  uuid(): string
}

/** Sends one HTTP request through a WHATWG fetch, reading a bounded body. */
export function fetchRequester(fetchImpl: FetchLike): HttpRequester {
  return async (request) => {
    const init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal } = {
      method: request.method,
      headers: { ...request.headers },
      signal: request.signal,
    }
    if (request.body !== undefined) init.body = request.body
    const response = await fetchImpl(request.url, init)
    const text = await response.text()
    if (text.length > MAX_RESPONSE_BYTES) {
      throw new DeviceError('PROTOCOL', `the service's response body is ${text.length} characters, over the limit of ${MAX_RESPONSE_BYTES}`)
    }
    return {
      status: response.status,
      header: (name) => response.headers.get(name) ?? undefined,
      text,
    }
  }
}

/** Parses a retry-after value in integer seconds (header, topic parameter or AMQP property) to ms. */
export function parseRetryAfter(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.min(value, 3600) * 1000
  if (typeof value === 'string' && /^\d{1,6}$/.test(value.trim())) return Math.min(Number(value.trim()), 3600) * 1000
  return undefined
}

/** Parses a JSON body; an empty body is `undefined`, malformed JSON a PROTOCOL error. */
export function parseJsonBody(text: string, what: string): unknown {
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch (cause) {
    throw new DeviceError('PROTOCOL', `${what}: the response body is not JSON (${text.slice(0, 80)})`, { cause })
  }
}
