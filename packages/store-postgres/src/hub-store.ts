/**
 * The embedded hub's registry on PostgreSQL: one row per device, the record as JSON; each call is
 * one statement, and a put is an upsert, so writing the same identity twice (two instances
 * finishing the same take-over) is harmless. Conditional puts (read-modify-write of a twin by a
 * device and the service on different instances, module writes) compare the stored etags in the statement.
 */
import type pg from 'pg'
import type { HubDeviceRecord, HubStore, HubWriteCondition } from '@provisio/hub'
import { clampLimit, type Statements } from './sql.js'

/** @param s the quoted schema name */
export function createPostgresHubStore(statements: Statements, pool: pg.Pool, s: string): HubStore {
  const hubSql = {
    get: `SELECT record FROM ${s}.hub_devices WHERE hub = $1 AND device_key = $2`,
    put: `INSERT INTO ${s}.hub_devices (hub, device_key, record) VALUES ($1, $2, $3)
          ON CONFLICT (hub, device_key) DO UPDATE SET record = excluded.record`,
    insert: `INSERT INTO ${s}.hub_devices (hub, device_key, record) VALUES ($1, $2, $3) ON CONFLICT (hub, device_key) DO NOTHING`,
    update: `UPDATE ${s}.hub_devices SET record = $3 WHERE hub = $1 AND device_key = $2
             AND (record::jsonb -> 'device' ->> 'etag') = $4 AND (record::jsonb -> 'twin' ->> 'etag') = $5
             AND COALESCE(record::jsonb ->> 'modulesEtag', '') = $6`,
    del: `DELETE FROM ${s}.hub_devices WHERE hub = $1 AND device_key = $2`,
    list: `SELECT record FROM ${s}.hub_devices WHERE hub = $1 AND device_key > $2 ORDER BY device_key LIMIT $3`,
  }
  return {
    async get(hub: string, deviceKey: string): Promise<HubDeviceRecord | undefined> {
      const { rows } = await statements.run<{ record: string }>(pool, hubSql.get, [hub.toLowerCase(), deviceKey])
      return rows.length === 0 ? undefined : (JSON.parse(rows[0]!.record) as HubDeviceRecord)
    },
    async put(hub: string, deviceKey: string, record: HubDeviceRecord, condition?: HubWriteCondition): Promise<boolean> {
      const args = [hub.toLowerCase(), deviceKey, JSON.stringify(record)]
      if (condition === undefined) return ((await statements.run(pool, hubSql.put, args)).rowCount ?? 0) > 0
      if ('absent' in condition) return ((await statements.run(pool, hubSql.insert, args)).rowCount ?? 0) > 0
      return ((await statements.run(pool, hubSql.update, [...args, condition.deviceEtag, condition.twinEtag, condition.modulesEtag])).rowCount ?? 0) > 0
    },
    async delete(hub: string, deviceKey: string): Promise<boolean> {
      return ((await statements.run(pool, hubSql.del, [hub.toLowerCase(), deviceKey])).rowCount ?? 0) > 0
    },
    async list(hub: string, options: { after?: string; limit: number }): Promise<HubDeviceRecord[]> {
      const { rows } = await statements.run<{ record: string }>(pool, hubSql.list, [hub.toLowerCase(), options.after ?? '', clampLimit(options.limit)])
      return rows.map((r) => JSON.parse(r.record) as HubDeviceRecord)
    },
  }
}
