// Notice channels between instances (LISTEN/NOTIFY): two stores on one schema stand for two
// `provisio serve` instances; a third on another schema must hear nothing.
import { afterAll, describe, expect, it, vi } from 'vitest'
import { MAX_NOTICE_BYTES, createPostgresStore, type NoticeChannel, type PostgresStore } from '../src/index.js'
import { POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from './postgres-env.js'

const available = await postgresReachable()
const schemas: string[] = []
const stores: PostgresStore[] = []
const channels: NoticeChannel[] = []
afterAll(async () => {
  for (const c of channels) await c.close()
  for (const s of stores) await s.close()
  for (const s of schemas) await dropSchema(s)
})

async function open(schema: string): Promise<PostgresStore> {
  const store = await createPostgresStore(POSTGRES_URL, { schema, maxConnections: 3 })
  stores.push(store)
  return store
}

/** How long a message may take to arrive before the test fails saying which one is missing. */
const DELIVERY_TIMEOUT_MS = 10_000

/** A channel whose received messages are collected; `next(n)` waits (bounded) for the n-th. */
async function listen(store: PostgresStore, name: string, errors: Error[] = []) {
  const received: string[] = []
  const channel = await store.openChannel(name, (m) => void received.push(m), { onError: (e) => errors.push(e), reconnectMs: 50 })
  channels.push(channel)
  return {
    channel,
    received,
    errors,
    next: (n: number) => vi.waitFor(() => expect(received.length, `message ${n} on ${name}`).toBeGreaterThanOrEqual(n), { timeout: DELIVERY_TIMEOUT_MS, interval: 10 }),
  }
}

describe.skipIf(!available)('notice channels', () => {
  it('delivers small and large messages to every listener of the schema, and to no other schema', async () => {
    const schema = uniqueSchema('provisio_test_notice')
    const other = uniqueSchema('provisio_test_notice_other')
    schemas.push(schema, other)
    const a = await listen(await open(schema), 'hub')
    const b = await listen(await open(schema), 'hub')
    const elsewhere = await listen(await open(other), 'hub')
    const sameSchemaOtherName = await listen(stores[0]!, 'something-else')

    const small = JSON.stringify({ kind: 'desired', patch: { text: 'grüße \u0000 🙂' } })
    // Over NOTIFY's 8000-byte payload limit: goes through the notices table.
    const large = JSON.stringify({ kind: 'desired', patch: { blob: 'x'.repeat(20_000) } })
    await a.channel.publish(small)
    await b.channel.publish(large)
    await Promise.all([a.next(2), b.next(2)])
    expect(a.received).toEqual([small, large])
    expect(b.received).toEqual([small, large])
    // A round trip on the other schema's channel proves its listener was up while the others were sent.
    await elsewhere.channel.publish('ping')
    await elsewhere.next(1)
    expect(elsewhere.received).toEqual(['ping'])
    expect(sameSchemaOtherName.received).toEqual([])
    expect(a.channel.channel).toMatch(/^provisio_[0-9a-f]{40}$/)
    expect(a.channel.channel).not.toBe(elsewhere.channel.channel)
  })

  it('refuses a message over the size limit, with the reason', async () => {
    const schema = uniqueSchema('provisio_test_notice_big')
    schemas.push(schema)
    const a = await listen(await open(schema), 'hub')
    await expect(a.channel.publish('x'.repeat(MAX_NOTICE_BYTES + 1))).rejects.toMatchObject({ code: 'POSTGRES_NOTICE_TOO_LARGE', message: expect.stringMatching(/exceeds/) })
  })

  it('reconnects after its listening connection is killed, and hears later messages', async () => {
    const schema = uniqueSchema('provisio_test_notice_kill')
    schemas.push(schema)
    const store = await open(schema)
    const errors: Error[] = []
    const a = await listen(store, 'hub', errors)
    const sender = await open(schema)
    const pids = await sender.pool.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN ' || $1", [a.channel.channel])
    expect(pids.rows.length).toBeGreaterThan(0)
    for (const { pid } of pids.rows) await sender.pool.query('SELECT pg_terminate_backend($1)', [pid])
    // Publish until the re-established listener hears one (messages sent while it was down are lost by design).
    let n = 0
    await vi.waitFor(
      async () => {
        if (a.received.length === 0) await sender.pool.query('SELECT pg_notify($1, $2)', [a.channel.channel, `=after-${++n}`])
        expect(a.received.length).toBeGreaterThan(0)
      },
      { timeout: DELIVERY_TIMEOUT_MS, interval: 50 },
    )
    expect(a.received[0]).toMatch(/^after-\d+$/)
    expect(errors.some((e) => (e as { code?: string }).code === 'POSTGRES_NOTICE_LISTENER_LOST')).toBe(true)
  })

  it('reports a notification it cannot read instead of delivering it', async () => {
    const schema = uniqueSchema('provisio_test_notice_bad')
    schemas.push(schema)
    const errors: Error[] = []
    const a = await listen(await open(schema), 'hub', errors)
    await stores.at(-1)!.pool.query('SELECT pg_notify($1, $2)', [a.channel.channel, 'no marker'])
    await stores.at(-1)!.pool.query('SELECT pg_notify($1, $2)', [a.channel.channel, '@99999999'])
    await a.channel.publish('after')
    await a.next(1)
    // The stored-id lookup is a query of its own, so its error may come after 'after'.
    await vi.waitFor(() => expect(errors).toHaveLength(2), { timeout: DELIVERY_TIMEOUT_MS, interval: 10 })
    expect(a.received).toEqual(['after'])
    expect(errors.map((e) => (e as { code?: string }).code)).toEqual(['POSTGRES_NOTICE_INVALID', 'POSTGRES_NOTICE_INVALID'])
  })
})
