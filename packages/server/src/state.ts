/**
 * What `provisio serve` creates once and keeps in the data directory (`state.json`): the DPS
 * instance (ID scope, service access policy) and the embedded hub (host name, owner policy).
 * Keys are generated from node:crypto on first start; the file is written atomically, mode 0600.
 */
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateIdScope, isValidIdScope } from '@provisio/protocol'
import { writeFileAtomic } from './files.js'

export interface PolicyState {
  readonly name: string
  readonly primaryKey: string
  readonly secondaryKey: string
}

export interface HubState {
  readonly hostName: string
  readonly policies: readonly PolicyState[]
}

export interface ServerState {
  readonly version: 1
  readonly idScope: string
  readonly servicePolicies: readonly PolicyState[]
  readonly hubs: readonly HubState[]
}

/** The DPS instance of a data directory (ID scope, service and hub keys). */
export const STATE_FILE = 'state.json'

function key(): string {
  return randomBytes(32).toString('base64')
}

function policy(name: string): PolicyState {
  return { name, primaryKey: key(), secondaryKey: key() }
}

/** Loads the state, creating it on first start. Returns whether it was created. */
export function loadOrCreateState(dataDir: string, hubHostNames: readonly string[]): { state: ServerState; created: boolean } {
  const path = join(dataDir, STATE_FILE)
  if (existsSync(path)) {
    let json: ServerState
    try {
      json = JSON.parse(readFileSync(path, 'utf8')) as ServerState
    } catch (error) {
      throw new Error(`${path} is not valid JSON (${(error as Error).message}); fix it or move it away to start afresh`)
    }
    if (json.version !== 1 || !isValidIdScope(json.idScope) || !Array.isArray(json.hubs) || !Array.isArray(json.servicePolicies)) {
      throw new Error(`${path} is not a Provisio state file of version 1`)
    }
    // Hubs declared since the last start get their owner policy now; the others keep their keys.
    const missing = hubHostNames.filter((name) => !json.hubs.some((h) => h.hostName.toLowerCase() === name.toLowerCase()))
    if (missing.length === 0) return { state: json, created: false }
    const grown: ServerState = { ...json, hubs: [...json.hubs, ...missing.map((hostName) => ({ hostName, policies: [policy('iothubowner')] }))] }
    writeFileAtomic(path, JSON.stringify(grown, null, 2) + '\n', 0o600)
    return { state: grown, created: false }
  }
  const state: ServerState = {
    version: 1,
    idScope: generateIdScope((n) => new Uint8Array(randomBytes(n))),
    servicePolicies: [policy('provisioningserviceowner')],
    hubs: hubHostNames.map((hostName) => ({ hostName, policies: [policy('iothubowner')] })),
  }
  writeFileAtomic(path, JSON.stringify(state, null, 2) + '\n', 0o600)
  return { state, created: true }
}
