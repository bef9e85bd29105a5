/**
 * What an AMQP device connection is configured with and reports: its limits, the callbacks of the
 * transport adapter and the SASL-time credential check, and why it ended.
 */
import type { DeviceApi, Evidence } from '@provisio/protocol'
import type { AmqpCodecErrorCode } from './errors.js'

/** Size and count limits of one connection. */
export interface AmqpLimits {
  /** max-frame-size this server announces and enforces on every received frame (AMQP 1.0 §2.7.1). */
  readonly maxFrameSize: number
  /** Largest request message (all transfer frames of a delivery); DPS bodies are ≤ 96 KB (§9). */
  readonly maxMessageBytes: number
  /** Sessions per connection (channel-max + 1). */
  readonly maxSessions: number
  /** Links per session (handle-max + 1). */
  readonly maxLinksPerSession: number
  /** Credit granted on the device's sender link, replenished at half. */
  readonly linkCredit: number
  /** Bytes of a TPM activation blob per SASL challenge (§5.3: C caps frames at ~470 bytes). */
  readonly tpmChunkBytes: number
  /** Requests answered or awaiting credit per connection above which no more credit is granted. */
  readonly maxInFlight: number
}

/** Defaults: 64 KiB frames, 128 KiB messages, 4 sessions × 4 links, 400-byte TPM chunks. */
export const DEFAULT_AMQP_LIMITS: AmqpLimits = Object.freeze({
  maxFrameSize: 64 * 1024,
  maxMessageBytes: 128 * 1024,
  maxSessions: 4,
  maxLinksPerSession: 4,
  linkCredit: 32,
  tpmChunkBytes: 400,
  maxInFlight: 16,
})

/** Smallest max-frame-size a peer may announce (AMQP 1.0 §2.7.1 MIN-MAX-FRAME-SIZE). */
export const MIN_MAX_FRAME_SIZE = 512

/** Why a connection ended. */
export interface AmqpCloseReason {
  readonly code: 'peer-closed' | 'sasl-refused' | 'shutdown' | AmqpCodecErrorCode
  /** Human-readable: which frame, which field, which rule. */
  readonly reason: string
  /** The AMQP error condition sent in the close frame, when one was sent. */
  readonly condition?: string
}

/**
 * Checks credentials at the SASL layer. Resolves when they verify; throws a ProvisioError (or
 * anything) to refuse, which the session answers with sasl-outcome `auth`.
 */
export type AmqpAuthenticate = (evidence: Evidence, idScope: string, registrationId: string) => Promise<void>

/** Options of one session. */
export interface AmqpSessionOptions {
  /** The device API (the engine, possibly instrumented). */
  readonly device: DeviceApi
  /** Bytes to send to the peer, in order. */
  readonly write: (bytes: Uint8Array) => void
  /** Called once, after the last write, when the connection must end. */
  readonly close: (reason: AmqpCloseReason) => void
  /** Clock of error timestamps (`timestampUtc`, §1.5). */
  readonly clock: { now(): number }
  /** Tracking ids of error bodies. */
  readonly trackingId: () => string
  /** TLS client certificate chain, DER leaf first (X.509 devices, §6). */
  readonly clientCertificates?: readonly Uint8Array[]
  /**
   * SASL-time credential check. Default: `device.authenticate` (else `device.registrationStatus`),
   * attestation without side effects, so a wrong key is refused at SASL, before any link exists.
   */
  readonly authenticate?: AmqpAuthenticate
  /** container-id of this server's open frame. */
  readonly containerId?: string
  /**
   * Called once when the peer's open announces an idle-time-out (ms). `tick()` then writes an
   * empty frame whenever nothing was written for half of it (AMQP 1.0 §2.4.5).
   */
  readonly onPeerIdleTimeout?: (ms: number) => void
  /**
   * Protocol header, SASL and open must be done within this of the session's creation, judged by
   * `tick()` (default 10,000 ms; see `openTimedOut`).
   */
  readonly openTimeoutMs?: number
  readonly limits?: Partial<AmqpLimits>
}
