import { describe, expect, it } from 'vitest'
import { base64Encode } from '@provisio/crypto'
import { SoftwareTpm, TpmDevice, checkEndorsementKey, decodeTpm2bPublicBase64 } from '@provisio/tpm'
import { TpmPool, tpmSeed } from '../src/tpms.js'

describe('TpmPool', () => {
  it('makes each device its own software TPM, the same again after a reload, and lists what to enroll', async () => {
    const pool = new TpmPool('tpm-')
    const seen: number[] = []
    await pool.makeAll(2, async () => {}, (n) => seen.push(n))
    expect(seen).toEqual([1, 2])
    const list = pool.enrollments()
    expect(list.map((e) => e.registrationId)).toEqual(['tpm-0', 'tpm-1'])
    expect(list[0]!.endorsementKey).not.toBe(list[1]!.endorsementKey)
    // A page reloaded with the same prefix makes the same EK, so its enrollment stays valid.
    const again = new TpmDevice(new SoftwareTpm({ seed: tpmSeed('tpm-', 1) }))
    expect(base64Encode(again.endorsementKey())).toBe(list[1]!.endorsementKey)
    // It is an EK the service accepts (the SDK template).
    expect(() => checkEndorsementKey(decodeTpm2bPublicBase64(list[0]!.endorsementKey, 'EK').public)).not.toThrow()
    expect(pool.get(0)).toBe(pool.make(0))
    expect(() => pool.get(5)).toThrow(/Make TPMs/)
  })

  it('stops making TPMs when asked', async () => {
    const pool = new TpmPool('stop-')
    const abort = new AbortController()
    abort.abort()
    await expect(pool.makeAll(3, async () => {}, undefined, abort.signal)).rejects.toThrow(/stopped/)
    expect(pool.size).toBe(0)
  })
})
