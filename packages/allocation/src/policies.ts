/**
 * The synchronous policies: candidate selection, hashed, geoLatency and static.
 * @module
 */
import { ProvisioError } from '@provisio/protocol'
import { prefixState, rendezvousScore } from './hash.js'
import type { AllocationInput, GeoLatencyConfig, LinkedHub } from './types.js'

/** DPS linked-hub `allocationWeight` range. */
export const MIN_ALLOCATION_WEIGHT = 1
export const MAX_ALLOCATION_WEIGHT = 1000

/** One linked hub as a policy sees it. */
export interface Candidate {
  readonly hostName: string
  readonly weight: number
  readonly applyAllocationPolicy: boolean
  /** May the policy pick it? */
  readonly eligible: boolean
  /** Why not, when not eligible. */
  readonly excludedBecause?: string
}

/** 400208: no hub can be assigned (`DPS_HUB_ERROR_NO_HUB`, docs/protocol.md §1.5). */
export function noHub(reason: string): ProvisioError {
  return new ProvisioError('NO_HUB_ASSIGNABLE', reason)
}

function lower(s: string): string {
  return s.toLowerCase()
}

/**
 * Checks the linked-hub list (weights 1..1000 integers, no host twice) and marks which hubs a
 * hashed / geoLatency / custom policy may pick: `applyAllocationPolicy` must not be false, and
 * when the enrollment lists `iotHubs` the hub must be one of them. Case-insensitive host names.
 *
 * @throws ProvisioError VALIDATION_FAILED for a malformed linked-hub list (a configuration bug)
 */
export function assessCandidates(input: Pick<AllocationInput, 'linkedHubs' | 'iotHubs'>): Candidate[] {
  const allowed = input.iotHubs !== undefined && input.iotHubs.length > 0 ? new Set(input.iotHubs.map(lower)) : undefined
  const seen = new Set<string>()
  return input.linkedHubs.map((hub, i): Candidate => {
    const key = lower(hub.hostName)
    if (seen.has(key)) throw configError(`linkedHubs[${i}].hostName`, `must not repeat ${hub.hostName}`)
    seen.add(key)
    const weight = hub.allocationWeight ?? 1
    if (!Number.isInteger(weight) || weight < MIN_ALLOCATION_WEIGHT || weight > MAX_ALLOCATION_WEIGHT) {
      throw configError(
        `linkedHubs[${i}].allocationWeight`,
        `must be an integer from ${MIN_ALLOCATION_WEIGHT} to ${MAX_ALLOCATION_WEIGHT}`,
      )
    }
    const apply = hub.applyAllocationPolicy !== false
    let excludedBecause: string | undefined
    if (!apply) excludedBecause = 'applyAllocationPolicy is false'
    else if (allowed !== undefined && !allowed.has(key)) excludedBecause = "not in the enrollment's iotHubs"
    const c: Candidate = { hostName: hub.hostName, weight, applyAllocationPolicy: apply, eligible: excludedBecause === undefined }
    return excludedBecause === undefined ? c : { ...c, excludedBecause }
  })
}

function configError(field: string, rule: string): ProvisioError {
  return new ProvisioError('VALIDATION_FAILED', `${field}: ${rule}`, { info: { field, rule } })
}

/** Why no candidate is eligible, for the 400208 reason. */
export function whyNoCandidate(input: Pick<AllocationInput, 'linkedHubs' | 'iotHubs'>, candidates: readonly Candidate[]): string {
  if (input.linkedHubs.length === 0) return 'no IoT hub is linked to the DPS instance'
  if (input.iotHubs !== undefined && input.iotHubs.length > 0) {
    const linked = new Set(candidates.map((c) => lower(c.hostName)))
    const listed = input.iotHubs.filter((h) => linked.has(lower(h)))
    if (listed.length === 0) return `none of the enrollment's iotHubs (${input.iotHubs.join(', ')}) is linked`
    return `every hub in the enrollment's iotHubs (${listed.join(', ')}) has applyAllocationPolicy false`
  }
  return 'every linked hub has applyAllocationPolicy false'
}

