// The hub's cloud operations: direct-method round trips through `provisio serve` (the built CLI,
// its own process, SQLite), beside a relay baseline measured in the same run.
//
// One operation = one `POST /twins/{id}/methods` over a kept-alive HTTPS connection, delivered to a
// device connected over MQTT (TLS) as `$iothub/methods/POST/{name}/?$rid=`, answered by the device
// on `$iothub/methods/res/200/?$rid=` and returned to the caller as `{ status, payload }`.
// DEVICES devices are connected, CONCURRENCY calls are in flight, BATCH calls per measured call.
// The baseline (lib/bare-hub.mjs) relays the same request to the same device socket on the same
// certificate and TLS settings, doing no hub work (no authentication, registry, limits or
// metrics); the callers and devices (this process) are the same for both, so ours/baseline is the
// share of a bare relay's round trip that survives the hub's work.
import { request, Agent } from 'node:https'
import { connect } from 'node:tls'
import mqttPacket from 'mqtt-packet'
import { buildSasToken } from '@provisio/protocol'
import { startBare, startProvisio, tempDir } from '../lib/e2e-processes.mjs'

const DEVICES = 32
const CONCURRENCY = 32
const BATCH = 64
const BASELINE = 'bare relay baseline'
const API = 'api-version=2021-04-12'

const state = { started: undefined }

const parseConnectionString = (cs) => Object.fromEntries(cs.split(';').map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]))

/** One HTTPS request; resolves with the status and the parsed JSON body. */
function call(target, method, path, body) {
  const text = body === undefined ? undefined : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: target.https,
        servername: target.hostName,
        agent: target.agent,
        method,
        path,
        headers: {
          host: target.hostName,
          authorization: target.serviceToken,
          'content-type': 'application/json; charset=utf-8',
          ...(text === undefined ? {} : { 'content-length': Buffer.byteLength(text) }),
        },
      },
      (res) => {
        let answer = ''
        res.setEncoding('utf8')
        res.on('data', (c) => (answer += c))
        res.on('end', () => resolve({ status: res.statusCode, body: answer === '' ? undefined : JSON.parse(answer) }))
      },
    )
    req.on('error', reject)
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)))
    req.end(text)
  })
}

/** A device over MQTT (TLS) that answers every direct method with status 200 and the request's payload. */
function connectDevice(target, deviceId, password) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: target.mqtt, servername: target.hostName, ca: target.ca })
    socket.setNoDelay(true)
    const parser = mqttPacket.parser()
    const write = (packet) => socket.write(mqttPacket.generate(packet))
    const timer = setTimeout(() => fail(new Error(`device ${deviceId}: not connected within 30 s`)), 30_000)
    const fail = (error) => {
      clearTimeout(timer)
      socket.destroy()
      reject(error)
    }
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') {
        if (p.returnCode !== 0) return fail(new Error(`device ${deviceId}: CONNACK ${p.returnCode}`))
        write({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$iothub/methods/POST/#', qos: 0 }] })
      } else if (p.cmd === 'suback') {
        clearTimeout(timer)
        resolve(socket)
      } else if (p.cmd === 'publish') {
        const rid = /\?\$rid=([^&]+)/.exec(p.topic)?.[1]
        if (rid !== undefined) write({ cmd: 'publish', topic: `$iothub/methods/res/200/?$rid=${rid}`, payload: p.payload, qos: 0, retain: false, dup: false })
      }
    })
    parser.on('error', fail)
    socket.on('data', (chunk) => parser.parse(chunk))
    socket.on('error', fail)
    socket.on('secureConnect', () =>
      write({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        keepalive: 300,
        clientId: deviceId,
        username: `${target.hostName}/${deviceId}/?${API}`,
        password: Buffer.from(password),
      }),
    )
  })
}

