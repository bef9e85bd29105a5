// The hub relay of `provisio serve --workers` (serve.ts `hubRelay`), in process: two servers on one
// SQLite database, their relays joined by an in-memory bus (what the primary's IPC does between
// workers). A device connected to server A hears of a desired-property change written through B,
// and loses its connection when B deletes or disables its identity.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectHub, symmetricKey, type DeviceError, type HubClient } from '@provisio/device'
import { DEFAULT_CONFIG, createLogger, startServer, type HubRelay, type RunningServer } from '@provisio/server'

const dataDir = mkdtempSync(join(tmpdir(), 'provisio-hub-relay-'))
const listeners = new Set<{ owner: string; listener: (message: string) => void }>()
const published: string[] = []
function relay(owner: string): HubRelay {
  return {
    publish: (message) => {
      published.push(`${owner}:${(JSON.parse(message) as { kind: string }).kind}`)
      // To the others only, as the primary does.
      for (const l of listeners) if (l.owner !== owner) l.listener(message)
    },
    subscribe: (listener) => {
      const entry = { owner, listener }
      listeners.add(entry)
      return () => void listeners.delete(entry)
    },
  }
}

let a: RunningServer
let b: RunningServer
let ca: string
const clients: HubClient[] = []

beforeAll(async () => {
  const config = { ...DEFAULT_CONFIG, dataDir, httpsPort: 0, mqttPort: 0, amqpPort: 0, logLevel: 'error' as const, workers: 2 }
  a = await startServer(config, createLogger('error'), { hubRelay: relay('a'), writeEndpoints: false })
  b = await startServer(config, createLogger('error'), { hubRelay: relay('b'), writeEndpoints: false })
  ca = readFileSync(a.endpoints.caCertificate, 'utf8')
})

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()))
  await a?.close(1000)
  await b?.close(1000)
  rmSync(dataDir, { recursive: true, force: true })
})

async function deviceOnA(deviceId: string): Promise<{ client: HubClient; disconnected: Promise<DeviceError> }> {
  const key = Buffer.alloc(32, deviceId.length).toString('base64')
  await b.hubs.get('localhost')!.createOrUpdateDevice({ deviceId, authentication: { type: 'sas', symmetricKey: { primaryKey: key, secondaryKey: key } } })
  const client = await connectHub({ hostName: 'localhost', deviceId, security: symmetricKey({ registrationId: deviceId, key }), port: a.endpoints.ports.mqtt, ca })
  clients.push(client)
  return { client, disconnected: new Promise((resolve) => client.onDisconnect(resolve)) }
}

describe('hub events across the processes of one server', () => {
  it('pushes a desired change written through the other process', async () => {
    const { client } = await deviceOnA('relay-desired')
    const seen = new Promise<Record<string, unknown>>((resolve) => client.onDesired((patch) => resolve(patch)))
    await b.hubs.get('localhost')!.updateTwin('relay-desired', { properties: { desired: { interval: 7 } } })
    expect(await seen).toMatchObject({ interval: 7 })
    expect(published).toContain('b:desired')
  })

  it('ends the connection of an identity the other process deletes or disables', async () => {
    const deleted = await deviceOnA('relay-deleted')
    const disabled = await deviceOnA('relay-disabled')
    await b.hubs.get('localhost')!.deleteDevice('relay-deleted')
    const key = Buffer.alloc(32, 'relay-disabled'.length).toString('base64')
    await b.hubs.get('localhost')!.createOrUpdateDevice({ deviceId: 'relay-disabled', status: 'disabled', authentication: { type: 'sas', symmetricKey: { primaryKey: key, secondaryKey: key } } })
    expect((await deleted.disconnected).code).toBe('TRANSPORT')
    expect((await disabled.disconnected).code).toBe('TRANSPORT')
    expect(published.filter((p) => p === 'b:revoked')).toHaveLength(2)
  })
})