/** Eligible candidates or a 400208 saying why there are none. */
export function eligibleOrThrow(input: Pick<AllocationInput, 'linkedHubs' | 'iotHubs'>, candidates: readonly Candidate[]): Candidate[] {
  const eligible = candidates.filter((c) => c.eligible)
  if (eligible.length === 0) throw noHub(whyNoCandidate(input, candidates))
  return eligible
}

// ---------------------------------------------------------------------------------------------
// Hashed
// ---------------------------------------------------------------------------------------------

/** A hub's rendezvous score for a device (see `hash.ts`). */
export interface HashedScore {
  readonly hostName: string
  readonly weight: number
  readonly score: number
}

/**
 * Weighted rendezvous hashing: the hub with the highest `weight / -ln(u(id, host))` wins; each
 * hub wins for a share `weight / Σweight` of devices, and adding a hub moves devices only onto
 * the new hub (`hash.ts`). Ties (probability ~2^-53) go to the smaller lower-cased host name.
 *
 * @param hubs eligible hubs (non-empty)
 * @returns the winner and every score, highest first
 */
export function hashedChoice(
  registrationId: string,
  hubs: readonly { hostName: string; weight: number }[],
): { winner: string; scores: HashedScore[] } {
  if (hubs.length === 0) throw noHub('no eligible hub for the hashed policy')
  const prefix = prefixState(registrationId)
  const scores = hubs.map((h) => ({ hostName: h.hostName, weight: h.weight, score: rendezvousScore(prefix, h.hostName, h.weight) }))
  scores.sort((x, y) => y.score - x.score || (lower(x.hostName) < lower(y.hostName) ? -1 : 1))
  return { winner: scores[0].hostName, scores }
}

/**
 * The hashed policy over linked hubs.
 * @example allocateHashed('dev-1', [{hostName: 'a.example', allocationWeight: 3}, {hostName: 'b.example'}])
 * @throws ProvisioError NO_HUB_ASSIGNABLE (400208) when no hub is eligible
 */
export function allocateHashed(
  registrationId: string,
  linkedHubs: readonly LinkedHub[],
  iotHubs?: readonly string[],
): string {
  const candidates = assessCandidates({ linkedHubs, iotHubs })
  return hashedChoice(registrationId, eligibleOrThrow({ linkedHubs, iotHubs }, candidates)).winner
}

// ---------------------------------------------------------------------------------------------
// GeoLatency
// ---------------------------------------------------------------------------------------------

/** A hub's region and latency from the device's region. */
export interface LatencyEntry {
  readonly hostName: string
  readonly region: string | undefined
  readonly latencyMs: number
}

/** Case-insensitive host → region lookup. */
function regionOf(geo: GeoLatencyConfig, hostName: string): string | undefined {
  const direct = geo.hubRegions[hostName]
  if (direct !== undefined) return direct
  const key = lower(hostName)
  for (const [host, region] of Object.entries(geo.hubRegions)) if (lower(host) === key) return region
  return undefined
}

/** Latency from region `a` to `b`: the table, else the reverse pair, else 0 (same region) or the default. */
export function latencyBetween(geo: GeoLatencyConfig, a: string | undefined, b: string | undefined): number {
  if (a === undefined || b === undefined) return geo.unknownLatencyMs ?? Number.POSITIVE_INFINITY
  const own = Object.prototype.hasOwnProperty
  const row = own.call(geo.latencyMs, a) ? geo.latencyMs[a] : undefined
  if (row !== undefined && own.call(row, b)) return row[b]
  const back = own.call(geo.latencyMs, b) ? geo.latencyMs[b] : undefined
  if (back !== undefined && own.call(back, a)) return back[a]
  if (a === b) return 0
  return geo.unknownLatencyMs ?? Number.POSITIVE_INFINITY
}

/**
 * geoLatency: the eligible hubs with the lowest latency from the device's region (within
 * `toleranceMs`) are tied, and the hashed policy decides among them, so ties spread devices by
 * weight instead of piling onto one hub. An unknown device region makes every hub equally far
 * (then it is plain hashed).
 *
 * @returns the winner, the latency of every eligible hub (lowest first) and the tied set
 */
