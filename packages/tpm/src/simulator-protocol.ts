/**
 * The Microsoft TPM 2.0 simulator TCP protocol (docs/protocol.md §11), the part both ends agree on:
 * request codes and the big-endian framing. Its client is in @provisio/device (`tpmSimulator`),
 * its server in @provisio/server (`startTpmSimulator`); the sockets stay there.
 *
 * - command port: every request starts with a UINT32 code. HandShake (15): UINT32 client version →
 *   UINT32 server version, UINT32 TPM properties, UINT32 0. SendCommand (8): UINT8 locality,
 *   UINT32 size, command → UINT32 size, response, UINT32 0. SessionEnd (20), Stop (21).
 * - platform port (command port + 1): SignalPowerOn (1), SignalPowerOff (2), SignalNvOn (11),
 *   SignalNvOff (12), SignalReset (17), each acknowledged with UINT32 0.
 */

/** Request codes of the simulator protocol. */
export const TPM_SIMULATOR = Object.freeze({
  SIGNAL_POWER_ON: 1,
  SIGNAL_POWER_OFF: 2,
  SEND_COMMAND: 8,
  SIGNAL_NV_ON: 11,
  SIGNAL_NV_OFF: 12,
  HAND_SHAKE: 15,
  SIGNAL_RESET: 17,
  SESSION_END: 20,
  STOP: 21,
})

/** The protocol version of HandShake, client's and server's (tss.js's ClientVer). */
export const TPM_SIMULATOR_VERSION = 1

/** Big-endian UINT32s, one after another. */
export function uint32s(...values: number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length)
  const view = new DataView(out.buffer)
  values.forEach((v, i) => view.setUint32(4 * i, v >>> 0))
  return out
}

/** A SendCommand request: code, UINT8 locality, UINT32 size, the command. */
export function encodeSendCommand(command: Uint8Array, locality = 0): Uint8Array {
  const out = new Uint8Array(9 + command.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, TPM_SIMULATOR.SEND_COMMAND)
  view.setUint8(4, locality)
  view.setUint32(5, command.length)
  out.set(command, 9)
  return out
}

/** The answer to SendCommand: UINT32 size, the response, UINT32 0. */
export function encodeSendCommandAnswer(response: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + response.length)
  new DataView(out.buffer).setUint32(0, response.length)
  out.set(response, 4)
  return out
}
