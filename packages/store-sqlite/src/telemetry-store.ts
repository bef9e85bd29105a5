/**
 * Device-to-cloud telemetry on SQLite (@provisio/hub TelemetryStore), in a database file of its
 * own so telemetry writes and registrations do not take turns on one write lock.
 *
 * Appends go through {@link GroupCommit}: the messages of one event-loop turn commit in one
 * transaction, and each append resolves after that COMMIT. Sequence numbers and offsets come from
 * `telemetry_partitions` inside the transaction, so several processes on one file number a
 * partition without gaps or doubles. Retention and the size bound run after a commit at most once a
 * second: messages older than the retention period go, then the oldest (by arrival) until the
 * payload bytes of a hub fit the bound; each device's losses are counted in `telemetry_devices`, which also numbers each device's
 * messages from 1 (the registry API's per-device sequence numbers).
 */
import Database from 'better-sqlite3'
import type { TelemetryInput, TelemetryPartitionInfo, TelemetryPosition, TelemetryRecord, TelemetryStore } from '@provisio/hub'
import { GroupCommit } from './group-commit.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS telemetry (
  id INTEGER PRIMARY KEY,
  hub TEXT NOT NULL,
  partition INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  off INTEGER NOT NULL,
  device_id TEXT NOT NULL,
  device_key TEXT NOT NULL,
  device_seq INTEGER NOT NULL,
  enqueued_ms INTEGER NOT NULL,
  properties TEXT NOT NULL,
  system_properties TEXT NOT NULL,
  body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS telemetry_by_partition ON telemetry (hub, partition, seq);
