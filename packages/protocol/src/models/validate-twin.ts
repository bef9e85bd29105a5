/** Twin sections and free-form JSON of enrollments: initial twin, twin collections with their metadata, JSON objects. */
import { child, get, object, optInt, optString, put } from './_check.js'
import {
  DATE_TIME,
  MAX_JSON_DEPTH,
  MAX_MESSAGE_BYTES,
  MAX_TWIN_SECTION_BYTES,
  checkFreeForm,
  checkSize,
  checkTwinKey,
} from './_rules.js'
import type { InitialTwin, JsonObject, TwinCollection, TwinMetadata } from './types.js'
import type { FreeFormOptions, ValidateOptions } from './validate-options.js'

function validateTwinMetadata(json: unknown, path: string): TwinMetadata {
  const o = object(json, path)
  const out: TwinMetadata = {}
  put(out, 'lastUpdated', optString(o, 'lastUpdated', path, DATE_TIME))
  put(out, 'lastUpdatedVersion', optInt(o, 'lastUpdatedVersion', path, 0, Number.MAX_SAFE_INTEGER))
  return out
}

/**
 * A TwinCollection (tags, desired properties, optionalDeviceInformation): `version`, `count`
 * (non-negative integers) and `metadata` are typed; every other member is free-form JSON held to
 * the IoT Hub twin rules (keys ≤ 1 KB without control characters, `.`, `$` or spaces; strings
 * ≤ 4 KB; nesting ≤ {@link MAX_JSON_DEPTH}; whole collection ≤ `maxBytes`, default 32 KB).
 * Free-form members are kept by reference.
 */
export function validateTwinCollection(json: unknown, options?: FreeFormOptions): TwinCollection {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: TwinCollection = {}
  for (const key of Object.keys(o)) {
    const v = o[key]
    const p = child(path, key)
    if (key === 'version' || key === 'count') {
      if (v !== null) out[key] = optInt(o, key, path, 0, Number.MAX_SAFE_INTEGER)
      continue
    }
    if (key === 'metadata') {
      if (v !== null) out.metadata = validateTwinMetadata(v, p)
      continue
    }
    checkTwinKey(key, p)
    checkFreeForm(v, p, 1, { maxDepth: MAX_JSON_DEPTH, twin: true })
    // defineProperty: a member named "__proto__" (legal JSON) must stay a member.
    Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true })
  }
  checkSize(out, path, options?.maxBytes ?? MAX_TWIN_SECTION_BYTES)
  return out
}

/**
 * Initial twin (§7): `tags` and `properties.desired`, each a TwinCollection of at most 32 KB.
 * Other members of `properties` (e.g. `reported`) are not settable through DPS and are dropped.
 */
export function validateInitialTwin(json: unknown, options?: ValidateOptions): InitialTwin {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: InitialTwin = {}
  const tags = get(o, 'tags')
  if (tags !== undefined) out.tags = validateTwinCollection(tags, { path: child(path, 'tags') })
  const props = get(o, 'properties')
  if (props !== undefined) {
    const pp = child(path, 'properties')
    const po = object(props, pp)
    out.properties = {}
    const desired = get(po, 'desired')
    if (desired !== undefined) {
      out.properties.desired = validateTwinCollection(desired, { path: child(pp, 'desired') })
    }
  }
  return out
}

/**
 * A free-form JSON object (device / webhook `payload`, D-payload): any members, nesting at most
 * {@link MAX_JSON_DEPTH}, serialised size at most `maxBytes` (default 96 KB, the DPS message
 * limit). Returned as is (not copied).
 */
export function validateJsonObject(json: unknown, options?: FreeFormOptions): JsonObject {
  const path = options?.path ?? ''
  const o = object(json, path)
  checkFreeForm(o, path, 0, { maxDepth: MAX_JSON_DEPTH, twin: false })
  checkSize(o, path, options?.maxBytes ?? MAX_MESSAGE_BYTES)
  return o as JsonObject
}
