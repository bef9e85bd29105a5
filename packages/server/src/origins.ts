/**
 * Which web pages may talk to the device endpoints: the browser emulator served by this server
 * (same origin) always, and the origins of `corsOrigins` (default: the Vite dev server on
 * localhost:5173). Used for CORS on the DPS device API and for the Origin check of WebSocket
 * upgrades at /$iothub/websocket. Clients that are not browsers send no Origin and are not
 * concerned.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { SERVICE_ROOTS } from '@provisio/codec-http'

/** Default `corsOrigins`: the emulator's Vite dev server (`npm run dev -w @provisio/emulator`). */
export const DEFAULT_CORS_ORIGINS: readonly string[] = ['http://localhost:5173', 'http://127.0.0.1:5173']

/** Request headers a device page may send to the DPS device API. */
const ALLOWED_HEADERS = ['authorization', 'content-type', 'accept', 'x-ms-client-request-id', 'user-agent']
/** Response headers the page's scripts may read (the SDK needs retry-after between polls). */
const EXPOSED_HEADERS = ['retry-after', 'x-ms-request-id', 'x-ms-error-code']
/** Methods of the DPS device API (register PUT, operation GET, status lookup POST). */
const ALLOWED_METHODS = ['GET', 'PUT', 'POST']

/**
 * Checks one `corsOrigins` entry: `*` or `scheme://host[:port]` with no path. Returns it
 * normalised (lowercase, default port dropped) or throws with the reason.
 */
export function normaliseOrigin(entry: string): string {
  if (entry === '*') return entry
  let url: URL
  try {
    url = new URL(entry)
  } catch {
    throw new Error(`"${entry}" is not an origin (scheme://host[:port])`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`"${entry}" must be an http or https origin`)
  if (!/^https?:\/\/[^/?#@]+\/?$/i.test(entry)) throw new Error(`"${entry}" must be an origin only (scheme://host[:port], no path)`)
  return url.origin
}

export type OriginVerdict =
  /** No Origin header: not a browser (SDKs, curl). */
  | 'none'
  /** The page was served by this server. */
  | 'same'
  | 'allowed'
  | 'refused'

export class OriginPolicy {
  readonly #origins: ReadonlySet<string>
  readonly #any: boolean

  constructor(origins: readonly string[]) {
    const normalised = origins.map(normaliseOrigin)
    this.#any = normalised.includes('*')
    this.#origins = new Set(normalised)
  }

  /** The verdict for a request with these headers (Origin vs. Host, over TLS). */
  judge(headers: IncomingHttpHeaders): OriginVerdict {
    const origin = headers.origin
    if (origin === undefined || origin === '') return 'none'
    let normalised: string
    try {
      normalised = new URL(origin).origin
    } catch {
      return 'refused'
    }
    if (normalised === 'null') return this.#any ? 'allowed' : 'refused'
    const host = headers.host
    if (host !== undefined && normalised === new URL(`https://${host.toLowerCase()}`).origin) return 'same'
    if (this.#any || this.#origins.has(normalised)) return 'allowed'
    return 'refused'
  }

  /** Why a refused origin was refused, and what to do (for logs and error bodies). */
  static refusal(origin: string | undefined): string {
    return `origin ${origin ?? '(none)'} is not allowed: serve the page from this server or add the origin to corsOrigins (--cors-origins)`
  }
}

/** Whether `path` is on the DPS device API: `/{idScope}/registrations/{id}[/…]`. */
export function isDeviceApiPath(path: string): boolean {
  const s = path.split('/').filter((x) => x !== '')
  return s.length >= 3 && s[1]!.toLowerCase() === 'registrations' && !SERVICE_ROOTS.has(s[0]!.toLowerCase())
}

/**
 * CORS for the DPS device API. Answers a preflight itself (returns true: the request is done);
 * for other requests adds the Access-Control-* headers to `res` when the origin is allowed and
 * returns false so the request goes on to the API.
 */
export function applyCors(policy: OriginPolicy, req: IncomingMessage, res: ServerResponse, path: string): boolean {
  if (!isDeviceApiPath(path)) return false
  const verdict = policy.judge(req.headers)
  const origin = req.headers.origin
  const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined
  if (!preflight) {
    if (verdict === 'allowed' || verdict === 'same') {
      res.setHeader('access-control-allow-origin', origin!)
      res.setHeader('access-control-expose-headers', EXPOSED_HEADERS.join(', '))
      res.setHeader('vary', 'Origin')
    }
    return false
  }
  req.resume()
  if (verdict !== 'allowed' && verdict !== 'same') {
    const body = JSON.stringify({ errorCode: 403, message: OriginPolicy.refusal(origin) })
    res.writeHead(403, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), vary: 'Origin' })
    res.end(body)
    return true
  }
  const method = String(req.headers['access-control-request-method']).toUpperCase()
  const asked = String(req.headers['access-control-request-headers'] ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '')
  const unknown = asked.filter((h) => !ALLOWED_HEADERS.includes(h))
  if (!ALLOWED_METHODS.includes(method) || unknown.length > 0) {
    const why = !ALLOWED_METHODS.includes(method) ? `method ${method} is not part of the device API` : `request header(s) ${unknown.join(', ')} are not accepted`
    const body = JSON.stringify({ errorCode: 403, message: `CORS preflight refused: ${why} (methods ${ALLOWED_METHODS.join(', ')}; headers ${ALLOWED_HEADERS.join(', ')})` })
    res.writeHead(403, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), vary: 'Origin' })
    res.end(body)
    return true
  }
  res.writeHead(204, {
    'access-control-allow-origin': origin!,
    'access-control-allow-methods': ALLOWED_METHODS.join(', '),
    'access-control-allow-headers': ALLOWED_HEADERS.join(', '),
    'access-control-max-age': '600',
    vary: 'Origin',
    'content-length': '0',
  })
  res.end()
  return true
}
