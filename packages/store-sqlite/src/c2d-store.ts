import type Database from 'better-sqlite3'
import {
  feedbackRecord,
  wantsFeedback,
  type C2dAck,
  type C2dContext,
  type C2dDelivery,
  type C2dFeedbackBatch,
  type C2dFeedbackRecord,
  type C2dFeedbackStatus,
  type C2dMessage,
  type C2dOutcome,
  type C2dSettleResult,
  type C2dStore,
} from '@provisio/hub'
import type { GroupCommit } from './group-commit.js'

/** A queued message's row; the message's fields other than body, sequence and count are JSON. */
interface MessageRow {
  seq: number
  device_key: string
  message: string
  body: Buffer
  expiry: number
  ack: string
  delivery_count: number
}

interface BatchRow {
  id: number
  records: string
  enqueued: number
  delivery_count: number
}

type StoredFields = Omit<C2dMessage, 'body' | 'sequenceNumber' | 'deliveryCount'>

/**
 * Cloud-to-device queues and feedback in the engine's SQLite database (c2d.ts in @provisio/hub
 * has the semantics). Every method is one transaction, so with several processes on one file
 * (`--workers`) a message is leased to one caller only and a settle happens once; with a
 * {@link GroupCommit} the transaction joins the engine's group and settles after its COMMIT.
 * A lock runs out by time alone (a lease is valid while `locked_until` is in the future), and
 * expired messages are dead-lettered by whichever call next looks at their queue or at the hub's
 * feedback.
 */
export class SqliteC2dStore implements C2dStore {
  readonly #db: Database.Database
  readonly #group: GroupCommit | undefined

  constructor(db: Database.Database, group?: GroupCommit) {
    this.#db = db
    this.#group = group
    db.exec(`
      CREATE TABLE IF NOT EXISTS c2d_messages (
        hub TEXT NOT NULL,
        seq INTEGER NOT NULL,
        device_key TEXT NOT NULL,
        message TEXT NOT NULL,
        body BLOB NOT NULL,
        expiry INTEGER NOT NULL,
        ack TEXT NOT NULL,
        delivery_count INTEGER NOT NULL,
        lock_token TEXT,
        locked_until INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (hub, seq)
      );
      CREATE INDEX IF NOT EXISTS c2d_messages_device ON c2d_messages (hub, device_key, seq);
      CREATE TABLE IF NOT EXISTS c2d_sequences (hub TEXT PRIMARY KEY, last INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS c2d_feedback_pending (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hub TEXT NOT NULL,
        device_key TEXT NOT NULL,
        record TEXT NOT NULL,
        created INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS c2d_feedback_pending_hub ON c2d_feedback_pending (hub, id);
      CREATE TABLE IF NOT EXISTS c2d_feedback_batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hub TEXT NOT NULL,
        records TEXT NOT NULL,
        enqueued INTEGER NOT NULL,
        delivery_count INTEGER NOT NULL,
        lock_token TEXT,
        locked_until INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS c2d_feedback_batches_hub ON c2d_feedback_batches (hub, id);
    `)
  }

