/**
 * Small, allocation-light building blocks of the hand-written model validators.
 *
 * Conventions shared by every validator (documented once here):
 * - `null` counts as absent for optional members (.NET and some C clients serialise nulls).
 * - Unknown members are dropped: the typed value is built from known members only, as DPS's own
 *   JSON binder ignores members it does not know. Free-form JSON (twin collections, payloads)
 *   is kept verbatim and not copied below its top level.
 * - Every failure throws `validationFailed(path, rule)`; nothing else escapes, whatever the input.
 */
import { validationFailed } from './_errors.js'

/** A JSON object as seen by a validator. */
export type Obj = Record<string, unknown>

/** `a.b`, or `b` at the root. */
export function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}

/** `a[3]`. */
export function item(path: string, index: number): string {
  return `${path}[${index}]`
}

/** True for a non-null, non-array object. */
export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Asserts a JSON object. */
export function object(v: unknown, path: string): Obj {
  if (!isObject(v)) throw validationFailed(path, `must be a JSON object, got ${kind(v)}`)
  return v
}

/** Describes a value's JSON kind for messages (never echoes the value: it may be a secret). */
export function kind(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  switch (typeof v) {
    case 'string':
      return 'a string'
    case 'number':
      return 'a number'
    case 'boolean':
      return 'a boolean'
    case 'object':
      return 'an object'
    default:
      return typeof v
  }
}

/** Member `key` of `o`, with `null` mapped to `undefined`. Own members only. */
export function get(o: Obj, key: string): unknown {
  if (!Object.prototype.hasOwnProperty.call(o, key)) return undefined
  const v = o[key]
  return v === null ? undefined : v
}

export interface StringRule {
  /** Minimum length in UTF-16 code units (default 1: empty strings are refused). */
  min?: number
  /** Maximum length in UTF-16 code units. */
  max: number
  /** Optional grammar, with its description for messages. */
  pattern?: RegExp
  patternRule?: string
}

/** Asserts a string within the rule. */
export function string(v: unknown, path: string, rule: StringRule): string {
  if (typeof v !== 'string') throw validationFailed(path, `must be a string, got ${kind(v)}`)
  const min = rule.min ?? 1
  if (v.length < min) {
    throw validationFailed(path, min === 1 ? 'must not be empty' : `must be at least ${min} characters`)
  }
  if (v.length > rule.max) throw validationFailed(path, `must be at most ${rule.max} characters`)
  if (rule.pattern !== undefined && !rule.pattern.test(v)) {
    throw validationFailed(path, rule.patternRule ?? `must match ${String(rule.pattern)}`)
  }
  return v
}

/** Required string member. */
export function reqString(o: Obj, key: string, path: string, rule: StringRule): string {
  const v = get(o, key)
  if (v === undefined) throw validationFailed(child(path, key), 'is required')
  return string(v, child(path, key), rule)
}

/** Optional string member. */
export function optString(o: Obj, key: string, path: string, rule: StringRule): string | undefined {
  const v = get(o, key)
  return v === undefined ? undefined : string(v, child(path, key), rule)
}

/** Optional boolean member with a default. */
export function optBool(o: Obj, key: string, path: string, dflt: boolean): boolean {
  const v = get(o, key)
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') throw validationFailed(child(path, key), `must be a boolean, got ${kind(v)}`)
  return v
}

/** Required boolean member. */
export function reqBool(o: Obj, key: string, path: string): boolean {
  const v = get(o, key)
  if (v === undefined) throw validationFailed(child(path, key), 'is required')
  if (typeof v !== 'boolean') throw validationFailed(child(path, key), `must be a boolean, got ${kind(v)}`)
  return v
}

/** Asserts an integer in [min, max]. */
export function integer(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw validationFailed(path, `must be an integer, got ${kind(v)}`)
  }
  if (v < min || v > max) throw validationFailed(path, `must be an integer from ${min} to ${max}`)
  return v
}

