/**
 * A raw device that speaks like Microsoft's Embedded C SDK (azure-sdk-for-c over Paho MQTT), which
 * is not on npm: MQTT 3.1.1 over TLS, packets from mqtt-packet (not our codec), and what the SDK's
 * `az_iot_provisioning_client` and `az_iot_hub_client` put on the wire:
 * - SAS tokens `SharedAccessSignature sr=…&sig=…&se=…` in that order and without `skn`
 *   (docs/protocol.md §13.1), `sr` URL-encoded (`%2f` for provisioning, `%2F` for the hub);
 * - provisioning: username `{idScope}/registrations/{regId}/api-version=2021-06-01`, subscribe
 *   `$dps/registrations/res/#`, PUBLISH `$dps/registrations/PUT/iotdps-register/?$rid=…`, poll with
 *   `$dps/registrations/GET/iotdps-get-operationstatus/?$rid=…&operationId=…` after retry-after;
 * - hub: username `{hub}/{deviceId}/?api-version=2020-09-30&DeviceClientType=…&model-id=…` (the PnP
 *   model id), the SDK's four subscriptions (the C2D one with `+` for the device id), twin GET on
 *   `$iothub/twin/GET/?$rid=…`, telemetry on `devices/{id}/messages/events/`.
 */
import { createHmac } from 'node:crypto'
import { connect as tlsConnect } from 'node:tls'
import mqttPacket from 'mqtt-packet'
import type { TestServer } from './server.js'

export const EMBEDDED_C_DPS_API_VERSION = '2021-06-01'
export const EMBEDDED_C_HUB_API_VERSION = '2020-09-30'
export const EMBEDDED_C_CLIENT_TYPE = 'azsdk-c%2F1.5.0'

/** The filters az_iot_hub_client subscribes to (C2D, methods, twin responses, desired patches). */
export const EMBEDDED_C_HUB_SUBSCRIPTIONS = [
  'devices/+/messages/devicebound/#',
  '$iothub/methods/POST/#',
  '$iothub/twin/res/#',
  '$iothub/twin/PATCH/properties/desired/#',
] as const

/**
 * The SAS token of the Embedded C SDK: HMAC-SHA256 over `{sr}\n{se}` with `sr` as sent, fields
 * `sr,sig,se`, no `skn`. `sr` is `resource` URL-encoded, `/` as `%2f` or `%2F`.
 */
