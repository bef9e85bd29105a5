/**
 * DPS over MQTT 3.1.1 (docs/protocol.md §3) on mqtt.js, over TLS (`mqtts://host:8883`) or WebSocket
 * (`wss://host:443/$iothub/websocket`, subprotocol `mqtt`; this is what runs in a browser).
 *
 * CONNECT: clientId = registrationId, username `{idScope}/registrations/{id}/api-version={V}&ClientVersion={UA}`,
 * password = device SAS (none for X.509), clean session. SUBSCRIBE `$dps/registrations/res/#` QoS 1;
 * register = PUBLISH `$dps/registrations/PUT/iotdps-register/?$rid={rid}` with the JSON body; poll =
 * PUBLISH `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}`; answers
 * arrive on `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]`.
 */
import * as mqttModule from 'mqtt'
import type { IClientOptions, MqttClient } from 'mqtt'
import { DPS_RESPONSE_FILTER, formatDpsRequestTopic, formatDpsUsername, parseDpsResponseTopic as parseResponseTopic, type DpsRequestTopic } from '@provisio/protocol'
import { DeviceError } from './errors.js'
import { abortable } from './retry.js'
import { parseJsonBody, parseRetryAfter, MAX_RESPONSE_BYTES, type DpsReply, type DpsSession, type SessionParams } from './transport.js'

// mqtt.js's browser ESM build has only a default export (an object with connect); in Node the
// CommonJS build gives named exports. Take connect from whichever is there.
const connect = ((mqttModule as unknown as { default?: { connect?: typeof mqttModule.connect } }).default?.connect ?? mqttModule.connect) as typeof mqttModule.connect

export { DPS_RESPONSE_FILTER }

/** The CONNECT username of a DPS device. */
export function dpsMqttUsername(idScope: string, registrationId: string, apiVersion: string, userAgent: string): string {
  return formatDpsUsername(idScope, registrationId, apiVersion, userAgent)
}

/** A parsed response topic, or undefined when the topic is not one. */
export function parseDpsResponseTopic(topic: string): { status: number; rid: string; retryAfterMs: number | undefined } | undefined {
  const parsed = parseResponseTopic(topic)
  return parsed === undefined ? undefined : { status: parsed.status, rid: parsed.rid, retryAfterMs: parseRetryAfter(parsed.retryAfter) }
}

/** Maps an MQTT CONNACK refusal or socket failure to a DeviceError. */
export function mqttConnectError(error: unknown, where: string): DeviceError {
  const code = (error as { code?: unknown } | undefined)?.code
  const text = error instanceof Error ? error.message : String(error)
  if (typeof code === 'number') {
    // 3.1.1 return codes: 1 protocol, 2 identifier, 3 server unavailable, 4 bad user name or password, 5 not authorized.
    if (code === 4 || code === 5) return new DeviceError('REFUSED', `MQTT CONNECT to ${where} refused (return code ${code}: ${text})`, { status: 401, cause: error })
    if (code === 3) return new DeviceError('TRANSPORT', `MQTT CONNECT to ${where}: server unavailable (return code 3)`, { status: 503, transient: true, cause: error })
    return new DeviceError('REFUSED', `MQTT CONNECT to ${where} refused (return code ${code}: ${text})`, { status: 400, cause: error })
  }
  return new DeviceError('TRANSPORT', `MQTT connection to ${where} failed: ${text}`, { transient: true, cause: error })
}

/** Connects an mqtt.js client and waits for CONNACK; rejects with a DeviceError. */
export async function connectMqtt(url: string, options: IClientOptions, signal: AbortSignal, where: string): Promise<MqttClient> {
  const client = connect(url, { reconnectPeriod: 0, protocolVersion: 4, resubscribe: false, ...options })
  const opened = new Promise<void>((resolve, reject) => {
    const onConnect = () => {
      cleanup()
      resolve()
    }
    const onError = (error: unknown) => {
      cleanup()
      reject(mqttConnectError(error, where))
    }
    const onClose = () => {
      cleanup()
      reject(new DeviceError('TRANSPORT', `MQTT connection to ${where} closed before CONNACK`, { transient: true }))
    }
    const cleanup = () => {
      client.off('connect', onConnect)
      client.off('error', onError)
      client.off('close', onClose)
    }
    client.on('connect', onConnect)
    client.on('error', onError)
    client.on('close', onClose)
  })
  try {
    await abortable(opened, signal, `MQTT connect to ${where}`)
  } catch (error) {
    client.end(true)
    throw error
  }
  // After CONNACK, errors are reported through 'close' and the pending requests.
  client.on('error', () => undefined)
  return client
}

