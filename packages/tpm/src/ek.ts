/**
 * Endorsement and storage root keys as DPS sees them (docs/protocol.md §5.1): template checks,
 * matching a device's EK with an enrollment's, and the default registrationId.
 */
import { base64Decode, sha256 } from '@provisio/crypto'
import { TpmError } from './errors.js'
import { bytesEqual } from './marshal.js'
import { TPMA_OBJECT, TPM_ALG, parseTpm2bPublic } from './structures.js'
import type { RsaPublic, TpmtPublic } from './structures.js'

/** Attribute bits every EK and SRK carries: a restricted decryption key bound to its TPM (§5.1). */
const STORAGE_BITS = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin

/** The EK authPolicy of the TCG default template: PolicySecret(TPM_RH_ENDORSEMENT) (§5.1). */
export const EK_AUTH_POLICY_SHA256 = hexBytes('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa')

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

/** Decodes base64 text of a TPM2B_PUBLIC, naming `what` on failure. */
export function decodeTpm2bPublicBase64(text: string, what: string): { bytes: Uint8Array; public: TpmtPublic } {
  if (typeof text !== 'string' || text.length === 0) throw new TpmError('TPM_BAD_BASE64', `${what} is empty`)
  if (text.length > 4 * 1024) throw new TpmError('TPM_TOO_LARGE', `${what} is ${text.length} base64 characters, the limit is 4096`)
  let bytes: Uint8Array
  try {
    bytes = base64Decode(text)
  } catch (error) {
    throw new TpmError('TPM_BAD_BASE64', `${what} is not base64: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  return { bytes, public: parseTpm2bPublic(bytes, what) }
}

/**
 * Checks that a public area is usable as an endorsement key for DPS: RSA, a restricted
 * decryption key fixed to its TPM, not a signing key, with an AES-CFB symmetric definition (the
 * credential is encrypted with it, Part 1 §24) and a modulus present.
 */
export function checkEndorsementKey(p: TpmtPublic, what = 'endorsement key'): RsaPublic {
  return checkStorageLike(p, what, 'EK')
}

/** Checks that a public area can be the parent of an imported key (the SRK, §5.5). */
export function checkStorageRootKey(p: TpmtPublic, what = 'storage root key'): RsaPublic {
  return checkStorageLike(p, what, 'SRK')
}

function checkStorageLike(p: TpmtPublic, what: string, role: 'EK' | 'SRK'): RsaPublic {
  if (p.type !== 'rsa') throw new TpmError('TPM_EK_TEMPLATE', `${what} is a KEYEDHASH object; an ${role} must be an RSA key (docs/protocol.md §5.1)`)
  const missing = STORAGE_BITS & ~p.objectAttributes
  if (missing !== 0) {
    throw new TpmError('TPM_EK_TEMPLATE', `${what}: objectAttributes 0x${p.objectAttributes.toString(16).padStart(8, '0')} lack 0x${missing.toString(16).padStart(8, '0')} (an ${role} is restricted|decrypt|fixedTPM|fixedParent|sensitiveDataOrigin)`)
  }
  if ((p.objectAttributes & TPMA_OBJECT.sign) !== 0) {
    throw new TpmError('TPM_EK_TEMPLATE', `${what}: objectAttributes 0x${p.objectAttributes.toString(16).padStart(8, '0')} include sign; an ${role} is a decryption-only key`)
  }
  const sym = p.parameters.symmetric
  if (sym === null || sym.algorithm !== TPM_ALG.AES || sym.mode !== TPM_ALG.CFB) {
    throw new TpmError('TPM_EK_TEMPLATE', `${what}: symmetric definition must be AES in CFB mode (the ${role === 'EK' ? 'credential' : 'duplicate'} is encrypted with it), got ${sym === null ? 'NULL' : `alg 0x${sym.algorithm.toString(16)} mode 0x${sym.mode.toString(16)}`}`)
  }
  if (p.parameters.scheme.scheme !== TPM_ALG.NULL) {
    throw new TpmError('TPM_EK_TEMPLATE', `${what}: a restricted decryption key has scheme NULL, got 0x${p.parameters.scheme.scheme.toString(16)}`)
  }
  if (p.unique.length === 0) throw new TpmError('TPM_EK_TEMPLATE', `${what}: the RSA modulus (unique) is empty`)
  return p
}

/**
 * True when two EKs are the same key. Compares the RSA modulus (and exponent) rather than the
 * marshalled bytes, so a template difference that does not change the key (for example an
 * enrollment written from a tool that fills authPolicy differently) still matches (§5.1).
 */
export function sameEndorsementKey(a: RsaPublic, b: RsaPublic): boolean {
  return bytesEqual(a.unique, b.unique) && (a.parameters.exponent || 65537) === (b.parameters.exponent || 65537)
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

/** Lowercase RFC 4648 §6 base32 without padding. */
export function base32Lower(bytes: Uint8Array): string {
  let out = ''
  let acc = 0
  let bits = 0
  for (const b of bytes) {
    acc = (acc << 8) | b
    bits += 8
    while (bits >= 5) {
      out += BASE32[(acc >>> (bits - 5)) & 31]
      bits -= 5
    }
    acc &= (1 << bits) - 1
  }
  if (bits > 0) out += BASE32[(acc << (5 - bits)) & 31]
  return out
}

/**
 * The registrationId a TPM device uses when none is configured: lowercase base32 (RFC 4648,
 * `=` stripped) of SHA-256 over the EK's TPM2B_PUBLIC bytes as sent (docs/protocol.md §5.1).
 */
export function defaultRegistrationId(ekTpm2bPublic: Uint8Array): string {
  return base32Lower(sha256(ekTpm2bPublic))
}
