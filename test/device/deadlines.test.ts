// A registration ends, assigned or failed, within its deadline whatever the connection does. The
// peer here is an MQTT server that behaves as a `provisio serve` worker killed in the middle of a
// request: it accepts the CONNECT and the SUBSCRIBE, and drops the connection when the device's
// register PUBLISH arrives, before any PUBACK. mqtt.js keeps that PUBLISH as unacknowledged, and
// its graceful end waits for it for ever; the device must close such a session at once and stop at
// its deadline.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningClient, symmetricKey, DeviceError } from '@provisio/device'
import { encodePacket, MqttDecoder } from '@provisio/codec-mqtt'
import { ensureDevPki } from '@provisio/server'

let dir: string
let ca: string
let server: Server
let port: number
let publishes = 0
const sockets = new Set<TLSSocket>()

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'provisio-deadlines-'))
  const pki = await ensureDevPki(dir, ['localhost'], Date.now())
  ca = pki.caCertificatePem
  server = createServer({ key: pki.keyPem, cert: pki.certificatePem }, (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    const decoder = new MqttDecoder()
    socket.on('data', (chunk: Buffer) => {
      for (const packet of decoder.push(chunk).packets) {
        if (packet.cmd === 'connect') socket.write(encodePacket({ cmd: 'connack', returnCode: 0, sessionPresent: false }))
        else if (packet.cmd === 'subscribe') socket.write(encodePacket({ cmd: 'suback', messageId: packet.messageId, granted: [1] }))
        else if (packet.cmd === 'publish') {
          // The worker dies with the request in flight: no PUBACK, no answer, the connection gone.
          publishes++
          socket.destroy()
        }
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
})

afterAll(async () => {
  for (const socket of sockets) socket.destroy()
  await new Promise((resolve) => server?.close(resolve))
  rmSync(dir, { recursive: true, force: true })
})

describe('a registration whose server dies mid-request', () => {
  it('over MQTT ends with DEADLINE_EXCEEDED at its deadline, having retried on new connections', async () => {
    const before = publishes
    const client = new ProvisioningClient({
      idScope: '0ne00000001',
      transport: 'mqtt',
      globalEndpoint: 'localhost',
      port,
      ca,
      security: symmetricKey({ registrationId: 'dies-mid-request', groupKey: Buffer.alloc(64, 7).toString('base64') }),
      timeoutMs: 3000,
      retry: { initialDelayMs: 100, maxDelayMs: 200 },
    })
    const started = Date.now()
    const error = await client.register().then(
      () => undefined,
      (e: unknown) => e,
    )
    const elapsed = Date.now() - started
    expect(error).toBeInstanceOf(DeviceError)
    expect(error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    expect((error as DeviceError).message).toMatch(/the last failure was: .*MQTT connection to localhost:\d+ closed/)
    // Ended at its deadline, not later; and each retry reached the server again (a session whose
    // close hung would have stopped after the first PUBLISH).
    expect(elapsed).toBeGreaterThanOrEqual(2900)
    expect(elapsed).toBeLessThan(4000)
    expect(publishes - before).toBeGreaterThanOrEqual(3)
  })
})
