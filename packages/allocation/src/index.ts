/**
 * @provisio/allocation — DPS allocation policies as pure functions (layer 2, docs/architecture.md §1):
 * hashed (weighted rendezvous hashing), geoLatency (configured region/latency table, ties
 * hashed), static, and the custom webhook (docs/protocol.md §8) over an injected fetch port;
 * plus a dry run that explains a decision.
 */
export type {
  LinkedHub,
  GeoLatencyConfig,
  WebhookEnrollment,
  CustomAllocationInput,
  AllocationInput,
  AbortSignalLike,
  FetchResponseLike,
  FetchPort,
  AllocationPorts,
  AllocationResult,
} from './types.js'
export { DEFAULT_WEBHOOK_TIMEOUT_MS } from './types.js'
export {
  MIN_ALLOCATION_WEIGHT,
  MAX_ALLOCATION_WEIGHT,
  assessCandidates,
  allocateHashed,
  hashedChoice,
  geoLatencyChoice,
  latencyBetween,
  allocateStatic,
  noHub,
  type Candidate,
  type HashedScore,
  type LatencyEntry,
} from './policies.js'
export {
  DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES,
  buildAllocationRequest,
  callAllocationWebhook,
  customAllocationFailed,
  redactUrl,
  type WebhookOutcome,
} from './custom.js'
export { allocate, allocateSync, explainAllocation, type AllocationExplanation } from './allocate.js'
export { rendezvousScore, prefixState, uniform, ln, type PrefixState } from './hash.js'
