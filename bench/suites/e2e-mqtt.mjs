// End-to-end MQTT registrations (issue 6 "Bench"): a real `provisio serve` (SQLite store, dev PKI,
// TLS on loopback) registering brand-new group devices over MQTT (port mqtt) and MQTT over
// WebSockets (/$iothub/websocket on the HTTPS port), N devices at a time, each beside a bare
// MQTT responder baseline in the same run: a TLS (or WSS) server built on mqtt-packet alone that
// answers CONNACK, SUBACK, PUBACK and a fixed `200 assigned` response without any service work.
// The ratio ours/baseline says what our session, SAS checks (at CONNECT and at register),
// assignment and store cost on top of TLS + MQTT.
//
// One operation = one device doing what Microsoft's client does (dps-protocol.md §3, §11): TLS
// handshake, CONNECT (SAS password) → CONNACK, SUBSCRIBE → SUBACK, PUBLISH register (QoS 1) →
// PUBACK + `res/200` (the server runs with an assignment budget, so the assignment finishes
// inside the request), DISCONNECT. The client is a minimal one over @provisio/codec-mqtt's packet
// codec (mqtt.js is not a dependency).
//
// Memory per idle connection: in setup, a child process opens IDLE connections (CONNECT accepted,
// subscribed, then silent) and the server process's heap and RSS are compared before and after
// (after a forced GC); the figures go into the notes.
import { spawn } from 'node:child_process'
import { createServer as createHttpsServer } from 'node:https'
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import mqttPacket from 'mqtt-packet'
import WebSocket, { WebSocketServer } from 'ws'
import { MqttDecoder, encodePacket } from '@provisio/codec-mqtt'
import { groupDeviceToken, runPool, startBenchServer } from '../lib/provisio-server.mjs'

const CONCURRENCY = 32
const BATCH = 128
const IDLE = 1000
const GROUP_KEY = Buffer.alloc(64, 0x6d).toString('base64')
const RES = '$dps/registrations/res/#'

const state = { server: undefined, dir: undefined, ca: undefined, baselineTls: undefined, baselineHttps: undefined, next: 0, memory: undefined }

// ---- a minimal device client ----------------------------------------------------------------

/** A byte pipe to the server: TLS socket or WebSocket, with the same three operations. */
function openPipe(kind, port) {
  return new Promise((resolve, reject) => {
    if (kind === 'tls') {
      const socket = tlsConnect({ host: 'localhost', port, ca: state.ca }, () => resolve({
        write: (b) => socket.write(b),
        onData: (f) => socket.on('data', f),
        close: () => socket.end(),
      }))
      socket.setNoDelay(true)
      socket.on('error', reject)
    } else {
      const ws = new WebSocket(`wss://localhost:${port}/$iothub/websocket`, ['mqtt'], { ca: state.ca, perMessageDeflate: false })
      ws.on('open', () => resolve({ write: (b) => ws.send(b), onData: (f) => ws.on('message', f), close: () => ws.close() }))
      ws.on('error', reject)
    }
  })
}

function deviceCredentials() {
  const { idScope } = state.server.endpoints
  const id = `mqtt-e2e-${String(state.next++).padStart(8, '0')}-0123456789`
  const password = groupDeviceToken(idScope, id, GROUP_KEY)
  return { idScope, id, password }
}

/** One device registration; resolves with the status of the register response. */
async function registerDevice(kind, port, stayConnected = false) {
  const { idScope, id, password } = deviceCredentials()
  const pipe = await openPipe(kind, port)
  const decoder = new MqttDecoder()
  const queue = []
  const waiters = []
  pipe.onData((chunk) => {
    const r = decoder.push(chunk)
    if (r.error) throw r.error
    for (const p of r.packets) (waiters.length ? waiters.shift() : (x) => queue.push(x))(p)
  })
  const next = () => new Promise((resolve) => (queue.length ? resolve(queue.shift()) : waiters.push(resolve)))
  pipe.write(encodePacket({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 180, clientId: id,
    username: `${idScope}/registrations/${id}/api-version=2019-03-31&ClientVersion=provisio-bench`, password: Buffer.from(password),
  }))
  const connack = await next()
  if (connack.cmd !== 'connack' || connack.returnCode !== 0) throw new Error(`e2e-mqtt: CONNACK ${connack.returnCode}`)
  pipe.write(encodePacket({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: RES, qos: 1 }] }))
  await next()
  if (stayConnected) return pipe
  pipe.write(encodePacket({ cmd: 'publish', topic: '$dps/registrations/PUT/iotdps-register/?$rid=1', payload: JSON.stringify({ registrationId: id }), qos: 1, retain: false, dup: false, messageId: 2 }))
  const puback = await next()
  if (puback.cmd !== 'puback') throw new Error(`e2e-mqtt: expected PUBACK, got ${puback.cmd}`)
  const response = await next()
  const status = Number(/^\$dps\/registrations\/res\/(\d+)\//.exec(response.topic)?.[1])
  pipe.write(encodePacket({ cmd: 'puback', messageId: response.messageId }))
  pipe.write(encodePacket({ cmd: 'disconnect' }))
  pipe.close()
  return { status, body: Buffer.from(response.payload).toString('utf8') }
}

