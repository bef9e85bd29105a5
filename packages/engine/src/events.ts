/**
 * Typed events. The engine never logs (docs/architecture.md §6: the core emits events,
 * adapters decide what to log); servers subscribe and write logs, metrics or diagnostics channels.
 */

/** A device's registration attempt reached the engine (before attestation). */
export interface RegistrationAttemptedEvent {
  readonly idScope: string
  readonly registrationId: string
  readonly evidenceType: EvidenceType
  readonly forceRegistration: boolean
  readonly atMs: number
}

/** An operation finished with the device assigned to a hub. */
export interface RegistrationAssignedEvent {
  readonly idScope: string
  readonly registrationId: string
  readonly operationId: string
  readonly assignedHub: string
  readonly deviceId: string
  readonly substatus: string
  readonly enrollment: EnrollmentRef
  readonly atMs: number
}

/**
 * A registration was refused (attestation, disabled enrollment, throttling, injected fault) or an
 * assignment failed. `reason` is the detailed, operator-facing explanation; `errorCode` is what the
 * device was told.
 */
export interface RegistrationFailedEvent {
  readonly idScope: string
  readonly registrationId: string
  readonly operationId?: string
  readonly stage: 'throttle' | 'fault' | 'attestation' | 'assignment'
  readonly errorCode: number
  readonly reason: string
  readonly enrollment?: EnrollmentRef
  readonly atMs: number
}

/** An individual enrollment or group was created, replaced or deleted through the service API. */
export interface EnrollmentChangedEvent {
  readonly idScope: string
  readonly kind: 'individual' | 'group'
  readonly id: string
  readonly change: 'created' | 'updated' | 'deleted'
  readonly etag?: string
  readonly atMs: number
}

/** A registration record was deleted through the service API. */
export interface RegistrationDeletedEvent {
  readonly idScope: string
  readonly registrationId: string
  readonly atMs: number
}

/** A listener threw; reported here rather than swallowed or allowed to break the engine. */
export interface ListenerErrorEvent {
  readonly event: string
  readonly error: unknown
}

/** Which enrollment admitted a device. */
export interface EnrollmentRef {
  readonly kind: 'individual' | 'group'
  readonly id: string
}

/** Kinds of evidence a device can present. */
export type EvidenceType = 'sas' | 'x509' | 'tpm'

/** Event name → payload. */
export interface EngineEventMap {
  registrationAttempted: RegistrationAttemptedEvent
  registrationAssigned: RegistrationAssignedEvent
  registrationFailed: RegistrationFailedEvent
  enrollmentChanged: EnrollmentChangedEvent
  registrationDeleted: RegistrationDeletedEvent
  listenerError: ListenerErrorEvent
}

/** Listener for event `K`. */
export type Listener<M, K extends keyof M> = (event: M[K]) => void

/** A small synchronous typed emitter (no node:events: the engine runs in browsers too). */
export class TypedEmitter<M extends { listenerError: ListenerErrorEvent }> {
  readonly #listeners = new Map<keyof M, Set<(event: never) => void>>()

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends keyof M>(name: K, listener: Listener<M, K>): () => void {
    let set = this.#listeners.get(name)
    if (!set) this.#listeners.set(name, (set = new Set()))
    set.add(listener as (event: never) => void)
    return () => this.off(name, listener)
  }

  /** Unsubscribes a listener added with `on`. */
  off<K extends keyof M>(name: K, listener: Listener<M, K>): void {
    this.#listeners.get(name)?.delete(listener as (event: never) => void)
  }

  /** Whether anyone listens to `name` (lets callers skip building payloads nobody reads). */
  has<K extends keyof M>(name: K): boolean {
    const set = this.#listeners.get(name)
    return set !== undefined && set.size > 0
  }

  /** Delivers `event` to each listener in subscription order; a throwing listener is reported as `listenerError`. */
  emit<K extends keyof M>(name: K, event: M[K]): void {
    const set = this.#listeners.get(name)
    if (!set || set.size === 0) return
    for (const listener of [...set]) {
      try {
        ;(listener as Listener<M, K>)(event)
      } catch (error) {
        if (name === 'listenerError') continue // never recurse
        this.emit('listenerError', { event: String(name), error } as M['listenerError'])
      }
    }
  }
}
