/**
 * A small IoT Hub device client over MQTT 3.1.1 (TLS or WebSocket), speaking the hub device dialect
 * as Microsoft's azure-iot-device-mqtt does (docs/protocol.md §11):
 *
 * - CONNECT: clientId = deviceId, username `{hub}/{deviceId}/?api-version=2021-04-12&DeviceClientType={UA}`,
 *   password = device SAS `sr={hub}%2Fdevices%2F{deviceId}` without skn (symmetric key or TPM), none
 *   for X.509 (the TLS client certificate); clean session 0, keep-alive 180 s.
 * - Twin: SUBSCRIBE `$iothub/twin/res/#` and `$iothub/twin/PATCH/properties/desired/#` (QoS 0);
 *   GET = PUBLISH `$iothub/twin/GET/?$rid={rid}`; reported = PUBLISH
 *   `$iothub/twin/PATCH/properties/reported/?$rid={rid}` with the JSON patch; answers on
 *   `$iothub/twin/res/{status}/?$rid={rid}[&$version={n}]`; desired changes arrive on
 *   `$iothub/twin/PATCH/properties/desired/?$version={n}`.
 * - Direct methods: SUBSCRIBE `$iothub/methods/POST/#` (QoS 0); a call arrives on
 *   `$iothub/methods/POST/{name}/?$rid={rid}` with a JSON payload, the handler's answer goes out on
 *   `$iothub/methods/res/{status}/?$rid={rid}` with its JSON payload.
 * - Telemetry: PUBLISH QoS 1 on `devices/{deviceId}/messages/events/{system and application properties}`.
 *
 * No automatic reconnection: a dropped connection rejects pending requests with a transient
 * TRANSPORT DeviceError and fires `onDisconnect`; connect again to continue.
 */
import type { IClientOptions, MqttClient } from 'mqtt'
import {
  MAX_METHOD_PAYLOAD_BYTES,
  METHODS_FILTER,
  TWIN_DESIRED_FILTER,
  TWIN_RESPONSE_FILTER,
  buildSasToken,
  formatHubUsername,
  formatMethodResponseTopic,
  formatTelemetryTopic,
  formatTwinRequestTopic,
  hubDeviceResource,
  parseDesiredTopic,
  parseMethodRequestTopic,
  parseTwinResponseTopic,
} from '@provisio/protocol'
import { DeviceError } from './errors.js'
import { connectMqtt } from './mqtt.js'
import { abortable } from './retry.js'
import { SAS_LIFETIME_SECONDS, tpmSasToken, type SecurityProvider } from './security.js'
import { MAX_RESPONSE_BYTES, type Platform, type TlsOptions } from './transport.js'

/** The hub API version azure-iot-device sends. */
export const HUB_API_VERSION = '2021-04-12'
export { TWIN_RESPONSE_FILTER, TWIN_DESIRED_FILTER, parseTwinResponseTopic }

/** Options of {@link connectHub}. */
export interface HubClientOptions {
  /** The hub host name (a registration's `assignedHub`). */
  readonly hostName: string
  /** The device id on the hub (a registration's `deviceId`). */
  readonly deviceId: string
  /** The device's credential: the same provider it registered with (symmetric key, X.509 or TPM holding the hub key). */
  readonly security: SecurityProvider
  /** 'mqtt' (TLS, default port 8883) or 'mqtt-ws' (WebSocket at /$iothub/websocket, default 443). */
  readonly transport?: 'mqtt' | 'mqtt-ws'
  /** Host to connect to when it differs from hostName (like GatewayHostName); TLS SNI stays this host. */
  readonly gatewayHost?: string
  readonly port?: number
  /** Node: extra trusted CA certificates (PEM). */
  readonly ca?: string | readonly string[]
  readonly rejectUnauthorized?: boolean
  readonly connectTimeoutMs?: number
  /** Cancels connect(). */
  readonly signal?: AbortSignal
  readonly userAgent?: string
}

/** A device twin as the hub returns it to the device. */
export interface DeviceTwinDocument {
  readonly desired: Record<string, unknown> & { readonly $version?: number }
  readonly reported: Record<string, unknown> & { readonly $version?: number }
}

/** Options of {@link HubClient.sendTelemetry}. */
export interface TelemetryOptions {
  /** Application properties (topic key/value pairs). */
  readonly properties?: Readonly<Record<string, string>>
  readonly messageId?: string
  readonly correlationId?: string
  /** Content type (`$.ct`), default `application/json` for objects. */
  readonly contentType?: string
  /** Content encoding (`$.ce`), default `utf-8` for objects and strings. */
  readonly contentEncoding?: string
}

