/**
 * ProvisioningClient: registers a device with a DPS-compatible service over any transport, with
 * any attestation, and waits for its assignment (docs/protocol.md §1.3–1.4):
 *
 * register → 202 {operationId, status: assigning} → wait retry-after → poll … → 200 assigned.
 *
 * 429 and 5xx answers and dropped connections are retried — after the service's retry-after when it
 * sent one, else with jittered exponential backoff — until the deadline; every other refusal is a
 * DeviceError at once. The caller's AbortSignal and the deadline cut any wait short.
 */
import { base64Encode } from '@provisio/crypto'
import { DEFAULT_DEVICE_API_VERSION, deviceRegistrationResource } from '@provisio/protocol'
import { DeviceError, errorFromReply, isDeviceError } from './errors.js'
import { openAmqpSession } from './amqp.js'
import { openHttpSession } from './http.js'
import { openMqttSession } from './mqtt.js'
import { backoffDelay, deadlineSignal, sleep, type RetryPolicy } from './retry.js'
import { activateBlob, resolveRegistrationId, symmetricKeySasToken, tpmSasToken, type SecurityProvider } from './security.js'
import { TRANSPORTS, type ConnectAuth, type DpsReply, type DpsSession, type FetchLike, type Platform, type RegistrationBody, type TlsOptions, type TransportName } from './transport.js'

/** The first device api-version with `csr` and `issuedCertificateChain` (docs/protocol.md §1.6). */
const CERTIFICATE_ISSUANCE_API_VERSION = '2025-07-01-preview'

/** The global device endpoint of Azure DPS. */
export const DEFAULT_GLOBAL_ENDPOINT = 'global.azure-devices-provisioning.net'
/** Default deadline of one registration. */
export const DEFAULT_TIMEOUT_MS = 120_000
/** Poll interval when the service sends no retry-after (the Node SDK's 2 s). */
export const DEFAULT_POLLING_INTERVAL_MS = 2000
/** The User-Agent / ClientVersion the SDK sends. */
export const USER_AGENT = 'provisio-device/0.1.0'

/** Default port of each transport (real DPS). */
export function defaultPort(transport: TransportName): number {
  return transport === 'mqtt' ? 8883 : transport === 'amqp' ? 5671 : 443
}

/** Options of {@link ProvisioningClient}. */
export interface ProvisioningClientOptions {
  /** The DPS instance's ID scope. */
  readonly idScope: string
  /** Transport: 'http' | 'mqtt' | 'mqtt-ws' | 'amqp' | 'amqp-ws'. */
  readonly transport: TransportName
  /** How the device proves who it is: symmetricKey(…), x509(…) or tpm(…). */
  readonly security: SecurityProvider
  /** Device endpoint host (default global.azure-devices-provisioning.net). */
  readonly globalEndpoint?: string
  /** Port of the chosen transport (default 443 for http and the WebSocket transports, 8883 mqtt, 5671 amqp). */
  readonly port?: number
  /** Device API version (default 2019-03-31, as Microsoft's Node SDK). */
  readonly apiVersion?: string
  /** Deadline of one register() call in ms (default 120 000); per call overridable. */
  readonly timeoutMs?: number
  /** Poll interval without retry-after (default 2000 ms). */
  readonly pollingIntervalMs?: number
  /** Longest wait for one connection (default 30 000 ms). */
  readonly connectTimeoutMs?: number
  /** Backoff of transient failures. */
  readonly retry?: RetryPolicy
  /** Node: extra trusted CA certificates (PEM), e.g. Provisio's dev CA. Browsers use their trust store. */
  readonly ca?: string | readonly string[]
  /** Node: verify the server certificate (default true). */
  readonly rejectUnauthorized?: boolean
  /** HTTP transport: a WHATWG fetch to use instead of the platform's (e.g. one with an undici dispatcher). */
  readonly fetch?: FetchLike
  /** User agent / ClientVersion (default provisio-device/0.1.0). */
  readonly userAgent?: string
}

