import { expect, it } from 'vitest'
import * as protocol from '../src/index.js'

it('loads', () => {
  expect(typeof protocol).toBe('object')
})
