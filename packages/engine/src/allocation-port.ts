/**
 * The call site of allocation (the policies live in @provisio/allocation). The engine calls an
 * `Allocator`: a function from "this device, this enrollment, these hubs" to a hub host name (plus
 * the webhook's initialTwin and payload for custom allocation, §8). The default allocator adapts
 * @provisio/allocation; tests and embedders may pass their own.
 */
import type {
  AllocationPolicy,
  DeviceRuntimeContext,
  InitialTwin,
  JsonObject,
} from '@provisio/protocol'
import type { MatchedEnrollment } from './attestation.js'
import type { InstanceConfig, LinkedHub } from './instances.js'
import type { Fetch } from './ports.js'

/** Input of one allocation. */
export interface AllocationCall {
  readonly policy: AllocationPolicy
  readonly instance: InstanceConfig
  /** Every hub linked to the instance. */
  readonly linkedHubs: readonly LinkedHub[]
  readonly enrollment: MatchedEnrollment
  /** What the webhook is told about the device (§8), including the device payload. */
  readonly runtime: DeviceRuntimeContext
  readonly fetch?: Fetch
  /** Fault injection: behave as if the webhook answered this status. */
  readonly forcedWebhookStatus?: number
}

/** Outcome of one allocation. */
export type AllocationVerdict =
  | { readonly ok: true; readonly hostName: string; readonly initialTwin?: InitialTwin; readonly payload?: JsonObject }
  | {
      readonly ok: false
      readonly code: 'CUSTOM_ALLOCATION_FAILED' | 'NO_HUB_ASSIGNABLE'
      /** Detailed, operator-facing reason. */
      readonly reason: string
      /** What the registration record's `errorMessage` says (e.g. "Custom allocation failed with status code: 400", §8). */
      readonly errorMessage: string
    }

/** Chooses a hub. Never throws for bad webhook answers: returns a failed verdict. */
export type Allocator = (call: AllocationCall) => Promise<AllocationVerdict>
