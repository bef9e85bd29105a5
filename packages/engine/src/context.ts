/**
 * Shared state of one engine: ports, options, instances, limiters, fault state, emitter. Internal;
 * the public face is Engine (engine.ts).
 */
import { ProvisioError } from '@provisio/protocol'
import type { Allocator } from './allocation-port.js'
import type { AttestationVerifier, VerifierKind } from './attestation.js'
import { TypedEmitter, type EngineEventMap } from './events.js'
import { FaultState } from './faults.js'
import type { InstanceConfig } from './instances.js'
import type { CertificateAuthorities, Clock, Fetch, HubGateway, Random, Timers } from './ports.js'
import type { TokenBuckets } from './rate-limit.js'
import type { Store } from './store.js'

/** Resolved numeric options. */
export interface ResolvedOptions {
  readonly assignmentBudgetMs: number
  readonly retryAfterSeconds: number
  readonly operationLeaseMs: number
  readonly clockSkewSeconds: number
  readonly defaultPageSize: number
  readonly maxPageSize: number
  readonly webhookTimeoutMs: number
}

/** Everything the service and device operations share. */
export class EngineContext {
  readonly instances = new Map<string, InstanceConfig>()
  readonly faultStates = new Map<string, FaultState>()
  readonly verifiers = new Map<VerifierKind, AttestationVerifier>()
  readonly emitter = new TypedEmitter<EngineEventMap>()
  /** Issuing CAs per instance (docs/protocol.md §1.7); none: a `csr` is refused. */
  certificateAuthorities: CertificateAuthorities | undefined

  constructor(
    readonly store: Store,
    readonly clock: Clock,
    readonly random: Random,
    readonly hubGateway: HubGateway,
    readonly allocator: Allocator,
    readonly options: ResolvedOptions,
    readonly registrationLimiter: TokenBuckets | undefined,
    readonly pollLimiter: TokenBuckets | undefined,
    readonly fetch: Fetch | undefined,
    readonly timers: Timers | undefined,
    /** Prefix of lease owners minted by this engine (distinguishes instances sharing a store). */
    readonly ownerPrefix: string,
  ) {}

  /** The instance for `idScope`, or ID_SCOPE_UNKNOWN (a 401 to devices, per the catalog). */
  instance(idScope: string): InstanceConfig {
    const instance = this.instances.get(idScope)
    if (!instance) throw new ProvisioError('ID_SCOPE_UNKNOWN', `no DPS instance with ID scope ${JSON.stringify(String(idScope).slice(0, 64))} is hosted by this engine`)
    return instance
  }

  faultState(idScope: string): FaultState {
    let state = this.faultStates.get(idScope)
    if (!state) this.faultStates.set(idScope, (state = new FaultState()))
    return state
  }

  emit<K extends keyof EngineEventMap>(name: K, event: EngineEventMap[K]): void {
    this.emitter.emit(name, event)
  }
}
