/**
 * The embedded hubs' device side for the MQTT adapter: the HubDeviceApi the codec's hub session
 * calls (authentication, twin, reported properties, telemetry), the per-hub telemetry buffers the
 * registry API reads, and the CAs `certificateAuthority` devices may chain to.
 *
 * Telemetry lives in memory per instance (bounded, see @provisio/hub TelemetryBuffer); identities
 * and twins live in the hub store (SQLite or PostgreSQL), so a device reads the same twin from
 * any instance.
 */
import type { HubDeviceApi } from '@provisio/codec-mqtt'
import type { Store } from '@provisio/engine'
import { TelemetryBuffer, authenticateHubDevice, type EmbeddedHub, type TelemetryLimits } from '@provisio/hub'
import { ProvisioError, SAS_DEFAULT_CLOCK_SKEW_SECONDS, parseSasToken } from '@provisio/protocol'
import { decodeCertificateText } from '@provisio/x509'

export interface HubDevices {
  readonly api: HubDeviceApi
  /** The telemetry buffer of a hub (by host name, case-insensitive). */
  telemetry(hostName: string): TelemetryBuffer | undefined
  /** Whether a host name names an embedded hub. */
  isHub(hostName: string): boolean
}

export function createHubDevices(options: {
  readonly hubs: ReadonlyMap<string, EmbeddedHub>
  readonly clock: { now(): number }
  /** The DPS store, for the CAs X.509 groups and verified CA certificates name. */
  readonly store: Store
  readonly idScope: string
  readonly telemetryLimits?: Partial<TelemetryLimits>
}): HubDevices {
  const { hubs, clock } = options
  const buffers = new Map<string, TelemetryBuffer>()
  for (const key of hubs.keys()) buffers.set(key, new TelemetryBuffer(clock, options.telemetryLimits))

  const hubNamed = (name: string): EmbeddedHub => {
    const hub = hubs.get(name.toLowerCase())
    if (hub === undefined) {
      throw new ProvisioError('NOT_FOUND', `no embedded hub named ${JSON.stringify(name.slice(0, 100))} (embedded: ${[...hubs.values()].map((h) => h.hostName).join(', ')})`)
    }
    return hub
  }

  /** Verified CA certificates of the DPS instance and the signing certificates of its X.509 groups. */
  const trustedCas = async (): Promise<Uint8Array[]> => {
    const out: Uint8Array[] = []
    for (const ca of await options.store.listCaCertificates(options.idScope)) {
      if (ca.isVerified) out.push(...safeDecode(ca.certificate))
    }
    let after: string | undefined
    for (;;) {
      const groups = await options.store.listGroups(options.idScope, { limit: 200, ...(after === undefined ? {} : { after }) })
      for (const g of groups) {
        const signing = g.attestation.type === 'x509' ? g.attestation.x509.signingCertificates : undefined
        for (const slot of [signing?.primary, signing?.secondary]) if (slot?.certificate !== undefined) out.push(...safeDecode(slot.certificate))
      }
      if (groups.length < 200) break
      after = groups[groups.length - 1]!.enrollmentGroupId.toLowerCase()
    }
    return out
  }

  const api: HubDeviceApi = {
    async authenticate(request) {
      const hub = hubNamed(request.hostName)
      const device = await authenticateHubDevice(
        {
          deviceId: request.deviceId,
          ...(request.sasToken === undefined ? {} : { sasToken: request.sasToken }),
          ...(request.clientCertificates === undefined ? {} : { clientCertificates: request.clientCertificates }),
        },
        { hostName: hub.hostName, nowMs: clock.now(), getDevice: (id) => hub.getDevice(id), trustedCas },
      )
      // The token verified, so it parses; its `se` (with the clock skew verification allowed) ends
      // the connection, as IoT Hub's rule is.
      const expiresAtMs = request.sasToken === undefined ? undefined : (parseSasToken(request.sasToken).se + SAS_DEFAULT_CLOCK_SKEW_SECONDS) * 1000
      return { hostName: hub.hostName, deviceId: device.deviceId, ...(expiresAtMs === undefined ? {} : { expiresAtMs }) }
    },
    async getTwin(hostName, deviceId) {
      const twin = await hubNamed(hostName).getTwin(deviceId)
      if (twin === undefined) throw new ProvisioError('NOT_FOUND', `device ${JSON.stringify(deviceId)} no longer exists on hub ${hostName}`)
      return { desired: twin.properties.desired, reported: twin.properties.reported }
    },
    patchReported: (hostName, deviceId, patch) => hubNamed(hostName).patchReported(deviceId, patch),
    telemetry(hostName, deviceId, message) {
      const buffer = buffers.get(hostName.toLowerCase())
      if (buffer === undefined) throw new ProvisioError('NOT_FOUND', `no embedded hub named ${JSON.stringify(hostName)}`)
      buffer.append(deviceId, message)
    },
  }
  return {
    api,
    telemetry: (hostName) => buffers.get(hostName.toLowerCase()),
    isHub: (hostName) => hubs.has(hostName.toLowerCase()),
  }
}

function safeDecode(text: string): Uint8Array[] {
  try {
    return decodeCertificateText(text)
  } catch {
    // A stored certificate that does not decode trusts nothing; the engine refused it at write.
    return []
  }
}
