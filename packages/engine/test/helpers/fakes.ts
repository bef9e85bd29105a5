/**
 * Test doubles for the engine's ports: a manual clock, a seeded random source, a recording
 * HubGateway, and SAS token builders (node:crypto is fine in tests; the engine itself never sees it).
 */
import { createHmac, randomBytes } from 'node:crypto'
import type { Clock, HubDeviceSpec, HubGateway, HubTarget, Random, Twin } from '../../src/index.js'

/** A clock the test moves by hand. */
export class ManualClock implements Clock {
  constructor(public ms = Date.UTC(2026, 0, 2, 3, 4, 5, 678)) {}
  now(): number {
    return this.ms
  }
  advance(ms: number): void {
    this.ms += ms
  }
}

/** Deterministic random bytes (xorshift32) so failures reproduce. */
export class SeededRandom implements Random {
  constructor(private state = 0x9e3779b9) {}
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) {
      let x = this.state
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      this.state = x >>> 0
      out[i] = this.state & 0xff
    }
    return out
  }
}

/** Crypto-strength random for benches and e2e. */
export const nodeRandom: Random = { bytes: (n) => new Uint8Array(randomBytes(n)) }

/** One call seen by the RecordingHubGateway. */
export type HubCall =
  | { op: 'createOrUpdateDevice'; spec: HubDeviceSpec }
  | { op: 'getTwin'; hub: string; deviceId: string }
  | { op: 'deleteDevice'; hub: string; deviceId: string }

/** Device identity as a tiny in-memory hub keeps it. */
export interface HubDevice {
  auth: HubDeviceSpec['auth']
  iotEdge: boolean
  twin: Twin
}

/** A HubGateway that keeps devices per hub in memory and records every call. */
export class RecordingHubGateway implements HubGateway {
  readonly calls: HubCall[] = []
  readonly hubs = new Map<string, Map<string, HubDevice>>()
  /** Make the next createOrUpdateDevice throw this. */
  failNext: Error | undefined

  device(hub: string, deviceId: string): HubDevice | undefined {
    return this.hubs.get(hub)?.get(deviceId)
  }

  async createOrUpdateDevice(spec: HubDeviceSpec): Promise<void> {
    this.calls.push({ op: 'createOrUpdateDevice', spec })
    if (this.failNext) {
      const e = this.failNext
      this.failNext = undefined
      throw e
    }
    let hub = this.hubs.get(spec.hub.hostName)
    if (!hub) this.hubs.set(spec.hub.hostName, (hub = new Map()))
    const existing = hub.get(spec.deviceId)
    let twin: Twin = existing?.twin ?? {}
    if (spec.migratedTwin) twin = structuredClone(spec.migratedTwin)
    else if (spec.initialTwin) {
      twin = {
        ...(spec.initialTwin.tags ? { tags: structuredClone(spec.initialTwin.tags) } : {}),
        properties: { desired: structuredClone(spec.initialTwin.properties?.desired ?? {}) },
      }
    }
    hub.set(spec.deviceId, { auth: spec.auth, iotEdge: spec.iotEdge, twin })
  }

  async getTwin(args: { hub: HubTarget; deviceId: string }): Promise<Twin | undefined> {
    this.calls.push({ op: 'getTwin', hub: args.hub.hostName, deviceId: args.deviceId })
    const d = this.hubs.get(args.hub.hostName)?.get(args.deviceId)
    return d ? structuredClone(d.twin) : undefined
  }

  async deleteDevice(args: { hub: HubTarget; deviceId: string }): Promise<void> {
    this.calls.push({ op: 'deleteDevice', hub: args.hub.hostName, deviceId: args.deviceId })
    this.hubs.get(args.hub.hostName)?.delete(args.deviceId)
  }
}

/** Base64 device key derived from a group key (docs/protocol.md §2.2), with node:crypto as the oracle. */
export function deriveKey(groupKeyB64: string, registrationId: string): string {
  return createHmac('sha256', Buffer.from(groupKeyB64, 'base64')).update(registrationId, 'utf8').digest('base64')
}

/** A device SAS token the way the Node symmetric-key client builds it (raw `sr`, §2.1, §11). */
export function deviceToken(idScope: string, registrationId: string, keyB64: string, expirySeconds: number, options: { encodeSr?: boolean; skn?: string | null } = {}): string {
  const resource = `${idScope}/registrations/${registrationId}`
  const sr = options.encodeSr ? encodeURIComponent(resource) : resource
  const sig = createHmac('sha256', Buffer.from(keyB64, 'base64')).update(`${sr}\n${expirySeconds}`, 'utf8').digest('base64')
  // `skn: null`: no key name at all, in the Embedded C SDK's order sr,sig,se (docs/protocol.md §13.1).
  if (options.skn === null) return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expirySeconds}`
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&skn=${options.skn ?? 'registration'}&se=${expirySeconds}`
}

/** A service SAS token (§2.3). */
export function serviceToken(host: string, policy: string, keyB64: string, expirySeconds: number): string {
  const sig = createHmac('sha256', Buffer.from(keyB64, 'base64')).update(`${host}\n${expirySeconds}`, 'utf8').digest('base64')
  return `SharedAccessSignature sr=${host}&sig=${encodeURIComponent(sig)}&se=${expirySeconds}&skn=${policy}`
}

/** A base64 key of `n` bytes. */
export function key(n = 32, fill?: number): string {
  return fill === undefined ? randomBytes(n).toString('base64') : Buffer.alloc(n, fill).toString('base64')
}
