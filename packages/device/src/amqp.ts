/**
 * DPS over AMQP 1.0 (docs/protocol.md §4, §5.3) on rhea, over TLS (`amqps://host:5671`) or WebSocket
 * (`wss://host:443/$iothub/websocket`, subprotocol `AMQPWSB10`; what runs in a browser, through
 * rhea's `websocket_connect` with the global WebSocket).
 *
 * Authentication: SASL PLAIN with authcid `{idScope}/registrations/{id}` and the device SAS as
 * password (symmetric key); no SASL layer at all (X.509, the TLS client certificate); SASL `TPM`
 * (init = 0 ‖ idScope ‖ 0 ‖ id ‖ 0 ‖ EK, then 0 ‖ SRK, then the activation blob in chunks whose
 * control byte is 0x80|seq or 0xC0|seq for the last, answered with 0 and finally 0 ‖ SAS).
 * One session, a sender and a receiver link on `{idScope}/registrations/{id}` with
 * `com.microsoft:api-version` and `com.microsoft:client-version`. Requests carry
 * `iotdps-operation-type` (and `iotdps-forceRegistration` / `iotdps-operation-id`) and a string
 * correlation-id; answers come back on the receiver link with that correlation-id, a data section
 * holding the RegistrationOperationStatus and `retry-after`. Refusals are rejected deliveries whose
 * error description is the JSON error body.
 */
import { utf8Decode, utf8Encode } from '@provisio/crypto'
import { concat } from '@provisio/tpm'
import { DeviceError, errorFromReply } from './errors.js'
import { abortable } from './retry.js'
import { MAX_RESPONSE_BYTES, parseJsonBody, parseRetryAfter, type DpsReply, type DpsSession, type RheaConnectionLike, type RheaContextLike, type SessionParams } from './transport.js'

/** Status a rejected delivery stands for, from its condition (when the body carries no errorCode). */
function statusOfCondition(condition: unknown): number {
  switch (condition) {
    case 'com.microsoft:device-container-throttled':
      return 429
    case 'amqp:internal-error':
      return 500
    case 'amqp:unauthorized-access':
      return 401
    case 'amqp:not-found':
      return 404
    case 'com.microsoft:precondition-failed':
      return 412
    default:
      return 400
  }
}

/** The DeviceError of a rejected delivery (condition, JSON error body in the description, retry-after in info). */
export function rejectionError(error: { condition?: unknown; description?: unknown; info?: unknown } | undefined, what: string): DeviceError {
  let body: unknown
  if (typeof error?.description === 'string') {
    try {
      body = JSON.parse(error.description) as unknown
    } catch {
      body = { message: error.description }
    }
  }
  const errorCode = (body as { errorCode?: unknown } | undefined)?.errorCode
  const status = typeof errorCode === 'number' && errorCode >= 100000 ? Math.floor(errorCode / 1000) : statusOfCondition(error?.condition)
  const info = (error?.info ?? {}) as Record<string, unknown>
  return errorFromReply(status, body, parseRetryAfter(info['retry-after'] ?? info['Retry-After']), `${what} (AMQP ${String(error?.condition ?? 'rejected')})`)
}

function connectionError(context: RheaContextLike, where: string, opened: boolean): DeviceError {
  const err = (context.connection?.error ?? context.error) as { condition?: unknown; description?: unknown; message?: unknown } | undefined
  const condition = typeof err?.condition === 'string' ? err.condition : undefined
  const text = typeof err?.description === 'string' ? err.description : typeof err?.message === 'string' ? err.message : String(err ?? 'closed')
  if (condition === 'amqp:unauthorized-access') {
    return new DeviceError('REFUSED', `AMQP connection to ${where} refused: ${text}`, { status: 401, cause: err })
  }
  return new DeviceError('TRANSPORT', `AMQP connection to ${where} ${opened ? 'lost' : 'failed'}${condition === undefined ? '' : ` (${condition})`}: ${text}`, { transient: true, cause: err })
}

