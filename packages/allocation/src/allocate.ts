/**
 * One entry point over every policy, and the dry run that explains a decision.
 * @module
 */
import { isProvisioError, wrapUnknown, type AllocationPolicy, type InitialTwin } from '@provisio/protocol'
import { callAllocationWebhook } from './custom.js'
import {
  allocateStatic,
  assessCandidates,
  deviceRegionOf,
  eligibleOrThrow,
  geoLatencyChoice,
  hashedChoice,
  type Candidate,
  type HashedScore,
  type LatencyEntry,
} from './policies.js'
import type { AbortSignalLike, AllocationInput, AllocationPorts, AllocationResult } from './types.js'

function withEnrollmentTwin(policy: AllocationPolicy, hostName: string, twin: InitialTwin | undefined): AllocationResult {
  return twin === undefined ? { policy, hostName } : { policy, hostName, initialTwin: twin, initialTwinSource: 'enrollment' }
}

/**
 * Allocates without I/O: hashed, geoLatency or static. The custom policy needs the webhook,
 * so it is refused here (use {@link allocate}).
 *
 * @throws ProvisioError NO_HUB_ASSIGNABLE (400208) when no hub can be assigned
 * @throws TypeError for `custom`, or geoLatency without `geo` (programming errors)
 */
export function allocateSync(input: AllocationInput): AllocationResult {
  switch (input.policy) {
    case 'static':
      return withEnrollmentTwin('static', allocateStatic(input), input.initialTwin)
    case 'hashed': {
      const eligible = eligibleOrThrow(input, assessCandidates(input))
      return withEnrollmentTwin('hashed', hashedChoice(input.registrationId, eligible).winner, input.initialTwin)
    }
    case 'geoLatency': {
      if (input.geo === undefined) throw new TypeError('allocateSync: the geoLatency policy needs input.geo')
      const eligible = eligibleOrThrow(input, assessCandidates(input))
      const { winner } = geoLatencyChoice(input.registrationId, eligible, input.geo, deviceRegionOf(input))
      return withEnrollmentTwin('geoLatency', winner, input.initialTwin)
    }
    case 'custom':
      throw new TypeError('allocateSync: the custom policy calls a webhook; use allocate()')
  }
}

/**
 * Allocates a hub with any policy. For `custom`, the webhook is called through `ports.fetch`
 * with the eligible hubs as `linkedHubs`; its `initialTwin` (if any) replaces the enrollment's
 * and its `payload` is returned for `registrationState.payload` (§8).
 *
 * @throws ProvisioError NO_HUB_ASSIGNABLE (400208) or CUSTOM_ALLOCATION_FAILED (400207)
 * @example
 * ```ts
 * const r = await allocate({ policy: 'hashed', registrationId: 'dev-1', linkedHubs })
 * r.hostName // e.g. 'hub2.azure-devices.net'
 * ```
 */
export async function allocate<S extends AbortSignalLike = AbortSignalLike>(
  input: AllocationInput,
  ports: AllocationPorts<S> = {},
): Promise<AllocationResult> {
  if (input.policy !== 'custom') return allocateSync(input)
  const eligible = eligibleOrThrow(input, assessCandidates(input))
  const { response, hostName } = await callAllocationWebhook(
    input,
    eligible.map((c) => c.hostName),
    ports,
  )
  const result: { -readonly [K in keyof AllocationResult]: AllocationResult[K] } = { policy: 'custom', hostName }
  if (response.initialTwin !== undefined) {
    result.initialTwin = response.initialTwin
    result.initialTwinSource = 'webhook'
  } else if (input.initialTwin !== undefined) {
    result.initialTwin = input.initialTwin
    result.initialTwinSource = 'enrollment'
  }
  if (response.payload !== undefined) result.payload = response.payload
  return result
}

