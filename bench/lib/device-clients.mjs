// Minimal DPS device clients, one per transport (docs/protocol.md §1 HTTPS, §3 MQTT, §4 AMQP),
// built on independent peers (node:https, mqtt-packet, rhea, ws) rather than on our codecs.
// Shared by the e2e bench (bench/lib/load-client.mjs) and the crash tests (test/scale), so both
// speak to the server exactly the same way.
//
//   const device = await openDevice({ transport: 'mqtt', host, port, ca, idScope, registrationId, sas })
//   const answer = await device.register()          // { status, body, retryAfterMs }
//   const next = await device.poll(answer.body.operationId)
//   device.close()
//
// transport: 'https' | 'mqtt' | 'mqtt-ws' | 'amqp' | 'amqp-ws' (WebSocket forms on the HTTPS
// port at /$iothub/websocket). Credentials: `sas` (a SAS token: symmetric key) or `cert` + `key`
// (PEM, chain first: X.509; HTTPS and MQTT). `tlsSessions` (optional, a Map) keeps the last TLS
// session ticket per host:port and offers it on the next connection, the way Node's https.Agent
// does for any client that reconnects; leave it out for a full handshake every time. It is never
// used with client certificates (a ticket carries the identity it was issued to).
//
// `status` is the HTTP status (HTTPS), the status in the response topic (MQTT), or for AMQP 200
// for a final answer, 202 for `assigning`, and for a rejected delivery the status encoded in the
// error body's errorCode (e.g. 429001 → 429). Connection failures reject.
import { request } from 'node:https'
import { connect as tlsConnect, createSecureContext } from 'node:tls'
import { URLSearchParams } from 'node:url'
import mqttPacket from 'mqtt-packet'
import rhea from 'rhea'
import WebSocket from 'ws'

const API = 'api-version=2019-03-31'
const RESPONSE_TOPIC = '$dps/registrations/res/#'
/** Bounds the bytes a misbehaving server can make a client buffer. */
const MAX_BODY = 64 * 1024

/**
 * @param {object} o
 * @param {'https'|'mqtt'|'mqtt-ws'|'amqp'|'amqp-ws'} o.transport
 * @param {string} [o.host]  address to connect to; default '127.0.0.1' (no name lookup per connection)
 * @param {string} [o.servername]  TLS server name (SNI, certificate check); default 'localhost'
 * @param {number} o.port    the transport's port (the HTTPS port for the WebSocket forms)
 * @param {string} o.ca      PEM of the CA the server's certificate chains to
 * @param {string} o.idScope
 * @param {string} o.registrationId
 * @param {string} [o.sas]
 * @param {string} [o.cert]
 * @param {string} [o.key]
 * @param {Map<string, Buffer>} [o.tlsSessions]
 * @param {number} [o.timeoutMs] per step (connect, each request); default 20 s
 */
export async function openDevice(o) {
  const options = { host: '127.0.0.1', servername: 'localhost', timeoutMs: 20_000, ...o }
  if (options.sas === undefined && (options.cert === undefined || options.key === undefined)) throw new Error('openDevice: give sas, or cert and key')
  switch (options.transport) {
    case 'https':
      return httpsDevice(options)
    case 'mqtt':
    case 'mqtt-ws':
      return mqttDevice(options)
    case 'amqp':
    case 'amqp-ws':
      return amqpDevice(options)
    default:
      throw new Error(`openDevice: unknown transport ${JSON.stringify(options.transport)}`)
  }
}

/**
 * One secure context per CA, made once: passing `ca` to every tls.connect would parse the PEM and
 * build a new OpenSSL context per connection, which a client reconnecting many devices need not do.
 */
const contexts = new Map()
function trustContext(ca) {
  let context = contexts.get(ca)
  if (context === undefined) {
    context = createSecureContext({ ca })
    contexts.set(ca, context)
  }
  return context
}

/** The TLS options of one connection: CA, SNI, client certificate, or a cached session. */
function tlsOptions(o) {
  const x509 = o.cert !== undefined
  const key = `${o.host}:${o.port}`
  const session = !x509 ? o.tlsSessions?.get(key) : undefined
  // A device with its own certificate gets its own context (its key and chain); the others share one per CA.
  const trust = x509 ? { ca: o.ca, cert: o.cert, key: o.key } : { secureContext: trustContext(o.ca) }
  return {
    options: { host: o.host, port: o.port, servername: o.servername, ...trust, ...(session ? { session } : {}) },
    /** Remembers the tickets the server sends on `socket`. */
    keep: (socket) => {
      if (!x509 && o.tlsSessions) socket.on('session', (s) => o.tlsSessions.set(key, s))
    },
  }
}

