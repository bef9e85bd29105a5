import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { deriveDeviceKey, deriveDeviceKeys, deriveDeviceKeysInto } from '../src/index.js'
import { rng } from './helpers.js'

const GROUP_KEY = '8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=='

const reference = (group: string, id: string): string =>
  createHmac('sha256', Buffer.from(group, 'base64')).update(id, 'utf8').digest('base64')

describe('DPS device-key derivation', () => {
  it('matches the documented group-key vector', () => {
    expect(deriveDeviceKey(GROUP_KEY, 'sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6')).toBe('Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=')
    expect(deriveDeviceKeys(GROUP_KEY, ['sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6'])).toEqual(['Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc='])
  })

  it('batches equal node:crypto for thousands of ids (ASCII, non-ASCII, lengths 0..128, > one I/O slice)', () => {
    const r = rng('derive')
    const chars = 'abcdefghijklmnopqrstuvwxyz0123456789-._'
    const exotic = ['é', '€', '😀', 'ß', '\u0000', '\ud800']
    const ids: string[] = []
    for (let i = 0; i < 12_000; i++) {
      const len = i % 3 === 0 ? 40 : r.int(129)
      let id = ''
      for (let j = 0; j < len; j++) id += i % 17 === 0 && j % 5 === 0 ? exotic[r.int(exotic.length)] : chars[r.int(chars.length)]
      ids.push(id)
    }
    for (const group of [GROUP_KEY, Buffer.from(rng('g').bytes(32)).toString('base64'), Buffer.from(rng('g2').bytes(100)).toString('base64')]) {
      const got = deriveDeviceKeys(group, ids)
      expect(got.length).toBe(ids.length)
      for (let i = 0; i < ids.length; i++) expect(got[i], `id #${i} ${JSON.stringify(ids[i])}`).toBe(reference(group, ids[i]!))
      for (let i = 0; i < ids.length; i += 97) expect(deriveDeviceKey(group, ids[i]!)).toBe(got[i])
    }
  })

  it('handles every batch size around the 4-lane grouping and mixed lengths', () => {
    const r = rng('sizes')
    for (let n = 0; n <= 13; n++) {
      const ids = Array.from({ length: n }, (_, i) => 'x'.repeat(i % 2 === 0 ? r.int(56) : 50 + r.int(80)))
      expect(deriveDeviceKeys(GROUP_KEY, ids)).toEqual(ids.map((id) => reference(GROUP_KEY, id)))
    }
  })

  it('ids larger than the I/O window fall back to streaming', () => {
    const big = 'a'.repeat(300_000)
    const ids = ['small', big, 'after']
    expect(deriveDeviceKeys(GROUP_KEY, ids)).toEqual(ids.map((id) => reference(GROUP_KEY, id)))
  })

  it('deriveDeviceKeysInto writes at an offset of a reused array', () => {
    const out = ['keep']
    deriveDeviceKeysInto(GROUP_KEY, ['a', 'b'], out, 1)
    expect(out).toEqual(['keep', reference(GROUP_KEY, 'a'), reference(GROUP_KEY, 'b')])
  })

  it('throws typed errors for a malformed group key or wrong argument types', () => {
    expect(() => deriveDeviceKey('not base64!', 'x')).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_BASE64', message: expect.stringContaining('groupKeyBase64') }))
    expect(() => deriveDeviceKeys(GROUP_KEY, 'abc' as unknown as string[])).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('registrationIds') }))
    expect(() => deriveDeviceKeys(GROUP_KEY, ['a', 3 as unknown as string])).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('registrationIds[1]') }))
    expect(() => deriveDeviceKey(GROUP_KEY, undefined as unknown as string)).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('registrationId') }))
    expect(() => deriveDeviceKey(7 as unknown as string, 'x')).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_ARGUMENT', message: expect.stringContaining('groupKeyBase64') }))
  })
})
