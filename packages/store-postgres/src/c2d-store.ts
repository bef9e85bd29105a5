/**
 * Cloud-to-device queues and feedback of the embedded hubs on PostgreSQL (c2d.ts in
 * @provisio/hub has the semantics). Every method is one transaction. The calls on one device's
 * queue take a transaction-scoped advisory lock on it, and the feedback calls one on the hub's
 * feedback, so two instances never lease one message twice, overfill a queue or batch one record
 * twice; expired messages leave their queue by `DELETE … RETURNING`, so each is dead-lettered once
 * even when a device call and a feedback call sweep at the same moment.
 */
import type pg from 'pg'
import {
  feedbackRecord,
  wantsFeedback,
  type C2dContext,
  type C2dDelivery,
  type C2dFeedbackBatch,
  type C2dFeedbackRecord,
  type C2dFeedbackStatus,
  type C2dMessage,
  type C2dSettleResult,
  type C2dStore,
} from '@provisio/hub'
import { transaction } from './sql.js'

interface MessageRow {
  seq: string
  device_key: string
  message: string
  body: Buffer
  delivery_count: number
}

type StoredFields = Omit<C2dMessage, 'body' | 'sequenceNumber' | 'deliveryCount'>

const message = (row: MessageRow): C2dMessage => ({
  ...(JSON.parse(row.message) as StoredFields),
  body: new Uint8Array(row.body),
  sequenceNumber: Number(row.seq),
  deliveryCount: row.delivery_count,
})

