import { describe, expect, it } from 'vitest'
import { etagMatches } from '../src/index.js'

describe('etagMatches (RFC 9110 §13.1.1)', () => {
  it.each([
    ['"abc"', 'abc', true],
    ['abc', '"abc"', true],
    ['W/"abc"', 'abc', true],
    ['"abd"', 'abc', false],
    ['*', 'abc', true],
    ['"*"', 'abc', true], // azure-iothub quotes the wildcard
    [' * ', 'abc', true],
    ['"*"', undefined, false], // nothing to match
    ['abc', undefined, false],
  ])('If-Match %s against %s → %s', (ifMatch, current, expected) => {
    expect(etagMatches(ifMatch, current)).toBe(expected)
  })
})