/** A direct method call as the device receives it. */
export interface MethodRequest {
  readonly methodName: string
  /** The call's request id (the response carries it back). */
  readonly rid: string
  /** The JSON payload the caller sent (null when none; the text itself when it is not JSON). */
  readonly payload: unknown
}

/** A device's answer to a direct method call: any integer status and a JSON payload (null when absent). */
export interface MethodResponse {
  readonly status: number
  readonly payload?: unknown
}

/** Answers a direct method call; may be async. A throw answers 500 with the error's message. */
export type MethodHandler = (request: MethodRequest) => MethodResponse | Promise<MethodResponse>

/** The telemetry topic of a message (system properties first, then application properties). */
export const telemetryTopic = formatTelemetryTopic

/** A connected hub device. Create it with the entry's `connectHub(options)`. */
export class HubClient {
  readonly #client: MqttClient
  readonly #platform: Platform
  readonly #deviceId: string
  readonly #pending = new Map<string, { resolve(v: { status: number; version: number | undefined; body: unknown }): void; reject(e: unknown): void }>()
  readonly #desired = new Set<(patch: Record<string, unknown>, version: number | undefined) => void>()
  readonly #disconnect = new Set<(error: DeviceError) => void>()
  readonly #methods = new Map<string, MethodHandler>()
  #closed: DeviceError | undefined

