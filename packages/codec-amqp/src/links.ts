/**
 * Sessions and links of a device connection (AMQP 1.0 §2.5-§2.7): their state, the windows this
 * server announces, and the rules a link must meet (its address names the connection's one
 * registration). The session's performative handlers (AmqpDeviceSession, session.ts) drive them.
 */
import type { Identity } from './sasl.js'

/** One attached link of a session. */
export interface Link {
  readonly name: string
  readonly remoteHandle: number
  readonly localHandle: number
  /** 'out': we send (the device's receiver link); 'in': the device sends requests. */
  readonly direction: 'out' | 'in'
  readonly idScope: string
  readonly registrationId: string
  readonly apiVersion: string | undefined
  deliveryCount: number
  credit: number
  /** Incoming: bytes of the delivery being assembled. */
  partial?: { deliveryId: number; settled: boolean; bytes: Uint8Array }
}

/** One begun session of the connection, with its links and the answers waiting for credit. */
export interface Session {
  readonly remoteChannel: number
  readonly localChannel: number
  nextOutgoingId: number
  nextIncomingId: number
  /** Transfer frames the device may still send before our announced incoming-window runs out. */
  incomingWindowLeft: number
  remoteIncomingWindow: number
  nextDeliveryId: number
  readonly links: Map<number, Link>
  /** Device handles of links we refused (attached and detached at once), until the device detaches them too. */
  readonly refused: Set<number>
  /** Answers waiting for credit on an outgoing link. */
  readonly outbox: { readonly registrationKey: string; readonly payload: Uint8Array }[]
}

/** Session incoming-window we announce (transfer frames); re-announced with every flow. */
export const INCOMING_WINDOW = 2048
export const OUTGOING_WINDOW = 0x7fffffff
/** Room left in a frame for the transfer performative (handle, ids, 4-byte tag, flags). */
export const TRANSFER_OVERHEAD = 96

/** The registration an answer belongs to: an outgoing link with the same key carries it. */
export function registrationKey(idScope: string, registrationId: string): string {
  return `${idScope}/${registrationId.toLowerCase()}`
}

/** The smallest number not in `used` (local channels, local handles). */
export function lowestFree(used: ReadonlySet<number>): number {
  let n = 0
  while (used.has(n)) n++
  return n
}

/**
 * Why a link address is refused, or undefined when it names this connection's registration:
 * the authenticated one for credential devices, the one every other link names for certificate devices.
 */
export function linkRefusal(
  identity: Identity | undefined,
  sessions: Iterable<Session>,
  address: { idScope: string; registrationId: string } | undefined,
  raw: unknown,
): { condition: string; description: string } | undefined {
  if (address === undefined) {
    return { condition: 'amqp:not-found', description: `link address ${JSON.stringify(String(raw).slice(0, 80))} is not {idScope}/registrations/{registrationId}` }
  }
  if (identity?.kind === 'credential') {
    if (address.idScope !== identity.idScope || address.registrationId.toLowerCase() !== identity.registrationId.toLowerCase()) {
      return { condition: 'amqp:unauthorized-access', description: `link address ${address.idScope}/registrations/${address.registrationId} differs from the authenticated ${identity.idScope}/registrations/${identity.registrationId}` }
    }
  }
  // Certificate devices: every link of the connection names one registration.
  for (const s of sessions) {
    for (const l of s.links.values()) {
      if (l.idScope !== address.idScope || l.registrationId.toLowerCase() !== address.registrationId.toLowerCase()) {
        return { condition: 'amqp:unauthorized-access', description: 'links of one connection must name one registration' }
      }
    }
  }
  return undefined
}

/** Fields of a flow frame: the session window (INCOMING_WINDOW) and, with `link`, its credit (§2.7.4). */
export function flowFields(session: Session, link?: Link): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    next_incoming_id: session.nextIncomingId,
    incoming_window: INCOMING_WINDOW,
    next_outgoing_id: session.nextOutgoingId,
    outgoing_window: OUTGOING_WINDOW,
  }
  if (link !== undefined) Object.assign(fields, { handle: link.localHandle, delivery_count: link.deliveryCount, link_credit: link.credit })
  return fields
}
