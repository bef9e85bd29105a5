/**
 * Devices connecting with a certificate their DPS instance issued from a CSR (docs/protocol.md
 * §1.7): the hub trusts the issuing CA, so no separate enrollment of the certificate is needed.
 * Every device transport calls {@link checkIssuedDeviceCertificate} with the TLS client chain
 * before the identity's own X.509 rules; it answers whether the chain is one the CA issued at all,
 * and if it is, admits the device or refuses it with the reason.
 */
import { ProvisioError } from '@provisio/protocol'
import { OID, describeCertificate, namesEqual, parseCertificate, validatePath, type Certificate } from '@provisio/x509'

/** Where the hub learns which CAs issue device certificates, and which serials are revoked. */
export interface IssuedCertificateTrust {
  /** DER certificates of the issuing CAs (trust anchors for issued device certificates). */
  readonly issuers: () => Promise<readonly Uint8Array[]>
  /** Whether the certificate with this serial number (upper-case hex) was revoked for the device. */
  readonly isRevoked?: (deviceId: string, serialNumberHex: string) => Promise<boolean>
}

/**
 * `not-issued` when the leaf was not issued by one of the CAs (the caller goes on with the
 * identity's own rules); `admitted` when it was and it validates for `deviceId`. A certificate the
 * CA issued that fails (another device's, expired, revoked, broken chain) is refused with a
 * ProvisioError CERTIFICATE_INVALID naming the rule.
 */
export async function checkIssuedDeviceCertificate(
  deviceId: string,
  chainDer: readonly Uint8Array[],
  trust: IssuedCertificateTrust,
  nowMs: number,
): Promise<'not-issued' | 'admitted'> {
  if (chainDer.length === 0) return 'not-issued'
  let chain: Certificate[]
  let issuers: Certificate[]
  try {
    chain = chainDer.map((der) => parseCertificate(der))
    issuers = (await trust.issuers()).map((der) => parseCertificate(der))
  } catch (error) {
    throw new ProvisioError('CERTIFICATE_INVALID', `a certificate could not be parsed: ${(error as Error).message}`, { cause: error })
  }
  const leaf = chain[0]!
  if (!issuers.some((ca) => namesEqual(ca.subject, leaf.issuer))) return 'not-issued'
  const cn = leaf.subject.commonNames
  if (cn.length !== 1 || cn[0] !== deviceId) {
    throw new ProvisioError('CERTIFICATE_INVALID', `${describeCertificate(leaf, 0)} was issued to '${cn.join("', '")}', not to device '${deviceId}'`)
  }
  const result = validatePath(leaf, chain.slice(1), issuers, { nowMs, requiredExtKeyUsage: OID.clientAuth })
  if (!result.ok) throw new ProvisioError('CERTIFICATE_INVALID', `issued certificate of device '${deviceId}': ${result.error.message}`, { cause: result.error })
  if (trust.isRevoked !== undefined && (await trust.isRevoked(deviceId, leaf.serialNumberHex.toUpperCase()))) {
    throw new ProvisioError('CERTIFICATE_INVALID', `certificate serial ${leaf.serialNumberHex.toUpperCase()} of device '${deviceId}' was revoked`)
  }
  return 'admitted'
}
