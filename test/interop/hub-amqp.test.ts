// The embedded hub's AMQP endpoint (docs/protocol.md §12), proven with Microsoft's own clients
// over real TLS and WSS on loopback:
// - azure-iot-device + azure-iot-device-amqp (`Amqp`, `AmqpWs`) with a device key (CBS put-token)
//   and with an X.509 certificate (no CBS) send telemetry that is read back through the hub's
//   HTTP API, properties kept; a wrong key is refused;
// - azure-iothub's service `Client` over `Amqp` and `AmqpWs` opens (CBS put-token of a policy
//   token); a wrong policy key is refused;
// - a raw rhea client for what the SDKs never send: CBS refusals (expired, wrong audience,
//   malformed), an unknown address, a telemetry link without a token, SASL PLAIN and ANONYMOUS,
//   a token that expires without renewal, a message over 256 KB.
//
// Plumbing (the clients stay unmodified): `redirectHubAmqp` sends the SDKs' connections to the hub
// host (AMQPS port 5671, WSS port 443) to the test server's AMQP and HTTPS ports on loopback; the
// TLS server name and the AMQP open host name stay the hub's. Hubs are named `*.example`.
import { randomUUID, X509Certificate } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import rhea, { type Connection, type EventContext, type Message as RheaMessage } from 'rhea'
import { Client as DeviceClient, Message } from 'azure-iot-device'
import { Amqp as DeviceAmqp, AmqpWs as DeviceAmqpWs } from 'azure-iot-device-amqp'
import { NoRetry } from 'azure-iot-common'
import { Client as ServiceClient } from 'azure-iothub'
import { Amqp as ServiceAmqp, AmqpWs as ServiceAmqpWs } from 'azure-iothub'
import { SAS_DEFAULT_CLOCK_SKEW_SECONDS, buildSasToken, parseHubConnectionString } from '@provisio/protocol'
import { readHubTelemetry } from '../lib/mqtt.js'
import { startTestServer, type TestServer } from '../lib/server.js'
import { redirectHubAmqp } from '../lib/tls-plumbing.js'
import { OpensslPki } from './x509-openssl.js'

const HUB = 'amqp-hub.example'
const KEY = Buffer.alloc(32, 0x42).toString('base64')
const WAIT_MS = 10_000

let server: TestServer & { logs: string[] }
let undoRedirect: () => void
let pki: OpensslPki
const closers: (() => Promise<unknown>)[] = []

const serviceConnectionString = () => server.endpoints.hubs.find((h) => h.hostName === HUB)!.connectionString

async function createSasDevice(deviceId: string): Promise<void> {
  await server.hubs.get(HUB)!.createOrUpdateDevice({ deviceId, authentication: { type: 'sas', symmetricKey: { primaryKey: KEY, secondaryKey: KEY } } } as never)
}

async function openDevice(connectionString: string, transport: typeof DeviceAmqp | typeof DeviceAmqpWs, options: Record<string, unknown> = {}): Promise<DeviceClient> {
  const client = DeviceClient.fromConnectionString(connectionString, transport)
  client.setRetryPolicy(new NoRetry())
  closers.push(() => client.close())
  await client.setOptions({ ca: server.caPem, ...options })
  await client.open()
  return client
}

/** Reads the hub's telemetry for `deviceId` until `count` messages are there (bounded). */
async function telemetryOf(deviceId: string, count: number) {
  const deadline = Date.now() + WAIT_MS
  for (;;) {
    const page = await readHubTelemetry(server, HUB, deviceId)
    if (page.body.messages.length >= count || Date.now() > deadline) return page.body.messages
    await new Promise((resolve) => setImmediate(resolve))
  }
}

const deviceToken = (deviceId: string, expiresAt = Math.floor(Date.now() / 1000) + 600, key = KEY) => buildSasToken({ resource: `${HUB}/devices/${deviceId}`, key, expiresAt })

function policyToken(expiresAt = Math.floor(Date.now() / 1000) + 600): string {
  const cs = parseHubConnectionString(serviceConnectionString())
  return buildSasToken({ resource: HUB, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt })
}

/** Resolves with the first event of `names` on `emitter` (bounded). */
function nextEvent<T = EventContext>(emitter: { once(name: string, fn: (ctx: T) => void): unknown }, names: string[]): Promise<{ name: string; context: T }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`none of ${names.join(', ')} within ${WAIT_MS} ms`)), WAIT_MS)
    for (const name of names) {
      emitter.once(name, (context: T) => {
        clearTimeout(timer)
        resolve({ name, context })
      })
    }
  })
}

