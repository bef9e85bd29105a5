// What the DPS and hub session suites share: a fake clock, a recorder of what a session writes
// (decoded back into packets), closes and events, and a sender of encoded client packets.
import { MqttDecoder, encodePacket, type MqttCloseReason, type MqttPacket, type MqttPublishPacket } from '../src/index.js'

/** The ports every session takes (clock, trackingId, write, close, onEvent), recording what they see. */
export function recordingPorts<Event>(options: { maxPacketBytes?: number } = {}) {
  let now = 1_700_000_000_000
  const out: MqttPacket[] = []
  const closes: MqttCloseReason[] = []
  const events: Event[] = []
  const serverOutput = new MqttDecoder(options.maxPacketBytes === undefined ? {} : { maxPacketBytes: options.maxPacketBytes })
  return {
    out,
    closes,
    events,
    advance: (ms: number) => void (now += ms),
    ports: {
      clock: { now: () => now },
      trackingId: () => 'track-1',
      write: (bytes: Uint8Array) => {
        const r = serverOutput.push(bytes)
        if (r.error) throw r.error
        out.push(...r.packets)
      },
      close: (reason: MqttCloseReason) => void closes.push(reason),
      onEvent: (event: Event) => void events.push(event),
    },
  }
}

/** Pushes client packets, encoded and concatenated, into a session as one read. */
export const sender =
  (session: { push(bytes: Uint8Array): void }) =>
  (...packets: Parameters<typeof encodePacket>[0][]) =>
    session.push(concat(packets.map((p) => encodePacket(p))))

/** Lets pending promise callbacks run. */
export const settle = () => new Promise((resolve) => setTimeout(resolve, 0))

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** A PUBLISH payload as text. */
export const text = (p: MqttPacket) => new TextDecoder().decode((p as MqttPublishPacket).payload)
