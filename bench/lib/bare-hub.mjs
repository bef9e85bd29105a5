#!/usr/bin/env node
// The baseline of the hub suite, run as its own process (like `provisio serve`): the hub's cloud
// operations reduced to a relay on the same certificate and TLS settings, doing no hub work (no
// authentication, no registry, no limits, no metrics):
//   MQTT   node:tls + mqtt-packet: CONNACK to anyone (the client id names the device), SUBACK,
//          and the device's `$iothub/methods/res/{status}/?$rid=` answers matched to waiting calls
//   HTTPS  node:https: POST /twins/{id}/methods → the method PUBLISHed to that device's socket as
//          `$iothub/methods/POST/{name}/?$rid=`, answered `{ status, payload }` when the device replies
// Usage: node bare-hub.mjs <cert.pem> <key.pem>; prints one JSON line with the ports.
import { readFileSync } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createTlsServer } from 'node:tls'
import mqttPacket from 'mqtt-packet'

const [certFile, keyFile] = process.argv.slice(2)
const tls = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), minVersion: 'TLSv1.2', handshakeTimeout: 10_000 }

/** Connected devices by id: how to write to them. */
const devices = new Map()
/** Calls waiting for the device's answer, by request id. */
const waiting = new Map()
let nextRid = 1

const mqtt = createTlsServer(tls, (socket) => {
  socket.setNoDelay(true)
  const parser = mqttPacket.parser()
  let deviceId
  const write = (packet) => socket.write(mqttPacket.generate(packet))
  parser.on('packet', (p) => {
    if (p.cmd === 'connect') {
      deviceId = p.clientId
      devices.set(deviceId, write)
      write({ cmd: 'connack', returnCode: 0, sessionPresent: false })
    } else if (p.cmd === 'subscribe') write({ cmd: 'suback', messageId: p.messageId, granted: p.subscriptions.map(() => 0) })
    else if (p.cmd === 'pingreq') write({ cmd: 'pingresp' })
    else if (p.cmd === 'publish') {
      if (p.qos > 0) write({ cmd: 'puback', messageId: p.messageId })
      const m = /^\$iothub\/methods\/res\/(\d+)\/\?\$rid=(\d+)/.exec(p.topic)
      const call = m && waiting.get(m[2])
      if (call) {
        waiting.delete(m[2])
        call(Number(m[1]), p.payload)
      }
    } else if (p.cmd === 'disconnect') socket.end()
  })
  parser.on('error', () => socket.destroy())
  socket.on('data', (chunk) => parser.parse(chunk))
  socket.on('close', () => {
    if (deviceId !== undefined && devices.get(deviceId) === write) devices.delete(deviceId)
  })
  socket.on('error', () => {})
})

const https = createHttpsServer(tls, (req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const answer = (status, body) => {
      const text = JSON.stringify(body)
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    }
    const m = /^\/twins\/([^/?]+)\/methods/.exec(req.url ?? '')
    const write = m && devices.get(decodeURIComponent(m[1]))
    if (req.method !== 'POST' || !write) return answer(404, { Message: 'no such device connected' })
    let call
    try {
      call = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      return answer(400, { Message: 'body is not JSON' })
    }
    const rid = String(nextRid++)
    waiting.set(rid, (status, payload) => answer(200, { status, payload: payload.length === 0 ? null : JSON.parse(payload.toString('utf8')) }))
    write({ cmd: 'publish', topic: `$iothub/methods/POST/${call.methodName}/?$rid=${rid}`, payload: JSON.stringify(call.payload ?? null), qos: 0, retain: false, dup: false })
  })
})
https.keepAliveTimeout = 5000

const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
await Promise.all([listen(https), listen(mqtt)])
process.stdout.write(JSON.stringify({ https: https.address().port, mqtt: mqtt.address().port }) + '\n')
