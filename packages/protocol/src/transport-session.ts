/**
 * The one contract every connection-oriented codec session (MQTT, AMQP) offers its adapter
 * (docs/architecture.md, "Sessions and the attach helper"). A session is sans-IO: the adapter
 * feeds it the bytes it reads, lets time pass, and tells it when the transport went away or the
 * server is closing; the session writes and closes through the callbacks it was built with.
 */
export interface TransportSession {
  /** Bytes read from the transport, in any split. Never throws: a broken stream closes the session. */
  push(bytes: Uint8Array): void
  /**
   * Time passed (call it about once a second): the session judges its connect/open timeout,
   * keep-alive and heartbeats against its own clock.
   */
  tick(): void
  /** The server is closing: the session says goodbye if its protocol has a way to, then closes. */
  shutdown(reason?: string): void
  /**
   * The transport is gone (socket closed): answers still pending are dropped, nothing more is
   * written. `reason` says how it went, for the session's close report.
   */
  abandon(reason?: string): void
  /** Requests accepted and not yet answered (what a graceful shutdown waits for). */
  readonly inFlight: number
  /** Resolves once {@link inFlight} is 0 (at once when it is already). */
  idle(): Promise<void>
}

/** Counts requests in flight and wakes those waiting for the count to reach 0. */
export class InFlightCounter {
  #count = 0
  #waiters: (() => void)[] = []

  get count(): number {
    return this.#count
  }

  /** One more request is being answered. */
  begin(): void {
    this.#count++
  }

  /** One request was answered (or failed). */
  done(): void {
    if (this.#count === 0) return
    this.#count--
    if (this.#count === 0 && this.#waiters.length > 0) {
      const waiters = this.#waiters
      this.#waiters = []
      for (const wake of waiters) wake()
    }
  }

  /** Resolves when the count is 0. */
  idle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push(resolve))
  }
}
