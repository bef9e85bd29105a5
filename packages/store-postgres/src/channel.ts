/**
 * Messages between the instances on one database, over PostgreSQL's LISTEN/NOTIFY: what one
 * instance learns that the others must act on now rather than at their next read (e.g. the
 * embedded hub's desired-property changes, which only the instance holding the device's
 * connection can push).
 *
 * - Every instance that opens a channel of a given name (in the same schema) receives every
 *   message published on it, its own included: filtering is the caller's.
 * - A NOTIFY payload must stay under 8000 bytes; a longer message is written to the `notices`
 *   table and the notification carries its row id, which receivers read back. Rows older than
 *   ten minutes are pruned by later publishers.
 * - Delivery is at most once and only to listeners connected at the time: a listener whose
 *   connection broke reconnects (1 s, doubling up to 30 s) and misses what was sent meanwhile.
 *   Messages are hints to act sooner; the records in the tables stay the truth.
 */
import { createHash } from 'node:crypto'
import type pg from 'pg'
import { PostgresStoreError } from './errors.js'

/** Longest message accepted (bytes of UTF-8). */
export const MAX_NOTICE_BYTES = 1024 * 1024
/** Longest message sent inline in the NOTIFY payload; PostgreSQL's limit is 8000 bytes. */
const INLINE_BYTES = 7000
const INLINE = '='
const STORED = '@'

/** Options of {@link openNoticeChannel}. */
export interface NoticeChannelOptions {
  /** Connection failures of the listener and messages that could not be read; default: ignored. */
  readonly onError?: (error: Error) => void
  /** First reconnect delay after the listening connection broke, ms (default 1000; doubles up to 30 s). */
  readonly reconnectMs?: number
}

/** An open channel; see the module documentation. */
export interface NoticeChannel {
  /** The PostgreSQL channel name (derived from the schema and the name given). */
  readonly channel: string
  /** Sends `message` to every listener of this channel, this one included. */
  publish(message: string): Promise<void>
  /** Stops listening and releases the connection. */
  close(): Promise<void>
}

/**
 * Listens on the channel `name` of the schema `schema` with a connection of its own taken from
 * `pool`, calling `onMessage` for each message; resolves once listening.
 */
export async function openNoticeChannel(
  pool: pg.Pool,
  schema: string,
  name: string,
  onMessage: (message: string) => void,
  options: NoticeChannelOptions = {},
): Promise<NoticeChannel> {
  // Identifiers are at most 63 bytes; a hash keeps any schema and name within that and unquoted-safe.
  const channel = `provisio_${createHash('sha256').update(`${schema}\u0000${name}`).digest('hex').slice(0, 40)}`
  const table = `"${schema.replaceAll('"', '""')}".notices`
  const report = (error: unknown) => options.onError?.(error instanceof Error ? error : new Error(String(error)))
  const firstDelay = options.reconnectMs ?? 1000
  let client: { readonly client: pg.PoolClient; readonly detach: () => void } | undefined
  let closed = false
  /** Whether the first LISTEN succeeded: only then does a lost connection reconnect. */
  let started = false
  let delay = firstDelay
  let timer: ReturnType<typeof setTimeout> | undefined

  const deliver = async (payload: string) => {
    if (payload.startsWith(INLINE)) return onMessage(payload.slice(1))
    if (!payload.startsWith(STORED)) throw new PostgresStoreError('POSTGRES_NOTICE_INVALID', `notice on ${channel} is neither inline nor a stored id: ${JSON.stringify(payload.slice(0, 40))}`)
    const { rows } = await pool.query<{ body: string }>(`SELECT body FROM ${table} WHERE id = $1`, [payload.slice(1)])
    if (rows.length === 0) throw new PostgresStoreError('POSTGRES_NOTICE_INVALID', `stored notice ${payload.slice(1)} on ${channel} is gone (older than the ten minutes kept)`)
    onMessage(rows[0]!.body)
  }

  const listen = async (): Promise<void> => {
    const c = await pool.connect()
    let broken = false
    const detach = () => {
      c.off('error', lost)
      c.off('end', ended)
      c.off('notification', notified)
    }
    const lost = (error: unknown) => {
      if (broken) return
      broken = true
      detach()
      c.release(error instanceof Error ? error : new Error(String(error)))
      if (client?.client === c) client = undefined
      if (closed || !started) return
      report(new PostgresStoreError('POSTGRES_NOTICE_LISTENER_LOST', `listening connection of ${channel} lost; reconnecting in ${delay} ms: ${(error as Error)?.message ?? String(error)}`))
      schedule()
    }
    const ended = () => lost(new Error('connection ended'))
    const notified = (n: pg.Notification) => {
      if (n.channel !== channel) return
      deliver(n.payload ?? '').catch(report)
    }
    c.on('error', lost)
    c.on('end', ended)
    c.on('notification', notified)
    try {
      await c.query(`LISTEN ${channel}`)
    } catch (error) {
      lost(error)
      throw error
    }
    client = { client: c, detach }
    started = true
    delay = firstDelay
    if (closed) await stop()
  }

  /** UNLISTENs and hands the connection back to the pool (or drops it if that fails). */
  const stop = async () => {
    const held = client
    client = undefined
    if (held === undefined) return
    held.detach()
    try {
      await held.client.query(`UNLISTEN ${channel}`)
      held.client.release()
    } catch (error) {
      held.client.release(error as Error)
    }
  }

  const schedule = () => {
    timer = setTimeout(() => {
      timer = undefined
      if (closed) return
      listen().catch(() => {
        // lost() reported it and scheduled the next attempt with a longer delay.
      })
      delay = Math.min(delay * 2, 30_000)
    }, delay)
    timer.unref?.()
  }

  await listen()

  return {
    channel,
    async publish(message: string): Promise<void> {
      const bytes = Buffer.byteLength(message)
      if (bytes > MAX_NOTICE_BYTES) throw new PostgresStoreError('POSTGRES_NOTICE_TOO_LARGE', `notice of ${bytes} bytes exceeds ${MAX_NOTICE_BYTES}`)
      if (bytes <= INLINE_BYTES) {
        await pool.query('SELECT pg_notify($1, $2)', [channel, INLINE + message])
        return
      }
      // One statement: the row, the pruning of old rows, the notification (sent at commit, after the row is visible).
      await pool.query(
        `WITH stored AS (INSERT INTO ${table} (body) VALUES ($2) RETURNING id),
              pruned AS (DELETE FROM ${table} WHERE created_at < now() - interval '10 minutes')
         SELECT pg_notify($1, '${STORED}' || (SELECT id FROM stored))`,
        [channel, message],
      )
    },
    async close(): Promise<void> {
      closed = true
      if (timer !== undefined) clearTimeout(timer)
      await stop()
    },
  }
}