function deadline(ms, what, onTimeout) {
  let timer
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.()
      reject(new Error(`${what}: no answer within ${ms} ms`))
    }, ms)
  })
  promise.catch(() => {})
  return { promise, clear: () => clearTimeout(timer) }
}

const retryAfterMs = (seconds) => {
  const n = Number(seconds)
  return Number.isFinite(n) && n > 0 ? n * 1000 : undefined
}

function parseBody(text) {
  try {
    return JSON.parse(text)
  } catch {
    return { unparsed: text }
  }
}

// ---- HTTPS: every request on its own connection ("connect, one request, close") ---------------

function httpsDevice(o) {
  const auth = o.sas !== undefined ? { authorization: o.sas } : {}
  const base = `/${o.idScope}/registrations/${o.registrationId}`
  const call = (method, path, body) =>
    new Promise((resolve, reject) => {
      const tls = tlsOptions(o)
      const payload = body === undefined ? undefined : JSON.stringify(body)
      const req = request(
        {
          ...tls.options,
          method,
          path,
          agent: false,
          headers: {
            accept: 'application/json',
            connection: 'close',
            ...auth,
            ...(payload === undefined ? {} : { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload) }),
          },
          timeout: o.timeoutMs,
        },
        (res) => {
          const chunks = []
          let size = 0
          res.on('data', (c) => {
            size += c.length
            if (size > MAX_BODY) req.destroy(new Error(`answer larger than ${MAX_BODY} bytes`))
            else chunks.push(c)
          })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: parseBody(Buffer.concat(chunks).toString('utf8')), retryAfterMs: retryAfterMs(res.headers['retry-after']) }))
          res.on('error', reject)
        },
      )
      req.on('socket', (socket) => tls.keep(socket))
      req.on('timeout', () => req.destroy(new Error(`HTTPS ${method}: no answer within ${o.timeoutMs} ms`)))
      req.on('error', reject)
      req.end(payload)
    })
  return {
    register: (payload = { registrationId: o.registrationId }) => call('PUT', `${base}/register?${API}`, payload),
    poll: (operationId) => call('GET', `${base}/operations/${encodeURIComponent(operationId)}?${API}`),
    close: () => {},
  }
}

// ---- MQTT over TLS or WebSockets (§3) -----------------------------------------------------------

/** A byte pipe: TLS socket or WebSocket, opened; `onData`, `onClose`, `write`, `close`. */
function openPipe(o) {
  return new Promise((resolve, reject) => {
    const tls = tlsOptions(o)
    const fail = deadline(o.timeoutMs, `${o.transport} connect`, () => destroy())
    let destroy = () => {}
    const done = (pipe) => {
      fail.clear()
      resolve(pipe)
    }
    const error = (e) => {
      fail.clear()
      reject(e)
    }
    fail.promise.catch(reject)
    if (o.transport === 'mqtt') {
      const socket = tlsConnect(tls.options, () =>
        done({
          write: (b) => socket.write(b),
          onData: (f) => socket.on('data', f),
          onClose: (f) => socket.on('close', f),
          close: () => socket.end(),
        }),
      )
      destroy = () => socket.destroy()
      tls.keep(socket)
      socket.setNoDelay(true)
      socket.on('error', error)
    } else {
      const ws = new WebSocket(`wss://${o.host}:${o.port}/$iothub/websocket`, ['mqtt'], {
        ...tls.options,
        perMessageDeflate: false,
        maxPayload: MAX_BODY,
        // ws opens its own TLS socket; this hook lets the ticket cache see it.
        createConnection: (opts) => {
          const socket = tlsConnect(opts)
          tls.keep(socket)
          return socket
        },
      })
      destroy = () => ws.terminate()
      ws.on('open', () => done({ write: (b) => ws.send(b), onData: (f) => ws.on('message', f), onClose: (f) => ws.on('close', f), close: () => ws.close() }))
      ws.on('error', error)
    }
  })
}