CREATE INDEX IF NOT EXISTS telemetry_by_device ON telemetry (hub, device_key, device_seq);
CREATE TABLE IF NOT EXISTS telemetry_partitions (
  hub TEXT NOT NULL,
  partition INTEGER NOT NULL,
  next_seq INTEGER NOT NULL,
  next_off INTEGER NOT NULL,
  PRIMARY KEY (hub, partition)
);
CREATE TABLE IF NOT EXISTS telemetry_devices (
  hub TEXT NOT NULL,
  device_key TEXT NOT NULL,
  next_seq INTEGER NOT NULL DEFAULT 1,
  dropped INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (hub, device_key)
);
`

export interface SqliteTelemetryStoreOptions {
  /** How long a message is kept, ms (default one day, IoT Hub's default retention). */
  readonly retentionMs?: number
  /** Payload bytes kept per hub; beyond it the oldest go first (default 256 MiB). */
  readonly maxBytes?: number
  readonly clock?: { now(): number }
  /** Other processes write to this file (`provisio serve --workers`). */
  readonly otherWriters?: boolean
  /** Told how many messages retention or the size bound removed. */
  readonly onDropped?: (hostName: string, reason: 'retention' | 'size', count: number) => void
}

interface Row {
  hub: string
  partition: number
  seq: number
  off: number
  device_id: string
  device_seq: number
  enqueued_ms: number
  properties: string
  system_properties: string
  body: Buffer
}

const recordOf = (row: Row): TelemetryRecord => ({
  hostName: row.hub,
  partition: row.partition,
  sequenceNumber: row.seq,
  offset: row.off,
  deviceSequenceNumber: row.device_seq,
  deviceId: row.device_id,
  enqueuedTimeMs: row.enqueued_ms,
  properties: JSON.parse(row.properties) as Record<string, string>,
  systemProperties: JSON.parse(row.system_properties) as Record<string, string>,
  body: new Uint8Array(row.body.buffer, row.body.byteOffset, row.body.byteLength),
})

export class SqliteTelemetryStore implements TelemetryStore {
  readonly #db: Database.Database
  readonly #commits: GroupCommit
  readonly #retentionMs: number
  readonly #maxBytes: number
  readonly #clock: { now(): number }
  readonly #onDropped: SqliteTelemetryStoreOptions['onDropped']
  #lastTrimMs = -Infinity
  readonly #s: Record<string, Database.Statement>

  constructor(file: string, options: SqliteTelemetryStoreOptions = {}) {
    this.#retentionMs = options.retentionMs ?? 24 * 3600_000
    this.#maxBytes = options.maxBytes ?? 256 * 1024 * 1024
    if (!(this.#retentionMs > 0) || !(this.#maxBytes > 0)) throw new RangeError(`telemetry retention (${String(options.retentionMs)} ms) and size bound (${String(options.maxBytes)} bytes) must be positive`)
    this.#clock = options.clock ?? Date
    this.#onDropped = options.onDropped
    this.#db = new Database(file)
    this.#db.pragma('journal_mode = WAL')
    this.#db.pragma('synchronous = NORMAL')
    this.#db.pragma('busy_timeout = 5000')
    this.#db.exec(SCHEMA)
    this.#commits = new GroupCommit(this.#db, { otherWriters: options.otherWriters === true })
    const db = this.#db
    this.#s = {
      partition: db.prepare('SELECT next_seq, next_off FROM telemetry_partitions WHERE hub = ? AND partition = ?'),
      upsertPartition: db.prepare('INSERT INTO telemetry_partitions (hub, partition, next_seq, next_off) VALUES (?, ?, ?, ?) ON CONFLICT (hub, partition) DO UPDATE SET next_seq = excluded.next_seq, next_off = excluded.next_off'),
      insert: db.prepare('INSERT INTO telemetry (hub, partition, seq, off, device_id, device_key, device_seq, enqueued_ms, properties, system_properties, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      nextOfDevice: db.prepare('INSERT INTO telemetry_devices (hub, device_key, next_seq) VALUES (?, ?, 2) ON CONFLICT (hub, device_key) DO UPDATE SET next_seq = next_seq + 1 RETURNING next_seq - 1 AS seq'),
      byDevice: db.prepare('SELECT * FROM telemetry WHERE hub = ? AND device_key = ? AND device_seq > ? ORDER BY device_seq LIMIT ?'),
      device: db.prepare('SELECT next_seq, dropped FROM telemetry_devices WHERE hub = ? AND device_key = ?'),
      fromSeq: db.prepare('SELECT * FROM telemetry WHERE hub = ? AND partition = ? AND seq >= ? ORDER BY seq LIMIT ?'),
      fromOff: db.prepare('SELECT * FROM telemetry WHERE hub = ? AND partition = ? AND off >= ? ORDER BY seq LIMIT ?'),
      fromTime: db.prepare('SELECT * FROM telemetry WHERE hub = ? AND partition = ? AND enqueued_ms >= ? ORDER BY seq LIMIT ?'),
      first: db.prepare('SELECT MIN(seq) AS seq FROM telemetry WHERE hub = ? AND partition = ?'),
      last: db.prepare('SELECT seq, off, enqueued_ms FROM telemetry WHERE hub = ? AND partition = ? ORDER BY seq DESC LIMIT 1'),
      clear: db.prepare('DELETE FROM telemetry WHERE hub = ? AND device_key = ?'),
      clearDevice: db.prepare('DELETE FROM telemetry_devices WHERE hub = ? AND device_key = ?'),
      countOld: db.prepare('INSERT INTO telemetry_devices (hub, device_key, dropped) SELECT hub, device_key, COUNT(*) FROM telemetry WHERE enqueued_ms < ? GROUP BY hub, device_key ON CONFLICT (hub, device_key) DO UPDATE SET dropped = dropped + excluded.dropped'),
      oldByHub: db.prepare('SELECT hub, COUNT(*) AS n FROM telemetry WHERE enqueued_ms < ? GROUP BY hub'),
      deleteOld: db.prepare('DELETE FROM telemetry WHERE enqueued_ms < ?'),
      bytesByHub: db.prepare('SELECT hub, SUM(LENGTH(body)) AS bytes FROM telemetry GROUP BY hub'),
      oldest: db.prepare('SELECT id, device_key, LENGTH(body) AS size FROM telemetry WHERE hub = ? ORDER BY id LIMIT 1000'),
      deleteId: db.prepare('DELETE FROM telemetry WHERE id = ?'),
      countOne: db.prepare('INSERT INTO telemetry_devices (hub, device_key, dropped) VALUES (?, ?, 1) ON CONFLICT (hub, device_key) DO UPDATE SET dropped = dropped + 1'),
    }
  }

  append(messages: readonly TelemetryInput[]): Promise<readonly TelemetryRecord[]> {
    const stored = this.#commits.write(() => {
      const records: TelemetryRecord[] = []
      for (const m of messages) {
        const hub = m.hostName.toLowerCase()
        const at = this.#s.partition!.get(hub, m.partition) as { next_seq: number; next_off: number } | undefined
        const sequenceNumber = at?.next_seq ?? 0
        const offset = at?.next_off ?? 0
        const key = m.deviceId.toLowerCase()
        const deviceSequenceNumber = (this.#s.nextOfDevice!.get(hub, key) as { seq: number }).seq
        this.#s.insert!.run(hub, m.partition, sequenceNumber, offset, m.deviceId, key, deviceSequenceNumber, m.enqueuedTimeMs, JSON.stringify(m.properties), JSON.stringify(m.systemProperties), Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength))
        this.#s.upsertPartition!.run(hub, m.partition, sequenceNumber + 1, offset + Math.max(1, m.body.length))
        records.push({ ...m, hostName: hub, sequenceNumber, offset, deviceSequenceNumber })
      }
      return records
    })
    return stored.then((records) => {
      const now = this.#clock.now()
      if (now - this.#lastTrimMs >= 1000) {
        this.#lastTrimMs = now
        void this.trim().catch(() => undefined)
      }
      return records
    })
  }

  /** Applies retention and the size bound now (the store also does it after writes, at most once a second). */
  trim(): Promise<void> {
    return this.#commits.write(() => {
      const cutoff = this.#clock.now() - this.#retentionMs
      const old = this.#s.oldByHub!.all(cutoff) as { hub: string; n: number }[]
      if (old.length > 0) {
        this.#s.countOld!.run(cutoff)
        this.#s.deleteOld!.run(cutoff)
        for (const { hub, n } of old) this.#onDropped?.(hub, 'retention', n)
      }
      for (const { hub, bytes } of this.#s.bytesByHub!.all() as { hub: string; bytes: number }[]) {
        let over = bytes - this.#maxBytes
        let removed = 0
        while (over > 0) {
          const batch = this.#s.oldest!.all(hub) as { id: number; device_key: string; size: number }[]
          if (batch.length === 0) break
          for (const row of batch) {
            if (over <= 0) break
            this.#s.deleteId!.run(row.id)
            this.#s.countOne!.run(hub, row.device_key)
            over -= row.size
            removed++
          }
        }
        if (removed > 0) this.#onDropped?.(hub, 'size', removed)
      }
    })
  }

  readDevice(hostName: string, deviceId: string, options: { readonly after: number; readonly limit: number }) {
    return this.#commits.read(() => {
      const hub = hostName.toLowerCase()
      const key = deviceId.toLowerCase()
      const rows = this.#s.byDevice!.all(hub, key, options.after, options.limit) as Row[]
      const device = this.#s.device!.get(hub, key) as { next_seq: number; dropped: number } | undefined
      return { messages: rows.map(recordOf), dropped: device?.dropped ?? 0, lastSequenceNumber: (device?.next_seq ?? 1) - 1 }
    })
  }

  readPartition(hostName: string, partition: number, from: TelemetryPosition, limit: number): Promise<readonly TelemetryRecord[]> {
    return this.#commits.read(() => {
      const hub = hostName.toLowerCase()
      const [statement, value] =
        'sequenceNumber' in from ? [this.#s.fromSeq!, from.sequenceNumber] : 'offset' in from ? [this.#s.fromOff!, from.offset] : [this.#s.fromTime!, from.enqueuedTimeMs]
      return (statement.all(hub, partition, value, limit) as Row[]).map(recordOf)
    })
  }

  partitionInfo(hostName: string, partition: number): Promise<TelemetryPartitionInfo> {
    return this.#commits.read(() => {
      const hub = hostName.toLowerCase()
      const next = this.#s.partition!.get(hub, partition) as { next_seq: number; next_off: number } | undefined
      const last = this.#s.last!.get(hub, partition) as { seq: number; off: number; enqueued_ms: number } | undefined
      const first = (this.#s.first!.get(hub, partition) as { seq: number | null }).seq
      const lastSequenceNumber = (next?.next_seq ?? 0) - 1
      return { partition, firstSequenceNumber: first ?? lastSequenceNumber + 1, lastSequenceNumber, lastOffset: last?.off ?? -1, lastEnqueuedTimeMs: last?.enqueued_ms }
    })
  }

  clearDevice(hostName: string, deviceId: string): Promise<void> {
    return this.#commits.write(() => {
      this.#s.clear!.run(hostName.toLowerCase(), deviceId.toLowerCase())
      this.#s.clearDevice!.run(hostName.toLowerCase(), deviceId.toLowerCase())
    })
  }

  close(): void {
    this.#commits.flush()
    this.#db.close()
  }
}
