/**
 * Grammars and limits of the DPS / IoT Hub identifiers that appear inside models, plus the
 * free-form JSON walker (twin collections, payloads). Each constant cites where the rule comes from.
 */
import { validationFailed } from './_errors.js'
import { child, item, kind, utf8Length, type StringRule } from './_check.js'
import { validateDeviceId, validateRegistrationId } from '../registration-id.js'

/** DPS max message size (docs/protocol.md §9): 96 KB. */
export const MAX_MESSAGE_BYTES = 96 * 1024

/**
 * Nesting limit of free-form JSON (twin collections, payloads). IoT Hub refuses twin documents
 * nested deeper than 10 levels (IoT Hub "device twins" limits); DPS hands the initial twin and
 * the payload on, so the same bound keeps them deliverable and bounds our own recursion.
 */
export const MAX_JSON_DEPTH = 10

/** IoT Hub caps tags and desired properties at 32 KB each (twin size limits). */
export const MAX_TWIN_SECTION_BYTES = 32 * 1024

/** IoT Hub: twin keys are at most 1 KB of UTF-8, string values at most 4 KB. */
export const MAX_TWIN_KEY_BYTES = 1024
export const MAX_TWIN_STRING_BYTES = 4096

/** Linked hubs per DPS instance (docs/protocol.md §9), hence also the size of `iotHubs`. */
export const MAX_LINKED_HUBS = 50

/** Bulk operations carry at most 10 items (SPEC-svc, docs/protocol.md §7). */
export const MAX_BULK_ITEMS = 10

/**
 * registrationId / enrollmentGroupId (docs/protocol.md §0), checked by the protocol's one grammar
 * in `registration-id.ts`; the failure is re-raised as VALIDATION_FAILED naming the member.
 */
export function registrationIdMember(v: unknown, path: string): string {
  const error = validateRegistrationId(v)
  if (error !== undefined) throw validationFailed(path, error.reason.replace(/^registrationId /, ''), error)
  return v as string
}

/** IoT Hub deviceId grammar (`registration-id.ts`), re-raised as VALIDATION_FAILED naming the member. */
export function deviceIdMember(v: unknown, path: string): string {
  const error = validateDeviceId(v)
  if (error !== undefined) throw validationFailed(path, error.reason.replace(/^deviceId /, ''), error)
  return v as string
}

/**
 * Hub host name: DNS labels (RFC 1123 §2.1) with an optional `:port` for self-hosted hubs
 * (the embedded hub on a non-default port).
 */
export const HOST_NAME: StringRule = {
  max: 253 + 6,
  pattern:
    /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?$/,
  patternRule: 'must be a DNS host name (labels of letters, digits and -) with an optional :port',
}

/** ISO-8601 / RFC 3339 date-time as DPS emits it (`2020-04-10T03:11:13.0276997Z`, §1.3). */
export const DATE_TIME: StringRule = {
  max: 40,
  pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/,
  patternRule: 'must be an ISO-8601 date-time such as 2020-04-10T03:11:13.0276997Z',
}

/** ETags are opaque printable ASCII (§7; real ones are base64 of a quoted Cosmos etag). */
export const ETAG: StringRule = {
  max: 256,
  pattern: /^[\x21-\x7e]+$/,
  patternRule: 'must be printable ASCII without spaces',
}

/** api-version grammar: `YYYY-MM-DD` with an optional `-preview` (§0). */
export const API_VERSION: StringRule = {
  max: 32,
  pattern: /^\d{4}-\d{2}-\d{2}(?:-preview)?$/,
  patternRule: 'must be an api-version such as 2021-10-01 or 2021-11-01-preview',
}

/**
 * Webhook URL: absolute http(s) URL without whitespace or control characters. (Azure requires
 * https; plain http is allowed here for local test webhooks.)
 */
export const WEBHOOK_URL: StringRule = {
  max: 2048,
  pattern: /^https?:\/\/[^\s/?#@]+(?:[/?#][^\s]*)?$/i,
  patternRule: 'must be an absolute http(s) URL',
}

/** Short free-text strings (error messages, certificate names). */
// eslint-disable-next-line no-control-regex -- refusing NUL is the point of this pattern
export const TEXT: StringRule = { max: 4096, pattern: /^[^\x00]*$/, patternRule: 'must not contain NUL' }

/** Certificate fields (`subjectName`, thumbprints, …). */
export const CERT_FIELD: StringRule = { max: 1024 }

// ---------------------------------------------------------------------------------------------
// Free-form JSON
// ---------------------------------------------------------------------------------------------

/** Limits for {@link checkFreeForm}. */
export interface FreeFormRule {
  /** Nesting limit below the value's own level. */
  maxDepth: number
  /** Apply IoT Hub twin key / string rules. */
  twin: boolean
}

/**
 * Checks a twin key: UTF-8 at most 1 KB, no C0/C1 control characters and none of `.`, `$` and
 * space (IoT Hub twin key rules).
 */
export function checkTwinKey(key: string, path: string): void {
  if (key.length === 0) throw validationFailed(path, 'twin keys must not be empty')
  // eslint-disable-next-line no-control-regex -- IoT Hub forbids C0/C1 controls in twin keys
  if (/[\x00-\x1f\x7f-\x9f.$ ]/.test(key)) {
    throw validationFailed(path, "twin keys must not contain control characters, '.', '$' or spaces")
  }
  if (key.length > MAX_TWIN_KEY_BYTES / 3 && utf8Length(key) > MAX_TWIN_KEY_BYTES) {
    throw validationFailed(path, `twin keys must be at most ${MAX_TWIN_KEY_BYTES} bytes of UTF-8`)
  }
}

/**
 * Walks free-form JSON: only JSON values (finite numbers, no undefined/functions), nesting at
 * most `rule.maxDepth` containers below `depth`, and twin rules when asked. Recursion depth is
 * bounded by the limit, so hostile nesting cannot overflow the stack.
 */
export function checkFreeForm(v: unknown, path: string, depth: number, rule: FreeFormRule): void {
  switch (typeof v) {
    case 'string':
      if (rule.twin && v.length > MAX_TWIN_STRING_BYTES / 3 && utf8Length(v) > MAX_TWIN_STRING_BYTES) {
        throw validationFailed(path, `twin string values must be at most ${MAX_TWIN_STRING_BYTES} bytes of UTF-8`)
      }
      return
    case 'number':
      if (!Number.isFinite(v)) throw validationFailed(path, 'must be a finite number')
      return
    case 'boolean':
      return
    case 'object': {
      if (v === null) return
      if (depth >= rule.maxDepth) {
        throw validationFailed(path, `must not nest deeper than ${rule.maxDepth} levels`)
      }
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) checkFreeForm(v[i], item(path, i), depth + 1, rule)
        return
      }
      const o = v as Record<string, unknown>
      for (const key of Object.keys(o)) {
        const p = child(path, key)
        if (rule.twin) checkTwinKey(key, p)
        checkFreeForm(o[key], p, depth + 1, rule)
      }
      return
    }
    default:
      throw validationFailed(path, `must be a JSON value, got ${kind(v)}`)
  }
}

/** Asserts the serialised size of a checked free-form value. */
export function checkSize(v: unknown, path: string, maxBytes: number): void {
  const s = JSON.stringify(v)
  if (s.length > maxBytes || (s.length * 3 > maxBytes && utf8Length(s) > maxBytes)) {
    throw validationFailed(path, `must serialise to at most ${maxBytes} bytes of JSON`)
  }
}