/** A raw rhea connection to the hub (TLS, open hostname = the hub). */
async function rawConnection(options: Record<string, unknown> = {}): Promise<Connection> {
  const container = rhea.create_container({ id: `raw-${randomUUID()}` })
  const connection = container.connect({
    host: '127.0.0.1',
    port: server.endpoints.ports.amqp,
    transport: 'tls',
    ca: server.caPem,
    servername: HUB,
    hostname: HUB,
    reconnect: false,
    ...options,
  } as never)
  closers.push(async () => {
    if (connection.is_open()) connection.close()
  })
  const opened = await nextEvent(connection as never, ['connection_open', 'connection_error', 'disconnected'])
  if (opened.name !== 'connection_open') throw new Error(`connection did not open: ${opened.name} ${String((opened.context as EventContext).error ?? (opened.context as EventContext).connection?.error ?? '')}`)
  return connection
}

/** One put-token on `$cbs`; the answer's application properties. */
async function putToken(connection: Connection, audience: unknown, token: unknown, operation = 'put-token'): Promise<Record<string, unknown>> {
  const receiver = connection.open_receiver({ source: { address: '$cbs' } })
  const sender = connection.open_sender({ target: { address: '$cbs' } })
  await nextEvent(sender as never, ['sendable'])
  const messageId = randomUUID()
  const answer = new Promise<RheaMessage>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no put-token answer')), WAIT_MS)
    receiver.on('message', (ctx: EventContext) => {
      if (ctx.message?.correlation_id === messageId) {
        clearTimeout(timer)
        resolve(ctx.message)
      }
    })
  })
  sender.send({ to: '$cbs', reply_to: 'cbs', message_id: messageId, application_properties: { operation, type: 'servicebus.windows.net:sastoken', ...(audience === undefined ? {} : { name: audience }) }, body: token })
  const message = await answer
  sender.close()
  receiver.close()
  return message.application_properties as Record<string, unknown>
}

/** Attaches a sender to `address`; resolves 'sendable' or the detach error. */
async function attachSender(connection: Connection, address: string) {
  const sender = connection.open_sender({ target: { address } })
  const first = await nextEvent(sender as never, ['sendable', 'sender_error', 'sender_close'])
  return { sender, name: first.name, error: (first.context as EventContext).sender?.error as { condition?: string; description?: string } | undefined }
}

beforeAll(async () => {
  server = (await startTestServer({ hubs: [{ hostName: HUB }] })) as typeof server
  undoRedirect = redirectHubAmqp(server, [HUB])
  pki = new OpensslPki()
}, 60_000)

afterAll(async () => {
  await Promise.all(closers.map((close) => close().catch(() => undefined)))
  undoRedirect?.()
  await server?.stop()
  pki?.dispose()
})

