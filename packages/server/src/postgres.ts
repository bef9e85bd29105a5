/**
 * `provisio serve --store postgres://…`: several instances on one PostgreSQL database.
 *
 * What instances must share lives in the database, not in their data directories:
 * - the engine's records (enrollments, registrations, operations — so any instance answers a
 *   poll for an operation another started, and takes it over once its lease expires);
 * - the embedded hub's registry (a device identity written by one instance is seen by all);
 * - the DPS instance itself (ID scope, service and hub keys: `state.json`'s content). The first
 *   instance to start stores its state under the setting `server-state`; every later instance
 *   adopts that one and mirrors it into its own `state.json`, so tools reading the data
 *   directory (`provisio sas`, endpoints.json) see the shared instance. No file needs copying.
 *
 * Each instance keeps its own data directory for its TLS material (dev PKI) and endpoints.json.
 */
import { join } from 'node:path'
import type { HubStore } from '@provisio/hub'
import { createPostgresStore, describePostgresUrl, type PostgresStore } from '@provisio/store-postgres'
import { writeFileAtomic } from './files.js'
import type { Logger } from './logger.js'
import type { ServerState } from './state.js'

/** The settings key holding the shared DPS instance state. */
export const SERVER_STATE_SETTING = 'server-state'

/** Whether a `--store` value names a PostgreSQL database. */
export function isPostgresStore(store: string): boolean {
  return store.startsWith('postgres://') || store.startsWith('postgresql://')
}

export interface PostgresStores {
  readonly store: PostgresStore
  readonly hubStore: HubStore
  /** The DPS instance every instance on this database serves. */
  readonly state: ServerState
  /** True when this instance's local state became the shared one (it was first). */
  readonly claimed: boolean
  close(): Promise<void>
}

/**
 * Connects, migrates, and settles the shared DPS instance state.
 * @param local this data directory's state (loaded or just created): the candidate
 */
export async function openPostgresStores(url: string, dataDir: string, local: ServerState, log: Logger): Promise<PostgresStores> {
  const store = await createPostgresStore(url, {
    onIdleError: (error) => log.warn('an idle PostgreSQL connection failed; the pool reconnects', { error: error.message }),
  })
  try {
    const shared = JSON.parse(await store.claimSetting(SERVER_STATE_SETTING, JSON.stringify(local))) as ServerState
    const claimed = shared.idScope === local.idScope
    if (!claimed) {
      // Keep the replaced local state (its keys may still matter to a SQLite database in this
      // directory) next to the adopted one rather than losing it.
      writeFileAtomic(join(dataDir, `state.${local.idScope}.replaced.json`), JSON.stringify(local, null, 2) + '\n', 0o600)
      writeFileAtomic(join(dataDir, 'state.json'), JSON.stringify(shared, null, 2) + '\n', 0o600)
      log.info('serving the DPS instance stored in PostgreSQL', { idScope: shared.idScope, previousLocalIdScope: local.idScope })
    }
    log.info('using PostgreSQL', { database: describePostgresUrl(url), schema: store.schema })
    return { store, hubStore: store.hubStore, state: shared, claimed, close: () => store.close() }
  } catch (error) {
    await store.close()
    throw error
  }
}
