// Durable telemetry on SQLite: what the sink stores survives closing the database, partitions
// number their messages as Event Hubs does, reads start from a sequence number, an offset or a
// time, retention and the size bound drop the oldest first (and count them), bad input is refused.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createTelemetrySink, telemetryPartition, telemetryReaderOf } from '@provisio/hub'
import { SqliteTelemetryStore } from '../src/index.js'

const dirs: string[] = []
const open: SqliteTelemetryStore[] = []
afterEach(() => {
  for (const s of open.splice(0)) s.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function fileIn(): string {
  const dir = mkdtempSync(join(tmpdir(), 'provisio-telemetry-'))
  dirs.push(dir)
  return join(dir, 'telemetry.db')
}

function openStore(file: string, options: ConstructorParameters<typeof SqliteTelemetryStore>[1] = {}): SqliteTelemetryStore {
  const store = new SqliteTelemetryStore(file, options)
  open.push(store)
  return store
}

const text = (s: string) => new TextEncoder().encode(s)
const HUB = 'Hub-1.azure-devices.net'

describe('telemetryPartition', () => {
  it('is stable, case-insensitive and spreads devices over every partition', () => {
    expect(telemetryPartition('Device-1', 4)).toBe(telemetryPartition('device-1', 4))
    const seen = new Set<number>()
    for (let i = 0; i < 64; i++) seen.add(telemetryPartition(`device-${i}`, 4))
    expect([...seen].sort()).toEqual([0, 1, 2, 3])
  })
})

describe('SqliteTelemetryStore through the telemetry sink', () => {
  it('keeps messages with their system properties across a reopen, numbered per partition', async () => {
    const file = fileIn()
    let now = Date.UTC(2026, 0, 1)
    const clock = { now: () => now }
    const store = openStore(file, { clock })
    const sink = createTelemetrySink(store, { partitions: 4, clock })
    // All sent in one turn: one group commit, each resolving after it.
    await Promise.all([
      sink(HUB, 'dev-a', { body: text('{"t":1}'), properties: { alert: 'yes' }, systemProperties: { '$.mid': 'm1', '$.ct': 'application/json', '$.ce': 'utf-8', '$.cid': 'c1' } }),
      sink(HUB, 'dev-a', { body: text('{"t":2}'), properties: {}, systemProperties: {} }),
      sink(HUB, 'dev-b', { body: new Uint8Array([0xff, 0x00]), properties: {}, systemProperties: {}, authMethod: 'x509' }),
    ])
    now += 1000
    await sink(HUB, 'dev-a', { body: text('{"t":3}'), properties: {}, systemProperties: {} })
    store.close()
    open.splice(open.indexOf(store), 1)

    const again = openStore(file, { clock })
    const partA = telemetryPartition('dev-a', 4)
    const rows = await again.readPartition(HUB, partA, { sequenceNumber: 0 }, 10)
    const ofA = rows.filter((r) => r.deviceId === 'dev-a')
    expect(ofA.map((r) => new TextDecoder().decode(r.body))).toEqual(['{"t":1}', '{"t":2}', '{"t":3}'])
    expect(rows.map((r) => r.sequenceNumber)).toEqual(rows.map((_, i) => i))
    expect(ofA[0]!.properties).toEqual({ alert: 'yes' })
    expect(ofA[0]!.systemProperties).toMatchObject({
      'message-id': 'm1',
      'correlation-id': 'c1',
      'content-type': 'application/json',
      'content-encoding': 'utf-8',
      'iothub-connection-device-id': 'dev-a',
      'iothub-enqueuedtime': '2026-01-01T00:00:00.0000000Z',
    })
    expect(JSON.parse(ofA[0]!.systemProperties['iothub-connection-auth-method']!)).toEqual({ scope: 'device', type: 'sas', issuer: 'iothub' })
    // Offsets count the payload bytes before a message in its partition.
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.offset).toBe(rows[i - 1]!.offset + rows[i - 1]!.body.length)
    // From an offset, a sequence number and an enqueued time.
    expect((await again.readPartition(HUB, partA, { offset: rows[1]!.offset }, 10)).map((r) => r.sequenceNumber)).toEqual(rows.slice(1).map((r) => r.sequenceNumber))
    expect((await again.readPartition(HUB, partA, { enqueuedTimeMs: now }, 10)).map((r) => new TextDecoder().decode(r.body))).toEqual(['{"t":3}'])
    const info = await again.partitionInfo(HUB, partA)
    expect(info).toMatchObject({ partition: partA, firstSequenceNumber: 0, lastSequenceNumber: rows.length - 1, lastOffset: rows.at(-1)!.offset, lastEnqueuedTimeMs: now })

    // The registry API's per-device read: binary bodies come back base64.
    const reader = telemetryReaderOf(again, HUB)
    const pageB = await reader.read('DEV-B')
    expect(pageB.messages.map((m) => [m.body, m.bodyEncoding])).toEqual([['/wA=', 'base64']])
    // Each device numbers its own messages from 1, whatever else shares its partition.
    expect(ofA.map((r) => r.deviceSequenceNumber)).toEqual([1, 2, 3])
    const pageA = await reader.read('dev-a', { after: 1 })
    expect(pageA.messages.map((m) => [m.sequenceNumber, m.body])).toEqual([
      [2, '{"t":2}'],
      [3, '{"t":3}'],
    ])
    expect(pageA.lastSequenceNumber).toBe(3)
    expect((await reader.read('dev-a')).messages[0]!.systemProperties).toMatchObject({ '$.mid': 'm1', '$.ct': 'application/json', 'iothub-connection-device-id': 'dev-a' })
    await reader.clear('dev-a')
    expect((await reader.read('dev-a')).messages).toEqual([])
    // Numbering goes on after a device's messages were removed: never reused.
    const after = await again.append([{ hostName: HUB, partition: partA, deviceId: 'dev-a', enqueuedTimeMs: now, properties: {}, systemProperties: {}, body: text('x') }])
    expect(after[0]!.sequenceNumber).toBe(info.lastSequenceNumber + 1)
  })

  it('drops the oldest past retention and past the size bound, and counts them per device', async () => {
    let now = 1_000_000
    const clock = { now: () => now }
    const dropped: [string, string, number][] = []
    const store = openStore(fileIn(), { clock, retentionMs: 60_000, maxBytes: 100, onDropped: (hub, reason, count) => dropped.push([hub, reason, count]) })
    const sink = createTelemetrySink(store, { partitions: 2, clock })
    for (let i = 0; i < 3; i++) await sink(HUB, 'old', { body: text('o'.repeat(10)), properties: {}, systemProperties: {} })
    now += 120_000
    for (let i = 0; i < 6; i++) await sink(HUB, 'new', { body: text(String(i).repeat(30)), properties: {}, systemProperties: {} })
    await store.trim()
    expect(dropped).toEqual(expect.arrayContaining([[HUB.toLowerCase(), 'retention', 3], [HUB.toLowerCase(), 'size', 3]]))
    const reader = telemetryReaderOf(store, HUB)
    expect((await reader.read('old')).dropped).toBe(3)
    const kept = await reader.read('new')
    expect(kept.messages.map((m) => m.body[0])).toEqual(['3', '4', '5'])
    expect(kept.dropped).toBe(3)
  })

  it('refuses oversized messages and malformed property bags, storing nothing', async () => {
    const clock = { now: () => 0 }
    const store = openStore(fileIn(), { clock })
    const sink = createTelemetrySink(store, { partitions: 4, clock })
    await expect(sink(HUB, 'd', { body: new Uint8Array(256 * 1024 + 1), properties: {}, systemProperties: {} })).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' })
    await expect(sink(HUB, 'd', { body: text('x'), properties: { '': 'v' }, systemProperties: {} })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    await expect(sink(HUB, 'd', { body: text('x'), properties: { k: 5 as unknown as string }, systemProperties: {} })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    await expect(sink(HUB, 'd', { body: text('x'), properties: { k: 'v'.repeat(9000) }, systemProperties: {} })).rejects.toThrow(/at most 8192/)
    expect(() => createTelemetrySink(store, { partitions: 0, clock })).toThrow(/partitions must be 1 to 32/)
    expect((await telemetryReaderOf(store, HUB).read('d')).messages).toEqual([])
    await sink(HUB, 'd', { body: new Uint8Array(256 * 1024), properties: {}, systemProperties: {} })
    expect((await telemetryReaderOf(store, HUB).read('d')).messages).toHaveLength(1)
  })
})