// ---- the baseline: a bare MQTT responder on mqtt-packet --------------------------------------

const FIXED = JSON.stringify({ operationId: '4.0123456789abcdef.00000000-0000-0000-0000-000000000000', status: 'assigned', registrationState: { assignedHub: 'localhost', status: 'assigned' } })

function respond(write, end) {
  const parser = mqttPacket.parser()
  parser.on('packet', (p) => {
    if (p.cmd === 'connect') write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }))
    else if (p.cmd === 'subscribe') write(mqttPacket.generate({ cmd: 'suback', messageId: p.messageId, granted: [1] }))
    else if (p.cmd === 'publish') {
      write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId }))
      const rid = /\$rid=([^&]*)/.exec(p.topic)?.[1] ?? ''
      write(mqttPacket.generate({ cmd: 'publish', topic: `$dps/registrations/res/200/?$rid=${rid}`, payload: FIXED, qos: 1, messageId: 1 }))
    } else if (p.cmd === 'disconnect') end()
  })
  parser.on('error', () => end())
  return (chunk) => parser.parse(chunk)
}

// ---- setup ------------------------------------------------------------------------------------

async function setup() {
  if (state.server) return
  const started = await startBenchServer('mqtt', GROUP_KEY)
  state.server = started.server
  state.dir = started.dir
  state.ca = started.ca
  const { cert, key } = started
  state.baselineTls = createTlsServer({ cert, key, minVersion: 'TLSv1.2' }, (socket) => {
    socket.setNoDelay(true)
    socket.on('data', respond((b) => socket.write(b), () => socket.end()))
    socket.on('error', () => {})
  })
  await new Promise((resolve) => state.baselineTls.listen(0, '127.0.0.1', resolve))
  state.baselineHttps = createHttpsServer({ cert, key, minVersion: 'TLSv1.2' })
  const wss = new WebSocketServer({ server: state.baselineHttps, path: '/$iothub/websocket', perMessageDeflate: false })
  wss.on('connection', (ws) => ws.on('message', respond((b) => ws.send(b), () => ws.close())))
  await new Promise((resolve) => state.baselineHttps.listen(0, '127.0.0.1', resolve))
  // A first, discarded round per transport pays the one-time costs (JIT, TLS and WebSocket
  // machinery, caches), so the measured round sees only what each further connection adds.
  await idleMemory('tls', 200)
  await idleMemory('ws', 200)
  state.memory = { tls: await idleMemory('tls', IDLE), ws: await idleMemory('ws', IDLE) }
}

const ports = {
  ours: (kind) => (kind === 'tls' ? state.server.endpoints.ports.mqtt : state.server.endpoints.ports.https),
  baseline: (kind) => (kind === 'tls' ? state.baselineTls.address().port : state.baselineHttps.address().port),
}

// ---- memory per idle connection ----------------------------------------------------------------

let gc
function collect() {
  if (!gc) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc')
  }
  gc()
  gc()
}

/**
 * Opens `count` connections from a child process (so the client side's memory is not counted),
 * each accepted and subscribed, and measures this (server) process before and after.
 */
