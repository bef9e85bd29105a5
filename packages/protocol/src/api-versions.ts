/**
 * DPS api-versions (docs/protocol.md §0) and a lenient acceptor.
 *
 * Clients in the field send many versions (Node/Python `2019-03-31`, C `2021-06-01`, REST
 * `2021-10-01`, …) and wire shapes differ only in the certificate-issuance fields (§1.6), so the
 * server accepts every well-formed version and answers in the shape that version implies.
 *
 * @module
 */
import { ProvisioError } from './errors.js'

/** Device-API versions seen in clients and specs, oldest first (§0). */
export const DEVICE_API_VERSIONS = [
  '2018-09-01-preview',
  '2019-03-31',
  '2021-06-01',
  '2021-10-01',
  '2021-11-01-preview',
  '2025-07-01-preview',
  '2026-04-01',
] as const

/** Service-API versions seen in clients and specs, oldest first (§0). */
export const SERVICE_API_VERSIONS = ['2018-04-01', '2021-10-01'] as const

/** A known device-API version. */
export type DeviceApiVersion = (typeof DEVICE_API_VERSIONS)[number]
/** A known service-API version. */
export type ServiceApiVersion = (typeof SERVICE_API_VERSIONS)[number]

/** Used when a request carries no api-version: what Microsoft's Node device SDK sends (§11). */
export const DEFAULT_DEVICE_API_VERSION: DeviceApiVersion = '2019-03-31'
/** Used when a service request carries no api-version: the stable REST version (§7). */
export const DEFAULT_SERVICE_API_VERSION: ServiceApiVersion = '2021-10-01'

/** Which API an api-version is for. */
export type ApiKind = 'device' | 'service'

/** An accepted api-version and what it implies for wire shapes. */
export interface ApiVersionInfo {
  /** The version as sent, or the default when none was sent. */
  readonly version: string
  /** `YYYY-MM-DD` part. */
  readonly date: string
  /** Ends in `-preview`. */
  readonly preview: boolean
  /** One of the versions listed for this API. */
  readonly known: boolean
  /** No version was sent; the default was used. */
  readonly defaulted: boolean
  /** Request `csr` / result `issuedCertificateChain` exist (2025-07-01-preview and later, §1.6). */
  readonly certificateIssuance: boolean
  /** Request `clientCertificateCsr` / `trustBundle` fields (2021-11-01-preview only, §1.6). */
  readonly trustBundle: boolean
}

const GRAMMAR = /^(\d{4})-(\d{2})-(\d{2})(-preview)?$/

/**
 * Parses `YYYY-MM-DD[-preview]` with a real calendar month and day, else `undefined`.
 * @example parseApiVersion('2021-11-01-preview') // { date: '2021-11-01', preview: true }
 */
export function parseApiVersion(value: string): { date: string; preview: boolean } | undefined {
  const m = GRAMMAR.exec(value)
  if (m === null) return undefined
  const month = Number(m[2])
  const day = Number(m[3])
  if (month < 1 || month > 12 || day < 1 || day > 31) return undefined
  return { date: `${m[1]}-${m[2]}-${m[3]}`, preview: m[4] !== undefined }
}

/**
 * Orders api-versions by date; on the same date a preview sorts before the stable release.
 * @returns negative, zero or positive like `Array.prototype.sort` comparators
 */
export function compareApiVersions(a: string, b: string): number {
  const pa = parseApiVersion(a)
  const pb = parseApiVersion(b)
  if (pa === undefined || pb === undefined) return a < b ? -1 : a > b ? 1 : 0
  if (pa.date !== pb.date) return pa.date < pb.date ? -1 : 1
  return pa.preview === pb.preview ? 0 : pa.preview ? -1 : 1
}

/**
 * The lenient acceptor: any well-formed api-version is accepted (known or not, §0 "accept all
 * leniently"); a missing one (undefined or '') falls back to the API's default; a malformed one
 * is refused with `UNSUPPORTED_API_VERSION` naming the grammar.
 *
 * @example
 * ```ts
 * acceptApiVersion(url.searchParams.get('api-version') ?? undefined, 'device').certificateIssuance
 * ```
 */
export function acceptApiVersion(value: string | undefined, kind: ApiKind): ApiVersionInfo {
  const defaulted = value === undefined || value === ''
  const version = defaulted ? (kind === 'device' ? DEFAULT_DEVICE_API_VERSION : DEFAULT_SERVICE_API_VERSION) : value
  const parsed = parseApiVersion(version)
  if (parsed === undefined) {
    // Never echo more than a short prefix: the value comes straight from a URL.
    const shown = JSON.stringify(version.slice(0, 40))
    const reason = `api-version ${shown} must look like YYYY-MM-DD or YYYY-MM-DD-preview`
    throw new ProvisioError('UNSUPPORTED_API_VERSION', reason, {
      deviceMessage: reason,
      info: { field: 'api-version', rule: 'must look like YYYY-MM-DD or YYYY-MM-DD-preview' },
    })
  }
  const known = (kind === 'device' ? (DEVICE_API_VERSIONS as readonly string[]) : SERVICE_API_VERSIONS).includes(version)
  return {
    version,
    date: parsed.date,
    preview: parsed.preview,
    known,
    defaulted,
    certificateIssuance: kind === 'device' && parsed.date >= '2025-07-01',
    trustBundle: kind === 'device' && version === '2021-11-01-preview',
  }
}
