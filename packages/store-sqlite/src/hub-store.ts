import type Database from 'better-sqlite3'
import type { HubDeviceRecord, HubStore, HubWriteCondition } from '@provisio/hub'
import type { GroupCommit } from './group-commit.js'

/**
 * The embedded hub's registry in the engine's SQLite database (one row per device, the record
 * as JSON). Each call is a single statement, so a crash never leaves half a record; conditional
 * writes compare the stored etags in the same statement (insert-if-absent, update-if-unchanged).
 * With a {@link GroupCommit} (the one the engine's store uses), writes join its transaction and
 * settle after its COMMIT, so a registration's hub identity commits with its operation's writes.
 */
export class SqliteHubStore implements HubStore {
  readonly #get: Database.Statement<[string, string], { record: string }>
  readonly #put: Database.Statement<[string, string, string]>
  readonly #insert: Database.Statement<[string, string, string]>
  readonly #update: Database.Statement<[string, string, string, string, string, string]>
  readonly #delete: Database.Statement<[string, string]>
  readonly #list: Database.Statement<[string, string, number], { record: string }>
  readonly #group: GroupCommit | undefined

  constructor(db: Database.Database, group?: GroupCommit) {
    this.#group = group
    db.exec(`CREATE TABLE IF NOT EXISTS hub_devices (
      hub TEXT NOT NULL,
      device_key TEXT NOT NULL,
      record TEXT NOT NULL,
      PRIMARY KEY (hub, device_key)
    )`)
    this.#get = db.prepare('SELECT record FROM hub_devices WHERE hub = ? AND device_key = ?')
    this.#put = db.prepare(
      'INSERT INTO hub_devices (hub, device_key, record) VALUES (?, ?, ?) ON CONFLICT (hub, device_key) DO UPDATE SET record = excluded.record',
    )
    this.#insert = db.prepare('INSERT INTO hub_devices (hub, device_key, record) VALUES (?, ?, ?) ON CONFLICT (hub, device_key) DO NOTHING')
    this.#update = db.prepare(
      "UPDATE hub_devices SET record = ? WHERE hub = ? AND device_key = ? AND json_extract(record, '$.device.etag') = ? AND json_extract(record, '$.twin.etag') = ? AND COALESCE(json_extract(record, '$.modulesEtag'), '') = ?",
    )
    this.#delete = db.prepare('DELETE FROM hub_devices WHERE hub = ? AND device_key = ?')
    this.#list = db.prepare('SELECT record FROM hub_devices WHERE hub = ? AND device_key > ? ORDER BY device_key LIMIT ?')
  }

  async get(hub: string, deviceKey: string): Promise<HubDeviceRecord | undefined> {
    return this.#read(() => {
      const row = this.#get.get(hub.toLowerCase(), deviceKey)
      return row === undefined ? undefined : (JSON.parse(row.record) as HubDeviceRecord)
    })
  }

  async put(hub: string, deviceKey: string, record: HubDeviceRecord, condition?: HubWriteCondition): Promise<boolean> {
    const json = JSON.stringify(record)
    return this.#write(() => {
      if (condition === undefined) return this.#put.run(hub.toLowerCase(), deviceKey, json).changes > 0
      if ('absent' in condition) return this.#insert.run(hub.toLowerCase(), deviceKey, json).changes > 0
      return this.#update.run(json, hub.toLowerCase(), deviceKey, condition.deviceEtag, condition.twinEtag, condition.modulesEtag).changes > 0
    })
  }

  async delete(hub: string, deviceKey: string): Promise<boolean> {
    return this.#write(() => this.#delete.run(hub.toLowerCase(), deviceKey).changes > 0)
  }

  async list(hub: string, options: { after?: string; limit: number }): Promise<HubDeviceRecord[]> {
    return this.#read(() => this.#list.all(hub.toLowerCase(), options.after ?? '', options.limit).map((r) => JSON.parse(r.record) as HubDeviceRecord))
  }

  async #write<T>(fn: () => T): Promise<T> {
    return this.#group ? this.#group.write(fn) : fn()
  }

  async #read<T>(fn: () => T): Promise<T> {
    return this.#group ? this.#group.read(fn) : fn()
  }
}