async function start() {
  const instance = await startProvisio(tempDir('hub'))
  const hub = instance.endpoints.hubs[0]
  const cs = parseConnectionString(hub.connectionString)
  const expiresAt = Math.floor(Date.now() / 1000) + 24 * 3600
  const serviceToken = buildSasToken({ resource: cs.HostName, key: cs.SharedAccessKey, keyName: cs.SharedAccessKeyName, expiresAt })
  const bare = await startBare(instance.certFile, instance.keyFile, { script: 'bare-hub.mjs' })
  const common = { hostName: cs.HostName, ca: instance.ca, serviceToken }
  const agent = () => new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: instance.ca })
  const targets = {
    ours: { ...common, https: instance.endpoints.ports.https, mqtt: instance.endpoints.ports.mqtt, agent: agent() },
    baseline: { ...common, https: bare.ports.https, mqtt: bare.ports.mqtt, agent: agent() },
  }
  const ids = Array.from({ length: DEVICES }, (_, i) => `bench-method-${String(i).padStart(3, '0')}`)
  const sockets = []
  for (const deviceId of ids) {
    const key = Buffer.alloc(32, deviceId.length + sockets.length).toString('base64')
    const created = await call(targets.ours, 'PUT', `/devices/${deviceId}?${API}`, {
      deviceId,
      status: 'enabled',
      authentication: { type: 'sas', symmetricKey: { primaryKey: key, secondaryKey: key } },
    })
    if (created.status !== 200) throw new Error(`creating ${deviceId}: ${created.status} ${JSON.stringify(created.body)}`)
    const password = buildSasToken({ resource: `${cs.HostName}/devices/${deviceId}`, key, expiresAt })
    sockets.push(await connectDevice(targets.ours, deviceId, password), await connectDevice(targets.baseline, deviceId, password))
  }
  return { instance, bare, targets, ids, sockets }
}

let sequence = 0
function batch(who) {
  return async () => {
    state.started ??= await start()
    const { targets, ids } = state.started
    const target = targets[who]
    const samples = []
    let next = 0
    const worker = async () => {
      while (next < BATCH) {
        const n = next++
        const deviceId = ids[(sequence + n) % ids.length]
        const payload = { n, at: sequence }
        const began = performance.now()
        const answer = await call(target, 'POST', `/twins/${deviceId}/methods?${API}`, { methodName: 'echo', payload, responseTimeoutInSeconds: 30 })
        samples.push(performance.now() - began)
        if (answer.status !== 200 || answer.body?.status !== 200 || answer.body?.payload?.n !== n) {
          throw new Error(`${who}: method on ${deviceId} answered ${answer.status} ${JSON.stringify(answer.body)}`)
        }
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    sequence += BATCH
    return { samples }
  }
}

export default {
  file: 'hub',
  title: "The hub's cloud operations: direct-method round trips, beside a bare relay",
  timing: { warmupMs: 500, runMs: 750, runs: 7 },
  async teardown() {
    if (!state.started) return
    for (const s of state.started.sockets) s.destroy()
    state.started.targets.ours.agent.destroy()
    state.started.targets.baseline.agent.destroy()
    await state.started.instance.stop()
    state.started.bare.child.kill('SIGKILL')
  },
  notes: () =>
    '`provisio serve` (the built CLI, its own process, SQLite, log level error) with its embedded hub; ' +
    `${DEVICES} devices created through the registry REST API and connected over MQTT (TLS, SAS), each answering every method with status 200 and the request's payload; ` +
    `callers: \`POST /twins/{id}/methods\` over kept-alive HTTPS connections with the hub owner policy's token, ${CONCURRENCY} in flight, ${BATCH} per measured call. ` +
    'Baseline: `lib/bare-hub.mjs`, the same request relayed to the same device socket on the same certificate and TLS settings, no hub work. ' +
    'Callers and devices run in the bench process for both sides; p50/p99 per call, from request to answer.',
  cases: [
    {
      name: 'direct method round trip (HTTPS caller, MQTT device)',
      unit: 'ops',
      opsPerCall: BATCH,
      async: true,
      target: `>= 0.5x ${BASELINE}`,
      setup: async () => {
        state.started ??= await start()
      },
      async check() {
        await batch('ours')()
        await batch('baseline')()
      },
      ours: batch('ours'),
      peers: { [BASELINE]: batch('baseline') },
    },
  ],
}
