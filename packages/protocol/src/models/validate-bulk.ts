/** Bulk enrollment operations and their results, and query specifications (§7). */
import {
  array,
  child,
  get,
  item,
  object,
  optString,
  put,
  reqBool,
  reqInt,
  reqString,
  type Obj,
} from './_check.js'
import { validationFailed } from './_errors.js'
import { ETAG, MAX_BULK_ITEMS, TEXT, registrationIdMember } from './_rules.js'
import type {
  BulkEnrollmentGroupOperation,
  BulkEnrollmentGroupOperationResult,
  BulkEnrollmentOperation,
  BulkEnrollmentOperationResult,
  EnrollmentGroupReference,
  IndividualEnrollmentReference,
  QuerySpecification,
} from './types.js'
import { validateEnrollmentGroup, validateIndividualEnrollment } from './validate-enrollments.js'
import { validateBulkOperationMode } from './validate-enums.js'
import { QUERY_MAX_CHARS, type ValidateOptions } from './validate-options.js'

/**
 * Bulk enrollment operation (§7): `mode` (case-insensitive) and 1 to 10 `enrollments`. For
 * `delete` an item needs only `registrationId` (and optionally `etag`); a full enrollment is
 * validated in full.
 */
export function validateBulkEnrollmentOperation(json: unknown, options?: ValidateOptions): BulkEnrollmentOperation {
  const path = options?.path ?? ''
  const o = object(json, path)
  const m = get(o, 'mode')
  if (m === undefined) throw validationFailed(child(path, 'mode'), 'is required')
  const mode = validateBulkOperationMode(m, { path: child(path, 'mode') })
  const items = get(o, 'enrollments')
  const p = child(path, 'enrollments')
  if (items === undefined) throw validationFailed(p, 'is required')
  const list = array(items, p, 1, MAX_BULK_ITEMS)
  if (mode === 'delete') {
    return {
      mode,
      enrollments: list.map((x, i): IndividualEnrollmentReference => {
        const ip = item(p, i)
        const io = object(x, ip)
        if (get(io, 'attestation') !== undefined) return validateIndividualEnrollment(io, { path: ip })
        const id = get(io, 'registrationId')
        if (id === undefined) throw validationFailed(child(ip, 'registrationId'), 'is required')
        const ref: IndividualEnrollmentReference = { registrationId: registrationIdMember(id, child(ip, 'registrationId')) }
        put(ref, 'etag', optString(io, 'etag', ip, ETAG))
        return ref
      }),
    }
  }
  return { mode, enrollments: list.map((x, i) => validateIndividualEnrollment(x, { path: item(p, i) })) }
}

/** Bulk group operation (§7): as {@link validateBulkEnrollmentOperation} over `enrollmentGroups`. */
export function validateBulkEnrollmentGroupOperation(
  json: unknown,
  options?: ValidateOptions,
): BulkEnrollmentGroupOperation {
  const path = options?.path ?? ''
  const o = object(json, path)
  const m = get(o, 'mode')
  if (m === undefined) throw validationFailed(child(path, 'mode'), 'is required')
  const mode = validateBulkOperationMode(m, { path: child(path, 'mode') })
  const items = get(o, 'enrollmentGroups')
  const p = child(path, 'enrollmentGroups')
  if (items === undefined) throw validationFailed(p, 'is required')
  const list = array(items, p, 1, MAX_BULK_ITEMS)
  if (mode === 'delete') {
    return {
      mode,
      enrollmentGroups: list.map((x, i): EnrollmentGroupReference => {
        const ip = item(p, i)
        const io = object(x, ip)
        if (get(io, 'attestation') !== undefined) return validateEnrollmentGroup(io, { path: ip })
        const id = get(io, 'enrollmentGroupId')
        if (id === undefined) throw validationFailed(child(ip, 'enrollmentGroupId'), 'is required')
        const ref: EnrollmentGroupReference = {
          enrollmentGroupId: registrationIdMember(id, child(ip, 'enrollmentGroupId')),
        }
        put(ref, 'etag', optString(io, 'etag', ip, ETAG))
        return ref
      }),
    }
  }
  return { mode, enrollmentGroups: list.map((x, i) => validateEnrollmentGroup(x, { path: item(p, i) })) }
}

function readBulkErrors<K extends 'registrationId' | 'enrollmentGroupId'>(
  o: Obj,
  path: string,
  idKey: K,
): Array<Record<K, string> & { errorCode: number; errorStatus: string }> | undefined {
  const v = get(o, 'errors')
  if (v === undefined) return undefined
  const p = child(path, 'errors')
  // One error per item at most, so never more than the bulk limit.
  return array(v, p, 0, MAX_BULK_ITEMS).map((x, i) => {
    const ip = item(p, i)
    const io = object(x, ip)
    return {
      [idKey]: reqString(io, idKey, ip, { max: 128 }),
      errorCode: reqInt(io, 'errorCode', ip, -2147483648, 2147483647),
      errorStatus: reqString(io, 'errorStatus', ip, { ...TEXT, min: 0 }),
    } as Record<K, string> & { errorCode: number; errorStatus: string }
  })
}

/** Bulk enrollment result (§7): `isSuccessful` and per-item `errors`. */
export function validateBulkEnrollmentOperationResult(
  json: unknown,
  options?: ValidateOptions,
): BulkEnrollmentOperationResult {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: BulkEnrollmentOperationResult = { isSuccessful: reqBool(o, 'isSuccessful', path) }
  put(out, 'errors', readBulkErrors(o, path, 'registrationId'))
  return out
}

/** Bulk group result (§7). */
export function validateBulkEnrollmentGroupOperationResult(
  json: unknown,
  options?: ValidateOptions,
): BulkEnrollmentGroupOperationResult {
  const path = options?.path ?? ''
  const o = object(json, path)
  const out: BulkEnrollmentGroupOperationResult = { isSuccessful: reqBool(o, 'isSuccessful', path) }
  put(out, 'errors', readBulkErrors(o, path, 'enrollmentGroupId'))
  return out
}

/**
 * Query specification (§7): `{query}` of 1 to 4096 characters. The query grammar itself is
 * [UNCERTAIN] in §7; interpreting it (`*`, `SELECT * FROM enrollments`) is the engine's job.
 */
export function validateQuerySpecification(json: unknown, options?: ValidateOptions): QuerySpecification {
  const path = options?.path ?? ''
  return { query: reqString(object(json, path), 'query', path, { ...TEXT, max: QUERY_MAX_CHARS }) }
}
