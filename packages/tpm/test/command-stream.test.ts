import { describe, expect, it } from 'vitest'
import { SoftwareTpm, TPM_CC, TPM_RC, EK_HANDLE, TpmDevice, TpmWriter } from '../src/index.js'

function cmd(cc: number, body: (w: TpmWriter) => void, tag = 0x8001): Uint8Array {
  const w = new TpmWriter().u16(tag).u32(0).u32(cc)
  body(w)
  w.patchU32(2, w.length)
  return w.bytes()
}

function rc(resp: Uint8Array): number {
  return new DataView(resp.buffer, resp.byteOffset).getUint32(6)
}

describe('command stream', () => {
  const tpm = new SoftwareTpm({ seed: new Uint8Array(32).fill(1) })

  it('needs Startup first, and answers a second Startup with TPM_RC_INITIALIZE', () => {
    expect(rc(tpm.execute(cmd(TPM_CC.GetRandom, (w) => w.u16(8))))).toBe(TPM_RC.INITIALIZE)
    expect(rc(tpm.execute(cmd(TPM_CC.Startup, (w) => w.u16(0))))).toBe(0)
    expect(rc(tpm.execute(cmd(TPM_CC.Startup, (w) => w.u16(0))))).toBe(TPM_RC.INITIALIZE)
  })

  it('returns random bytes as a TPM2B', () => {
    const resp = tpm.execute(cmd(TPM_CC.GetRandom, (w) => w.u16(8)))
    expect(rc(resp)).toBe(0)
    expect(resp.length).toBe(10 + 2 + 8)
  })

  it('refuses malformed commands with response codes, never throws', () => {
    expect(rc(tpm.execute(new Uint8Array([0x80, 0x01, 0, 0, 0, 9, 0, 0, 1])))).toBe(TPM_RC.COMMAND_SIZE)
    expect(rc(tpm.execute(cmd(0x999, () => {})))).toBe(TPM_RC.COMMAND_CODE)
    expect(rc(tpm.execute(cmd(TPM_CC.GetRandom, (w) => w.u16(8), 0x1234)))).toBe(TPM_RC.BAD_TAG)
    const short = cmd(TPM_CC.ReadPublic, (w) => w.u16(1))
    expect(rc(tpm.execute(short))).toBe(TPM_RC.COMMAND_SIZE)
    const wrongSize = cmd(TPM_CC.GetRandom, (w) => w.u16(8))
    wrongSize[5] = 99
    expect(rc(tpm.execute(wrongSize))).toBe(TPM_RC.COMMAND_SIZE)
  })

  it('reports a missing persistent handle, then reads it after provisioning', () => {
    const read = cmd(TPM_CC.ReadPublic, (w) => w.u32(EK_HANDLE))
    expect(rc(tpm.execute(read)) & 0xff).toBe(TPM_RC.HANDLE)
    new TpmDevice(tpm).provision()
    expect(rc(tpm.execute(read))).toBe(0)
  })

  it('refuses ActivateCredential with a password instead of the EK policy', () => {
    const activate = cmd(
      TPM_CC.ActivateCredential,
      (w) => {
        w.u32(0x81000001).u32(EK_HANDLE)
        w.u32(18)
        for (let i = 0; i < 2; i++) w.u32(0x40000009).u16(0).u8(1).u16(0)
        w.u16(0).u16(0)
      },
      0x8002,
    )
    expect(rc(tpm.execute(activate)) & 0xff).toBe(TPM_RC.POLICY_FAIL)
  })
})
