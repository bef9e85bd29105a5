// The simulator protocol's framing, byte for byte (docs/protocol.md §11): what tss.js and our
// client send, and what the front answers.
import { describe, expect, it } from 'vitest'
import { TPM_SIMULATOR, TPM_SIMULATOR_VERSION, encodeSendCommand, encodeSendCommandAnswer, uint32s } from '../src/index.js'

describe('TPM simulator framing', () => {
  it('writes UINT32s big-endian, one after another', () => {
    expect([...uint32s(TPM_SIMULATOR.HAND_SHAKE, TPM_SIMULATOR_VERSION)]).toEqual([0, 0, 0, 15, 0, 0, 0, 1])
    expect([...uint32s(0xfffffffe)]).toEqual([0xff, 0xff, 0xff, 0xfe])
    expect(uint32s().length).toBe(0)
  })

  it('frames SendCommand as code 8, locality, size, command', () => {
    expect([...encodeSendCommand(new Uint8Array([0x80, 0x01, 0xaa]))]).toEqual([0, 0, 0, 8, 0, 0, 0, 0, 3, 0x80, 0x01, 0xaa])
    expect([...encodeSendCommand(new Uint8Array([7]), 3)]).toEqual([0, 0, 0, 8, 3, 0, 0, 0, 1, 7])
  })

  it('answers SendCommand with size, response, then 0', () => {
    expect([...encodeSendCommandAnswer(new Uint8Array([1, 2]))]).toEqual([0, 0, 0, 2, 1, 2, 0, 0, 0, 0])
    expect([...encodeSendCommandAnswer(new Uint8Array(0))]).toEqual([0, 0, 0, 0, 0, 0, 0, 0])
  })

  it('keeps the codes tss.js sends', () => {
    expect(TPM_SIMULATOR).toMatchObject({ SIGNAL_POWER_ON: 1, SIGNAL_POWER_OFF: 2, SEND_COMMAND: 8, SIGNAL_NV_ON: 11, SIGNAL_NV_OFF: 12, HAND_SHAKE: 15, SIGNAL_RESET: 17, SESSION_END: 20, STOP: 21 })
  })
})