  private constructor(client: MqttClient, platform: Platform, deviceId: string) {
    this.#client = client
    this.#platform = platform
    this.#deviceId = deviceId
    client.on('message', (topic, payload) => this.#onMessage(topic, payload))
    client.on('close', () => {
      const error = (this.#closed ??= new DeviceError('TRANSPORT', 'hub MQTT connection closed', { transient: true }))
      for (const p of this.#pending.values()) p.reject(error)
      this.#pending.clear()
      for (const l of this.#disconnect) l(error)
      this.#disconnect.clear()
    })
  }

  /** @internal Connects; the entries' `connectHub` passes their platform. */
  static async connect(options: HubClientOptions, platform: Platform): Promise<HubClient> {
    const { hostName, deviceId, security } = options
    if (typeof hostName !== 'string' || hostName === '' || typeof deviceId !== 'string' || deviceId === '') {
      throw new DeviceError('INVALID_ARGUMENT', 'connectHub: hostName and deviceId are required')
    }
    const transport = options.transport ?? 'mqtt'
    if (transport !== 'mqtt' && transport !== 'mqtt-ws') throw new DeviceError('INVALID_ARGUMENT', `connectHub: transport must be mqtt or mqtt-ws, got ${JSON.stringify(transport)}`)
    if (!platform.transports.includes(transport)) throw new DeviceError('UNSUPPORTED', `transport ${transport} is not available on this platform (${platform.name})`)
    if (security.kind === 'x509' && platform.name === 'browser') throw new DeviceError('UNSUPPORTED', 'X.509 is not supported in browsers')
    const resource = hubDeviceResource(hostName, deviceId)
    const now = Date.now()
    let password: string | undefined
    if (security.kind === 'symmetricKey') {
      password = buildSasToken({ resource, key: security.key, expiresAt: Math.floor(now / 1000) + SAS_LIFETIME_SECONDS, encodeResource: 'encodeUriComponentStrict' })
    } else if (security.kind === 'tpm') {
      password = await tpmSasToken(resource, security.tpm, now)
    }
    const tls: TlsOptions = {
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      ...(options.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: options.rejectUnauthorized }),
      ...(security.kind === 'x509' ? { cert: security.cert, key: security.key } : {}),
    }
    const host = options.gatewayHost ?? hostName
    const port = options.port ?? (transport === 'mqtt' ? 8883 : 443)
    const url = transport === 'mqtt' ? `mqtts://${host}:${port}` : `wss://${host}:${port}/$iothub/websocket`
    const userAgent = options.userAgent ?? 'provisio-device/0.1.0'
    const mqttOptions: IClientOptions = {
      clientId: deviceId,
      username: formatHubUsername(hostName, deviceId, HUB_API_VERSION, userAgent),
      clean: false,
      keepalive: 180,
      connectTimeout: options.connectTimeoutMs ?? 30_000,
      ...(password === undefined ? {} : { password }),
      ...platform.mqttTlsOptions(tls),
      ...(transport === 'mqtt' && host !== hostName ? { servername: hostName } : {}),
    }
    const signal = options.signal ?? new AbortController().signal
    const client = await connectMqtt(url, mqttOptions, signal, `${host}:${port}`)
    const hub = new HubClient(client, platform, deviceId)
    try {
      const granted = await abortable(client.subscribeAsync({ [TWIN_RESPONSE_FILTER]: { qos: 0 }, [TWIN_DESIRED_FILTER]: { qos: 0 }, [METHODS_FILTER]: { qos: 0 } }), signal, 'hub subscribe')
      const refused = granted.filter((g) => g.qos === 128)
      if (refused.length > 0) throw new DeviceError('REFUSED', `the hub refused the subscription to ${refused.map((g) => g.topic).join(', ')}`)
    } catch (error) {
      client.end(true)
      throw error instanceof DeviceError ? error : new DeviceError('TRANSPORT', `hub subscribe failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error, transient: true })
    }
    return hub
  }

  /** The device id. */
  get deviceId(): string {
    return this.#deviceId
  }

  /** The twin's desired and reported properties. */
  async getTwin(): Promise<DeviceTwinDocument> {
    const r = await this.#twinRequest('GET', ' ')
    const body = r.body as Partial<DeviceTwinDocument> | undefined
    if (typeof body !== 'object' || body === null) throw new DeviceError('PROTOCOL', 'twin GET answered without a twin document')
    return { desired: body.desired ?? {}, reported: body.reported ?? {} }
  }

  /** Patches reported properties; resolves with the new reported version when the hub sends one. */
  async updateReported(patch: Record<string, unknown>): Promise<number | undefined> {
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw new DeviceError('INVALID_ARGUMENT', 'updateReported: the patch must be a JSON object')
    return (await this.#twinRequest('PATCH', JSON.stringify(patch))).version
  }

  /** Calls `listener(patch, version)` for every desired-property change; returns an unsubscribe function. */
  onDesired(listener: (patch: Record<string, unknown>, version: number | undefined) => void): () => void {
    this.#desired.add(listener)
    return () => void this.#desired.delete(listener)
  }

  /**
   * Answers direct methods named `methodName` (`'*'`: every method without a handler of its own)
   * with `handler`; replaces an earlier handler of that name and returns a function that removes it.
   * A call no handler takes is answered 501.
   */
  onMethod(methodName: string, handler: MethodHandler): () => void {
    if (typeof methodName !== 'string' || methodName === '') throw new DeviceError('INVALID_ARGUMENT', "onMethod: the method name must be a non-empty string (or '*' for every method)")
    if (typeof handler !== 'function') throw new DeviceError('INVALID_ARGUMENT', 'onMethod: the handler must be a function')
    this.#methods.set(methodName, handler)
    return () => {
      if (this.#methods.get(methodName) === handler) this.#methods.delete(methodName)
    }
  }

  /** Calls `listener(error)` once when the connection drops or is closed. */
  onDisconnect(listener: (error: DeviceError) => void): () => void {
    this.#disconnect.add(listener)
    return () => void this.#disconnect.delete(listener)
  }

  /** Sends one telemetry message (QoS 1: resolves on PUBACK). Objects are sent as JSON. */
  sendTelemetry(body: string | Uint8Array | Record<string, unknown>, options: TelemetryOptions = {}): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed)
    const isObject = typeof body === 'object' && !(body instanceof Uint8Array)
    const payload = isObject ? JSON.stringify(body) : body
    const size = typeof payload === 'string' ? new TextEncoder().encode(payload).length : payload.length
    if (size > MAX_RESPONSE_BYTES) return Promise.reject(new DeviceError('INVALID_ARGUMENT', `telemetry of ${size} bytes is over the hub's 256 KiB limit`))
    const topic = telemetryTopic(
      this.#deviceId,
      {
        '$.mid': options.messageId,
        '$.cid': options.correlationId,
        '$.ct': options.contentType ?? (isObject ? 'application/json' : undefined),
        '$.ce': options.contentEncoding ?? (typeof payload === 'string' ? 'utf-8' : undefined),
      },
      options.properties,
    )
    return new Promise((resolve, reject) => {
      this.#client.publish(topic, typeof payload === 'string' ? payload : (this.#platform.binary(payload) as Uint8Array as never), { qos: 1 }, (error) => {
        if (error === undefined || error === null) resolve()
        else reject(new DeviceError('TRANSPORT', `telemetry publish failed: ${error.message}`, { cause: error, transient: true }))
      })
    })
  }

  /** Disconnects. */
  close(): Promise<void> {
    this.#closed ??= new DeviceError('TRANSPORT', 'hub client closed')
    return new Promise((resolve) => this.#client.end(false, {}, () => resolve()))
  }

  #twinRequest(method: 'GET' | 'PATCH', payload: string): Promise<{ status: number; version: number | undefined; body: unknown }> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed)
    const rid = this.#platform.uuid()
    const what = method === 'GET' ? 'twin GET' : 'twin PATCH /properties/reported/'
    return new Promise<{ status: number; version: number | undefined; body: unknown }>((resolve, reject) => {
      this.#pending.set(rid, { resolve, reject })
      this.#client.publish(formatTwinRequestTopic(method === 'GET' ? 'twinGet' : 'reportedPatch', rid), payload, { qos: 0 }, (error) => {
        if (error === undefined || error === null) return
        this.#pending.delete(rid)
        reject(new DeviceError('TRANSPORT', `${what}: publish failed: ${error.message}`, { cause: error, transient: true }))
      })
    }).then((r) => {
      if (r.status >= 300) {
        const b = r.body as { errorCode?: unknown; message?: unknown } | undefined
        throw new DeviceError(r.status >= 429 ? 'RETRIES_EXHAUSTED' : 'REFUSED', `${what}: the hub answered ${r.status}${typeof b?.message === 'string' ? `: ${b.message}` : ''}`, {
          status: r.status,
          transient: r.status >= 429,
          ...(typeof b?.errorCode === 'number' ? { errorCode: b.errorCode } : {}),
          ...(typeof b?.message === 'string' ? { serverMessage: b.message } : {}),
        })
      }
      return r
    })
  }

  /** Runs the call's handler and publishes its answer; a missing handler, a throw or a bad answer becomes an error status. */
  async #answerMethod(methodName: string, rid: string, text: string): Promise<void> {
    let payload: unknown = text
    try {
      payload = text.trim() === '' ? null : (JSON.parse(text) as unknown)
    } catch {
      // Not JSON: the handler gets the text as sent.
    }
    const handler = this.#methods.get(methodName) ?? this.#methods.get('*')
    let answer: { status: number; body: string }
    if (handler === undefined) {
      answer = methodError(501, `this device has no handler for method ${JSON.stringify(methodName)}`)
    } else {
      try {
        const r = await handler({ methodName, rid, payload })
        const body = JSON.stringify(r.payload ?? null)
        if (!Number.isInteger(r.status)) answer = methodError(500, `the handler of ${JSON.stringify(methodName)} answered with status ${JSON.stringify(r.status)}, not an integer`)
        else if (new TextEncoder().encode(body).length > MAX_METHOD_PAYLOAD_BYTES) answer = methodError(500, `the handler of ${JSON.stringify(methodName)} answered with a payload over ${MAX_METHOD_PAYLOAD_BYTES} bytes`)
        else answer = { status: r.status, body }
      } catch (error) {
        answer = methodError(500, `the handler of ${JSON.stringify(methodName)} failed: ${error instanceof Error ? error.message : String(error)}`)
      }
    }
    if (this.#closed !== undefined) return
    // QoS 0 as the SDKs answer; a failed publish means the connection is gone and the caller gets 404103/504101.
    this.#client.publish(formatMethodResponseTopic(answer.status, rid), answer.body, { qos: 0 }, () => undefined)
  }

  #onMessage(topic: string, payload: Uint8Array): void {
    if (payload.length > MAX_RESPONSE_BYTES) return
    const text = new TextDecoder().decode(payload)
    const parsed = parseTwinResponseTopic(topic)
    if (parsed !== undefined) {
      const waiter = this.#pending.get(parsed.rid)
      if (waiter === undefined) return
      this.#pending.delete(parsed.rid)
      let body: unknown
      try {
        body = text.trim() === '' ? undefined : (JSON.parse(text) as unknown)
      } catch (cause) {
        waiter.reject(new DeviceError('PROTOCOL', `twin response on ${topic} is not JSON`, { cause }))
        return
      }
      waiter.resolve({ status: parsed.status, version: parsed.version, body })
      return
    }
    const method = parseMethodRequestTopic(topic)
    if (method !== undefined) {
      void this.#answerMethod(method.methodName, method.rid, text)
      return
    }
    const desired = parseDesiredTopic(topic)
    if (desired !== undefined) {
      let patch: unknown
      try {
        patch = JSON.parse(text) as unknown
      } catch {
        return
      }
      if (typeof patch !== 'object' || patch === null) return
      const version = desired.version !== undefined ? desired.version : typeof (patch as { $version?: unknown }).$version === 'number' ? ((patch as { $version: number }).$version) : undefined
      for (const l of this.#desired) l(patch as Record<string, unknown>, version)
    }
  }
}

function methodError(status: number, message: string): { status: number; body: string } {
  return { status, body: JSON.stringify({ message }) }
}
