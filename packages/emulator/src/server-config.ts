/**
 * Pre-filling the form: `provisio serve` publishes the page's public settings at
 * `/emulator/config.json` (ID scope, device endpoint host, HTTPS port — never a key), and the page's
 * query string may override any non-secret field (`?transport=amqp-ws&count=500`). Keys are
 * always typed in: they never travel in a URL.
 */

/** What `/emulator/config.json` holds (written by @provisio/server). */
export interface ServerConfig {
  readonly idScope: string
  readonly host: string
  readonly port: number
}

/** Fields the query string may set. */
export const QUERY_FIELDS = ['host', 'port', 'idScope', 'transport', 'credential', 'registrationIdPrefix', 'count', 'concurrency', 'readTwins', 'stayConnected', 'telemetryIntervalSeconds'] as const

type FetchLike = (url: string, init?: { headers?: Record<string, string> }) => Promise<{ ok: boolean; json(): Promise<unknown> }>

/** Reads `./config.json` next to the page; undefined when the page is not served by provisio. */
export async function readServerConfig(fetchImpl: FetchLike, url = './config.json'): Promise<ServerConfig | undefined> {
  try {
    const res = await fetchImpl(url, { headers: { accept: 'application/json' } })
    if (!res.ok) return undefined
    return parseServerConfig(await res.json())
  } catch {
    return undefined
  }
}

export function parseServerConfig(json: unknown): ServerConfig | undefined {
  if (typeof json !== 'object' || json === null) return undefined
  const { idScope, host, port } = json as Record<string, unknown>
  if (typeof idScope !== 'string' || typeof host !== 'string' || typeof port !== 'number' || !Number.isInteger(port)) return undefined
  return { idScope, host, port }
}

/** Form values from the server's settings, then the query string (which wins). */
export function applyServerConfig(config: ServerConfig | undefined, query: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {}
  if (config !== undefined) {
    out.host = config.host
    out.port = String(config.port)
    out.idScope = config.idScope
  }
  for (const name of QUERY_FIELDS) {
    const v = query.get(name)
    if (v !== null && v.length <= 200) out[name] = v
  }
  return out
}