export function embeddedCSasToken(resource: string, keyBase64: string, expirySeconds: number, slash: '%2f' | '%2F'): string {
  const sr = resource.split('/').map(encodeURIComponent).join(slash)
  const sig = createHmac('sha256', Buffer.from(keyBase64, 'base64')).update(`${sr}\n${expirySeconds}`, 'utf8').digest('base64')
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expirySeconds}`
}

/** One MQTT 3.1.1 connection, packets in and out as mqtt-packet objects. */
export interface EmbeddedCConnection {
  readonly connack: mqttPacket.IConnackPacket
  /** SUBSCRIBE at QoS 1; resolves with the SUBACK's granted codes. */
  subscribe(filters: readonly string[]): Promise<number[]>
  /** PUBLISH at QoS 1; resolves on PUBACK. */
  publish(topic: string, payload: string): Promise<void>
  /** The next PUBLISH from the server whose topic starts with `prefix` (answered with PUBACK at QoS 1). */
  nextPublish(prefix: string): Promise<mqttPacket.IPublishPacket>
  end(): void
}

/** Connects over TLS to the server's MQTT port; resolves after CONNACK (whatever its code). */
export function embeddedCConnect(server: TestServer, options: { servername: string; clientId: string; username: string; password: string }): Promise<EmbeddedCConnection> {
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const socket = tlsConnect({ host: '127.0.0.1', port: server.endpoints.ports.mqtt, servername: options.servername, ca: server.caPem })
  const packets: mqttPacket.Packet[] = []
  const waiters: { test: (p: mqttPacket.Packet) => boolean; resolve: (p: mqttPacket.Packet) => void; reject: (e: Error) => void }[] = []
  let closed: Error | undefined
  let nextId = 1
  const send = (packet: mqttPacket.Packet) => socket.write(mqttPacket.generate(packet))
  const deliver = () => {
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i]!
      const at = packets.findIndex(w.test)
      if (at < 0) continue
      waiters.splice(i--, 1)
      w.resolve(packets.splice(at, 1)[0]!)
    }
  }
  const expect = <P extends mqttPacket.Packet>(test: (p: mqttPacket.Packet) => boolean): Promise<P> =>
    new Promise<P>((resolve, reject) => {
      if (closed !== undefined) return reject(closed)
      waiters.push({ test, resolve: resolve as (p: mqttPacket.Packet) => void, reject })
      deliver()
    })
  parser.on('packet', (p) => {
    if (p.cmd === 'publish' && p.qos === 1 && p.messageId !== undefined) send({ cmd: 'puback', messageId: p.messageId })
    packets.push(p)
    deliver()
  })
  parser.on('error', (e: Error) => socket.destroy(e))
  socket.on('data', (chunk: Buffer) => parser.parse(chunk))
  socket.on('close', () => {
    closed = new Error(`the server closed the MQTT connection of ${options.clientId}`)
    for (const w of waiters.splice(0)) w.reject(closed)
  })
  socket.on('error', () => undefined)
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.once('secureConnect', () => {
      send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: options.clientId, clean: true, keepalive: 240, username: options.username, password: Buffer.from(options.password) })
      expect<mqttPacket.IConnackPacket>((p) => p.cmd === 'connack').then((connack) => {
        resolve({
          connack,
          async subscribe(filters) {
            const messageId = nextId++
            send({ cmd: 'subscribe', messageId, subscriptions: filters.map((topic) => ({ topic, qos: 1 as const })) })
            const suback = await expect<mqttPacket.ISubackPacket>((p) => p.cmd === 'suback' && p.messageId === messageId)
            // MQTT 3.1.1 SUBACKs carry return codes (numbers).
            return suback.granted as number[]
          },
          async publish(topic, payload) {
            const messageId = nextId++
            send({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false, messageId })
            await expect((p) => p.cmd === 'puback' && p.messageId === messageId)
          },
          nextPublish: (prefix) => expect<mqttPacket.IPublishPacket>((p) => p.cmd === 'publish' && p.topic.startsWith(prefix)),
          end: () => socket.destroy(),
        })
      }, reject)
    })
  })
}

/** A DPS response as az_iot_provisioning_client_parse_received_topic_and_payload reads it. */
export interface EmbeddedCDpsResponse {
  readonly status: number
  readonly retryAfterSeconds: number
  readonly body: { operationId?: string; status?: string; registrationState?: { assignedHub?: string; deviceId?: string; status?: string; errorCode?: number; errorMessage?: string } }
}

async function dpsAnswer(connection: EmbeddedCConnection, rid: string): Promise<EmbeddedCDpsResponse> {
  const response = await connection.nextPublish('$dps/registrations/res/')
  const [, , , status, query] = response.topic.split('/')
  const params = new URLSearchParams((query ?? '').replace(/^\?/, ''))
  if (params.get('$rid') !== rid) throw new Error(`DPS answered request ${params.get('$rid') ?? '?'} while ${rid} was awaited`)
  return { status: Number(status), retryAfterSeconds: Number(params.get('retry-after') ?? '3'), body: JSON.parse(response.payload.toString()) as EmbeddedCDpsResponse['body'] }
}

/**
 * Registers like the SDK's paho_iot_provisioning_sas_sample: subscribe, register, then poll the
 * operation after each retry-after until DPS answers other than 202 (at most `maxPolls`).
 * Resolves with the last answer (assigned or failed), the connection closed.
 */
export async function embeddedCProvision(server: TestServer, registrationId: string, deviceKeyBase64: string, maxPolls = 10): Promise<EmbeddedCDpsResponse> {
  const idScope = server.endpoints.idScope
  const token = embeddedCSasToken(`${idScope}/registrations/${registrationId}`, deviceKeyBase64, Math.floor(Date.now() / 1000) + 3600, '%2f')
  const connection = await embeddedCConnect(server, {
    servername: 'localhost',
    clientId: registrationId,
    username: `${idScope}/registrations/${registrationId}/api-version=${EMBEDDED_C_DPS_API_VERSION}`,
    password: token,
  })
  try {
    if (connection.connack.returnCode !== 0) throw new Error(`DPS refused the CONNECT with return code ${connection.connack.returnCode}`)
    await connection.subscribe(['$dps/registrations/res/#'])
    await connection.publish('$dps/registrations/PUT/iotdps-register/?$rid=1', JSON.stringify({ registrationId }))
    let answer = await dpsAnswer(connection, '1')
    for (let poll = 2; answer.status === 202 && poll <= maxPolls + 1; poll++) {
      // The device's own wait, as the sample does between polls: what DPS asked for.
      await new Promise((r) => setTimeout(r, answer.retryAfterSeconds * 1000))
      const rid = String(poll)
      await connection.publish(`$dps/registrations/GET/iotdps-get-operationstatus/?$rid=${rid}&operationId=${answer.body.operationId ?? ''}`, '')
      answer = await dpsAnswer(connection, rid)
    }
    return answer
  } finally {
    connection.end()
  }
}

/** Connects to the hub like az_iot_hub_client (PnP model id in the username, token without skn). */
export function embeddedCHubConnect(server: TestServer, hub: string, deviceId: string, deviceKeyBase64: string, modelId: string): Promise<EmbeddedCConnection> {
  const token = embeddedCSasToken(`${hub}/devices/${deviceId}`, deviceKeyBase64, Math.floor(Date.now() / 1000) + 3600, '%2F')
  return embeddedCConnect(server, {
    servername: hub,
    clientId: deviceId,
    username: `${hub}/${deviceId}/?api-version=${EMBEDDED_C_HUB_API_VERSION}&DeviceClientType=${EMBEDDED_C_CLIENT_TYPE}&model-id=${encodeURIComponent(modelId)}`,
    password: token,
  })
}
