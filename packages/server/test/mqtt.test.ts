// The Node adapter of the MQTT session over real TLS on loopback: the shared ticker enforces the
// connect timeout and keep-alive, close reasons are logged, and close() ends every connection.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { connect, type TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { MqttDecoder, encodePacket, type MqttPacket } from '@provisio/codec-mqtt'
import type { DeviceApi } from '@provisio/protocol'
import { createMqttTransport, listenMqtt, type MqttTransport } from '../src/mqtt.js'
import { ensureDevPki } from '../src/pki.js'
import type { Logger } from '../src/logger.js'

const dir = mkdtempSync(join(tmpdir(), 'provisio-mqtt-adapter-'))
const lines: { msg: string; fields: Record<string, unknown> }[] = []
const log: Logger = {
  error: (msg, fields = {}) => void lines.push({ msg, fields }),
  warn: (msg, fields = {}) => void lines.push({ msg, fields }),
  info: (msg, fields = {}) => void lines.push({ msg, fields }),
  debug: (msg, fields = {}) => void lines.push({ msg, fields }),
}
const api: DeviceApi = {
  registrationStatus: async () => ({ status: 200, body: { registrationId: 'dev-1', status: 'unassigned' } }),
  register: async () => ({ status: 202, body: { operationId: 'op', status: 'assigning' }, retryAfterSeconds: 1 }),
  operationStatus: async () => ({ status: 200, body: { operationId: 'op', status: 'assigned' } }),
}
let transport: MqttTransport
let ca: string
let port: number
let tlsFiles: { key: string; cert: string }

beforeAll(async () => {
  const pki = await ensureDevPki(dir, ['localhost'], Date.now())
  ca = pki.caCertificatePem
  tlsFiles = { key: pki.keyPem, cert: pki.certificatePem }
  transport = createMqttTransport({ key: pki.keyPem, cert: pki.certificatePem, device: api, log, limits: { connectTimeoutMs: 200 } })
  await listenMqtt(transport.server, 0, '127.0.0.1')
  port = (transport.server.address() as AddressInfo).port
})

afterAll(async () => {
  await transport?.close(100)
  rmSync(dir, { recursive: true, force: true })
})

function open(): Promise<{ socket: TLSSocket; packets: MqttPacket[]; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const packets: MqttPacket[] = []
    const decoder = new MqttDecoder()
    const socket = connect({ host: 'localhost', port, ca }, () => resolve({ socket, packets, closed }))
    const closed = new Promise<void>((r) => socket.on('close', () => r()))
    socket.on('data', (chunk: Buffer) => packets.push(...decoder.push(chunk).packets))
    socket.on('error', reject)
  })
}

const dropped = (code: string) => lines.find((l) => l.msg === 'mqtt connection dropped' && l.fields.code === code)

