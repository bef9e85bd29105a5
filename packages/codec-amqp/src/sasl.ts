/**
 * The SASL layer's payloads (AMQP 1.0 §5.3; docs/protocol.md §4, §5.3): what PLAIN and the custom
 * TPM mechanism carry, how an activation blob is chunked into TPM challenges, and the identity a
 * finished SASL exchange proves. The session's SASL state machine (AmqpDeviceSession, session.ts)
 * sends and waits; this module only reads and builds bytes.
 */
import type { Evidence } from '@provisio/protocol'
import { parseRegistrationAddress } from './address.js'
import { base64Decode, concat } from './wire.js'

// sasl-outcome codes (§5.3.3.6).
export const SASL_OK = 0, SASL_AUTH = 1, SASL_SYS = 2, SASL_SYS_TEMP = 4

/** Mechanisms offered in sasl-mechanisms. */
export const SASL_MECHANISMS = ['PLAIN', 'TPM', 'EXTERNAL', 'ANONYMOUS']

/** Who the connection proved to be. */
export type Identity =
  | { readonly kind: 'credential'; readonly idScope: string; readonly registrationId: string; readonly evidence: Evidence }
  /** No SASL, EXTERNAL or ANONYMOUS: the TLS client certificate speaks at register (§4, §6). */
  | { readonly kind: 'certificate' }

/** State of the TPM SASL exchange (§5.3), from init to the final SAS. */
export interface TpmExchange {
  readonly idScope: string
  readonly registrationId: string
  readonly endorsementKey: Uint8Array
  storageRootKey?: Uint8Array
  chunks?: Uint8Array[]
  sent: number
}

/** A credential a SASL response carries, or the reason it is refused. */
export type SaslCredential = { readonly idScope: string; readonly registrationId: string; readonly evidence: Evidence } | { readonly refusal: string }

/** PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd; authcid names the registration (§4). */
export function readPlainResponse(response: Uint8Array | undefined): SaslCredential {
  if (response === undefined) return { refusal: 'PLAIN without an initial response' }
  const parts = splitNul(response, 3)
  if (parts.length !== 3) return { refusal: 'PLAIN response is not [authzid] NUL authcid NUL passwd' }
  const authcid = decodeUtf8(parts[1]!)
  const password = decodeUtf8(parts[2]!)
  const address = parseRegistrationAddress(authcid)
  if (address === undefined || password === undefined) {
    return { refusal: `PLAIN authcid ${JSON.stringify((authcid ?? '').slice(0, 80))} is not {idScope}/registrations/{registrationId}` }
  }
  return { idScope: address.idScope, registrationId: address.registrationId, evidence: { type: 'sas', token: password } }
}

/** TPM step 1 (§5.3): init = 0x00 ‖ idScope ‖ 0x00 ‖ registrationId ‖ 0x00 ‖ EK; the exchange, or why it is refused. */
export function readTpmInit(response: Uint8Array | undefined): TpmExchange | { readonly refusal: string } {
  if (response === undefined || response.length < 4 || (response[0]! & 0x80) !== 0) {
    return { refusal: 'TPM init is missing or chunked (control byte with the high bit set is not supported for init)' }
  }
  const parts = splitNul(response.subarray(1), 3)
  const idScope = parts[0] === undefined ? undefined : decodeUtf8(parts[0])
  const registrationId = parts[1] === undefined ? undefined : decodeUtf8(parts[1])
  if (parts.length !== 3 || !idScope || !registrationId || parts[2]!.length === 0) {
    return { refusal: 'TPM init is not 0x00 idScope 0x00 registrationId 0x00 EK' }
  }
  return { idScope, registrationId, endorsementKey: parts[2]!.slice(), sent: 0 }
}

/**
 * The activation blob (base64) in chunks of `chunkBytes`; undefined when it is empty, not base64,
 * or needs more than 4 chunks (the sequence number has 2 bits, §5.3).
 */
export function activationChunks(authenticationKey: string, chunkBytes: number): Uint8Array[] | undefined {
  const blob = base64Decode(authenticationKey)
  const chunks = blob === undefined ? undefined : chunk(blob, chunkBytes)
  if (chunks === undefined || chunks.length === 0 || chunks.length > 4) return undefined
  return chunks
}

/** The challenge carrying chunk `seq`: control byte (0x80, 0xc0 on the last) with the sequence number, then the chunk. */
export function tpmChunkChallenge(chunks: readonly Uint8Array[], seq: number): Uint8Array {
  const last = seq === chunks.length - 1
  const ctrl = (last ? 0xc0 : 0x80) | seq
  return concat(Uint8Array.of(ctrl), chunks[seq]!)
}

/** Splits at NUL bytes into at most `max` parts (the last part keeps any further NULs). */
function splitNul(bytes: Uint8Array, max: number): Uint8Array[] {
  const parts: Uint8Array[] = []
  let start = 0
  for (let i = 0; i < bytes.length && parts.length < max - 1; i++) {
    if (bytes[i] === 0) {
      parts.push(bytes.subarray(start, i))
      start = i + 1
    }
  }
  parts.push(bytes.subarray(start))
  return parts
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8Decoder.decode(bytes)
  } catch {
    return undefined
  }
}

function chunk(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size))
  return out
}