async function mqttDevice(o) {
  const pipe = await openPipe(o)
  const parser = mqttPacket.parser()
  const waiting = new Map() // rid → resolve
  let ack
  let closedError
  const fail = (e) => {
    closedError ??= e
    ack?.reject(e)
    ack = undefined
    for (const w of waiting.values()) w.reject(e)
    waiting.clear()
  }
  parser.on('packet', (p) => {
    if (p.cmd === 'connack' || p.cmd === 'suback' || p.cmd === 'puback') {
      const a = ack
      ack = undefined
      a?.resolve(p)
    } else if (p.cmd === 'publish') {
      if (p.qos > 0) pipe.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId }))
      const m = /^\$dps\/registrations\/res\/(\d+)\/\?(.*)$/.exec(p.topic)
      if (!m) return
      const query = new URLSearchParams(m[2])
      const w = waiting.get(query.get('$rid'))
      if (!w) return
      waiting.delete(query.get('$rid'))
      w.resolve({ status: Number(m[1]), body: parseBody(Buffer.from(p.payload).toString('utf8')), retryAfterMs: retryAfterMs(query.get('retry-after')) })
    }
  })
  parser.on('error', (e) => fail(e))
  pipe.onData((chunk) => parser.parse(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)))
  pipe.onClose(() => fail(new Error(`${o.transport}: connection closed`)))
  const send = (packet) => pipe.write(mqttPacket.generate(packet))
  const awaitAck = (cmd, packet) =>
    new Promise((resolve, reject) => {
      if (closedError) return reject(closedError)
      const t = deadline(o.timeoutMs, `${o.transport} ${cmd}`, () => pipe.close())
      ack = { resolve: (p) => (t.clear(), resolve(p)), reject: (e) => (t.clear(), reject(e)) }
      send(packet)
    })

  try {
    const connack = await awaitAck('CONNECT', {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      keepalive: 180,
      clientId: o.registrationId,
      username: `${o.idScope}/registrations/${o.registrationId}/${API}&ClientVersion=provisio-bench`,
      ...(o.sas !== undefined ? { password: Buffer.from(o.sas) } : {}),
    })
    if (connack.returnCode !== 0) throw Object.assign(new Error(`${o.transport}: CONNACK return code ${connack.returnCode}`), { returnCode: connack.returnCode })
    await awaitAck('SUBSCRIBE', { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: RESPONSE_TOPIC, qos: 1 }] })
  } catch (e) {
    pipe.close()
    throw e
  }

  let rid = 0
  let messageId = 1
  const ask = (topic, payload) =>
    new Promise((resolve, reject) => {
      if (closedError) return reject(closedError)
      const id = String(++rid)
      const t = deadline(o.timeoutMs, `${o.transport} request`, () => pipe.close())
      waiting.set(id, { resolve: (r) => (t.clear(), resolve(r)), reject: (e) => (t.clear(), reject(e)) })
      messageId = (messageId % 65535) + 1
      send({ cmd: 'publish', topic: topic.replace('{rid}', id), payload, qos: 1, messageId, retain: false, dup: false })
    })
  return {
    register: (payload = { registrationId: o.registrationId }) => ask('$dps/registrations/PUT/iotdps-register/?$rid={rid}', JSON.stringify(payload)),
    poll: (operationId) => ask(`$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId=${encodeURIComponent(operationId)}`, ' '),
    close: () => {
      if (!closedError) send({ cmd: 'disconnect' })
      closedError ??= new Error(`${o.transport}: closed`)
      pipe.close()
    },
  }
}

// ---- AMQP over TLS or WebSockets (§4; SAS with SASL PLAIN) --------------------------------------

