import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SoftwareTpm, TpmDevice, TpmError, parseActivationBlob, parseTpm2bPublic, parseTpmtSensitive } from '../src/index.js'

/** Only TpmError may escape a parser; anything else is a crash. */
function onlyTpmErrors(fn: () => unknown): void {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(TpmError)
  }
}

describe('bad input never crashes', () => {
  const device = new TpmDevice(new SoftwareTpm({ seed: new Uint8Array(32).fill(3) }))
  const ek = device.endorsementKey()

  it('parsers throw only typed errors on random and mutated input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), (bytes) => {
        onlyTpmErrors(() => parseTpm2bPublic(bytes))
        onlyTpmErrors(() => parseActivationBlob(bytes))
        onlyTpmErrors(() => parseTpmtSensitive(bytes))
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.integer({ min: 0, max: ek.length - 1 }), fc.integer({ min: 0, max: 255 }), (at, value) => {
        const mutated = ek.slice()
        mutated[at] = value
        onlyTpmErrors(() => parseTpm2bPublic(mutated))
      }),
      { numRuns: 500 },
    )
  })

  it('the command stream answers every input with a response, never a throw', () => {
    const tpm = device.tpm
    const startup = tpm.execute(new Uint8Array([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0]))
    expect(new DataView(startup.buffer, startup.byteOffset).getUint32(6)).toBe(0)
    const codes = new Set<number>()
    fc.assert(
      fc.property(fc.constantFrom(0x8001, 0x8002), fc.integer({ min: 0x11f, max: 0x18f }), fc.uint8Array({ maxLength: 300 }), (tag, cc, body) => {
        const cmd = new Uint8Array(10 + body.length)
        const view = new DataView(cmd.buffer)
        view.setUint16(0, tag)
        view.setUint32(2, cmd.length)
        view.setUint32(6, cc)
        cmd.set(body, 10)
        const resp = tpm.execute(cmd)
        expect(resp.length).toBeGreaterThanOrEqual(10)
        codes.add(new DataView(resp.buffer, resp.byteOffset).getUint32(6))
        expect(new DataView(resp.buffer, resp.byteOffset).getUint32(2)).toBe(resp.length)
      }),
      { numRuns: 1000 },
    )
    // The commands got past the header checks into their own parsers (many distinct codes).
    expect(codes.size).toBeGreaterThan(3)
  })
})