export function geoLatencyChoice(
  registrationId: string,
  hubs: readonly { hostName: string; weight: number }[],
  geo: GeoLatencyConfig,
  deviceRegion: string | undefined,
): { winner: string; latencies: LatencyEntry[]; tied: string[]; scores: HashedScore[] } {
  if (hubs.length === 0) throw noHub('no eligible hub for the geoLatency policy')
  const latencies = hubs.map((h) => {
    const region = regionOf(geo, h.hostName)
    return { hostName: h.hostName, region, latencyMs: latencyBetween(geo, deviceRegion, region) }
  })
  latencies.sort((x, y) => x.latencyMs - y.latencyMs || (lower(x.hostName) < lower(y.hostName) ? -1 : 1))
  const best = latencies[0].latencyMs
  const tolerance = geo.toleranceMs ?? 0
  // Infinity - Infinity is NaN: with no known latency at all, every hub is tied.
  const tiedSet = new Set(
    latencies
      .filter((l) => l.latencyMs === best || l.latencyMs - best <= tolerance)
      .map((l) => lower(l.hostName)),
  )
  const tiedHubs = hubs.filter((h) => tiedSet.has(lower(h.hostName)))
  const { winner, scores } = hashedChoice(registrationId, tiedHubs)
  return { winner, latencies, tied: tiedHubs.map((h) => h.hostName), scores }
}

/** Device region: the input's, else the configured resolver's answer. */
export function deviceRegionOf(input: AllocationInput): string | undefined {
  if (input.deviceRegion !== undefined) return input.deviceRegion
  return input.geo?.resolveDeviceRegion?.({
    registrationId: input.registrationId,
    ...(input.custom?.runtime?.payload !== undefined ? { payload: input.custom.runtime.payload } : {}),
  })
}

// ---------------------------------------------------------------------------------------------
// Static
// ---------------------------------------------------------------------------------------------

/**
 * static: the one hub the enrollment names (`iotHubs` with one entry, or `iotHubHostName`); it
 * must be linked. `applyAllocationPolicy` does not apply: the enrollment chose the hub itself.
 * An enrollment that names no hub (Azure accepts one: docs/protocol.md §13.4) gets the
 * instance's hub when exactly one is linked; with several linked there is no single hub it could
 * mean, and the refusal says so and how to fix it.
 *
 * @returns the hub's host name as spelled in the linked-hub list
 * @throws ProvisioError NO_HUB_ASSIGNABLE (400208) when no single hub is named or it is not linked
 */
export function allocateStatic(input: Pick<AllocationInput, 'linkedHubs' | 'iotHubs' | 'iotHubHostName'>): string {
  const listed = input.iotHubs ?? []
  if (listed.length > 1) {
    throw noHub(`static allocation needs exactly one hub, the enrollment lists ${listed.length} (${listed.join(', ')})`)
  }
  const named = listed.length === 1 ? listed[0] : input.iotHubHostName
  if (named === undefined) {
    const linked = input.linkedHubs
    if (linked.length === 1) return linked[0]!.hostName
    if (linked.length === 0) throw noHub('static allocation: the enrollment names no hub and no hub is linked to the DPS instance')
    throw noHub(
      `static allocation: the enrollment names no hub (iotHubs and iotHubHostName are empty) and the DPS instance links ${linked.length} (${linked.map((h) => h.hostName).join(', ')}); name one in iotHubs`,
    )
  }
  if (listed.length === 1 && input.iotHubHostName !== undefined && lower(input.iotHubHostName) !== lower(named)) {
    throw noHub(`static allocation: iotHubs names ${named} but iotHubHostName names ${input.iotHubHostName}`)
  }
  const key = lower(named)
  const hub = input.linkedHubs.find((h) => lower(h.hostName) === key)
  if (hub === undefined) throw noHub(`static allocation: hub ${named} is not linked to the DPS instance`)
  return hub.hostName
}
