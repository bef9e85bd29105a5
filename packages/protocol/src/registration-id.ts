/**
 * Identifier grammars: DPS registration ids, IoT Hub device and module ids, DPS ID scopes.
 *
 * Validators return a {@link ProvisioError} naming the rule that was broken (or `undefined`),
 * `assert…` variants throw it, `isValid…` variants answer a boolean. None of them allocate on
 * success.
 *
 * @module
 */
import { ProvisioError } from './errors.js'

/** Longest registrationId DPS accepts (docs/protocol.md §0). */
export const REGISTRATION_ID_MAX_LENGTH = 128
/** Longest IoT Hub deviceId / moduleId (IoT Hub identity registry, "Device identity properties"). */
export const DEVICE_ID_MAX_LENGTH = 128

function isAsciiAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
}

function describeChar(text: string, index: number): string {
  const cp = text.codePointAt(index) ?? 0
  const hex = cp.toString(16).toUpperCase().padStart(4, '0')
  const shown = cp < 0x20 || cp === 0x7f ? '' : `'${String.fromCodePoint(cp)}' `
  return `${shown}(U+${hex}) at index ${index}`
}

function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value
}

/**
 * Checks the DPS registrationId grammar (docs/protocol.md §0): 1–128 characters, ASCII letters,
 * digits and `- . _ :`, the last one a letter, digit or `-`. For X.509 the id is the leaf CN,
 * so at most 64 characters in practice; that limit belongs to the certificate checks.
 *
 * @returns `undefined` when valid, else an INVALID_REGISTRATION_ID error naming the rule
 * @example
 * ```ts
 * validateRegistrationId('sn-007-888-abc') // undefined
 * validateRegistrationId('dev1.')?.reason  // "registrationId must end with …, not '.' …"
 * ```
 */
export function validateRegistrationId(id: unknown): ProvisioError | undefined {
  if (typeof id !== 'string') {
    return invalidRegistrationId(`registrationId must be a string, got ${describeValue(id)}`)
  }
  const n = id.length
  if (n === 0) return invalidRegistrationId('registrationId is empty')
  if (n > REGISTRATION_ID_MAX_LENGTH) {
    return invalidRegistrationId(`registrationId is ${n} characters long; the limit is ${REGISTRATION_ID_MAX_LENGTH}`)
  }
  for (let i = 0; i < n; i++) {
    const c = id.charCodeAt(i)
    // '-' 0x2d, '.' 0x2e, ':' 0x3a, '_' 0x5f
    if (!isAsciiAlnum(c) && c !== 0x2d && c !== 0x2e && c !== 0x3a && c !== 0x5f) {
      return invalidRegistrationId(
        `registrationId contains ${describeChar(id, i)}; only ASCII letters, digits and - . _ : are allowed`,
      )
    }
  }
  const last = id.charCodeAt(n - 1)
  if (!isAsciiAlnum(last) && last !== 0x2d) {
    return invalidRegistrationId(
      `registrationId must end with an ASCII letter, digit or '-', not ${describeChar(id, n - 1)}`,
    )
  }
  return undefined
}

function invalidRegistrationId(reason: string): ProvisioError {
  return new ProvisioError('INVALID_REGISTRATION_ID', reason, { deviceMessage: reason })
}

/** True when {@link validateRegistrationId} accepts `id`. */
export function isValidRegistrationId(id: unknown): id is string {
  return validateRegistrationId(id) === undefined
}

/** Throws the INVALID_REGISTRATION_ID error of {@link validateRegistrationId}. */
export function assertRegistrationId(id: unknown): asserts id is string {
  const error = validateRegistrationId(id)
  if (error !== undefined) throw error
}

/**
 * The canonical form of a registrationId: DPS treats ids case-insensitively (docs/protocol.md §0,
 * §10.1), so stores key them in lower case. Only ASCII letters change (the grammar is ASCII);
 * the id is not validated here.
 */
export function normalizeRegistrationId(id: string): string {
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    if (c >= 0x41 && c <= 0x5a) return asciiLower(id)
  }
  return id
}

function asciiLower(text: string): string {
  let out = ''
  let last = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x41 && c <= 0x5a) {
      out += text.slice(last, i) + String.fromCharCode(c + 0x20)
      last = i + 1
    }
  }
  return out + text.slice(last)
}

/**
 * IoT Hub device id grammar (IoT Hub identity registry, "Device identity properties"): a
 * case-sensitive string of 1–128 ASCII letters, digits and `- . % _ * ? ! ( ) , : = @ $ '`.
 * `+` and `#` are explicitly not supported there. Module ids follow the same rule.
 *
 * @param kind name used in the reason, `'deviceId'` or `'moduleId'`
 * @returns `undefined` when valid, else an INVALID_DEVICE_ID error naming the rule
 */