/** Optional integer member. */
export function optInt(o: Obj, key: string, path: string, min: number, max: number): number | undefined {
  const v = get(o, key)
  return v === undefined ? undefined : integer(v, child(path, key), min, max)
}

/** Required integer member. */
export function reqInt(o: Obj, key: string, path: string, min: number, max: number): number {
  const v = get(o, key)
  if (v === undefined) throw validationFailed(child(path, key), 'is required')
  return integer(v, child(path, key), min, max)
}

/** Asserts an array of at most `max` (and at least `min`) items. */
export function array(v: unknown, path: string, min: number, max: number): unknown[] {
  if (!Array.isArray(v)) throw validationFailed(path, `must be an array, got ${kind(v)}`)
  if (v.length < min || v.length > max) {
    throw validationFailed(path, min === max ? `must have ${min} items` : `must have ${min} to ${max} items`)
  }
  return v
}

/**
 * Case-insensitive enum member: returns the canonical spelling from `values`.
 * Lookup tables are built once per enum by {@link enumTable}.
 */
export function enumValue<T extends string>(
  v: unknown,
  path: string,
  table: ReadonlyMap<string, T>,
  values: readonly T[],
): T {
  if (typeof v !== 'string') throw validationFailed(path, `must be a string, got ${kind(v)}`)
  const hit = table.get(v.toLowerCase())
  if (hit === undefined) throw validationFailed(path, `must be one of ${values.join(', ')}`)
  return hit
}

/** Lower-cased lookup table for {@link enumValue}. */
export function enumTable<T extends string>(values: readonly T[]): ReadonlyMap<string, T> {
  return new Map(values.map((v) => [v.toLowerCase(), v]))
}

/** Sets `out[key] = v` when v is defined (keeps absent members absent in the typed value). */
export function put<T extends object, K extends keyof T>(out: T, key: K, v: T[K] | undefined): void {
  if (v !== undefined) out[key] = v
}

// ---------------------------------------------------------------------------------------------
// Base64 (RFC 4648 §4, standard alphabet, padded)
// ---------------------------------------------------------------------------------------------

const B64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Decoded length of strict, padded standard base64 (RFC 4648 §4), or -1 when `s` is not that.
 * DPS keys and TPM blobs are always padded standard base64 (SDKs use Buffer/Convert.ToBase64String);
 * unpadded or URL-safe input is refused rather than guessed at.
 */
export function base64Length(s: string): number {
  if (s.length % 4 !== 0 || !B64.test(s)) return -1
  let pad = 0
  if (s.endsWith('==')) pad = 2
  else if (s.endsWith('=')) pad = 1
  const n = (s.length / 4) * 3 - pad
  // Canonical form: the unused low bits of the last symbol are zero (RFC 4648 §3.5).
  if (pad > 0) {
    const last = s.charCodeAt(s.length - pad - 1)
    const six = sextet(last)
    if (pad === 2 ? (six & 0x0f) !== 0 : (six & 0x03) !== 0) return -1
  }
  return n
}

function sextet(c: number): number {
  if (c >= 65 && c <= 90) return c - 65
  if (c >= 97 && c <= 122) return c - 71
  if (c >= 48 && c <= 57) return c + 4
  return c === 43 ? 62 : 63
}

/** Asserts base64 of `min..max` decoded bytes. */
export function base64(v: unknown, path: string, min: number, max: number): string {
  const rule = `must be base64 of ${min} to ${max} bytes`
  if (typeof v !== 'string') throw validationFailed(path, `${rule}, got ${kind(v)}`)
  // Cheap bound before scanning: 4 symbols per 3 bytes.
  if (v.length > Math.ceil(max / 3) * 4) throw validationFailed(path, rule)
  const n = base64Length(v)
  if (n < min || n > max) throw validationFailed(path, rule)
  return v
}

// ---------------------------------------------------------------------------------------------
// UTF-8 size
// ---------------------------------------------------------------------------------------------

/** UTF-8 byte length of a JS string (lone surrogates count as the 3-byte U+FFFD). */
export function utf8Length(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4
        i++
      } else n += 3
    } else n += 3
  }
  return n
}