/** Longest wait for a graceful MQTT DISCONNECT before the connection is cut. */
const CLOSE_TIMEOUT_MS = 2000

/** Opens an MQTT or MQTT-over-WebSocket DPS session. */
export async function openMqttSession(params: SessionParams, overWebSocket: boolean): Promise<DpsSession> {
  if (params.auth.kind === 'tpm') {
    throw new DeviceError('UNSUPPORTED', 'TPM attestation is not supported over MQTT by DPS (docs/protocol.md §3); use http, amqp or amqp-ws')
  }
  const where = `${params.host}:${params.port}`
  const url = overWebSocket ? `wss://${params.host}:${params.port}/$iothub/websocket` : `mqtts://${params.host}:${params.port}`
  const options: IClientOptions = {
    clientId: params.registrationId,
    username: dpsMqttUsername(params.idScope, params.registrationId, params.apiVersion, params.userAgent),
    clean: true,
    keepalive: 180,
    connectTimeout: params.connectTimeoutMs,
    ...(params.auth.kind === 'sas' ? { password: params.auth.token } : {}),
    ...params.platform.mqttTlsOptions(params.tls),
  }
  const client = await connectMqtt(url, options, params.signal, where)
  const pending = new Map<string, { resolve(reply: DpsReply): void; reject(error: unknown): void }>()
  let closedError: DeviceError | undefined
  client.on('close', () => {
    closedError ??= new DeviceError('TRANSPORT', `MQTT connection to ${where} closed`, { transient: true })
    for (const p of pending.values()) p.reject(closedError)
    pending.clear()
  })
  client.on('message', (topic, payload) => {
    const parsed = parseDpsResponseTopic(topic)
    if (parsed === undefined) return
    const waiter = pending.get(parsed.rid)
    if (waiter === undefined) return
    pending.delete(parsed.rid)
    try {
      if (payload.length > MAX_RESPONSE_BYTES) throw new DeviceError('PROTOCOL', `response of ${payload.length} bytes on ${topic} is over the limit`)
      waiter.resolve({ status: parsed.status, body: parseJsonBody(new TextDecoder().decode(payload), 'MQTT response'), retryAfterMs: parsed.retryAfterMs })
    } catch (error) {
      waiter.reject(error)
    }
  })
  try {
    const granted = await abortable(client.subscribeAsync(DPS_RESPONSE_FILTER, { qos: 1 }), params.signal, 'MQTT subscribe')
    if (granted.some((g) => g.qos === 128)) throw new DeviceError('REFUSED', `the service refused the subscription to ${DPS_RESPONSE_FILTER}`)
  } catch (error) {
    client.end(true)
    throw error instanceof DeviceError ? error : mqttConnectError(error, where)
  }

  const request = (topicOf: (rid: string) => DpsRequestTopic, payload: string, what: string): Promise<DpsReply> => {
    if (closedError !== undefined) return Promise.reject(closedError)
    const rid = params.platform.uuid()
    const reply = new Promise<DpsReply>((resolve, reject) => pending.set(rid, { resolve, reject }))
    client.publish(formatDpsRequestTopic(topicOf(rid)), payload, { qos: 1 }, (error) => {
      if (error === undefined || error === null) return
      const waiter = pending.get(rid)
      pending.delete(rid)
      waiter?.reject(new DeviceError('TRANSPORT', `${what}: MQTT publish failed: ${error.message}`, { transient: true, cause: error }))
    })
    return abortable(reply, params.signal, what).finally(() => pending.delete(rid))
  }

  return {
    register(body) {
      return request((rid) => ({ kind: 'register', rid }), JSON.stringify(body), 'register')
    },
    poll(operationId) {
      return request((rid) => ({ kind: 'operationStatus', rid, operationId }), ' ', 'operation status')
    },
    close() {
      return new Promise<void>((resolve) => {
        // mqtt.js's graceful end waits for every unacknowledged PUBLISH; on a connection that is
        // gone (a server killed mid-request) they never are. Such a connection is ended at once,
        // and a graceful end that takes longer than CLOSE_TIMEOUT_MS is cut.
        const timer = setTimeout(() => {
          client.stream?.destroy()
          resolve()
        }, CLOSE_TIMEOUT_MS)
        client.end(closedError !== undefined || !client.connected, {}, () => {
          clearTimeout(timer)
          resolve()
        })
      })
    },
  }
}
