/**
 * Runtime validators of the service-API models (docs/protocol.md §7).
 *
 * Each `validateX(json, {path})` takes parsed JSON (`unknown`) and returns the typed value with
 * DPS's defaults applied, or throws a `ProvisioError` (`VALIDATION_FAILED`) whose message and
 * `info` name the member's JSON path and the rule it broke. Shared behaviour (null = absent,
 * unknown members dropped, free-form JSON kept verbatim) is described in `_check.ts`.
 *
 * Read-only members (`createdDateTimeUtc`, `registrationState`, …) are checked and kept when
 * present, so the same validators parse service responses; the engine overwrites them on write.
 *
 * The validators live by what they validate: validate-options.ts (options, limits),
 * validate-enums.ts, validate-twin.ts, validate-enrollment-members.ts, validate-attestation.ts,
 * validate-registration-state.ts, validate-enrollments.ts, validate-bulk.ts; this file gathers them.
 */

export * from './validate-options.js'
export * from './validate-enums.js'
export * from './validate-twin.js'
export * from './validate-enrollment-members.js'
export * from './validate-attestation.js'
export * from './validate-registration-state.js'
export * from './validate-enrollments.js'
export * from './validate-bulk.js'
