// End-to-end AMQP registrations (issue 7 "Bench"): a real `provisio serve` (SQLite store, dev
// PKI, TLS on loopback) registering brand-new group devices over AMQPS and over AMQP-over-
// WebSockets, N devices at a time, each as a real device does it: its own connection, SASL PLAIN
// with its SAS, a receiver and a sender link at {idScope}/registrations/{id}, one register
// message, the answer, close (dps-protocol.md §4).
//
// Peer: a bare rhea server over the same transport and certificate (rhea's own server-side
// Connection with a PLAIN mechanism that accepts anything, answering a fixed `assigned` body on
// the device's receiver link). The ratio ours/peer says what our codec plus the service work
// cost over a minimal AMQP request/response on the same client.
//
// One operation = one device registered (`200 assigned`: the server runs with an assignment
// budget, so the first answer is final). Client and servers share this process and 2 cores.
import { createServer as createHttpsServer } from 'node:https'
import rhea from 'rhea'
import WebSocket, { WebSocketServer } from 'ws'
import { groupDeviceToken, runPool, startBenchServer } from '../lib/provisio-server.mjs'

const CONCURRENCY = 32
const BATCH = 128
const GROUP_KEY = Buffer.alloc(64, 0x6b).toString('base64')
const FIXED = JSON.stringify({ operationId: '4.0123456789abcdef.00000000-0000-0000-0000-000000000000', status: 'assigned', registrationState: { status: 'assigned', assignedHub: 'localhost' } })

const state = { server: undefined, dir: undefined, ca: undefined, next: 0, bareTls: undefined, bareWs: undefined }

function device() {
  const { idScope } = state.server.endpoints
  const id = `amqp-bench-${String(state.next++).padStart(8, '0')}-0123456789`
  const address = `${idScope}/registrations/${id}`
  const token = groupDeviceToken(idScope, id, GROUP_KEY)
  return { id, address, token }
}

/** One device: connect, SASL PLAIN, two links, register, wait for the answer, close. */
function registerOne(target) {
  const { id, address, token } = device()
  return new Promise((resolve, reject) => {
    const container = rhea.create_container({ id: `bench-${id}` })
    const options = { host: 'localhost', hostname: 'localhost', username: address, password: token, reconnect: false, idle_time_out: 0 }
    const connection =
      target.kind === 'tls'
        ? container.connect({ ...options, port: target.port, transport: 'tls', ca: state.ca, servername: 'localhost' })
        : container.connect({ ...options, connection_details: container.websocket_connect(WebSocket)(target.url, ['AMQPWSB10'], { ca: state.ca }) })
    const correlationId = `c-${id}`
    let done = false
    const finish = (error, body) => {
      if (done) return
      done = true
      connection.close()
      if (error) reject(error)
      else resolve(body)
    }
    const receiver = connection.open_receiver({ source: { address }, credit_window: 1, autoaccept: true })
    receiver.on('message', (context) => {
      if (context.message.correlation_id !== correlationId) return
      finish(undefined, Buffer.from(context.message.body.content).toString('utf8'))
    })
    const sender = connection.open_sender({ target: { address } })
    sender.once('sendable', () => {
      sender.send({
        correlation_id: correlationId,
        application_properties: { 'iotdps-operation-type': 'iotdps-register', 'iotdps-forceRegistration': false },
        body: rhea.message.data_section(Buffer.from(JSON.stringify({ registrationId: id }))),
      })
    })
    connection.on('disconnected', (context) => finish(context.error ?? new Error('disconnected before the answer')))
    connection.on('connection_error', (context) => finish(new Error(`connection error ${JSON.stringify(context.connection.error)}`)))
    sender.on('rejected', (context) => finish(new Error(`rejected: ${context.delivery.remote_state?.error?.description}`)))
  })
}

/** A bare rhea server container: PLAIN accepts anyone; each request gets the fixed answer. */
function bareContainer() {
  const container = rhea.create_container({ id: 'bare-server' })
  container.sasl_server_mechanisms.enable_plain(() => true)
  container.on('message', (context) => {
    const reply = context.connection.find_sender(() => true)
    reply?.send({
      correlation_id: context.message.correlation_id,
      application_properties: { 'retry-after': 1, 'Retry-After': 1 },
      body: rhea.message.data_section(Buffer.from(FIXED)),
    })
  })
  return container
}

async function setup() {
  if (state.server) return
  const started = await startBenchServer('amqp', GROUP_KEY)
  state.server = started.server
  state.dir = started.dir
  state.ca = started.ca
  const { cert, key } = started

  // Bare rhea over TLS.
  const tlsServer = bareContainer().listen({ port: 0, host: '127.0.0.1', transport: 'tls', key, cert })
  await new Promise((resolve) => tlsServer.once('listening', resolve))
  state.bareTls = tlsServer
  // Bare rhea over WebSockets on an HTTPS server.
  const https = createHttpsServer({ key, cert })
  const wss = new WebSocketServer({ server: https, handleProtocols: () => 'AMQPWSB10' })
  const wsContainer = bareContainer()
  wss.on('connection', (socket) => wsContainer.websocket_accept(socket))
  await new Promise((resolve) => https.listen(0, '127.0.0.1', resolve))
  state.bareWs = https
}

const ours = {
  tls: () => ({ kind: 'tls', port: state.server.endpoints.ports.amqp }),
  ws: () => ({ kind: 'ws', url: `wss://localhost:${state.server.endpoints.ports.https}/$iothub/websocket` }),
}
const bare = {
  tls: () => ({ kind: 'tls', port: state.bareTls.address().port }),
  ws: () => ({ kind: 'ws', url: `wss://localhost:${state.bareWs.address().port}/$iothub/websocket` }),
}

async function batch(target) {
  await runPool(BATCH, CONCURRENCY, async () => {
    const body = JSON.parse(await registerOne(target))
    if (body.status !== 'assigned') throw new Error(`amqp bench: answer ${JSON.stringify(body)}`)
  })
}

function transportCase(kind, label) {
  return {
    name: `${label} register → assigned, ${CONCURRENCY} concurrent devices (one connection each)`,
    unit: 'ops',
    opsPerCall: BATCH,
    async: true,
    setup,
    async check() {
      await setup()
      for (const target of [ours[kind](), bare[kind]()]) {
        const body = JSON.parse(await registerOne(target))
        if (body.status !== 'assigned') throw new Error(`amqp bench check (${kind}): ${JSON.stringify(body)}`)
      }
    },
    ours: () => batch(ours[kind]()),
    peers: { [`bare rhea server, fixed answer (${label})`]: () => batch(bare[kind]()) },
  }
}

export default {
  file: 'e2e',
  title: 'End to end: AMQP and AMQP-over-WebSocket registrations on loopback',
  notes:
    `A real \`provisio serve\` (SQLite in a temp dir, dev PKI) and a bare rhea server on the same certificate, both on loopback; ` +
    `${BATCH} brand-new group devices per call, ${CONCURRENCY} at a time, each with its own connection, SASL PLAIN, two links and one ` +
    'register message (rhea as the device client). Client and servers share this process and the 2 cores, so absolute rates are a floor; the ratio is what compares.',
  cases: [transportCase('tls', 'AMQPS'), transportCase('ws', 'AMQP over WebSocket')],
}