/** Answer of the dry run: where a device would go, and why. */
export interface AllocationExplanation {
  readonly policy: AllocationPolicy
  readonly registrationId: string
  /** The hub the device would get; absent when allocation would fail. */
  readonly hostName?: string
  /** One sentence: why that hub (or why none). */
  readonly reason: string
  /** Every linked hub with its weight and eligibility. */
  readonly candidates: readonly Candidate[]
  /** hashed (and geoLatency ties): every eligible hub's rendezvous score, highest first. */
  readonly scores?: readonly HashedScore[]
  /** hashed: each eligible hub's expected share of devices, weight / Σweight. */
  readonly shares?: Readonly<Record<string, number>>
  /** geoLatency: device region used. */
  readonly deviceRegion?: string
  /** geoLatency: latency of every eligible hub from the device's region, lowest first. */
  readonly latencies?: readonly LatencyEntry[]
  /** geoLatency: hubs tied at the lowest latency. */
  readonly tied?: readonly string[]
  /** Hub of the existing registration, when re-registering. */
  readonly currentHub?: string
  /** Initial twin that would be applied, and where it comes from. */
  readonly initialTwin?: InitialTwin
  readonly initialTwinSource?: 'enrollment' | 'webhook'
  /** Payload a custom webhook returned. */
  readonly payload?: AllocationResult['payload']
  /** The error allocation would fail with. */
  readonly error?: { readonly code: string; readonly errorCode: number; readonly reason: string }
}

/**
 * Dry run: computes the allocation without side effects and explains it: candidates with
 * weights and exclusions, rendezvous scores and shares (hashed), latencies and ties
 * (geoLatency), the named hub (static), the webhook's answer (custom; the webhook *is* called,
 * as DPS has no other way to know), and the initial twin that would be applied. Never throws
 * for allocation failures: they come back in `error`.
 */
export async function explainAllocation<S extends AbortSignalLike = AbortSignalLike>(
  input: AllocationInput,
  ports: AllocationPorts<S> = {},
): Promise<AllocationExplanation> {
  const base = {
    policy: input.policy,
    registrationId: input.registrationId,
    ...(input.currentHub !== undefined ? { currentHub: input.currentHub } : {}),
  }
  let candidates: Candidate[] = []
  try {
    candidates = assessCandidates(input)
    switch (input.policy) {
      case 'static': {
        const hostName = allocateStatic(input)
        return {
          ...base,
          candidates,
          hostName,
          reason: `static: the enrollment names ${hostName}`,
          ...twin(input.initialTwin),
        }
      }
      case 'hashed': {
        const eligible = eligibleOrThrow(input, candidates)
        const { winner, scores } = hashedChoice(input.registrationId, eligible)
        const total = eligible.reduce((s, c) => s + c.weight, 0)
        const shares = Object.fromEntries(eligible.map((c) => [c.hostName, c.weight / total]))
        return {
          ...base,
          candidates,
          hostName: winner,
          scores,
          shares,
          reason: `hashed: ${winner} has the highest weighted rendezvous score among ${eligible.length} eligible hub(s)`,
          ...twin(input.initialTwin),
        }
      }
      case 'geoLatency': {
        if (input.geo === undefined) throw new TypeError('explainAllocation: the geoLatency policy needs input.geo')
        const eligible = eligibleOrThrow(input, candidates)
        const region = deviceRegionOf(input)
        const { winner, latencies, tied, scores } = geoLatencyChoice(input.registrationId, eligible, input.geo, region)
        const best = latencies[0].latencyMs
        const why =
          region === undefined
            ? `the device region is unknown, so all ${tied.length} eligible hub(s) tie and hashing picks ${winner}`
            : tied.length === 1
              ? `${winner} has the lowest latency (${best} ms) from ${region}`
              : `${tied.length} hubs tie at ${best} ms from ${region}; hashing among them picks ${winner}`
        return {
          ...base,
          candidates,
          hostName: winner,
          ...(region !== undefined ? { deviceRegion: region } : {}),
          latencies,
          tied,
          scores,
          reason: `geoLatency: ${why}`,
          ...twin(input.initialTwin),
        }
      }
      case 'custom': {
        const result = await allocate(input, ports)
        return {
          ...base,
          candidates,
          hostName: result.hostName,
          reason: `custom: the webhook chose ${result.hostName}`,
          ...(result.initialTwin !== undefined ? { initialTwin: result.initialTwin, initialTwinSource: result.initialTwinSource } : {}),
          ...(result.payload !== undefined ? { payload: result.payload } : {}),
        }
      }
    }
  } catch (error) {
    if (!isProvisioError(error) && error instanceof TypeError) throw error
    const err = wrapUnknown(error)
    return {
      ...base,
      candidates,
      reason: `${input.policy}: ${err.reason}`,
      error: { code: err.code, errorCode: err.errorCode, reason: err.reason },
    }
  }
}

function twin(t: InitialTwin | undefined): { initialTwin?: InitialTwin; initialTwinSource?: 'enrollment' } {
  return t === undefined ? {} : { initialTwin: t, initialTwinSource: 'enrollment' }
}
