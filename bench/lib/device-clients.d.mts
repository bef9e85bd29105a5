// Types of device-clients.mjs (used from TypeScript by test/scale).

export type DeviceTransport = 'https' | 'mqtt' | 'mqtt-ws' | 'amqp' | 'amqp-ws'

export interface OpenDeviceOptions {
  readonly transport: DeviceTransport
  /** Address to connect to (default 127.0.0.1). */
  readonly host?: string
  /** TLS server name (default localhost). */
  readonly servername?: string
  /** The transport's port (the HTTPS port for the WebSocket forms). */
  readonly port: number
  /** PEM of the CA the server's certificate chains to. */
  readonly ca: string
  readonly idScope: string
  readonly registrationId: string
  /** SAS token (symmetric key). */
  readonly sas?: string
  /** Device certificate chain and key, PEM (X.509; HTTPS and MQTT). */
  readonly cert?: string
  readonly key?: string
  /** TLS session tickets by host:port, offered on the next connection. */
  readonly tlsSessions?: Map<string, Buffer>
  /** Per step (connect, each request); default 20 s. */
  readonly timeoutMs?: number
}

export interface DeviceAnswer {
  /** HTTP status, MQTT topic status, or for AMQP 200/202 (or the errorCode's status when rejected). */
  readonly status: number
  readonly body: {
    readonly operationId?: string
    readonly status?: string
    readonly errorCode?: number
    readonly registrationState?: { readonly status?: string; readonly assignedHub?: string; readonly deviceId?: string; readonly errorMessage?: string }
    readonly [key: string]: unknown
  }
  readonly retryAfterMs: number | undefined
}

export interface DeviceConnection {
  register(payload?: unknown): Promise<DeviceAnswer>
  poll(operationId: string): Promise<DeviceAnswer>
  close(): void
}

export function openDevice(options: OpenDeviceOptions): Promise<DeviceConnection>
