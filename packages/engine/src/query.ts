/**
 * Query specification and paging of the service API (docs/protocol.md §7): SDKs send
 * `{"query":"*"}`; `SELECT * FROM enrollments` is accepted too. Paging uses an opaque
 * continuation token (response and request header `x-ms-continuation`) and a page size
 * (`x-ms-max-item-count`).
 */
import { ProvisioError } from '@provisio/protocol'
import type { QueryOptions, QueryPage, QuerySpecification } from '@provisio/protocol'

/** Paging options and pages: the codecs' contract (@provisio/protocol api.ts). */
export type { QueryOptions, QueryPage }

const SELECT_ALL = /^\s*select\s+\*\s+from\s+(enrollments|enrollmentgroups|registrations|devices)\s*$/i

/**
 * Checks the query text. Only "everything" queries exist in the SDKs and samples; anything else
 * (WHERE clauses) is refused with the reason rather than silently answered with all items.
 */
export function assertQuerySpecification(spec: QuerySpecification | undefined, what: string): void {
  if (spec === undefined) return
  if (typeof spec !== 'object' || spec === null || typeof spec.query !== 'string') {
    throw new ProvisioError('VALIDATION_FAILED', `query specification for ${what} must be an object with a string "query"`)
  }
  const q = spec.query.trim()
  if (q === '*' || q === '' || SELECT_ALL.test(q)) return
  throw new ProvisioError(
    'BAD_REQUEST',
    `query ${JSON.stringify(q.slice(0, 200))} for ${what} is not supported: only "*" and "SELECT * FROM …" are (docs/protocol.md §7)`,
    { deviceMessage: 'Only "*" and "SELECT * FROM enrollments" queries are supported.' },
  )
}

const TOKEN_PREFIX = 'c1.'

/** Encodes the last key of a page as an opaque continuation token (`c1.` + hex of UTF-8). */
export function encodeContinuation(lastKey: string): string {
  const bytes = new TextEncoder().encode(lastKey)
  let hex = ''
  for (const b of bytes) hex += (b < 16 ? '0' : '') + b.toString(16)
  return TOKEN_PREFIX + hex
}

/** Decodes a continuation token; throws BAD_REQUEST naming the problem. */
export function decodeContinuation(token: string): string {
  const bad = (why: string): never => {
    throw new ProvisioError('BAD_REQUEST', `continuation token is invalid: ${why}`, { deviceMessage: 'The continuation token is invalid.' })
  }
  if (token.length > 2 * 1024 + TOKEN_PREFIX.length) bad('too long')
  if (!token.startsWith(TOKEN_PREFIX)) bad('unknown format')
  const hex = token.slice(TOKEN_PREFIX.length)
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) bad('not hex')
  const bytes = new Uint8Array(hex.length / 2)
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return bad('not UTF-8')
  }
}

/** Resolves the page size: default when absent, 400 when not a positive integer, capped at `max`. */
export function resolvePageSize(pageSize: number | undefined, defaultSize: number, max: number): number {
  if (pageSize === undefined) return defaultSize
  if (!Number.isInteger(pageSize) || pageSize < 1) {
    throw new ProvisioError('BAD_REQUEST', `page size (x-ms-max-item-count) must be a positive integer, got ${String(pageSize)}`, {
      deviceMessage: 'x-ms-max-item-count must be a positive integer.',
    })
  }
  return Math.min(pageSize, max)
}