/** Options of one {@link ProvisioningClient.register} call. */
export interface RegisterOptions {
  /** Custom payload for the allocation webhook (registrationState.payload echoes the webhook's answer). */
  readonly payload?: unknown
  /** Cancels the registration; it rejects with DeviceError ABORTED (or the signal's DeviceError reason). */
  readonly signal?: AbortSignal
  /** Deadline in ms from now (overrides the client's timeoutMs); rejects with DEADLINE_EXCEEDED. */
  readonly timeoutMs?: number
  /** Ask for re-provisioning even if the device is assigned (HTTP `forceRegistration`, AMQP `iotdps-forceRegistration`). */
  readonly forceRegistration?: boolean
  /**
   * A PKCS#10 certificate signing request (DER, or its base64) whose subject CN is the registration
   * id: the service answers with `issuedCertificateChain` (docs/protocol.md §1.7). The request then
   * goes out at api-version 2025-07-01-preview unless the client names a later one.
   */
  readonly csr?: Uint8Array | string
}

/** The DeviceRegistrationResult of an assigned device (docs/protocol.md §1.3), as the service sent it. */
export interface RegistrationState {
  readonly registrationId: string
  readonly assignedHub: string
  readonly deviceId: string
  readonly status: string
  readonly substatus?: string
  readonly createdDateTimeUtc?: string
  readonly lastUpdatedDateTimeUtc?: string
  readonly etag?: string
  readonly payload?: unknown
  readonly tpm?: { readonly authenticationKey: string }
  readonly x509?: unknown
  readonly symmetricKey?: unknown
  readonly [field: string]: unknown
}

/** What register() resolves with. */
export interface RegistrationResult {
  readonly status: 'assigned'
  readonly assignedHub: string
  readonly deviceId: string
  readonly substatus: string | undefined
  readonly registrationId: string
  readonly operationId: string
  /** The custom-allocation payload, if the service returned one. */
  readonly payload: unknown
  readonly registrationState: RegistrationState
  /** Requests sent (register, polls, retries). */
  readonly requests: number
  /** Transient failures retried. */
  readonly retries: number
  /** The transport used. */
  readonly transport: TransportName
  /** Base64 DER certificates issued for the register call's `csr`: leaf, issuing CA, …, root. */
  readonly issuedCertificateChain?: readonly string[]
}

/** Observes the flow (for progress output and tests). */
export interface RegisterEvents {
  onRetry?(info: { readonly attempt: number; readonly delayMs: number; readonly error: DeviceError }): void
  /**
   * Every wait of the flow, as it starts: before a poll (the service's retry-after, else the
   * polling interval) and before a retry (after onRetry). `retryAfterMs`: what the service asked for.
   */
  onWait?(info: { readonly reason: 'poll' | 'retry'; readonly delayMs: number; readonly retryAfterMs: number | undefined }): void
}

/** Registers devices with a DPS-compatible service. See the module documentation. The entry points export it as `ProvisioningClient` with their platform. */
export class ProvisioningClientCore {
  readonly #options: ProvisioningClientOptions
  readonly #platform: Platform
  readonly #events: RegisterEvents

  /** @param platform Node or browser (the entry points' `ProvisioningClient` passes it). */
  constructor(options: ProvisioningClientOptions, platform: Platform, events: RegisterEvents = {}) {
    if (typeof options?.idScope !== 'string' || options.idScope === '') throw new DeviceError('INVALID_ARGUMENT', 'ProvisioningClient: idScope is required')
    if (!TRANSPORTS.includes(options.transport)) {
      throw new DeviceError('INVALID_ARGUMENT', `ProvisioningClient: transport must be one of ${TRANSPORTS.join(', ')}, got ${JSON.stringify(options.transport)}`)
    }
    const kind = (options.security as { kind?: unknown } | undefined)?.kind
    if (kind !== 'symmetricKey' && kind !== 'x509' && kind !== 'tpm') {
      throw new DeviceError('INVALID_ARGUMENT', 'ProvisioningClient: security must come from symmetricKey(), x509() or tpm()')
    }
    if (kind === 'x509' && platform.name === 'browser') {
      throw new DeviceError('UNSUPPORTED', 'X.509 attestation is not supported in browsers: a page cannot present a TLS client certificate')
    }
    if (!platform.transports.includes(options.transport)) {
      throw new DeviceError('UNSUPPORTED', `transport ${options.transport} is not available on this platform (${platform.name}); use one of ${platform.transports.join(', ')}`)
    }
    this.#options = options
    this.#platform = platform
    this.#events = events
  }