describe('azure-iot-device over AMQP on the embedded hub', () => {
  it.each([
    ['Amqp', DeviceAmqp],
    ['AmqpWs', DeviceAmqpWs],
  ] as const)('%s with a device key: CBS put-token, telemetry read back with its properties', async (name, transport) => {
    const deviceId = `amqp-sas-${name.toLowerCase()}`
    await createSasDevice(deviceId)
    const client = await openDevice(`HostName=${HUB};DeviceId=${deviceId};SharedAccessKey=${KEY}`, transport)
    const message = new Message(JSON.stringify({ temperature: 21.5, via: name }))
    message.messageId = `mid-${name}`
    message.correlationId = 'cid-1'
    message.contentType = 'application/json'
    message.contentEncoding = 'utf-8'
    message.properties.add('alert', 'false')
    await client.sendEvent(message)
    const [stored] = await telemetryOf(deviceId, 1)
    expect(JSON.parse(stored!.body)).toEqual({ temperature: 21.5, via: name })
    expect(stored!.properties).toMatchObject({ alert: 'false' })
    expect(stored!.systemProperties).toMatchObject({ '$.mid': `mid-${name}`, '$.cid': 'cid-1', '$.ct': 'application/json', '$.ce': 'utf-8' })
    await client.close()
  }, 30_000)

  it('a wrong device key is refused at put-token (UnauthorizedError)', async () => {
    await createSasDevice('amqp-wrong-key')
    const wrong = Buffer.alloc(32, 0x07).toString('base64')
    await expect(openDevice(`HostName=${HUB};DeviceId=amqp-wrong-key;SharedAccessKey=${wrong}`, DeviceAmqp)).rejects.toMatchObject({ name: 'UnauthorizedError' })
  }, 30_000)

  it.each([
    ['Amqp', DeviceAmqp],
    ['AmqpWs', DeviceAmqpWs],
  ] as const)('%s with an X.509 certificate (no CBS): telemetry read back; another certificate is refused', async (name, transport) => {
    const deviceId = `amqp-x509-${name.toLowerCase()}`
    const device = pki.selfSignedDevice(deviceId, 'ec')
    const thumbprint = new X509Certificate(device.pem).fingerprint.replaceAll(':', '')
    await server.hubs.get(HUB)!.createOrUpdateDevice({ deviceId, authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: thumbprint, secondaryThumbprint: null } } } as never)
    const client = await openDevice(`HostName=${HUB};DeviceId=${deviceId};x509=true`, transport, { cert: device.pem, key: device.keyPem })
    await client.sendEvent(new Message('x509 over amqp'))
    const [stored] = await telemetryOf(deviceId, 1)
    expect(stored!.body).toBe('x509 over amqp')
    await client.close()

    const impostor = pki.selfSignedDevice(deviceId, 'ec')
    const other = await openDevice(`HostName=${HUB};DeviceId=${deviceId};x509=true`, transport, { cert: impostor.pem, key: impostor.keyPem })
    await expect(other.sendEvent(new Message('impostor'))).rejects.toMatchObject({ name: 'UnauthorizedError' })
    // The impostor's link was refused at attach, so nothing of it can have been stored.
    expect((await readHubTelemetry(server, HUB, deviceId)).body.messages.map((m) => m.body)).toEqual(['x509 over amqp'])
  }, 30_000)
})

describe('azure-iothub service Client over AMQP on the embedded hub', () => {
  it.each([
    ['Amqp', ServiceAmqp],
    ['AmqpWs', ServiceAmqpWs],
  ] as const)('%s opens with the hub policy token (CBS put-token)', async (_name, transport) => {
    const client = ServiceClient.fromConnectionString(serviceConnectionString(), transport as never)
    closers.push(() => client.close())
    await expect(client.open()).resolves.toBeDefined()
    await client.close()
  }, 30_000)

  it('a wrong policy key is refused (UnauthorizedError)', async () => {
    const cs = parseHubConnectionString(serviceConnectionString())
    const client = ServiceClient.fromConnectionString(`HostName=${HUB};SharedAccessKeyName=${cs.sharedAccessKeyName};SharedAccessKey=${Buffer.alloc(32, 1).toString('base64')}`, ServiceAmqp as never)
    closers.push(() => client.close())
    // The service client wraps the put-token refusal: "Could not connect", the cause in amqpError.
    await expect(client.open()).rejects.toMatchObject({ amqpError: { name: 'UnauthorizedError' } })
  }, 30_000)
})

