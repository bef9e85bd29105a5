/**
 * Fault-injection profiles per ID scope, for testing device retry logic against behaviour that
 * real DPS shows only under load or failure (docs/protocol.md §1.4: 429 and 5xx are transient and
 * must be retried after Retry-After; §1.3: clients require an operationId while `assigning`).
 *
 * Faults are deterministic: counted per device, so a test knows exactly which attempt fails.
 */

/** Which attempts of each device a fault hits. */
export interface FaultSchedule {
  /** Hit the first `n` attempts of each device (then let it through). Default 1. */
  readonly firstAttempts?: number
  /** Instead: hit every `n`-th attempt of each device (1 = every attempt). */
  readonly everyNth?: number
}

/** A fault profile for one ID scope; every member is optional and independent. */
export interface FaultProfile {
  /** Answer register with 429 + Retry-After. */
  readonly throttleRegister?: FaultSchedule & { readonly retryAfterSeconds?: number }
  /** Answer operation-status polls with 429 + Retry-After. */
  readonly throttlePoll?: FaultSchedule & { readonly retryAfterSeconds?: number }
  /** Answer register with a server error (500 by default, or 503). */
  readonly serverErrorRegister?: FaultSchedule & { readonly status?: 500 | 503; readonly retryAfterSeconds?: number }
  /** Answer polls with a server error. */
  readonly serverErrorPoll?: FaultSchedule & { readonly status?: 500 | 503; readonly retryAfterSeconds?: number }
  /** Keep every operation `assigning` for this many polls after it is really finished. */
  readonly slowAssigningPolls?: number
  /** Make custom-allocation webhooks fail as if they had answered this HTTP status (400207, §8). */
  readonly webhookFailureStatus?: number
  /** Omit `operationId` from 202 `assigning` responses of the scheduled register attempts. */
  readonly missingOperationId?: FaultSchedule
}

/** A fault the engine must act on now. */
export type FaultVerdict =
  | { readonly kind: 'throttle'; readonly retryAfterSeconds: number }
  | { readonly kind: 'serverError'; readonly status: 500 | 503; readonly retryAfterSeconds?: number }

/** Per-device attempt counters for one scope. */
export class FaultState {
  readonly #counters = new Map<string, number>()

  /** Counts an attempt of `channel` for `deviceKey` and tells whether `schedule` hits it. */
  hits(channel: string, deviceKey: string, schedule: FaultSchedule | undefined): boolean {
    if (!schedule) return false
    const key = channel + '\u0000' + deviceKey
    const attempt = (this.#counters.get(key) ?? 0) + 1
    this.#counters.set(key, attempt)
    if (schedule.everyNth !== undefined) return schedule.everyNth > 0 && attempt % schedule.everyNth === 0
    return attempt <= (schedule.firstAttempts ?? 1)
  }

  /** Reads and decrements a per-operation counter (slow assigning); true while it was positive. */
  consume(channel: string, key: string, initial: number): boolean {
    const k = channel + '\u0000' + key
    const left = this.#counters.get(k) ?? initial
    if (left <= 0) return false
    this.#counters.set(k, left - 1)
    return true
  }

  /** Forgets all counters (profile replaced). */
  reset(): void {
    this.#counters.clear()
  }
}