async function idleMemory(kind, count) {
  const { idScope } = state.server.endpoints
  const creds = Array.from({ length: count }, () => deviceCredentials())
  const script = `
    import { connect } from 'node:tls'
    import WebSocket from 'ws'
    let input = ''
    for await (const chunk of process.stdin) input += chunk
    const { kind, port, ca, creds, RES } = JSON.parse(input)
    const { encodePacket, MqttDecoder } = await import('@provisio/codec-mqtt')
    const open = (c) => new Promise((resolve, reject) => {
      const decoder = new MqttDecoder()
      let got = 0
      let write
      const onData = (chunk) => {
        for (const p of decoder.push(chunk).packets) {
          got++
          if (p.cmd === 'connack' && p.returnCode !== 0) reject(new Error('CONNACK ' + p.returnCode))
          if (got === 1) write(encodePacket({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: RES, qos: 1 }] }))
          if (got === 2) resolve()
        }
      }
      const hello = () => write(encodePacket({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 180, clientId: c.id,
        username: c.idScope + '/registrations/' + c.id + '/api-version=2019-03-31', password: Buffer.from(c.password) }))
      if (kind === 'tls') {
        const s = connect({ host: 'localhost', port, ca }, hello)
        write = (b) => s.write(b)
        s.on('data', onData)
        s.on('error', reject)
      } else {
        const ws = new WebSocket('wss://localhost:' + port + '/$iothub/websocket', ['mqtt'], { ca, perMessageDeflate: false })
        write = (b) => ws.send(b)
        ws.on('open', hello)
        ws.on('message', onData)
        ws.on('error', reject)
      }
    })
    for (let i = 0; i < creds.length; i += 50) await Promise.all(creds.slice(i, i + 50).map(open))
    process.stdout.write('ready\\n')
    setInterval(() => {}, 1 << 30)
  `
  collect()
  const before = process.memoryUsage()
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url).pathname,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  // The credentials travel on stdin: a thousand SAS tokens exceed what an environment variable may hold.
  child.stdin.end(JSON.stringify({ kind, port: ports.ours(kind), ca: state.ca, creds: creds.map((c) => ({ ...c, idScope })), RES }))
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('ready') && resolve())
    child.on('exit', (code) => reject(new Error(`e2e-mqtt idle client exited with ${code}`)))
  })
  await new Promise((resolve) => setTimeout(resolve, 500))
  collect()
  const after = process.memoryUsage()
  child.kill('SIGKILL')
  await new Promise((resolve) => child.on('close', resolve))
  await new Promise((resolve) => setTimeout(resolve, 500))
  const per = (field) => Math.round((after[field] - before[field]) / count)
  return { heapBytes: per('heapUsed'), externalBytes: per('external'), rssBytes: per('rss') }
}

// ---- cases ------------------------------------------------------------------------------------

function batch(kind, who) {
  return async () => {
    await runPool(BATCH, CONCURRENCY, async () => {
      const r = await registerDevice(kind, ports[who](kind))
      if (r.status !== 200) throw new Error(`e2e-mqtt: register answered ${r.status} ${r.body}`)
    })
  }
}

function check(kind) {
  return async () => {
    await setup()
    for (const who of ['ours', 'baseline']) {
      const r = await registerDevice(kind, ports[who](kind))
      const body = JSON.parse(r.body)
      if (r.status !== 200 || body.status !== 'assigned') throw new Error(`e2e-mqtt check (${who}, ${kind}): ${r.status} ${r.body}`)
    }
  }
}

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`

// The runner copies each suite's fields when it loads it, before any case runs, so the memory
// figures must exist by then: when this suite is selected (same filter rule as bench/run.mjs),
// setup — server, baselines, idle-connection measurement — runs at load time.
const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'))
if (filters.length === 0 || filters.includes('e2e') || filters.includes('e2e-mqtt')) await setup()

function notes() {
  const m = state.memory
    const memory = m
      ? ` Memory per idle connection (${IDLE} connections accepted and subscribed, opened from a child process; server process after a forced GC): ` +
        `MQTT over TLS heap ${kb(m.tls.heapBytes)} + external ${kb(m.tls.externalBytes)}, RSS ${kb(m.tls.rssBytes)}; ` +
        `MQTT over WebSockets heap ${kb(m.ws.heapBytes)} + external ${kb(m.ws.externalBytes)}, RSS ${kb(m.ws.rssBytes)}.`
      : ''
  return (
      `A real \`provisio serve\` (SQLite in a temp dir, dev PKI) and a bare MQTT responder on mqtt-packet (TLS, and WSS at /$iothub/websocket), all on loopback; ` +
      `${CONCURRENCY} devices at a time, ${BATCH} registrations per call, each a brand-new device of a symmetric-key group: full TLS handshake, CONNECT with its SAS, ` +
      'SUBSCRIBE, register PUBLISH answered `200 assigned`, DISCONNECT. Client and servers share this process and the 2 cores, so absolute rates are a floor; the ratio is what compares.' +
      memory
  )
}

export default {
  file: 'e2e',
  title: 'End to end: MQTT and MQTT over WebSockets registrations on loopback',
  notes: notes(),
  cases: [
    {
      name: `MQTT (TLS) register → 200 assigned, ${CONCURRENCY} concurrent devices`,
      unit: 'ops',
      opsPerCall: BATCH,
      async: true,
      setup,
      check: check('tls'),
      ours: batch('tls', 'ours'),
      peers: { 'bare MQTT responder (mqtt-packet over TLS)': batch('tls', 'baseline') },
    },
    {
      name: `MQTT over WebSockets register → 200 assigned, ${CONCURRENCY} concurrent devices`,
      unit: 'ops',
      opsPerCall: BATCH,
      async: true,
      setup,
      check: check('ws'),
      ours: batch('ws', 'ours'),
      peers: { 'bare MQTT responder (mqtt-packet over WSS)': batch('ws', 'baseline') },
    },
  ],
}