describe('raw AMQP on the embedded hub', () => {
  it('CBS answers 200 for valid tokens, 401 with the reason for expired, wrong-audience and bad-signature tokens, 400 for malformed requests', async () => {
    await createSasDevice('raw-cbs')
    const connection = await rawConnection()
    const ok = await putToken(connection, `${HUB}/devices/raw-cbs`, deviceToken('raw-cbs'))
    expect(ok).toMatchObject({ 'status-code': 200 })
    expect(typeof ok['status-code']).toBe('number')
    expect(await putToken(connection, HUB, policyToken())).toMatchObject({ 'status-code': 200 })

    const expired = await putToken(connection, `${HUB}/devices/raw-cbs`, deviceToken('raw-cbs', Math.floor(Date.now() / 1000) - SAS_DEFAULT_CLOCK_SKEW_SECONDS - 60))
    expect(expired).toMatchObject({ 'status-code': 401, 'status-description': expect.stringMatching(/expire/i) })
    const audience = await putToken(connection, 'other-hub.example/devices/raw-cbs', deviceToken('raw-cbs'))
    expect(audience).toMatchObject({ 'status-code': 401, 'status-description': expect.stringContaining(`is not hub ${HUB}`) })
    const badSig = await putToken(connection, `${HUB}/devices/raw-cbs`, deviceToken('raw-cbs', undefined, Buffer.alloc(32, 9).toString('base64')))
    expect(badSig).toMatchObject({ 'status-code': 401, 'status-description': expect.stringMatching(/signature/i) })
    expect(await putToken(connection, undefined, deviceToken('raw-cbs'))).toMatchObject({ 'status-code': 400, 'status-description': expect.stringContaining('without a name') })
    expect(await putToken(connection, HUB, 42)).toMatchObject({ 'status-code': 400, 'status-description': expect.stringContaining('not a token string') })
    expect(await putToken(connection, HUB, policyToken(), 'delete-token')).toMatchObject({ 'status-code': 400, 'status-description': expect.stringContaining('is not put-token') })
  }, 30_000)

  it('refuses an unknown address with amqp:not-found and a telemetry link without a token with amqp:unauthorized-access', async () => {
    const connection = await rawConnection()
    const unknown = await attachSender(connection, '/nothing/here')
    expect(unknown.name).not.toBe('sendable')
    expect(unknown.error).toMatchObject({ condition: 'amqp:not-found', description: expect.stringContaining('/nothing/here') })
    await createSasDevice('raw-no-token')
    const events = await attachSender(connection, '/devices/raw-no-token/messages/events')
    expect(events.error).toMatchObject({ condition: 'amqp:unauthorized-access', description: expect.stringContaining('no valid token for device') })
  }, 30_000)

  it('SASL PLAIN with {deviceId}@sas.{hub} authorizes telemetry; a wrong password is refused at SASL', async () => {
    await createSasDevice('raw-plain')
    const connection = await rawConnection({ username: `raw-plain@sas.${HUB.split('.')[0]}`, password: deviceToken('raw-plain') })
    const { sender, name } = await attachSender(connection, '/devices/raw-plain/messages/events')
    expect(name).toBe('sendable')
    sender.send({ body: rhea.message.data_section(Buffer.from('plain hello')), application_properties: { n: 1 } })
    const [stored] = await telemetryOf('raw-plain', 1)
    expect(stored).toMatchObject({ body: 'plain hello', properties: { n: '1' } })
    await expect(rawConnection({ username: `raw-plain@sas.${HUB.split('.')[0]}`, password: deviceToken('raw-plain', undefined, Buffer.alloc(32, 3).toString('base64')) })).rejects.toThrow(/did not open/)
  }, 30_000)

  it('SASL ANONYMOUS then CBS; a link whose token expires without renewal is detached with amqp:unauthorized-access', async () => {
    await createSasDevice('raw-expiry')
    const connection = await rawConnection({ username: 'anonymous' })
    // Valid for two more seconds under the clock skew the hub allows: the tick detaches the link once it lapses.
    expect(await putToken(connection, `${HUB}/devices/raw-expiry`, deviceToken('raw-expiry', Math.floor(Date.now() / 1000) - SAS_DEFAULT_CLOCK_SKEW_SECONDS + 2))).toMatchObject({ 'status-code': 200 })
    const { sender, name } = await attachSender(connection, '/devices/raw-expiry/messages/events')
    expect(name).toBe('sendable')
    const detached = await nextEvent(sender as never, ['sender_error', 'sender_close'])
    expect((detached.context as EventContext).sender?.error).toMatchObject({ condition: 'amqp:unauthorized-access', description: expect.stringContaining('expired without renewal') })
  }, 30_000)

  it('a message over 256 KB is rejected with amqp:link:message-size-exceeded and the connection lives on', async () => {
    await createSasDevice('raw-big')
    const connection = await rawConnection()
    expect(await putToken(connection, `${HUB}/devices/raw-big`, deviceToken('raw-big'))).toMatchObject({ 'status-code': 200 })
    const { sender } = await attachSender(connection, '/devices/raw-big/messages/events')
    const outcome = (body: Buffer) =>
      new Promise<{ name: string; condition?: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no outcome')), WAIT_MS)
        const delivery = sender.send({ body: rhea.message.data_section(body) })
        const settle = (name: string) => (ctx: EventContext) => {
          if (ctx.delivery !== delivery) return
          clearTimeout(timer)
          resolve({ name, condition: (ctx.delivery?.remote_state as { error?: { condition?: string } } | undefined)?.error?.condition })
        }
        sender.on('accepted', settle('accepted'))
        sender.on('rejected', settle('rejected'))
      })
    expect(await outcome(Buffer.alloc(256 * 1024 + 1, 0x61))).toEqual({ name: 'rejected', condition: 'amqp:link:message-size-exceeded' })
    expect(await outcome(Buffer.from('small after big'))).toMatchObject({ name: 'accepted' })
    const stored = await telemetryOf('raw-big', 1)
    expect(stored.map((m) => m.body)).toEqual(['small after big'])
  }, 30_000)
})
