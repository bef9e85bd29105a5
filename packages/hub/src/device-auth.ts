/**
 * How the embedded hub admits a device at its device endpoint (MQTT CONNECT): with a device SAS
 * token (`sr={hub}/devices/{deviceId}`, no `skn`, signed with the identity's primary or secondary
 * key — what azure-iot-device's SharedAccessKey and TPM authentication providers send), or with
 * a TLS client certificate checked against the identity's thumbprints or, for
 * `certificateAuthority` devices, against the CAs the hub trusts; a certificate the DPS
 * instance's CA issued from the device's CSR admits the device whatever its identity's type
 * (issued-auth.ts). A token with `skn` is a hub
 * policy's: as in IoT Hub, a policy granting DeviceConnect may connect any device, with a token
 * whose `sr` is the hub or this device (never another device). A disabled identity is refused.
 * Every refusal is a ProvisioError whose reason says which rule failed.
 */
import { ProvisioError, grants, parseSasToken, rightMissing, verifySasToken } from '@provisio/protocol'
import type { HubAccessPolicy } from './registry-api.js'
import { checkIssuedDeviceCertificate, type IssuedCertificateTrust } from './issued-auth.js'
import type { DeviceIdentity } from '@provisio/protocol'
import { checkHubDeviceCertificate, parseCertificate, type Certificate } from '@provisio/x509'

/** What a device presents. */
export interface HubDeviceCredentials {
  readonly deviceId: string
  /** The CONNECT password: a SharedAccessSignature token. */
  readonly sasToken?: string
  /** The TLS client chain, DER, leaf first. */
  readonly clientCertificates?: readonly Uint8Array[]
}

/** Where the device's identity and the hub's trust come from. */
export interface HubDeviceAuthContext {
  readonly hostName: string
  readonly nowMs: number
  readonly getDevice: (deviceId: string) => Promise<DeviceIdentity | undefined>
  /** DER certificates of the CAs that `certificateAuthority` devices may chain to. */
  readonly trustedCas?: () => Promise<readonly Uint8Array[]>
  /** The hub's shared access policies, for tokens signed by one (`skn`); none: such tokens are refused. */
  readonly policies?: () => readonly HubAccessPolicy[]
  /** CAs whose issued device certificates admit their device whatever its identity's type (§1.7). */
  readonly issuedCertificates?: IssuedCertificateTrust
}

/** Admits the device or throws a ProvisioError naming the reason. Returns its identity. */
export async function authenticateHubDevice(credentials: HubDeviceCredentials, context: HubDeviceAuthContext): Promise<DeviceIdentity> {
  const { deviceId } = credentials
  const device = await context.getDevice(deviceId)
  if (device === undefined) throw new ProvisioError('NOT_FOUND', `device ${JSON.stringify(deviceId.slice(0, 130))} does not exist on hub ${context.hostName}`)
  if (device.status !== 'enabled') throw new ProvisioError('DEVICE_DISABLED', `device ${JSON.stringify(device.deviceId)} on hub ${context.hostName} is disabled`)
  const auth = device.authentication
  if (credentials.sasToken !== undefined) {
    const token = parseSasToken(credentials.sasToken)
    if (token.skn !== undefined) return policyToken(device, token, context)
    const keys = [auth.symmetricKey?.primaryKey, auth.symmetricKey?.secondaryKey].filter((k): k is string => typeof k === 'string' && k.length > 0)
    if (auth.type !== 'sas' || keys.length === 0) {
      throw new ProvisioError('ATTESTATION_MISMATCH', `device ${JSON.stringify(device.deviceId)} authenticates with ${auth.type}, not with a SAS token`)
    }
    const verdict = verifySasToken(token, {
      keys,
      expectedResource: `${context.hostName}/devices/${device.deviceId}`,
      keyName: null,
      nowSeconds: Math.floor(context.nowMs / 1000),
    })
    if (!verdict.ok) throw verdict.error
    return device
  }
  const chainDer = credentials.clientCertificates ?? []
  if (chainDer.length === 0) throw new ProvisioError('CREDENTIALS_MISSING', `device ${JSON.stringify(device.deviceId)} presented neither a SAS token nor a TLS client certificate`)
  if (context.issuedCertificates !== undefined) {
    const issued = await checkIssuedDeviceCertificate(device.deviceId, chainDer, context.issuedCertificates, context.nowMs)
    if (issued === 'admitted') return device
  }
  if (auth.type !== 'selfSigned' && auth.type !== 'certificateAuthority') {
    throw new ProvisioError('ATTESTATION_MISMATCH', `device ${JSON.stringify(device.deviceId)} authenticates with ${auth.type}, not with an X.509 certificate`)
  }
  let chain: Certificate[]
  let trusted: Certificate[] = []
  try {
    chain = chainDer.map((der) => parseCertificate(der))
    if (auth.type === 'certificateAuthority') trusted = (await (context.trustedCas?.() ?? Promise.resolve([]))).map((der) => parseCertificate(der))
  } catch (error) {
    throw new ProvisioError('CERTIFICATE_INVALID', `a certificate could not be parsed: ${(error as Error).message}`, { cause: error })
  }
  const refusal = checkHubDeviceCertificate(
    device.deviceId,
    chain,
    auth.type === 'selfSigned'
      ? { type: 'selfSigned', primaryThumbprint: auth.x509Thumbprint?.primaryThumbprint ?? '', secondaryThumbprint: auth.x509Thumbprint?.secondaryThumbprint ?? null }
      : { type: 'certificateAuthority' },
    trusted,
    context.nowMs,
  )
  if (refusal !== undefined) throw new ProvisioError('CERTIFICATE_INVALID', `hub ${context.hostName}: ${refusal.message}`, { cause: refusal })
  return device
}

/** A device connecting with a hub policy's token: the policy must verify it and grant DeviceConnect. */
function policyToken(device: DeviceIdentity, token: ReturnType<typeof parseSasToken>, context: HubDeviceAuthContext): DeviceIdentity {
  const name = token.skn!
  const policy = (context.policies?.() ?? []).find((p) => p.name.toLowerCase() === name.toLowerCase())
  if (policy === undefined) throw new ProvisioError('SAS_WRONG_KEY_NAME', `hub ${context.hostName} has no shared access policy ${JSON.stringify(name.slice(0, 64))}`)
  const verdict = verifySasToken(token, {
    keys: [policy.primaryKey, policy.secondaryKey],
    // `sr` may be the hub or this device's path; a token for another device does not cover it.
    expectedResource: `${context.hostName}/devices/${device.deviceId}`,
    resourceMatch: 'segmentPrefix',
    keyName: policy.name,
    nowSeconds: Math.floor(context.nowMs / 1000),
  })
  if (!verdict.ok) throw new ProvisioError(verdict.error.code, `policy ${policy.name} of hub ${context.hostName}: ${verdict.error.reason}`, { cause: verdict.error })
  if (!grants(policy.rights, 'DeviceConnect')) throw rightMissing(`hub ${context.hostName}`, policy.name, 'DeviceConnect')
  return device
}