/** Opens an AMQP or AMQP-over-WebSocket DPS session. */
export async function openAmqpSession(params: SessionParams, overWebSocket: boolean): Promise<DpsSession> {
  const { platform } = params
  const where = `${params.host}:${params.port}`
  const address = `${params.idScope}/registrations/${params.registrationId}`
  const container = platform.rhea.create_container({ id: `provisio-device-${platform.uuid()}` })
  const options: Record<string, unknown> = {
    reconnect: false,
    hostname: params.host,
    idle_time_out: 240_000,
    properties: { 'com.microsoft:client-version': params.userAgent },
  }
  if (overWebSocket) {
    const ws = platform.webSocket(params.tls)
    options['connection_details'] = container.websocket_connect(ws.impl)(`wss://${params.host}:${params.port}/$iothub/websocket`, ['AMQPWSB10'], ws.options)
  } else {
    Object.assign(options, platform.amqpTlsOptions(params.tls, params.host, params.port))
  }
  const auth = params.auth
  if (auth.kind === 'sas') {
    options['username'] = address
    options['password'] = auth.token
  } else if (auth.kind === 'tpm') {
    let collected: Uint8Array[] = []
    options['sasl_init_hostname'] = address
    options['sasl_mechanisms'] = {
      TPM: {
        start(callback: (error: unknown, response?: unknown) => void) {
          const init = concat(Uint8Array.of(0), utf8Encode(params.idScope), Uint8Array.of(0), utf8Encode(params.registrationId), Uint8Array.of(0), auth.endorsementKey)
          callback(undefined, platform.binary(init))
        },
        step(challenge: Uint8Array, callback: (error: unknown, response?: unknown) => void) {
          if (challenge.length === 1) {
            callback(undefined, platform.binary(concat(Uint8Array.of(0), auth.storageRootKey)))
            return
          }
          const ctrl = challenge[0] ?? 0
          if ((ctrl & 0x80) === 0) {
            callback(new Error(`unexpected TPM challenge control byte 0x${ctrl.toString(16)}`))
            return
          }
          collected.push(Uint8Array.prototype.slice.call(challenge, 1))
          if ((ctrl & 0xc0) !== 0xc0) {
            callback(undefined, platform.binary(Uint8Array.of(0)))
            return
          }
          const blob = concat(...collected)
          collected = []
          auth.answer(blob).then(
            (token) => callback(undefined, platform.binary(concat(Uint8Array.of(0), utf8Encode(token)))),
            (error: unknown) => {
              tpmFailure = error
              callback(error instanceof Error ? error.message : String(error))
            },
          )
        },
      },
    }
  }
  let tpmFailure: unknown

  const connection: RheaConnectionLike = container.connect(options)
  let opened = false
  let closedError: DeviceError | undefined
  const pending = new Map<string, { resolve(reply: DpsReply): void; reject(error: unknown): void }>()
  const byDelivery = new Map<number, string>()
  const failAll = (error: DeviceError) => {
    closedError ??= error
    for (const p of pending.values()) p.reject(closedError)
    pending.clear()
    byDelivery.clear()
  }
  const ready = new Promise<void>((resolve, reject) => {
    let receiverOpen = false
    let senderOpen = false
    const check = () => {
      if (opened && receiverOpen && senderOpen) resolve()
    }
    const fail = (context: RheaContextLike) => {
      const error = tpmFailure instanceof DeviceError ? tpmFailure : connectionError(context, where, opened)
      failAll(error)
      reject(error)
    }
    connection.on('connection_open', () => {
      opened = true
      check()
    })
    connection.on('connection_error', fail)
    connection.on('connection_close', fail)
    connection.on('disconnected', fail)
    connection.on('receiver_open', () => {
      receiverOpen = true
      check()
    })
    connection.on('sendable', () => {
      senderOpen = true
      check()
    })
    const linkError = (context: RheaContextLike) => {
      const link = (context.receiver ?? context.sender) as { error?: { condition?: unknown; description?: unknown } } | undefined
      const e = link?.error
      const error = new DeviceError(e?.condition === 'amqp:unauthorized-access' ? 'REFUSED' : 'PROTOCOL', `AMQP link on ${address} refused: ${String(e?.condition)} ${String(e?.description ?? '')}`, { status: statusOfCondition(e?.condition) })
      failAll(error)
      reject(error)
    }
    connection.on('receiver_error', linkError)
    connection.on('sender_error', linkError)
  })
  ready.catch(() => undefined)
  const linkProperties = { 'com.microsoft:api-version': params.apiVersion, 'com.microsoft:client-version': params.userAgent }
  connection.open_receiver({ source: { address }, properties: linkProperties, autoaccept: true, credit_window: 16 })
  const sender = connection.open_sender({ target: { address }, properties: linkProperties })

  try {
    await abortable(ready, params.signal, `AMQP connect to ${where}`)
  } catch (error) {
    connection.close()
    throw error
  }

  connection.on('message', (context) => {
    const message = context.message
    const cid = message?.correlation_id
    const key = typeof cid === 'string' ? cid : String(cid)
    const waiter = pending.get(key)
    if (waiter === undefined) return
    pending.delete(key)
    try {
      const raw = message?.body as { content?: unknown; typecode?: number } | string | Uint8Array | undefined
      let text: string
      if (typeof raw === 'string') text = raw
      else if (raw instanceof Uint8Array) text = utf8Decode(raw)
      else if (raw !== undefined && raw.content instanceof Uint8Array) text = utf8Decode(raw.content)
      else throw new DeviceError('PROTOCOL', 'AMQP response body is neither a data section nor a string')
      if (text.length > MAX_RESPONSE_BYTES) throw new DeviceError('PROTOCOL', `AMQP response of ${text.length} characters is over the limit`)
      const body = parseJsonBody(text, 'AMQP response')
      const status = (body as { status?: unknown } | undefined)?.status === 'assigning' ? 202 : 200
      const props = message?.application_properties ?? {}
      waiter.resolve({ status, body, retryAfterMs: parseRetryAfter(props['retry-after'] ?? props['Retry-After']) })
    } catch (error) {
      waiter.reject(error)
    }
  })
  /** The request a settled delivery belongs to, taken out of both tables. */
  const takeDelivery = (id: number | undefined) => {
    const key = id === undefined ? undefined : byDelivery.get(id)
    if (key === undefined) return undefined
    byDelivery.delete(id!)
    const waiter = pending.get(key)
    pending.delete(key)
    return waiter
  }
  connection.on('rejected', (context) => {
    takeDelivery(context.delivery?.id)?.reject(rejectionError(context.delivery?.remote_state?.error, 'AMQP request'))
  })
  for (const event of ['released', 'modified'] as const) {
    connection.on(event, (context) => {
      takeDelivery(context.delivery?.id)?.reject(new DeviceError('TRANSPORT', `AMQP request ${event} by the service`, { transient: true, status: 503 }))
    })
  }

  const request = (properties: Record<string, unknown>, body: unknown, what: string): Promise<DpsReply> => {
    if (closedError !== undefined) return Promise.reject(closedError)
    const correlationId = platform.uuid()
    const reply = new Promise<DpsReply>((resolve, reject) => pending.set(correlationId, { resolve, reject }))
    const delivery = sender.send({ correlation_id: correlationId, application_properties: properties, body })
    byDelivery.set(delivery.id, correlationId)
    return abortable(reply, params.signal, what).finally(() => {
      pending.delete(correlationId)
      byDelivery.delete(delivery.id)
    })
  }

  return {
    register(body, _authorization, forceRegistration) {
      return request(
        { 'iotdps-operation-type': 'iotdps-register', 'iotdps-forceRegistration': forceRegistration },
        platform.rhea.message.data_section(platform.binary(utf8Encode(JSON.stringify(body)))),
        'register',
      )
    },
    poll(operationId) {
      return request({ 'iotdps-operation-type': 'iotdps-get-operationstatus', 'iotdps-operation-id': operationId }, '', 'operation status')
    },
    close() {
      if (closedError === undefined) failAll(new DeviceError('TRANSPORT', 'AMQP session closed', { transient: true }))
      return new Promise<void>((resolve) => {
        if (!connection.is_open()) {
          resolve()
          return
        }
        const timer = setTimeout(resolve, 2000)
        connection.once('connection_close', () => {
          clearTimeout(timer)
          resolve()
        })
        connection.once('disconnected', () => {
          clearTimeout(timer)
          resolve()
        })
        connection.close()
      })
    },
  }
}