  /** The transport this client uses. */
  get transport(): TransportName {
    return this.#options.transport
  }

  /** Registers the device and waits for its assignment. */
  async register(options: RegisterOptions = {}): Promise<RegistrationResult> {
    const o = this.#options
    const timeoutMs = options.timeoutMs ?? o.timeoutMs ?? DEFAULT_TIMEOUT_MS
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0)) throw new DeviceError('INVALID_ARGUMENT', `register: timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`)
    const { signal, dispose } = deadlineSignal(options.signal, Date.now() + timeoutMs, 'register')
    try {
      return await this.#register(options, signal)
    } finally {
      dispose()
    }
  }

  async #register(options: RegisterOptions, signal: AbortSignal): Promise<RegistrationResult> {
    const o = this.#options
    const security = o.security
    const registrationId = await resolveRegistrationId(security)
    const tls: TlsOptions = {
      ...(o.ca === undefined ? {} : { ca: o.ca }),
      ...(o.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: o.rejectUnauthorized }),
      ...(security.kind === 'x509' ? { cert: security.cert, key: security.key } : {}),
    }
    const body: RegistrationBody = { registrationId }
    let tpmKeys: { endorsementKey: Uint8Array; storageRootKey: Uint8Array } | undefined
    if (security.kind === 'tpm') {
      try {
        tpmKeys = { endorsementKey: await security.tpm.endorsementKey(), storageRootKey: await security.tpm.storageRootKey() }
      } catch (cause) {
        throw new DeviceError('TPM', `reading the EK/SRK from the TPM failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
      }
      body.tpm = { endorsementKey: base64Encode(tpmKeys.endorsementKey), storageRootKey: base64Encode(tpmKeys.storageRootKey) }
    }
    if (options.payload !== undefined) body.payload = options.payload
    if (options.csr !== undefined) body.csr = typeof options.csr === 'string' ? options.csr : base64Encode(options.csr)
    const apiVersion = o.apiVersion ?? (options.csr !== undefined ? CERTIFICATE_ISSUANCE_API_VERSION : DEFAULT_DEVICE_API_VERSION)
    const resource = deviceRegistrationResource(o.idScope, registrationId)

    // HTTP carries the SAS per request; MQTT/AMQP at connect.
    let authorization: string | undefined
    const connectAuth = async (): Promise<ConnectAuth> => {
      if (security.kind === 'symmetricKey') return { kind: 'sas', token: symmetricKeySasToken(o.idScope, registrationId, security.key, Date.now()) }
      if (security.kind === 'x509') return { kind: 'x509' }
      if (o.transport === 'http') return { kind: 'none' }
      return {
        kind: 'tpm',
        endorsementKey: tpmKeys!.endorsementKey,
        storageRootKey: tpmKeys!.storageRootKey,
        answer: async (blob) => {
          await activateBlob(security.tpm, base64Encode(blob), 'TPM challenge')
          return tpmSasToken(resource, security.tpm, Date.now(), 'registration')
        },
      }
    }
    if (security.kind === 'symmetricKey' && o.transport === 'http') authorization = symmetricKeySasToken(o.idScope, registrationId, security.key, Date.now())

    let session: DpsSession | undefined
    let requests = 0
    let retries = 0
    const policy = o.retry ?? {}
    const openSession = async (): Promise<DpsSession> => {
      const params = {
        host: o.globalEndpoint ?? DEFAULT_GLOBAL_ENDPOINT,
        port: o.port ?? defaultPort(o.transport),
        idScope: o.idScope,
        registrationId,
        apiVersion,
        userAgent: o.userAgent ?? USER_AGENT,
        tls,
        auth: await connectAuth(),
        platform: this.#platform,
        signal,
        connectTimeoutMs: o.connectTimeoutMs ?? 30_000,
      }
      switch (o.transport) {
        case 'http':
          return openHttpSession(params, o.fetch)
        case 'mqtt':
        case 'mqtt-ws':
          return openMqttSession(params, o.transport === 'mqtt-ws')
        case 'amqp':
        case 'amqp-ws':
          return openAmqpSession(params, o.transport === 'amqp-ws')
      }
    }

    /** Sends one request, retrying transient failures; returns the first non-transient reply. */
    const exchange = async (send: (s: DpsSession) => Promise<DpsReply>, what: string): Promise<DpsReply> => {
      for (let attempt = 0; ; attempt++) {
        let failure: DeviceError
        try {
          session ??= await openSession()
          requests++
          const reply = await send(session)
          if (reply.status < 429) return reply
          failure = errorFromReply(reply.status, reply.body, reply.retryAfterMs, what)
        } catch (error) {
          if (signal.aborted) throw signalError(signal, error)
          if (!isDeviceError(error) || !error.transient) throw error
          failure = error
          // A dropped connection is reopened; a refused request (rejected delivery) keeps it.
          if (error.code === 'TRANSPORT' && session !== undefined) {
            const old = session
            session = undefined
            await closeWithin(old, signal)
          }
        }
        if (policy.maxRetries !== undefined && attempt >= policy.maxRetries) throw failure
        const delayMs = backoffDelay(attempt, failure.retryAfterMs, policy)
        retries++
        this.#events.onRetry?.({ attempt, delayMs, error: failure })
        this.#events.onWait?.({ reason: 'retry', delayMs, retryAfterMs: failure.retryAfterMs })
        try {
          await sleep(delayMs, signal, what)
        } catch (error) {
          throw signalError(signal, error, failure)
        }
      }
    }

    try {
      const force = options.forceRegistration ?? false
      let reply = await exchange((s) => s.register(body, authorization, force), 'register')
      if (security.kind === 'tpm' && o.transport === 'http' && reply.status === 401) {
        const key = (reply.body as { authenticationKey?: unknown } | undefined)?.authenticationKey
        if (typeof key !== 'string') throw errorFromReply(reply.status, reply.body, undefined, 'register (TPM first leg)')
        await activateBlob(security.tpm, key, 'TPM challenge')
        authorization = await tpmSasToken(resource, security.tpm, Date.now(), 'registration')
        reply = await exchange((s) => s.register(body, authorization, force), 'register')
      }
      for (;;) {
        if (reply.status >= 300) throw errorFromReply(reply.status, reply.body, reply.retryAfterMs, 'register')
        const status = readStatus(reply.body)
        if (status.status === 'assigned') {
          const state = status.registrationState
          if (state === undefined || typeof state['assignedHub'] !== 'string' || typeof state['deviceId'] !== 'string') {
            throw new DeviceError('PROTOCOL', 'the service answered "assigned" without registrationState.assignedHub and deviceId')
          }
          const rs = state as RegistrationState
          if (security.kind === 'tpm' && rs.tpm?.authenticationKey !== undefined) {
            // The hub key arrives as a second activation blob; the TPM now signs hub tokens with it (§5.2 step 4).
            await activateBlob(security.tpm, rs.tpm.authenticationKey, 'hub key')
          }
          return {
            status: 'assigned',
            assignedHub: rs.assignedHub,
            deviceId: rs.deviceId,
            substatus: typeof rs.substatus === 'string' ? rs.substatus : undefined,
            registrationId,
            operationId: status.operationId,
            payload: rs.payload,
            registrationState: rs,
            requests,
            retries,
            transport: o.transport,
            ...(Array.isArray(rs['issuedCertificateChain']) ? { issuedCertificateChain: (rs['issuedCertificateChain'] as unknown[]).filter((c): c is string => typeof c === 'string') } : {}),
          }
        }
        if (status.status === 'failed' || status.status === 'disabled') {
          const state = status.registrationState ?? {}
          const errorCode = typeof state['errorCode'] === 'number' ? state['errorCode'] : undefined
          const message = typeof state['errorMessage'] === 'string' ? state['errorMessage'] : undefined
          throw new DeviceError(
            status.status === 'failed' ? 'REGISTRATION_FAILED' : 'REGISTRATION_DISABLED',
            `registration ${status.status}${errorCode === undefined ? '' : ` (errorCode ${errorCode})`}${message === undefined ? '' : `: ${message}`}`,
            { ...(errorCode === undefined ? {} : { errorCode, status: Math.floor(errorCode / 1000) }), ...(message === undefined ? {} : { serverMessage: message }) },
          )
        }
        if (status.status !== 'assigning' && status.status !== 'unassigned') {
          throw new DeviceError('PROTOCOL', `the service answered the unknown status ${JSON.stringify(status.status)}`)
        }
        if (status.operationId === '') throw new DeviceError('PROTOCOL', 'the service answered "assigning" without an operationId')
        const pollDelayMs = reply.retryAfterMs ?? o.pollingIntervalMs ?? DEFAULT_POLLING_INTERVAL_MS
        this.#events.onWait?.({ reason: 'poll', delayMs: pollDelayMs, retryAfterMs: reply.retryAfterMs })
        await sleep(pollDelayMs, signal, 'poll').catch((error: unknown) => {
          throw signalError(signal, error)
        })
        const operationId = status.operationId
        reply = await exchange((s) => s.poll(operationId, authorization), 'operation status')
      }
    } finally {
      if (session !== undefined) await closeWithin(session, signal)
    }
  }
}

/**
 * Closes a session without letting its close hold the registration past its deadline: the wait
 * ends when the close is done or the signal fires, whichever is first (a close the transport cannot
 * finish goes on in the background, bounded by the transport itself).
 */
function closeWithin(session: DpsSession, signal: AbortSignal): Promise<void> {
  const closing = session.close().catch(() => undefined)
  if (signal.aborted) return Promise.resolve()
  return new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
    void closing.then(done)
  })
}

function readStatus(body: unknown): { operationId: string; status: string; registrationState: Record<string, unknown> | undefined } {
  if (typeof body !== 'object' || body === null) throw new DeviceError('PROTOCOL', 'the service answered without a RegistrationOperationStatus body')
  const b = body as Record<string, unknown>
  const rs = b['registrationState']
  const status = typeof b['status'] === 'string' ? b['status'] : typeof (rs as Record<string, unknown> | undefined)?.['status'] === 'string' ? ((rs as Record<string, unknown>)['status'] as string) : undefined
  if (status === undefined) throw new DeviceError('PROTOCOL', 'the service answered a RegistrationOperationStatus without status')
  return {
    operationId: typeof b['operationId'] === 'string' ? b['operationId'] : '',
    status,
    registrationState: typeof rs === 'object' && rs !== null ? (rs as Record<string, unknown>) : undefined,
  }
}

/** The error to throw when the signal fired: its DeviceError reason (deadline), or ABORTED; keeps the last failure as cause. */
function signalError(signal: AbortSignal, error: unknown, lastFailure?: DeviceError): DeviceError {
  const reason: unknown = signal.reason
  if (reason instanceof DeviceError) {
    if (lastFailure === undefined) return reason
    return new DeviceError(reason.code, `${reason.message}; the last failure was: ${lastFailure.message}`, {
      cause: lastFailure,
      ...(lastFailure.errorCode === undefined ? {} : { errorCode: lastFailure.errorCode }),
      ...(lastFailure.status === undefined ? {} : { status: lastFailure.status }),
    })
  }
  if (isDeviceError(error) && error.code === 'ABORTED') return error
  return new DeviceError('ABORTED', `register: aborted${reason instanceof Error ? ` (${reason.message})` : ''}`, { cause: reason })
}
