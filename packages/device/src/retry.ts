/**
 * Waiting and backing off. Every wait is cut short by the registration's AbortSignal (the caller's
 * signal and the deadline), so a cancelled registration never sleeps on.
 */
import { DeviceError } from './errors.js'

const MAX_TIMER_MS = 2 ** 31 - 1

/** How transient failures (429, 5xx, dropped connections) are retried. */
export interface RetryPolicy {
  /** First backoff step in ms (default 1000). */
  readonly initialDelayMs?: number
  /** Largest backoff step in ms (default 30000). */
  readonly maxDelayMs?: number
  /** Most retries of one request (default unlimited: the deadline bounds them). */
  readonly maxRetries?: number
  /** Random source in [0, 1) for the jitter (default Math.random). */
  readonly random?: () => number
}

/**
 * The wait before retry number `attempt` (0-based): at least the service's retry-after; without one,
 * "equal jitter" exponential backoff — half of min(max, initial·2^attempt) plus a random part of the
 * other half, so a fleet that was throttled together does not come back together. A retry-after
 * also gets up to 10 % jitter on top for the same reason.
 */
export function backoffDelay(attempt: number, retryAfterMs: number | undefined, policy: RetryPolicy = {}): number {
  const random = policy.random ?? Math.random
  if (retryAfterMs !== undefined && retryAfterMs > 0) return Math.round(retryAfterMs * (1 + 0.1 * random()))
  const initial = policy.initialDelayMs ?? 1000
  const max = policy.maxDelayMs ?? 30_000
  const step = Math.min(max, initial * 2 ** Math.min(attempt, 30))
  return Math.round(step / 2 + (step / 2) * random())
}

/** The reason a signal fired as a DeviceError (ABORTED or DEADLINE_EXCEEDED). */
export function abortReason(signal: AbortSignal, what: string): DeviceError {
  const reason: unknown = signal.reason
  if (reason instanceof DeviceError) return reason
  return new DeviceError('ABORTED', `${what}: aborted${reason instanceof Error ? ` (${reason.message})` : ''}`, { cause: reason })
}

/** Resolves after `ms`, or rejects with the signal's reason when it fires first. */
export function sleep(ms: number, signal: AbortSignal, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(abortReason(signal, what))
      return
    }
    const onAbort = () => {
      clearTimeout(timer)
      reject(abortReason(signal, what))
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** Races a promise against a signal: rejects with the signal's reason when it fires first. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal, what))
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal, what))
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

/**
 * A signal that fires when `parent` fires or when `deadlineMs` (absolute, Date.now() clock) passes,
 * with a DEADLINE_EXCEEDED reason. `dispose()` clears the timer.
 */
export function deadlineSignal(parent: AbortSignal | undefined, deadlineAt: number, what: string): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController()
  const onParent = () => controller.abort(parent?.reason)
  if (parent?.aborted) controller.abort(parent.reason)
  else parent?.addEventListener('abort', onParent, { once: true })
  // setTimeout fires at once past 2^31-1 ms: a longer (or infinite) deadline waits that long at most, then re-arms.
  let timer: ReturnType<typeof setTimeout>
  const arm = () => {
    const left = deadlineAt - Date.now()
    if (left <= 0) {
      controller.abort(new DeviceError('DEADLINE_EXCEEDED', `${what}: the deadline passed`))
      return
    }
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS))
  }
  arm()
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer)
      parent?.removeEventListener('abort', onParent)
    },
  }
}
