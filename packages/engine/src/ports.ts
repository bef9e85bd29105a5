/**
 * The ports through which the engine reaches the outside world (DESIGN.md: layers 0-4 take clock,
 * randomness, fetch and stores as arguments). Node adapters (layer 5) implement them; tests pass
 * deterministic fakes.
 */
import type { InitialTwin } from '@provisio/protocol'

/** Wall clock. */
export interface Clock {
  /** Milliseconds since the Unix epoch; fractions are allowed and give 100 ns timestamps. */
  now(): number
}

/** Cryptographically strong randomness (keys, operation ids, etags). */
export interface Random {
  /** `n` fresh random bytes. */
  bytes(n: number): Uint8Array
}

/** Minimal request shape the engine needs from a `fetch` implementation (custom allocation webhooks). */
export interface FetchRequestInit {
  method: 'POST'
  headers: Record<string, string>
  body: string
  /** Milliseconds after which the implementation must abort and reject. */
  timeoutMs: number
}

/** Minimal response shape the engine reads. */
export interface FetchResponse {
  readonly status: number
  text(): Promise<string>
}

/** An HTTP client: the WHATWG `fetch` subset above, with a timeout the implementation enforces. */
export type Fetch = (url: string, init: FetchRequestInit) => Promise<FetchResponse>

/**
 * Optional timers port. Only used to bound how long `register` waits for an assignment before it
 * answers 202 `assigning` (EngineOptions.assignmentBudgetMs); without it the engine either waits
 * for the assignment to finish (budget > 0) or never waits (budget 0).
 */
export interface Timers {
  /** Resolves after `ms` milliseconds. */
  delay(ms: number): Promise<void>
}

/** A linked IoT hub as the gateway needs it: where it is and how to sign requests to it. */
export interface HubTarget {
  readonly hostName: string
  readonly connectionString: string
}

/** How the hub authenticates the device (the same credentials it proved to DPS, §2.2, §6). */
export type HubDeviceAuth =
  | { readonly type: 'sas'; readonly primaryKey: string; readonly secondaryKey: string }
  | { readonly type: 'selfSigned'; readonly thumbprints: { readonly primary: string; readonly secondary?: string } }
  | { readonly type: 'certificateAuthority' }

/** Device twin, as far as provisioning reads and writes it. */
export interface Twin {
  tags?: Record<string, unknown>
  properties?: { desired?: Record<string, unknown>; reported?: Record<string, unknown> }
}

/** Arguments of HubGateway.createOrUpdateDevice. */
export interface HubDeviceSpec {
  readonly hub: HubTarget
  readonly deviceId: string
  readonly auth: HubDeviceAuth
  readonly iotEdge: boolean
  /** Twin to apply on creation or reset (tags + desired properties), from the enrollment or the webhook. */
  readonly initialTwin?: InitialTwin
  /** Twin carried over from the previous hub on migration (tags + desired properties). */
  readonly migratedTwin?: Twin
}

/**
 * The engine's only way to touch IoT hubs (DESIGN.md "Hubs"). Every call must be idempotent: an
 * operation taken over after a crash repeats them.
 */
export interface HubGateway {
  /** Creates the device identity or replaces its auth/capabilities; applies the twin if one is given. */
  createOrUpdateDevice(spec: HubDeviceSpec): Promise<void>
  /** The device's twin, or undefined when the device does not exist on that hub. */
  getTwin(args: { readonly hub: HubTarget; readonly deviceId: string }): Promise<Twin | undefined>
  /** Removes the identity; succeeds when it does not exist. */
  deleteDevice(args: { readonly hub: HubTarget; readonly deviceId: string }): Promise<void>
}
