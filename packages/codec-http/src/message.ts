/**
 * The HTTP exchange as the codec sees it: plain data, no sockets. The server adapter fills an
 * {@link HttpRequest} from its listener (after enforcing {@link HttpLimits} while reading) and
 * writes the {@link HttpResponse} back.
 */
import { ProvisioError, percentDecode } from '@provisio/protocol'

/** One request, as the adapter read it. Header names are lower-case. */
export interface HttpRequest {
  readonly method: string
  /** The request-target exactly as received: path plus optional `?query`. */
  readonly target: string
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>
  /** The whole body (the adapter stops reading past `limits.maxBodyBytes`). */
  readonly body: Uint8Array
  /** DER certificates the client presented in the TLS handshake, leaf first (X.509 devices, §6). */
  readonly clientCertificates?: readonly Uint8Array[]
  /** Settles when the caller goes away before it is answered (long calls such as direct methods stop then). */
  readonly abandoned?: Promise<void>
}

/** One response. `body` is JSON text, or '' for none. */
export interface HttpResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/** Size limits. The adapter enforces body and header sizes while reading; the codec re-checks. */
export interface HttpLimits {
  /** Request body limit: the DPS maximum message size, 96 KB (docs/protocol.md §9). */
  readonly maxBodyBytes: number
  /** Body limit of a direct method call (`POST /twins/{id}/methods`): a 128 KB payload and room for the JSON around it. */
  readonly maxMethodBodyBytes: number
  /**
   * Body limit of device telemetry (`POST /devices/{id}/messages/events`): room for a batch whose
   * payloads (base64 in JSON) reach IoT Hub's 256 KB device-to-cloud limit; the payloads themselves
   * are held to 256 KB by the route (hub-device.ts).
   */
  readonly maxTelemetryBodyBytes: number
  /** Request-target limit in characters. */
  readonly maxTargetLength: number
  /** Path segments and query parameters a request may have. */
  readonly maxPathSegments: number
  readonly maxQueryParameters: number
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  maxBodyBytes: 96 * 1024,
  maxMethodBodyBytes: 192 * 1024,
  maxTelemetryBodyBytes: 384 * 1024,
  maxTargetLength: 8192,
  maxPathSegments: 16,
  maxQueryParameters: 32,
})

/** A request-target split into decoded path segments and query parameters. */
export interface ParsedTarget {
  readonly segments: readonly string[]
  readonly query: ReadonlyMap<string, string>
}

/**
 * Splits and percent-decodes a request-target (RFC 9112 §3.2 origin-form). Segments are decoded
 * one by one, so an encoded `/` (%2F) inside a registration id stays part of its segment.
 * @throws ProvisioError BAD_REQUEST naming the rule the target breaks.
 */
export function parseTarget(target: string, limits: HttpLimits): ParsedTarget {
  if (target.length > limits.maxTargetLength) {
    throw badRequest(`request target is ${target.length} characters, over the limit of ${limits.maxTargetLength}`)
  }
  if (target.charCodeAt(0) !== 0x2f) throw badRequest('request target must start with "/" (origin-form)')
  const q = target.indexOf('?')
  const path = q < 0 ? target : target.slice(0, q)
  const raw = path.split('/')
  // A leading "/" gives an empty first piece; a trailing "/" an empty last one: both are ignored.
  const segments: string[] = []
  for (let i = 1; i < raw.length; i++) {
    const piece = raw[i]!
    if (piece === '' && i === raw.length - 1) break
    if (segments.length === limits.maxPathSegments) {
      throw badRequest(`request path has more than ${limits.maxPathSegments} segments`)
    }
    const decoded = percentDecode(piece)
    if (decoded === undefined) throw badRequest(`path segment ${i} has invalid percent-encoding`)
    if (decoded === '' || decoded === '.' || decoded === '..') {
      throw badRequest(`path segment ${i} must not be empty, "." or ".."`)
    }
    segments.push(decoded)
  }
  const query = new Map<string, string>()
  if (q >= 0 && q < target.length - 1) {
    const pairs = target.slice(q + 1).split('&')
    if (pairs.length > limits.maxQueryParameters) {
      throw badRequest(`request target has more than ${limits.maxQueryParameters} query parameters`)
    }
    for (const pair of pairs) {
      if (pair === '') continue
      const eq = pair.indexOf('=')
      const name = percentDecode(eq < 0 ? pair : pair.slice(0, eq))
      const value = eq < 0 ? '' : percentDecode(pair.slice(eq + 1))
      if (name === undefined || value === undefined) throw badRequest('query parameter has invalid percent-encoding')
      // First occurrence wins, like URLSearchParams.get.
      const key = name.toLowerCase()
      if (!query.has(key)) query.set(key, value)
    }
  }
  return { segments, query }
}

/**
 * The single value of a header. Node joins most repeated headers with ", " but keeps a list for
 * some; a credential header that arrives twice is ambiguous and refused.
 */
export function header(request: HttpRequest, name: string): string | undefined {
  const v = request.headers[name]
  if (v === undefined || typeof v === 'string') return v
  if (v.length === 1) return v[0]
  if (v.length === 0) return undefined
  throw badRequest(`header "${name}" must appear at most once`)
}

const JSON_MEDIA = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i

/**
 * Refuses a body whose declared media type is not JSON (415). A missing Content-Type is accepted:
 * several SDKs send none on polls.
 */
export function assertJsonContent(request: HttpRequest): void {
  if (request.body.length === 0) return
  // Bodies are never decompressed: a content-coding would be read as garbage JSON (RFC 9110 §15.5.16).
  const coding = header(request, 'content-encoding')
  if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') {
    const reason = `content-encoding ${JSON.stringify(coding.slice(0, 40))} is not supported; send the JSON body uncompressed`
    throw new ProvisioError('UNSUPPORTED_MEDIA_TYPE', reason, { deviceMessage: reason })
  }
  const type = header(request, 'content-type')
  if (type === undefined || JSON_MEDIA.test(type.trim())) return
  const reason = `content-type ${JSON.stringify(type.slice(0, 80))} is not JSON`
  throw new ProvisioError('UNSUPPORTED_MEDIA_TYPE', reason, { deviceMessage: reason })
}

/** A 400 whose reason (which rule of the request line or headers) the caller may see: it holds no secrets. */
function badRequest(reason: string): ProvisioError {
  return new ProvisioError('BAD_REQUEST', reason, { deviceMessage: reason })
}
