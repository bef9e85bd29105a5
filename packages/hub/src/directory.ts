/**
 * The hubs one server embeds, found by host name (case-insensitive, as DNS names are): the one
 * lookup the registry API, the device endpoint and the provisioning gateway share.
 */
import { ProvisioError, type ProvisioErrorCode } from '@provisio/protocol'
import type { EmbeddedHub } from './hub.js'

export class HubDirectory {
  readonly #hubs = new Map<string, EmbeddedHub>()

  constructor(hubs: Iterable<EmbeddedHub> = []) {
    for (const hub of hubs) this.add(hub)
  }

  add(hub: EmbeddedHub): void {
    this.#hubs.set(hub.hostName.toLowerCase(), hub)
  }

  /** The hub of that host name, or undefined. */
  find(hostName: string): EmbeddedHub | undefined {
    return this.#hubs.get(hostName.toLowerCase())
  }

  /** Whether a host name names an embedded hub. */
  has(hostName: string): boolean {
    return this.#hubs.has(hostName.toLowerCase())
  }

  /** The hub of that host name; throws `code` (NOT_FOUND by default) naming the hubs served when there is none. */
  get(hostName: string, code: ProvisioErrorCode = 'NOT_FOUND'): EmbeddedHub {
    const hub = this.find(hostName)
    if (hub === undefined) {
      throw new ProvisioError(code, `no embedded hub named ${JSON.stringify(hostName.slice(0, 100))} (embedded: ${this.hostNames().join(', ')})`)
    }
    return hub
  }

  hostNames(): string[] {
    return [...this.#hubs.values()].map((h) => h.hostName)
  }

  values(): IterableIterator<EmbeddedHub> {
    return this.#hubs.values()
  }

  get size(): number {
    return this.#hubs.size
  }
}