/** @param s the quoted schema name */
export function createPostgresC2dStore(pool: pg.Pool, s: string): C2dStore {
  const lock = (db: pg.PoolClient, key: string) => db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [key])
  const deviceLock = (db: pg.PoolClient, hub: string, deviceKey: string) => lock(db, `c2d/${hub}/${deviceKey}`)
  const feedbackLock = (db: pg.PoolClient, hub: string) => lock(db, `c2d-feedback/${hub}`)

  async function record(db: pg.PoolClient, hub: string, deviceKey: string, m: C2dMessage, status: C2dFeedbackStatus, context: C2dContext): Promise<void> {
    if (!wantsFeedback(m.ack, status)) return
    await db.query(`INSERT INTO ${s}.c2d_feedback_pending (hub, device_key, record, created) VALUES ($1, $2, $3, $4)`, [
      hub,
      deviceKey,
      JSON.stringify(feedbackRecord(m, status, context.now)),
      context.now,
    ])
  }

  /** Dead-letters the expired messages of one device, or of the whole hub. */
  async function sweep(db: pg.PoolClient, hub: string, deviceKey: string | undefined, context: C2dContext): Promise<void> {
    const { rows } =
      deviceKey === undefined
        ? await db.query<MessageRow>(`DELETE FROM ${s}.c2d_messages WHERE hub = $1 AND expiry <= $2 RETURNING *`, [hub, context.now])
        : await db.query<MessageRow>(`DELETE FROM ${s}.c2d_messages WHERE hub = $1 AND device_key = $2 AND expiry <= $3 RETURNING *`, [hub, deviceKey, context.now])
    rows.sort((a, b) => Number(a.seq) - Number(b.seq))
    for (const row of rows) await record(db, hub, row.device_key, message(row), 'Expired', context)
  }

  async function formBatches(db: pg.PoolClient, hub: string, context: C2dContext): Promise<void> {
    await feedbackLock(db, hub)
    await sweep(db, hub, undefined, context)
    const { feedbackBatchSize: size, feedbackBatchDelayMs: delay } = context.settings
    for (;;) {
      const { rows: stats } = await db.query<{ n: string; last: string | null }>(`SELECT count(*) AS n, max(created) AS last FROM ${s}.c2d_feedback_pending WHERE hub = $1`, [hub])
      const n = Number(stats[0]!.n)
      const last = stats[0]!.last === null ? 0 : Number(stats[0]!.last)
      if (n === 0 || (n < size && context.now - last < delay)) break
      const { rows } = await db.query<{ id: string; record: string }>(`SELECT id, record FROM ${s}.c2d_feedback_pending WHERE hub = $1 ORDER BY id LIMIT $2`, [hub, size])
      const records = rows.map((r) => JSON.parse(r.record) as C2dFeedbackRecord)
      await db.query(`INSERT INTO ${s}.c2d_feedback_batches (hub, records, enqueued, delivery_count) VALUES ($1, $2, $3, 0)`, [hub, JSON.stringify(records), context.now])
      await db.query(`DELETE FROM ${s}.c2d_feedback_pending WHERE hub = $1 AND id <= $2`, [hub, rows[rows.length - 1]!.id])
    }
    await db.query(`DELETE FROM ${s}.c2d_feedback_batches WHERE hub = $1 AND enqueued <= $2`, [hub, context.now - context.settings.feedbackTtlMs])
  }

  const count = async (db: pg.PoolClient, hub: string, deviceKey: string) =>
    Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${s}.c2d_messages WHERE hub = $1 AND device_key = $2`, [hub, deviceKey])).rows[0]!.n)

  return {
    enqueue: (hub, deviceKey, input, context) =>
      transaction(pool, async (db): Promise<C2dMessage | 'full'> => {
        await deviceLock(db, hub, deviceKey)
        await sweep(db, hub, deviceKey, context)
        if ((await count(db, hub, deviceKey)) >= context.settings.maxQueueDepth) return 'full'
        const { rows } = await db.query<{ last: string }>(
          `INSERT INTO ${s}.c2d_sequences (hub, last) VALUES ($1, 1) ON CONFLICT (hub) DO UPDATE SET last = ${s}.c2d_sequences.last + 1 RETURNING last`,
          [hub],
        )
        const seq = Number(rows[0]!.last)
        const { body, deliveryCount, ...fields } = input
        await db.query(
          `INSERT INTO ${s}.c2d_messages (hub, seq, device_key, message, body, expiry, ack, delivery_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [hub, seq, deviceKey, JSON.stringify(fields), Buffer.from(body), input.expiryTimeUtc, input.ack, deliveryCount],
        )
        return { ...input, sequenceNumber: seq }
      }),

    lease: (hub, deviceKey, lockToken, context) =>
      transaction(pool, async (db): Promise<C2dDelivery | undefined> => {
        await deviceLock(db, hub, deviceKey)
        await sweep(db, hub, deviceKey, context)
        const lockedUntilUtc = context.now + context.settings.lockDurationMs
        const { rows } = await db.query<MessageRow>(
          `UPDATE ${s}.c2d_messages SET lock_token = $3, locked_until = $4
           WHERE hub = $1 AND seq = (SELECT seq FROM ${s}.c2d_messages WHERE hub = $1 AND device_key = $2 AND (lock_token IS NULL OR locked_until <= $5) ORDER BY seq LIMIT 1)
           RETURNING *`,
          [hub, deviceKey, lockToken, lockedUntilUtc, context.now],
        )
        return rows.length === 0 ? undefined : { ...message(rows[0]!), lockToken, lockedUntilUtc }
      }),

    settle: (hub, deviceKey, lockToken, outcome, context) =>
      transaction(pool, async (db): Promise<C2dSettleResult> => {
        await deviceLock(db, hub, deviceKey)
        await sweep(db, hub, deviceKey, context)
        const { rows } = await db.query<MessageRow>(`SELECT * FROM ${s}.c2d_messages WHERE hub = $1 AND device_key = $2 AND lock_token = $3 AND locked_until > $4`, [
          hub,
          deviceKey,
          lockToken,
          context.now,
        ])
        if (rows.length === 0) return 'lock-lost'
        const m = message(rows[0]!)
        if (outcome === 'abandon' && m.deliveryCount + 1 < context.settings.maxDeliveryCount) {
          await db.query(`UPDATE ${s}.c2d_messages SET lock_token = NULL, locked_until = 0, delivery_count = delivery_count + 1 WHERE hub = $1 AND seq = $2`, [hub, rows[0]!.seq])
          return 'settled'
        }
        await db.query(`DELETE FROM ${s}.c2d_messages WHERE hub = $1 AND seq = $2`, [hub, rows[0]!.seq])
        if (outcome === 'abandon') await record(db, hub, deviceKey, { ...m, deliveryCount: m.deliveryCount + 1 }, 'DeliveryCountExceeded', context)
        else await record(db, hub, deviceKey, m, outcome === 'complete' ? 'Success' : 'Rejected', context)
        return 'settled'
      }),

    purge: (hub, deviceKey, context) =>
      transaction(pool, async (db) => {
        await deviceLock(db, hub, deviceKey)
        await sweep(db, hub, deviceKey, context)
        const { rows } = await db.query<MessageRow>(`DELETE FROM ${s}.c2d_messages WHERE hub = $1 AND device_key = $2 RETURNING *`, [hub, deviceKey])
        rows.sort((a, b) => Number(a.seq) - Number(b.seq))
        for (const row of rows) await record(db, hub, deviceKey, message(row), 'Purged', context)
        return rows.length
      }),

    dropDevice: (hub, deviceKey) =>
      transaction(pool, async (db) => {
        await deviceLock(db, hub, deviceKey)
        await feedbackLock(db, hub)
        await db.query(`DELETE FROM ${s}.c2d_messages WHERE hub = $1 AND device_key = $2`, [hub, deviceKey])
        await db.query(`DELETE FROM ${s}.c2d_feedback_pending WHERE hub = $1 AND device_key = $2`, [hub, deviceKey])
      }),

    depth: (hub, deviceKey, context) =>
      transaction(pool, async (db) => {
        await deviceLock(db, hub, deviceKey)
        await sweep(db, hub, deviceKey, context)
        return count(db, hub, deviceKey)
      }),

    leaseFeedback: (hub, lockToken, context) =>
      transaction(pool, async (db): Promise<C2dFeedbackBatch | undefined> => {
        await formBatches(db, hub, context)
        const lockedUntilUtc = context.now + context.settings.feedbackLockDurationMs
        const { rows } = await db.query<{ records: string; enqueued: string; delivery_count: number }>(
          `UPDATE ${s}.c2d_feedback_batches SET lock_token = $2, locked_until = $3
           WHERE id = (SELECT id FROM ${s}.c2d_feedback_batches WHERE hub = $1 AND (lock_token IS NULL OR locked_until <= $4) ORDER BY id LIMIT 1)
           RETURNING records, enqueued, delivery_count`,
          [hub, lockToken, lockedUntilUtc, context.now],
        )
        if (rows.length === 0) return undefined
        const row = rows[0]!
        return { lockToken, lockedUntilUtc, enqueuedTimeUtc: Number(row.enqueued), deliveryCount: row.delivery_count, records: JSON.parse(row.records) as C2dFeedbackRecord[] }
      }),

    settleFeedback: (hub, lockToken, outcome, context) =>
      transaction(pool, async (db): Promise<C2dSettleResult> => {
        await formBatches(db, hub, context)
        const { rows } = await db.query<{ id: string; delivery_count: number }>(
          `SELECT id, delivery_count FROM ${s}.c2d_feedback_batches WHERE hub = $1 AND lock_token = $2 AND locked_until > $3`,
          [hub, lockToken, context.now],
        )
        if (rows.length === 0) return 'lock-lost'
        const row = rows[0]!
        if (outcome === 'abandon' && row.delivery_count + 1 < context.settings.feedbackMaxDeliveryCount) {
          await db.query(`UPDATE ${s}.c2d_feedback_batches SET lock_token = NULL, locked_until = 0, delivery_count = delivery_count + 1 WHERE id = $1`, [row.id])
        } else {
          await db.query(`DELETE FROM ${s}.c2d_feedback_batches WHERE id = $1`, [row.id])
        }
        return 'settled'
      }),

    feedbackDueAt: (hub, context) =>
      transaction(pool, async (db) => {
        await formBatches(db, hub, context)
        const ready = await db.query(`SELECT 1 FROM ${s}.c2d_feedback_batches WHERE hub = $1 AND (lock_token IS NULL OR locked_until <= $2) LIMIT 1`, [hub, context.now])
        if (ready.rows.length > 0) return context.now
        const { rows } = await db.query<{ last: string | null; next: string | null }>(
          `SELECT (SELECT max(created) FROM ${s}.c2d_feedback_pending WHERE hub = $1) AS last,
                  (SELECT min(expiry) FROM ${s}.c2d_messages WHERE hub = $1 AND ack IN ('negative', 'full')) AS next`,
          [hub],
        )
        let due = rows[0]!.last === null ? Infinity : Number(rows[0]!.last) + context.settings.feedbackBatchDelayMs
        if (rows[0]!.next !== null) due = Math.min(due, Number(rows[0]!.next))
        return due === Infinity ? undefined : due
      }),
  }
}