export function validateDeviceId(id: unknown, kind: 'deviceId' | 'moduleId' = 'deviceId'): ProvisioError | undefined {
  if (typeof id !== 'string') return invalidDeviceId(`${kind} must be a string, got ${describeValue(id)}`)
  const n = id.length
  if (n === 0) return invalidDeviceId(`${kind} is empty`)
  if (n > DEVICE_ID_MAX_LENGTH) {
    return invalidDeviceId(`${kind} is ${n} characters long; the limit is ${DEVICE_ID_MAX_LENGTH}`)
  }
  for (let i = 0; i < n; i++) {
    const c = id.charCodeAt(i)
    if (!isAsciiAlnum(c) && !isDeviceIdSpecial(c)) {
      return invalidDeviceId(
        `${kind} contains ${describeChar(id, i)}; only ASCII letters, digits and - . % _ * ? ! ( ) , : = @ $ ' are allowed`,
      )
    }
  }
  return undefined
}

function isDeviceIdSpecial(c: number): boolean {
  switch (c) {
    case 0x2d: // -
    case 0x2e: // .
    case 0x25: // %
    case 0x5f: // _
    case 0x2a: // *
    case 0x3f: // ?
    case 0x21: // !
    case 0x28: // (
    case 0x29: // )
    case 0x2c: // ,
    case 0x3a: // :
    case 0x3d: // =
    case 0x40: // @
    case 0x24: // $
    case 0x27: // '
      return true
    default:
      return false
  }
}

function invalidDeviceId(reason: string): ProvisioError {
  return new ProvisioError('INVALID_DEVICE_ID', reason, { deviceMessage: reason })
}

/** True when {@link validateDeviceId} accepts `id`. */
export function isValidDeviceId(id: unknown): id is string {
  return validateDeviceId(id) === undefined
}

/** Throws the INVALID_DEVICE_ID error of {@link validateDeviceId}. */
export function assertDeviceId(id: unknown, kind: 'deviceId' | 'moduleId' = 'deviceId'): asserts id is string {
  const error = validateDeviceId(id, kind)
  if (error !== undefined) throw error
}

/** Length of a DPS ID scope: `0ne` + 8 hex digits (docs/protocol.md §0; format seen in samples). */
export const ID_SCOPE_LENGTH = 11

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  return -1
}

/**
 * Checks the ID scope format: `0ne` followed by 8 hexadecimal digits, letters in either case
 * (devices copy scopes by hand; comparison is case-insensitive). The real format is only known
 * from samples (docs/protocol.md §0), so only scopes we issue are held to it.
 *
 * @returns `undefined` when valid, else an INVALID_ID_SCOPE error naming the rule
 */
export function validateIdScope(scope: unknown): ProvisioError | undefined {
  if (typeof scope !== 'string') return invalidIdScope(`ID scope must be a string, got ${describeValue(scope)}`)
  if (scope.length !== ID_SCOPE_LENGTH) {
    return invalidIdScope(`ID scope must be ${ID_SCOPE_LENGTH} characters ('0ne' + 8 hex digits), got ${scope.length}`)
  }
  const c0 = scope.charCodeAt(0)
  const c1 = scope.charCodeAt(1) | 0x20
  const c2 = scope.charCodeAt(2) | 0x20
  if (c0 !== 0x30 || c1 !== 0x6e || c2 !== 0x65) {
    return invalidIdScope(`ID scope must start with '0ne', got '${scope.slice(0, 3)}'`)
  }
  for (let i = 3; i < ID_SCOPE_LENGTH; i++) {
    if (hexValue(scope.charCodeAt(i)) < 0) {
      return invalidIdScope(`ID scope has ${describeChar(scope, i)}; after '0ne' only hexadecimal digits are allowed`)
    }
  }
  return undefined
}

function invalidIdScope(reason: string): ProvisioError {
  return new ProvisioError('INVALID_ID_SCOPE', reason, { deviceMessage: reason })
}

/** True when {@link validateIdScope} accepts `scope`. */
export function isValidIdScope(scope: unknown): scope is string {
  return validateIdScope(scope) === undefined
}

/** A source of random bytes (the engine's Random port); pure packages never reach for a global RNG. */
export type RandomBytes = (length: number) => Uint8Array

/**
 * Issues a new ID scope: `0ne` + 8 upper-case hex digits from 4 bytes of `randomBytes`.
 *
 * @throws TypeError if `randomBytes` returns fewer than 4 bytes
 * @example
 * ```ts
 * generateIdScope((n) => crypto.getRandomValues(new Uint8Array(n))) // e.g. '0ne00A3F19C'
 * ```
 */
export function generateIdScope(randomBytes: RandomBytes): string {
  const bytes = randomBytes(4)
  if (!(bytes instanceof Uint8Array) || bytes.length < 4) {
    throw new TypeError('generateIdScope: randomBytes(4) must return at least 4 bytes')
  }
  let out = '0ne'
  for (let i = 0; i < 4; i++) {
    const b = bytes[i]
    out += HEX_UPPER[b >> 4] + HEX_UPPER[b & 15]
  }
  return out
}

const HEX_UPPER = '0123456789ABCDEF'
