/**
 * Hub MQTT sessions kept in memory, per process (see README "Storage and concurrency"): what a
 * device that connects with clean session 0 finds again when it reconnects — its subscriptions
 * and the QoS 1 messages it has not acknowledged — as IoT Hub keeps them. Bounded: at most
 * `maxSessions` devices (the least recently used session without a connection is forgotten
 * first) and `maxQueued` waiting messages per device (the oldest dropped, counted in `dropped`).
 */
import {
  deliveryQos,
  enqueueHubMessage,
  newHubSessionState,
  type HubMqttSessionState,
  type HubQueuedMessage,
  type HubSessionOpened,
  type HubSessionStore,
} from '@provisio/protocol'
import { hubClientKey } from './connections.js'

export interface HubSessionLimits {
  /** Devices whose sessions are kept. */
  readonly maxSessions: number
  /** Messages waiting per device. */
  readonly maxQueued: number
}

export const DEFAULT_HUB_SESSION_LIMITS: HubSessionLimits = Object.freeze({ maxSessions: 10_000, maxQueued: 100 })

interface Kept {
  readonly state: HubMqttSessionState
  clean: boolean
}

export class MemoryHubSessions implements HubSessionStore {
  readonly #limits: HubSessionLimits
  /** By client key, least recently opened first. */
  readonly #sessions = new Map<string, Kept>()

  constructor(limits: Partial<HubSessionLimits> = {}) {
    this.#limits = { ...DEFAULT_HUB_SESSION_LIMITS, ...limits }
  }

  get size(): number {
    return this.#sessions.size
  }

  open(hostName: string, deviceId: string, clean: boolean, owner: object): HubSessionOpened {
    const key = hubClientKey(hostName, deviceId)
    const kept = this.#sessions.get(key)
    this.#sessions.delete(key)
    if (kept !== undefined && !clean && !kept.clean) {
      kept.state.owner = owner
      this.#sessions.set(key, kept)
      return { state: kept.state, present: true }
    }
    const state = newHubSessionState(owner)
    this.#sessions.set(key, { state, clean })
    this.#evict()
    return { state, present: false }
  }

  close(hostName: string, deviceId: string, owner: object): void {
    const key = hubClientKey(hostName, deviceId)
    const kept = this.#sessions.get(key)
    // A connection taken over by a newer one no longer owns the session.
    if (kept === undefined || kept.state.owner !== owner) return
    kept.state.owner = undefined
    if (kept.clean) this.#sessions.delete(key)
  }

  /**
   * A QoS 1 message for a device that has no connection here: queued in its kept session when
   * one of its subscriptions matches at QoS 1 (QoS 0 messages are not kept, MQTT-3.1.2-5).
   * Returns whether it was kept.
   */
  offer(hostName: string, deviceId: string, message: HubQueuedMessage): boolean {
    const kept = this.#sessions.get(hubClientKey(hostName, deviceId))
    if (kept === undefined || kept.clean || kept.state.owner !== undefined) return false
    if (deliveryQos(kept.state.subscriptions, message.topic) !== 1) return false
    enqueueHubMessage(kept.state, message, this.#limits.maxQueued)
    return true
  }

  /** Forgets a device's session (its identity was deleted). */
  forget(hostName: string, deviceId: string): void {
    this.#sessions.delete(hubClientKey(hostName, deviceId))
  }

  #evict(): void {
    for (const [key, kept] of this.#sessions) {
      if (this.#sessions.size <= this.#limits.maxSessions) return
      if (kept.state.owner === undefined) this.#sessions.delete(key)
    }
  }
}
