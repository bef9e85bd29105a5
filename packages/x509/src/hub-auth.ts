/**
 * How an IoT hub admits a device that DPS provisioned with X.509 (docs/protocol.md §6): the
 * identity DPS created carries either `selfSigned` thumbprints (individual enrollments: the
 * device must present exactly that certificate) or `certificateAuthority` (groups: the device's
 * chain must validate to a CA the hub trusts). The embedded hub's device transports call this
 * with the TLS client chain.
 */
import { type Certificate, OID, describeCertificate } from './certificate.js'
import { X509Error } from './errors.js'
import { validatePath } from './path.js'

/** The X.509 part of a hub device identity. */
export type HubX509Authentication =
  | { readonly type: 'selfSigned'; readonly primaryThumbprint: string; readonly secondaryThumbprint?: string | null }
  | { readonly type: 'certificateAuthority' }

/**
 * Checks a device's TLS chain (leaf first) against its hub identity. `deviceId` must be the leaf's
 * CN for CA-authenticated devices (IoT Hub's rule); thumbprints may be SHA-1 or SHA-256 hex.
 * Returns undefined when the device is admitted, else the reason.
 */
export function checkHubDeviceCertificate(
  deviceId: string,
  chain: readonly Certificate[],
  auth: HubX509Authentication,
  trustedCas: readonly Certificate[],
  nowMs: number,
): X509Error | undefined {
  const leaf = chain[0]
  if (leaf === undefined) return new X509Error('X509_NO_PATH', `device '${deviceId}' presented no client certificate`)
  if (auth.type === 'selfSigned') {
    const pinned = [auth.primaryThumbprint, auth.secondaryThumbprint ?? undefined].filter((t): t is string => typeof t === 'string' && t.length > 0).map((t) => t.toUpperCase())
    if (!pinned.includes(leaf.sha1Thumbprint) && !pinned.includes(leaf.sha256Thumbprint)) {
      return new X509Error('X509_NO_PATH', `${describeCertificate(leaf, 0)} matches neither thumbprint of device '${deviceId}'`)
    }
    if (nowMs < leaf.notBeforeMs || nowMs > leaf.notAfterMs) {
      return new X509Error(nowMs < leaf.notBeforeMs ? 'X509_NOT_YET_VALID' : 'X509_EXPIRED', `${describeCertificate(leaf, 0)} is outside its validity period (${leaf.notBeforeIso} … ${leaf.notAfterIso})`)
    }
    return undefined
  }
  const cn = leaf.subject.commonNames
  if (cn.length !== 1 || cn[0] !== deviceId) {
    return new X509Error('X509_CN_MISMATCH', `${describeCertificate(leaf, 0)} has CN ${cn.length ? `'${cn.join("', '")}'` : '(none)'}, but the device id is '${deviceId}'`)
  }
  const result = validatePath(leaf, chain.slice(1), trustedCas, { nowMs, requiredExtKeyUsage: OID.clientAuth })
  return result.ok ? undefined : result.error
}
