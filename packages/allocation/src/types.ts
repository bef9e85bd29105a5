/**
 * Inputs, outputs and ports of the allocation policies.
 * @module
 */
import type {
  AllocationPolicy,
  CustomAllocationDefinition,
  DeviceRuntimeContext,
  EnrollmentGroup,
  IndividualEnrollment,
  InitialTwin,
  JsonObject,
} from '@provisio/protocol'

/**
 * A hub linked to a DPS instance (docs/architecture.md §7): host name, weight and whether
 * allocation policies consider it. The connection string stays with the engine: allocation
 * never needs a secret.
 */
export interface LinkedHub {
  /** e.g. `contoso.azure-devices.net`; compared case-insensitively. */
  readonly hostName: string
  /** 1..1000 (DPS linked-hub `allocationWeight`); default 1. */
  readonly allocationWeight?: number
  /** Whether hashed / geoLatency / custom may pick this hub; default true. */
  readonly applyAllocationPolicy?: boolean
}

/**
 * Latency table of the geoLatency policy. DPS measures real latency from the device's region to
 * each hub; we make it configuration: each hub's region and a region × region table.
 */
export interface GeoLatencyConfig {
  /** hub host name → region name (host names case-insensitive). */
  readonly hubRegions: Readonly<Record<string, string>>
  /** from-region → to-region → milliseconds. A missing pair is looked up reversed, then defaults. */
  readonly latencyMs: Readonly<Record<string, Readonly<Record<string, number>>>>
  /** Latency of a pair absent from the table; default: 0 within a region, else Infinity. */
  readonly unknownLatencyMs?: number
  /** Hubs within this many ms of the best are tied (then hashed among them); default 0. */
  readonly toleranceMs?: number
  /**
   * Finds the device's region when the input carries none (e.g. from the payload or a GeoIP
   * lookup the host did earlier). Must be pure: same input, same answer.
   */
  readonly resolveDeviceRegion?: (device: { registrationId: string; payload?: JsonObject }) => string | undefined
}

/** The enrollment record handed to a custom webhook (secrets are stripped before sending). */
export type WebhookEnrollment =
  | { readonly individualEnrollment: IndividualEnrollment }
  | { readonly enrollmentGroup: EnrollmentGroup }

/** What a custom allocation needs besides the common input. */
export interface CustomAllocationInput {
  readonly definition: CustomAllocationDefinition
  readonly enrollment: WebhookEnrollment
  /** Attestation details and payload for `deviceRuntimeContext` (§8); keys are never included. */
  readonly runtime?: Pick<DeviceRuntimeContext, 'x509' | 'symmetricKey' | 'tpm' | 'payload'>
}

/** Everything a policy decides from. Pure data: same input, same hub. */
export interface AllocationInput {
  /** Effective policy: the enrollment's `allocationPolicy`, else the DPS instance default. */
  readonly policy: AllocationPolicy
  readonly registrationId: string
  readonly linkedHubs: readonly LinkedHub[]
  /** Enrollment's `iotHubs`: restricts the candidates when non-empty. */
  readonly iotHubs?: readonly string[]
  /** Enrollment's `iotHubHostName` (static policy; legacy single-hub form). */
  readonly iotHubHostName?: string
  /** Hub of the existing registration (re-registration), for the webhook and explanations. */
  readonly currentHub?: string
  /** Device id of the existing registration (re-registration), for the webhook. */
  readonly currentDeviceId?: string
  /** The enrollment's initial twin: what is applied unless a webhook returns its own. */
  readonly initialTwin?: InitialTwin
  /** geoLatency: device region (wins over `geo.resolveDeviceRegion`). */
  readonly deviceRegion?: string
  /** geoLatency configuration (required for that policy). */
  readonly geo?: GeoLatencyConfig
  /** custom: webhook definition and request material (required for that policy). */
  readonly custom?: CustomAllocationInput
}

/** Abort signal as far as allocation needs it (structural: WHATWG `AbortSignal` fits). */
export interface AbortSignalLike {
  readonly aborted: boolean
}

/** Response as far as allocation needs it (structural: WHATWG `Response` fits). */
export interface FetchResponseLike {
  readonly status: number
  text(): Promise<string>
}

/**
 * The `fetch` port: WHATWG `fetch` fits (pass `globalThis.fetch` in Node 18+ and browsers).
 * `S` is the signal type the host's fetch takes (`AbortSignal`); this package only reads `aborted`.
 */
export type FetchPort<S extends AbortSignalLike = AbortSignalLike> = (
  url: string,
  init: {
    method: 'POST'
    headers: Record<string, string>
    body: string
    signal?: S
  },
) => Promise<FetchResponseLike>

/**
 * Ports of the custom policy. No timers here: the timeout is an injected signal factory.
 * In Node and browsers: `{ fetch: globalThis.fetch, timeoutSignal: (ms) => AbortSignal.timeout(ms) }`
 * typed as `AllocationPorts<AbortSignal>`.
 */
export interface AllocationPorts<S extends AbortSignalLike = AbortSignalLike> {
  readonly fetch?: FetchPort<S>
  /**
   * Returns a signal that aborts after `ms` (Node and browsers: `(ms) => AbortSignal.timeout(ms)`).
   * Without it the webhook call has no timeout of its own.
   */
  readonly timeoutSignal?: (ms: number) => S
  /** Webhook timeout in ms; default {@link DEFAULT_WEBHOOK_TIMEOUT_MS}. */
  readonly timeoutMs?: number
  /** Largest webhook response body accepted, bytes; default 96 KB (DPS message limit). */
  readonly maxResponseBytes?: number
}

/** Default webhook timeout. Azure Functions answer in well under this; DPS's own value is not documented. */
export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000

/** Outcome of an allocation. */
export interface AllocationResult {
  readonly policy: AllocationPolicy
  /** Chosen hub, spelled as in the linked-hub list. */
  readonly hostName: string
  /** Initial twin to apply: the webhook's if it returned one, else the enrollment's. */
  readonly initialTwin?: InitialTwin
  /** Where `initialTwin` came from. */
  readonly initialTwinSource?: 'enrollment' | 'webhook'
  /** Payload returned by a custom webhook, for `registrationState.payload` (§8). */
  readonly payload?: JsonObject
}