  #write<T>(fn: () => T): Promise<T> {
    const tx = this.#db.transaction(fn)
    return this.#group ? this.#group.write(() => tx.immediate()) : Promise.resolve(tx.immediate())
  }

  #message(row: MessageRow): C2dMessage {
    const fields = JSON.parse(row.message) as StoredFields
    return { ...fields, body: new Uint8Array(row.body), sequenceNumber: row.seq, deliveryCount: row.delivery_count }
  }

  #record(hub: string, deviceKey: string, message: C2dMessage, status: C2dFeedbackStatus, context: C2dContext): void {
    if (!wantsFeedback(message.ack, status)) return
    this.#db
      .prepare('INSERT INTO c2d_feedback_pending (hub, device_key, record, created) VALUES (?, ?, ?, ?)')
      .run(hub, deviceKey, JSON.stringify(feedbackRecord(message, status, context.now)), context.now)
  }

  /** Dead-letters the expired messages of one device (or of the whole hub). */
  #sweep(hub: string, deviceKey: string | undefined, context: C2dContext): void {
    const rows = (
      deviceKey === undefined
        ? this.#db.prepare('SELECT * FROM c2d_messages WHERE hub = ? AND expiry <= ? ORDER BY seq').all(hub, context.now)
        : this.#db.prepare('SELECT * FROM c2d_messages WHERE hub = ? AND device_key = ? AND expiry <= ? ORDER BY seq').all(hub, deviceKey, context.now)
    ) as MessageRow[]
    for (const row of rows) {
      this.#record(hub, row.device_key, this.#message(row), 'Expired', context)
      this.#db.prepare('DELETE FROM c2d_messages WHERE hub = ? AND seq = ?').run(hub, row.seq)
    }
  }

  enqueue(hub: string, deviceKey: string, message: Omit<C2dMessage, 'sequenceNumber'>, context: C2dContext): Promise<C2dMessage | 'full'> {
    return this.#write(() => {
      this.#sweep(hub, deviceKey, context)
      const { n } = this.#db.prepare('SELECT count(*) AS n FROM c2d_messages WHERE hub = ? AND device_key = ?').get(hub, deviceKey) as { n: number }
      if (n >= context.settings.maxQueueDepth) return 'full' as const
      const { last } = this.#db
        .prepare('INSERT INTO c2d_sequences (hub, last) VALUES (?, 1) ON CONFLICT (hub) DO UPDATE SET last = last + 1 RETURNING last')
        .get(hub) as { last: number }
      const { body, deliveryCount, ...fields } = message
      this.#db
        .prepare('INSERT INTO c2d_messages (hub, seq, device_key, message, body, expiry, ack, delivery_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(hub, last, deviceKey, JSON.stringify(fields), Buffer.from(body), message.expiryTimeUtc, message.ack, deliveryCount)
      return { ...message, sequenceNumber: last }
    })
  }

  lease(hub: string, deviceKey: string, lockToken: string, context: C2dContext): Promise<C2dDelivery | undefined> {
    return this.#write(() => {
      this.#sweep(hub, deviceKey, context)
      const row = this.#db
        .prepare('SELECT * FROM c2d_messages WHERE hub = ? AND device_key = ? AND (lock_token IS NULL OR locked_until <= ?) ORDER BY seq LIMIT 1')
        .get(hub, deviceKey, context.now) as MessageRow | undefined
      if (row === undefined) return undefined
      const lockedUntilUtc = context.now + context.settings.lockDurationMs
      this.#db.prepare('UPDATE c2d_messages SET lock_token = ?, locked_until = ? WHERE hub = ? AND seq = ?').run(lockToken, lockedUntilUtc, hub, row.seq)
      return { ...this.#message(row), lockToken, lockedUntilUtc }
    })
  }

  settle(hub: string, deviceKey: string, lockToken: string, outcome: C2dOutcome, context: C2dContext): Promise<C2dSettleResult> {
    return this.#write((): C2dSettleResult => {
      this.#sweep(hub, deviceKey, context)
      const row = this.#db
        .prepare('SELECT * FROM c2d_messages WHERE hub = ? AND device_key = ? AND lock_token = ? AND locked_until > ?')
        .get(hub, deviceKey, lockToken, context.now) as MessageRow | undefined
      if (row === undefined) return 'lock-lost'
      const message = this.#message(row)
      if (outcome === 'abandon' && message.deliveryCount + 1 < context.settings.maxDeliveryCount) {
        this.#db.prepare('UPDATE c2d_messages SET lock_token = NULL, locked_until = 0, delivery_count = delivery_count + 1 WHERE hub = ? AND seq = ?').run(hub, row.seq)
        return 'settled'
      }
      this.#db.prepare('DELETE FROM c2d_messages WHERE hub = ? AND seq = ?').run(hub, row.seq)
      if (outcome === 'abandon') this.#record(hub, deviceKey, { ...message, deliveryCount: message.deliveryCount + 1 }, 'DeliveryCountExceeded', context)
      else this.#record(hub, deviceKey, message, outcome === 'complete' ? 'Success' : 'Rejected', context)
      return 'settled'
    })
  }

  purge(hub: string, deviceKey: string, context: C2dContext): Promise<number> {
    return this.#write(() => {
      this.#sweep(hub, deviceKey, context)
      const rows = this.#db.prepare('SELECT * FROM c2d_messages WHERE hub = ? AND device_key = ? ORDER BY seq').all(hub, deviceKey) as MessageRow[]
      for (const row of rows) this.#record(hub, deviceKey, this.#message(row), 'Purged', context)
      this.#db.prepare('DELETE FROM c2d_messages WHERE hub = ? AND device_key = ?').run(hub, deviceKey)
      return rows.length
    })
  }

  dropDevice(hub: string, deviceKey: string): Promise<void> {
    return this.#write(() => {
      this.#db.prepare('DELETE FROM c2d_messages WHERE hub = ? AND device_key = ?').run(hub, deviceKey)
      this.#db.prepare('DELETE FROM c2d_feedback_pending WHERE hub = ? AND device_key = ?').run(hub, deviceKey)
    })
  }

  depth(hub: string, deviceKey: string, context: C2dContext): Promise<number> {
    return this.#write(() => {
      this.#sweep(hub, deviceKey, context)
      return (this.#db.prepare('SELECT count(*) AS n FROM c2d_messages WHERE hub = ? AND device_key = ?').get(hub, deviceKey) as { n: number }).n
    })
  }

  /** Sweeps the hub, forms the batches that are due, drops expired batches. */
  #formBatches(hub: string, context: C2dContext): void {
    this.#sweep(hub, undefined, context)
    const { feedbackBatchSize: size, feedbackBatchDelayMs: delay } = context.settings
    for (;;) {
      const { n, last } = this.#db.prepare('SELECT count(*) AS n, max(created) AS last FROM c2d_feedback_pending WHERE hub = ?').get(hub) as { n: number; last: number | null }
      if (n === 0 || (n < size && context.now - (last ?? 0) < delay)) break
      const rows = this.#db.prepare('SELECT id, record FROM c2d_feedback_pending WHERE hub = ? ORDER BY id LIMIT ?').all(hub, size) as { id: number; record: string }[]
      const records = rows.map((r) => JSON.parse(r.record) as C2dFeedbackRecord)
      this.#db.prepare('INSERT INTO c2d_feedback_batches (hub, records, enqueued, delivery_count) VALUES (?, ?, ?, 0)').run(hub, JSON.stringify(records), context.now)
      this.#db.prepare('DELETE FROM c2d_feedback_pending WHERE hub = ? AND id <= ?').run(hub, rows[rows.length - 1]!.id)
    }
    this.#db.prepare('DELETE FROM c2d_feedback_batches WHERE hub = ? AND enqueued <= ?').run(hub, context.now - context.settings.feedbackTtlMs)
  }

  leaseFeedback(hub: string, lockToken: string, context: C2dContext): Promise<C2dFeedbackBatch | undefined> {
    return this.#write(() => {
      this.#formBatches(hub, context)
      const row = this.#db
        .prepare('SELECT id, records, enqueued, delivery_count FROM c2d_feedback_batches WHERE hub = ? AND (lock_token IS NULL OR locked_until <= ?) ORDER BY id LIMIT 1')
        .get(hub, context.now) as BatchRow | undefined
      if (row === undefined) return undefined
      const lockedUntilUtc = context.now + context.settings.feedbackLockDurationMs
      this.#db.prepare('UPDATE c2d_feedback_batches SET lock_token = ?, locked_until = ? WHERE id = ?').run(lockToken, lockedUntilUtc, row.id)
      return { lockToken, lockedUntilUtc, enqueuedTimeUtc: row.enqueued, deliveryCount: row.delivery_count, records: JSON.parse(row.records) as C2dFeedbackRecord[] }
    })
  }

  settleFeedback(hub: string, lockToken: string, outcome: C2dOutcome, context: C2dContext): Promise<C2dSettleResult> {
    return this.#write((): C2dSettleResult => {
      this.#formBatches(hub, context)
      const row = this.#db
        .prepare('SELECT id, delivery_count FROM c2d_feedback_batches WHERE hub = ? AND lock_token = ? AND locked_until > ?')
        .get(hub, lockToken, context.now) as { id: number; delivery_count: number } | undefined
      if (row === undefined) return 'lock-lost'
      if (outcome === 'abandon' && row.delivery_count + 1 < context.settings.feedbackMaxDeliveryCount) {
        this.#db.prepare('UPDATE c2d_feedback_batches SET lock_token = NULL, locked_until = 0, delivery_count = delivery_count + 1 WHERE id = ?').run(row.id)
      } else {
        this.#db.prepare('DELETE FROM c2d_feedback_batches WHERE id = ?').run(row.id)
      }
      return 'settled'
    })
  }

  feedbackDueAt(hub: string, context: C2dContext): Promise<number | undefined> {
    return this.#write(() => {
      this.#formBatches(hub, context)
      const ready = this.#db.prepare('SELECT 1 FROM c2d_feedback_batches WHERE hub = ? AND (lock_token IS NULL OR locked_until <= ?) LIMIT 1').get(hub, context.now)
      if (ready !== undefined) return context.now
      const { last } = this.#db.prepare('SELECT max(created) AS last FROM c2d_feedback_pending WHERE hub = ?').get(hub) as { last: number | null }
      let due = last === null ? Infinity : last + context.settings.feedbackBatchDelayMs
      const acks: C2dAck[] = ['negative', 'full']
      const { next } = this.#db.prepare('SELECT min(expiry) AS next FROM c2d_messages WHERE hub = ? AND ack IN (?, ?)').get(hub, ...acks) as { next: number | null }
      if (next !== null) due = Math.min(due, next)
      return due === Infinity ? undefined : due
    })
  }
}
