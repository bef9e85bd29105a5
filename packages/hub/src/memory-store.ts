import type { HubDeviceRecord, HubStore, HubWriteCondition } from './types.js'

/** A HubStore in memory (library use and tests). Records are copied in and out. */
export class MemoryHubStore implements HubStore {
  readonly #hubs = new Map<string, Map<string, HubDeviceRecord>>()

  #hub(name: string): Map<string, HubDeviceRecord> {
    const key = name.toLowerCase()
    let hub = this.#hubs.get(key)
    if (hub === undefined) this.#hubs.set(key, (hub = new Map()))
    return hub
  }

  async get(hub: string, deviceKey: string): Promise<HubDeviceRecord | undefined> {
    const r = this.#hub(hub).get(deviceKey)
    return r === undefined ? undefined : structuredCopy(r)
  }

  async put(hub: string, deviceKey: string, record: HubDeviceRecord, condition?: HubWriteCondition): Promise<boolean> {
    const current = this.#hub(hub).get(deviceKey)
    if (condition !== undefined) {
      if ('absent' in condition ? current !== undefined : current === undefined || current.device.etag !== condition.deviceEtag || current.twin.etag !== condition.twinEtag || (current.modulesEtag ?? '') !== condition.modulesEtag) return false
    }
    this.#hub(hub).set(deviceKey, structuredCopy(record))
    return true
  }

  async delete(hub: string, deviceKey: string): Promise<boolean> {
    return this.#hub(hub).delete(deviceKey)
  }

  async list(hub: string, options: { after?: string; limit: number }): Promise<HubDeviceRecord[]> {
    const keys = [...this.#hub(hub).keys()].sort()
    const start = options.after === undefined ? 0 : keys.findIndex((k) => k > options.after!)
    if (start < 0) return []
    return keys.slice(start, start + options.limit).map((k) => structuredCopy(this.#hub(hub).get(k)!))
  }
}

function structuredCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T
}
