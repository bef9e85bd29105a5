/**
 * TPM 2.0 KDFa (TPM 2.0 Part 1 §11.4.10.2): NIST SP 800-108 KDF in counter mode with HMAC,
 *   K(i) = HMAC(key, [i]32 ‖ Label ‖ 0x00 ‖ ContextU ‖ ContextV ‖ [bits]32),  i = 1, 2, …
 * concatenated and truncated to `bits` bits. When `bits` is not a multiple of 8 the excess
 * high-order bits of the first byte are cleared (the result is the low `bits` bits of the
 * big-endian string, §11.4.10.2 "the leftmost bits are masked off"). The 0x00 after the label is
 * always added; a label that already ends in NUL (as TPM callers often pass) is used as given,
 * minus that terminating NUL, so "STORAGE" and "STORAGE\0" derive the same key.
 */
import { CryptoError, assertBytes, describe } from './errors.js'
import { type HashName, assertHash, hashLength, hmac } from './pk-hash.js'

/** Largest output accepted: 1 MiB of key material is far beyond any TPM use. */
const KDFA_MAX_BITS = 8 * 1024 * 1024

/**
 * @param hash HMAC hash: 'SHA-256' | 'SHA-384' | 'SHA-512'
 * @param key the HMAC key (e.g. a seed)
 * @param label label string (UTF-8) or bytes, e.g. "STORAGE", "INTEGRITY", "IDENTITY"
 * @param contextU first context (may be empty)
 * @param contextV second context (may be empty)
 * @param bits number of bits to derive (1 ≤ bits ≤ 2^23)
 * @returns ceil(bits / 8) bytes
 */
export function kdfa(hash: HashName, key: Uint8Array, label: string | Uint8Array, contextU: Uint8Array, contextV: Uint8Array, bits: number): Uint8Array {
  assertHash(hash)
  assertBytes(key, 'key')
  let lab: Uint8Array
  if (typeof label === 'string') lab = new TextEncoder().encode(label)
  else if (label instanceof Uint8Array) lab = label
  else throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `label must be a string or Uint8Array, got ${describe(label)}`)
  assertBytes(contextU, 'contextU')
  assertBytes(contextV, 'contextV')
  if (!Number.isSafeInteger(bits) || bits < 1 || bits > KDFA_MAX_BITS) {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `bits must be an integer from 1 to ${KDFA_MAX_BITS}, got ${typeof bits === 'number' ? bits : describe(bits)}`)
  }
  // the label is a NUL-terminated string in the TPM spec; do not double the terminator
  if (lab.length > 0 && lab[lab.length - 1] === 0) lab = lab.subarray(0, lab.length - 1)
  const bytes = (bits + 7) >> 3
  const msg = new Uint8Array(4 + lab.length + 1 + contextU.length + contextV.length + 4)
  msg.set(lab, 4)
  let p = 4 + lab.length + 1
  msg.set(contextU, p)
  p += contextU.length
  msg.set(contextV, p)
  p += contextV.length
  msg[p] = bits >>> 24
  msg[p + 1] = (bits >>> 16) & 0xff
  msg[p + 2] = (bits >>> 8) & 0xff
  msg[p + 3] = bits & 0xff
  const out = new Uint8Array(bytes)
  const hLen = hashLength(hash)
  for (let i = 1, done = 0; done < bytes; i++, done += hLen) {
    msg[0] = i >>> 24
    msg[1] = (i >>> 16) & 0xff
    msg[2] = (i >>> 8) & 0xff
    msg[3] = i & 0xff
    const k = hmac(hash, key, msg)
    out.set(k.subarray(0, Math.min(hLen, bytes - done)), done)
  }
  if (bits & 7) out[0]! &= 0xff >> (8 - (bits & 7))
  return out
}
