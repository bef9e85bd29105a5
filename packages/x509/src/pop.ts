/**
 * CA proof of possession (docs/protocol.md §6, D-pop): after uploading a CA certificate the owner
 * asks for a verification code, issues a certificate whose subject CN is that code with the CA's
 * private key, and hands it back. The CA counts as verified once that certificate's signature
 * verifies with the CA's public key.
 */
import { type Certificate, describeCertificate } from './certificate.js'
import { X509Error } from './errors.js'
import { checkSignature } from './signature.js'

/** Length of verification codes in random bytes (hex-encoded: twice as many characters). */
export const VERIFICATION_CODE_BYTES = 24

/**
 * A verification code from random bytes: upper-case hex, as DPS's codes look (a CN must stay
 * ≤64 characters, RFC 5280 ub-common-name).
 */
export function verificationCodeFrom(random: Uint8Array): string {
  if (random.length < 16 || random.length > 32) throw new RangeError(`verification code needs 16 to 32 random bytes, got ${random.length}`)
  let s = ''
  for (const b of random) s += b.toString(16).padStart(2, '0')
  return s.toUpperCase()
}

/**
 * Checks a proof-of-possession certificate against a CA certificate and the code issued for it.
 * Returns undefined when the proof holds, else the reason.
 */
export function checkProofOfPossession(ca: Certificate, proof: Certificate, code: string, nowMs: number): X509Error | undefined {
  const cns = proof.subject.commonNames
  if (cns.length !== 1 || cns[0]!.trim().toUpperCase() !== code.toUpperCase()) {
    return new X509Error(
      'X509_CN_MISMATCH',
      `proof-of-possession ${describeCertificate(proof)} must have subject CN equal to the verification code ${code}, but its CN is ${cns.length === 0 ? 'absent' : `'${cns.join("', '")}'`}`,
    )
  }
  // The signature is the proof itself, so it is judged before the validity period.
  const sig = checkSignature(proof, ca)
  if (sig) return new X509Error(sig.code, `proof-of-possession certificate was not signed by the CA's key: ${sig.message}`)
  if (nowMs < proof.notBeforeMs) return new X509Error('X509_NOT_YET_VALID', `proof-of-possession certificate is not valid before ${proof.notBeforeIso}`)
  if (nowMs > proof.notAfterMs) return new X509Error('X509_EXPIRED', `proof-of-possession certificate expired at ${proof.notAfterIso}`)
  return undefined
}
