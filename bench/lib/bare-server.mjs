#!/usr/bin/env node
// The bare-TLS baseline of the e2e suite, run as its own process (like `provisio serve`): every
// transport Provisio serves, on the same certificate and TLS settings (TLS 1.2+, client
// certificate requested but not checked by TLS, Node's default session tickets), each answering
// a register request with a fixed `200 assigned` and doing no service work:
//   HTTPS      node:https, any request → fixed JSON
//   MQTT       node:tls + mqtt-packet: CONNACK, SUBACK, PUBACK + res/200 publish
//   MQTT-WS    the same MQTT responder over ws at /$iothub/websocket (subprotocol mqtt)
//   AMQPS      rhea server: PLAIN accepts anyone, the message is answered on the receiver link
//   AMQP-WS    the same rhea container over ws (subprotocol AMQPWSB10)
// Usage: node bare-server.mjs <cert.pem> <key.pem> [--workers <n>]; prints one JSON line with the
// ports. With --workers, n processes serve the same ports through node:cluster, as
// `provisio serve --workers` does, so a multi-process Provisio is compared with a multi-process baseline.
import cluster from 'node:cluster'
import { readFileSync } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createTlsServer } from 'node:tls'
import mqttPacket from 'mqtt-packet'
import rhea from 'rhea'
import { WebSocketServer } from 'ws'

const [certFile, keyFile, ...rest] = process.argv.slice(2)
const workers = rest[0] === '--workers' ? Number(rest[1]) : 1
if (!Number.isInteger(workers) || workers < 1) throw new Error(`--workers must be a positive integer, got ${rest[1]}`)
if (workers > 1 && cluster.isPrimary) {
  // The primary only forks and reports the ports once every worker listens (all share them).
  let ports
  let listening = 0
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('message', (m) => {
      ports = m
      if (++listening === workers) process.stdout.write(JSON.stringify(ports) + '\n')
    })
  }
  cluster.on('exit', (worker, code) => {
    process.stderr.write(`bare worker ${worker.process.pid} exited with ${code}\n`)
    process.exit(1)
  })
} else {
  await serve()
}

async function serve() {
  const tls = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false, handshakeTimeout: 10_000 }
  const FIXED = JSON.stringify({
    operationId: '4.0123456789abcdef.00000000-0000-0000-0000-000000000000',
    status: 'assigned',
    registrationState: { registrationId: 'bare', assignedHub: 'localhost', deviceId: 'bare', status: 'assigned', substatus: 'initialAssignment' },
  })

  // ---- MQTT ----
  function mqttResponder(write, end) {
    const parser = mqttPacket.parser()
    parser.on('packet', (p) => {
      if (p.cmd === 'connect') write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }))
      else if (p.cmd === 'subscribe') write(mqttPacket.generate({ cmd: 'suback', messageId: p.messageId, granted: [1] }))
      else if (p.cmd === 'publish') {
        if (p.qos > 0) write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId }))
        const rid = /\$rid=([^&]*)/.exec(p.topic)?.[1] ?? ''
        write(mqttPacket.generate({ cmd: 'publish', topic: `$dps/registrations/res/200/?$rid=${rid}`, payload: FIXED, qos: 1, messageId: 1, retain: false, dup: false }))
      } else if (p.cmd === 'disconnect') end()
    })
    parser.on('error', () => end())
    return (chunk) => parser.parse(chunk)
  }

  const mqtt = createTlsServer(tls, (socket) => {
    socket.setNoDelay(true)
    socket.on('data', mqttResponder((b) => socket.write(b), () => socket.end()))
    socket.on('error', () => {})
  })

  // ---- AMQP ----
  const amqp = rhea.create_container({ id: 'bare-server' })
  amqp.sasl_server_mechanisms.enable_plain(() => true)
  amqp.sasl_server_mechanisms.enable_anonymous()
  amqp.on('message', (context) => {
    const reply = context.connection.find_sender(() => true)
    reply?.send({
      correlation_id: context.message.correlation_id,
      application_properties: { 'retry-after': 1 },
      body: rhea.message.data_section(Buffer.from(FIXED)),
    })
  })
  amqp.on('error', () => {})
  const amqpServer = amqp.listen({ port: 0, host: '127.0.0.1', transport: 'tls', ...tls })

  // ---- HTTPS and the WebSocket forms ----
  const https = createHttpsServer(tls, (req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(FIXED) })
      res.end(FIXED)
    })
  })
  https.keepAliveTimeout = 5000
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => [...offered].find((p) => p === 'mqtt' || p === 'AMQPWSB10') ?? false })
  https.on('upgrade', (request, socket, head) => {
    if (!request.url?.startsWith('/$iothub/websocket')) return socket.destroy()
    wss.handleUpgrade(request, socket, head, (ws) => {
      if (ws.protocol === 'mqtt') ws.on('message', mqttResponder((b) => ws.send(b), () => ws.close()))
      else amqp.websocket_accept(ws)
    })
  })

  const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  await Promise.all([listen(https), listen(mqtt), new Promise((resolve) => amqpServer.once('listening', resolve))])
  const ports = { https: https.address().port, mqtt: mqtt.address().port, amqp: amqpServer.address().port }
  if (cluster.isWorker) process.send(ports)
  else process.stdout.write(JSON.stringify(ports) + '\n')
}
