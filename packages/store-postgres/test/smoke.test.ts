import { expect, it } from 'vitest'
import * as mod from '../src/index.js'

it('loads', () => {
  expect(typeof mod).toBe('object')
})