describe('MQTT adapter', () => {
  it('drops a connection that sends no CONNECT within the connect timeout, logging why', async () => {
    const { closed } = await open()
    await closed
    expect(dropped('CONNECT_TIMEOUT')?.fields).toMatchObject({ transport: 'mqtts', reason: 'no CONNECT within 200 ms of the connection opening' })
  })

  it('drops a connected client silent for 1.5 keep-alive periods', async () => {
    const c = await open()
    c.socket.write(encodePacket({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 1, clientId: 'dev-1', username: '0ne00000A0A/registrations/dev-1/api-version=2019-03-31', password: Buffer.from('sas') }))
    await c.closed
    expect(c.packets[0]).toEqual({ cmd: 'connack', returnCode: 0, sessionPresent: false })
    expect(dropped('KEEPALIVE_TIMEOUT')?.fields.reason).toMatch(/keep-alive is 1 s/)
  })

  it('closes the older connection when the same client CONNECTs again (MQTT-3.1.4-2)', async () => {
    const hello = (id: string) =>
      encodePacket({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: id, username: `0ne00000A0A/registrations/${id}/api-version=2019-03-31`, password: Buffer.from('sas') })
    const first = await open()
    first.socket.write(hello('Dev-2'))
    await vi.waitFor(() => expect(first.packets).toHaveLength(1), { timeout: 5000 })
    const second = await open()
    // Registration ids compare case-insensitively (docs/protocol.md §0): the same client.
    second.socket.write(hello('dev-2'))
    await first.closed
    expect(lines.find((l) => l.msg === 'mqtt connection closed' && l.fields.code === 'TAKEN_OVER')).toBeDefined()
    await vi.waitFor(() => expect(second.packets.length).toBeGreaterThan(0), { timeout: 5000 })
    expect(second.packets[0]).toEqual({ cmd: 'connack', returnCode: 0, sessionPresent: false })
    second.socket.write(encodePacket({ cmd: 'pingreq' }))
    await vi.waitFor(() => expect(second.packets.length).toBeGreaterThanOrEqual(2), { timeout: 5000 })
    expect(second.packets[1]).toEqual({ cmd: 'pingresp' })
    second.socket.destroy()
  })

  it('close() ends every open connection and stops the listener', async () => {
    const own = createMqttTransport({ ...tlsFiles, device: api, log })
    await listenMqtt(own.server, 0, '127.0.0.1')
    const ownPort = (own.server.address() as AddressInfo).port
    const socket = connect({ host: 'localhost', port: ownPort, ca })
    const closed = new Promise<void>((r) => socket.on('close', () => r()))
    await new Promise((r) => socket.once('secureConnect', r))
    socket.on('error', () => {})
    // Wait until the server side has registered the connection.
    await vi.waitFor(() => expect(own.connections).toBe(1), { timeout: 5000 })
    await own.close(100)
    await closed
    expect(own.connections).toBe(0)
    expect(own.server.listening).toBe(false)
  })

  it('close() waits for a register in flight (the in-flight-zero signal), answers it, then ends the connection', async () => {
    let answer!: () => void
    const held: DeviceApi = { ...api, register: () => new Promise((resolve) => (answer = () => resolve({ status: 202, body: { operationId: 'op-held', status: 'assigning' }, retryAfterSeconds: 1 }))) }
    const own = createMqttTransport({ ...tlsFiles, device: held, log })
    await listenMqtt(own.server, 0, '127.0.0.1')
    const ownPort = (own.server.address() as AddressInfo).port
    const packets: MqttPacket[] = []
    const decoder = new MqttDecoder()
    const socket = connect({ host: 'localhost', port: ownPort, ca })
    socket.on('data', (chunk: Buffer) => packets.push(...decoder.push(chunk).packets))
    socket.on('error', () => {})
    const closed = new Promise<number>((r) => socket.on('close', () => r(packets.length)))
    await new Promise((r) => socket.once('secureConnect', r))
    socket.write(encodePacket({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'dev-9', username: '0ne00000A0A/registrations/dev-9/api-version=2019-03-31', password: Buffer.from('sas') }))
    socket.write(encodePacket({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$dps/registrations/res/#', qos: 1 }] }))
    socket.write(encodePacket({ cmd: 'publish', topic: '$dps/registrations/PUT/iotdps-register/?$rid=7', payload: Buffer.from('{}'), qos: 1, messageId: 2, retain: false, dup: false }))
    await vi.waitFor(() => expect(answer).toBeDefined(), { timeout: 5000 })
    let stopped = false
    const closing = own.close(10_000).then(() => (stopped = true))
    // The register is still in flight: close() waits (bounded by its grace), the connection stays.
    await new Promise((r) => setImmediate(r))
    expect(stopped).toBe(false)
    expect(own.connections).toBe(1)
    answer()
    await closing
    const seen = await closed
    const answers = packets.slice(0, seen).filter((p): p is Extract<MqttPacket, { cmd: 'publish' }> => p.cmd === 'publish')
    expect(answers.map((p) => p.topic)).toEqual(['$dps/registrations/res/202/?$rid=7&retry-after=1'])
    expect(own.connections).toBe(0)
  })
})
