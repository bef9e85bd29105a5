/**
 * Access-policy changes across the instances on one PostgreSQL database. The DPS instance state
 * (policies, keys) is shared through the `server-state` setting (postgres.ts); an edit of one
 * instance's `state.json` (`provisio policies`, a key regenerated) is noticed at once by a watch
 * on its data directory, stored in the setting, and announced on the `server-state` notice
 * channel; every other instance then reads the setting and puts it in force (StateFile.adopt)
 * before its next request. Notices carry no keys, only the sender's origin.
 */
import { watch, type FSWatcher } from 'node:fs'
import type { NoticeChannel, PostgresStore } from '@provisio/store-postgres'
import type { Logger } from './logger.js'
import { SERVER_STATE_SETTING } from './postgres.js'
import { STATE_FILE, type ServerState, type StateFile } from './state.js'

export interface SharedState {
  /** Stores a state edited here and tells the other instances. */
  publish(state: ServerState): Promise<void>
  close(): Promise<void>
}

/** Largest notice read (they are `{"v":1,"origin":…}`). */
const MAX_NOTICE_BYTES = 1024

export async function shareStateChanges(options: { store: PostgresStore; stateFile: () => StateFile; dataDir: string; origin: string; log: Logger }): Promise<SharedState> {
  const { store, origin, log } = options
  const receive = async (message: string) => {
    if (message.length > MAX_NOTICE_BYTES) return log.warn('server state notice dropped: too large', { bytes: message.length })
    let from: unknown
    try {
      from = (JSON.parse(message) as { origin?: unknown }).origin
    } catch {
      return log.warn('server state notice dropped: not JSON', {})
    }
    if (typeof from !== 'string') return log.warn('server state notice dropped: no origin', {})
    if (from === origin) return
    const value = await store.getSetting(SERVER_STATE_SETTING)
    if (value === undefined) return log.warn('server state notice without a stored state; the current policies stay', {})
    const next = JSON.parse(value) as ServerState
    if (options.stateFile().adopt(next)) log.info('shared access policies reloaded', { from: 'another instance' })
  }
  const channel: NoticeChannel = await store.openChannel(
    'server-state',
    (message) => void receive(message).catch((error: unknown) => log.warn('server state not adopted; the current policies stay', { error: (error as Error).message })),
    { onError: (error) => log.warn('server state channel', { error: error.message, code: (error as { code?: string }).code }) },
  )
  // An edit of state.json here counts at once, not at this instance's next request.
  let watcher: FSWatcher | undefined
  try {
    watcher = watch(options.dataDir, (_event, name) => {
      if (name === STATE_FILE) options.stateFile().current()
    })
    watcher.on('error', (error) => log.warn('state file watch failed; edits count from the next request', { error: error.message }))
    watcher.unref()
  } catch (error) {
    log.warn('state file not watched; edits count from the next request', { error: (error as Error).message })
  }
  return {
    async publish(state) {
      await store.putSetting(SERVER_STATE_SETTING, JSON.stringify(state))
      await channel.publish(JSON.stringify({ v: 1, origin }))
    },
    async close() {
      watcher?.close()
      await channel.close()
    },
  }
}
