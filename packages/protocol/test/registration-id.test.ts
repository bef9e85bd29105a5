import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ID_SCOPE_LENGTH,
  assertDeviceId,
  assertRegistrationId,
  generateIdScope,
  isValidDeviceId,
  isValidIdScope,
  isValidRegistrationId,
  normalizeRegistrationId,
  validateDeviceId,
  validateIdScope,
  validateRegistrationId,
} from '../src/index.js'

describe('registrationId grammar (docs/protocol.md §0)', () => {
  const valid = [
    'a',
    '0',
    'dev1',
    'sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6',
    'Mixed.Case_id:part-',
    'ends-with-dash-',
    'x'.repeat(128),
    'a:b.c_d-e',
  ]
  it.each(valid)('accepts %s', (id) => {
    expect(validateRegistrationId(id)).toBeUndefined()
    expect(isValidRegistrationId(id)).toBe(true)
    expect(() => assertRegistrationId(id)).not.toThrow()
  })

  // [input, a fragment the reason must contain]
  const invalid: Array<[unknown, string]> = [
    ['', 'empty'],
    ['x'.repeat(129), '129 characters long; the limit is 128'],
    ['dev 1', "' ' (U+0020) at index 3"],
    ['dev/1', "'/' (U+002F) at index 3"],
    ['dev%1', "'%' (U+0025)"],
    ['dév1', "'é' (U+00E9) at index 1"],
    ['dev\u00001', '(U+0000) at index 3'],
    ['dev1.', "must end with an ASCII letter, digit or '-', not '.'"],
    ['dev1_', "not '_'"],
    ['dev1:', "not ':'"],
    [42, 'must be a string, got number'],
    [null, 'got null'],
  ]
  it.each(invalid)('rejects %p naming the rule', (id, fragment) => {
    const err = validateRegistrationId(id)
    expect(err?.code).toBe('INVALID_REGISTRATION_ID')
    expect(err?.reason).toContain(fragment)
    expect(isValidRegistrationId(id)).toBe(false)
    expect(() => assertRegistrationId(id)).toThrow(err?.reason)
  })

  it('agrees with a regular-expression reading of the grammar on random ids', () => {
    const grammar = /^[A-Za-z0-9\-._:]{0,127}[A-Za-z0-9-]$/
    const alphabet = fc.constantFrom(...'aZ09-._:/ %é+#'.split(''))
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 140 }).map((a) => a.join('')), (id) => {
        expect(isValidRegistrationId(id)).toBe(grammar.test(id))
      }),
      { numRuns: 2000 },
    )
  })

  it('normalizes to lower case (ids are case-insensitive)', () => {
    expect(normalizeRegistrationId('Dev-ABC.1')).toBe('dev-abc.1')
    expect(normalizeRegistrationId('already-lower')).toBe('already-lower')
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9\-._:]{1,128}$/), (id) => {
        expect(normalizeRegistrationId(id)).toBe(id.toLowerCase())
      }),
    )
  })
})

describe('IoT Hub deviceId grammar', () => {
  it.each(['d', "dev-._%*?!(),:=@$'1", 'A'.repeat(128)])('accepts %s', (id) => {
    expect(validateDeviceId(id)).toBeUndefined()
    expect(isValidDeviceId(id)).toBe(true)
  })

  it.each<[unknown, string]>([
    ['', 'deviceId is empty'],
    ['A'.repeat(129), 'limit is 128'],
    ['dev+1', "'+' (U+002B) at index 3"],
    ['dev#1', "'#' (U+0023)"],
    ['dev 1', "' ' (U+0020)"],
    ['dev/1', "'/'"],
    ['dév', "'é'"],
    [undefined, 'must be a string'],
  ])('rejects %p', (id, fragment) => {
    const err = validateDeviceId(id)
    expect(err?.code).toBe('INVALID_DEVICE_ID')
    expect(err?.reason).toContain(fragment)
  })

  it('names moduleId when asked', () => {
    expect(validateDeviceId('', 'moduleId')?.reason).toBe('moduleId is empty')
    expect(() => assertDeviceId('a b', 'moduleId')).toThrow(/moduleId contains/)
  })
})

describe('ID scope', () => {
  it.each(['0ne00000A0A', '0NE0001B1D4', '0ne0001b1d4'])('accepts %s', (s) => {
    expect(validateIdScope(s)).toBeUndefined()
  })

  it.each<[unknown, string]>([
    ['0ne00000A0', "11 characters ('0ne' + 8 hex digits), got 10"],
    ['1ne00000A0A', "must start with '0ne', got '1ne'"],
    ['0ne00000G0A', "'G' (U+0047) at index 8"],
    [5, 'must be a string'],
  ])('rejects %p', (s, fragment) => {
    const err = validateIdScope(s)
    expect(err?.code).toBe('INVALID_ID_SCOPE')
    expect(err?.reason).toContain(fragment)
  })

  it('generates 0ne + 8 upper-case hex digits from the injected random source', () => {
    let calls = 0
    const scope = generateIdScope((n) => {
      calls++
      expect(n).toBe(4)
      return Uint8Array.of(0x00, 0xa3, 0xf1, 0x9c)
    })
    expect(calls).toBe(1)
    expect(scope).toBe('0ne00A3F19C')
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (bytes) => {
        const s = generateIdScope(() => bytes)
        expect(s).toHaveLength(ID_SCOPE_LENGTH)
        expect(isValidIdScope(s)).toBe(true)
        expect(s.slice(3)).toBe(Buffer.from(bytes).toString('hex').toUpperCase())
      }),
    )
  })

  it('refuses a random source that returns too few bytes', () => {
    expect(() => generateIdScope(() => new Uint8Array(3))).toThrow(TypeError)
  })
})
