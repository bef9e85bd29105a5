// SIGKILL mid-load loses no acknowledged telemetry: devices send with azure-iot-device over MQTT
// (each send resolves on its PUBACK, which the hub sends only after the message is committed,
// docs/protocol.md §12.1) while `provisio serve` on SQLite is killed; every message a device saw
// acknowledged must then be in telemetry.db. Needs the built CLI.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { Client, Message } from 'azure-iot-device'
import { Mqtt as DeviceMqtt } from 'azure-iot-device-mqtt'
import { NoRetry } from 'azure-iot-common'
import { ServeProcess } from '../scale/harness.js'
import { registryOn } from '../lib/registry.js'
import { redirectMqtts } from '../lib/tls-plumbing.js'

const root = mkdtempSync(join(tmpdir(), 'provisio-telemetry-crash-'))
let server: ServeProcess | undefined
let undoRedirect: (() => void) | undefined
const clients: Client[] = []

afterAll(async () => {
  undoRedirect?.()
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
  await server?.kill()
  rmSync(root, { recursive: true, force: true })
})

describe('durable telemetry on SQLite', () => {
  it('keeps every acknowledged message when the server is SIGKILLed mid-load', async () => {
    const s = new ServeProcess('telemetry crash', join(root, 'data'), [])
    server = s
    await s.start()
    // endpoints.json as the server wrote it (the scale harness types only the fields it reads).
    const hub = (s.endpoints as unknown as { hubs: { hostName: string; connectionString: string }[] }).hubs[0]!
    const target = { port: s.endpoints!.ports.https, caPem: s.ca }
    undoRedirect = redirectMqtts({ endpoints: { ports: { mqtt: s.endpoints!.ports.mqtt } }, caPem: s.ca })
    const registry = registryOn(target, hub.connectionString)
    const key = Buffer.alloc(32, 0x42).toString('base64')
    const acked = new Set<string>()
    const DEVICES = 4
    const opened: Client[] = []
    for (let d = 0; d < DEVICES; d++) {
      const deviceId = `crash-${d}`
      await registry.create({ deviceId, authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } } } as never)
      const client = Client.fromConnectionString(`HostName=${hub.hostName};DeviceId=${deviceId};SharedAccessKey=${key}`, DeviceMqtt)
      client.setRetryPolicy(new NoRetry())
      await client.setOptions({ ca: s.ca })
      await client.open()
      clients.push(client)
      opened.push(client)
    }
    let stopped = false
    // Each device keeps 8 sends in flight until the server is gone.
    const loops = opened.flatMap((client, d) =>
      Array.from({ length: 8 }, async (_, lane) => {
        for (let i = 0; !stopped; i++) {
          const body = `crash-${d}/${lane}/${i}`
          try {
            await client.sendEvent(new Message(body))
            acked.add(body)
          } catch {
            return
          }
        }
      }),
    )
    await vi.waitFor(() => expect(acked.size).toBeGreaterThanOrEqual(400), { timeout: 30_000, interval: 20 })
    await s.kill()
    stopped = true
    await Promise.all(loops)

    const db = new Database(join(root, 'data', 'telemetry.db'))
    try {
      const stored = new Set((db.prepare('SELECT body FROM telemetry').all() as { body: Buffer }[]).map((r) => r.body.toString('utf8')))
      const lost = [...acked].filter((b) => !stored.has(b))
      expect(lost).toEqual([])
      expect(stored.size).toBeGreaterThanOrEqual(acked.size)
    } finally {
      db.close()
    }
  }, 90_000)
})