async function amqpDevice(o) {
  if (o.sas === undefined) throw new Error('amqp device client: only SAS (SASL PLAIN) is implemented')
  const address = `${o.idScope}/registrations/${o.registrationId}`
  const container = rhea.create_container({ id: `device-${o.registrationId}` })
  const common = { host: o.host, hostname: o.servername, username: address, password: o.sas, reconnect: false, idle_time_out: 0 }
  const tls = tlsOptions(o)
  const connection =
    o.transport === 'amqp'
      ? container.connect({
          ...common,
          port: o.port,
          transport: 'tls',
          connect: (_port, _host, _options, callback) => {
            const socket = tlsConnect(tls.options, callback)
            tls.keep(socket)
            return socket
          },
        })
      : container.connect({
          ...common,
          connection_details: container.websocket_connect(WebSocket)(`wss://${o.host}:${o.port}/$iothub/websocket`, ['AMQPWSB10'], {
            ...tls.options,
            createConnection: (opts) => {
              const socket = tlsConnect(opts)
              tls.keep(socket)
              return socket
            },
          }),
        })
  const pending = new Map() // correlation id → { resolve, reject }
  let closedError
  const fail = (e) => {
    closedError ??= e
    for (const p of pending.values()) p.reject(e)
    pending.clear()
  }
  const receiver = connection.open_receiver({ source: { address }, credit_window: 10, autoaccept: true })
  const sender = connection.open_sender({ target: { address } })
  receiver.on('message', (context) => {
    const p = pending.get(String(context.message.correlation_id))
    if (!p) return
    pending.delete(String(context.message.correlation_id))
    const content = context.message.body?.content ?? context.message.body
    const body = parseBody(Buffer.isBuffer(content) ? content.toString('utf8') : String(content))
    const props = context.message.application_properties ?? {}
    p.resolve({ status: body.status === 'assigning' || body.status === 'unassigned' ? 202 : 200, body, retryAfterMs: retryAfterMs(props['retry-after']) })
  })
  sender.on('rejected', (context) => {
    const p = pending.get(String(context.delivery.tag_correlation))
    const error = context.delivery.remote_state?.error
    const body = parseBody(error?.description ?? '')
    const status = Number.isInteger(body.errorCode) && body.errorCode >= 100000 ? Math.floor(body.errorCode / 1000) : 500
    if (p) {
      pending.delete(String(context.delivery.tag_correlation))
      p.resolve({ status, body, retryAfterMs: retryAfterMs(error?.info?.['retry-after']) })
    }
  })
  connection.on('disconnected', (context) => fail(context.error ?? new Error(`${o.transport}: disconnected`)))
  connection.on('connection_error', (context) => fail(new Error(`${o.transport}: connection error ${JSON.stringify(context.connection.error)}`)))
  connection.on('connection_close', () => fail(new Error(`${o.transport}: connection closed by the server`)))
  connection.on('error', (e) => fail(e))
  // Both links attached and the sender has credit: the device can ask.
  const ready = new Promise((resolve, reject) => {
    const t = deadline(o.timeoutMs, `${o.transport} attach`, () => connection.close())
    let senderReady = false
    let receiverReady = false
    const check = () => senderReady && receiverReady && (t.clear(), resolve())
    sender.once('sendable', () => ((senderReady = true), check()))
    receiver.once('receiver_open', () => ((receiverReady = true), check()))
    const stop = (e) => (t.clear(), reject(e))
    connection.once('disconnected', (context) => stop(context.error ?? new Error(`${o.transport}: disconnected during attach`)))
    connection.once('connection_error', (context) => stop(new Error(`${o.transport}: connection error ${JSON.stringify(context.connection.error)}`)))
    t.promise.catch(stop)
  })
  try {
    await ready
  } catch (e) {
    connection.close()
    throw e
  }
  let n = 0
  const ask = (properties) =>
    new Promise((resolve, reject) => {
      if (closedError) return reject(closedError)
      const correlationId = `${o.registrationId}-${++n}`
      const t = deadline(o.timeoutMs, `${o.transport} request`, () => connection.close())
      pending.set(correlationId, { resolve: (r) => (t.clear(), resolve(r)), reject: (e) => (t.clear(), reject(e)) })
      const delivery = sender.send({ correlation_id: correlationId, application_properties: properties.props, body: rhea.message.data_section(Buffer.from(properties.body)) })
      delivery.tag_correlation = correlationId
    })
  return {
    register: (payload = { registrationId: o.registrationId }) =>
      ask({ props: { 'iotdps-operation-type': 'iotdps-register', 'iotdps-forceRegistration': false }, body: JSON.stringify(payload) }),
    poll: (operationId) => ask({ props: { 'iotdps-operation-type': 'iotdps-get-operationstatus', 'iotdps-operation-id': operationId }, body: '' }),
    close: () => {
      closedError ??= new Error(`${o.transport}: closed`)
      connection.close()
    },
  }
}
