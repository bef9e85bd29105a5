/**
 * The embedded hubs' device side: the HubDeviceApi the MQTT codec's hub session calls
 * (authentication, twin, reported properties, telemetry) and the per-hub telemetry buffers the
 * registry API reads. The CAs `certificateAuthority` devices may chain to come in as a port.
 *
 * Telemetry goes to a TelemetryStore when one is given (durable: telemetry-store.ts, acknowledged
 * once stored), else into memory per instance (bounded, TelemetryBuffer); identities and twins
 * live in the hub store (SQLite or PostgreSQL), so a device reads the same twin from any instance.
 */
import { ProvisioError, SAS_DEFAULT_CLOCK_SKEW_SECONDS, parseSasToken, type HubDeviceApi } from '@provisio/protocol'
import { authenticateHubDevice } from './device-auth.js'
import type { HubAccessPolicy } from './registry-api.js'
import type { IssuedCertificateTrust } from './issued-auth.js'
import type { HubDirectory } from './directory.js'
import { TelemetryBuffer, type TelemetryLimits } from './telemetry.js'
import { createTelemetrySink, telemetryReaderOf, type TelemetryStore } from './telemetry-store.js'
import type { HubTelemetryPage } from '@provisio/protocol'

/** A hub's telemetry as the registry API reads it (in memory or from a store). */
export interface HubTelemetryReader {
  read(deviceId: string, options?: { after?: number; limit?: number }): HubTelemetryPage | Promise<HubTelemetryPage>
  clear(deviceId: string): void | Promise<void>
}

export interface HubDevices {
  readonly api: HubDeviceApi
  /** The telemetry buffer of a hub (by host name, case-insensitive). */
  telemetry(hostName: string): HubTelemetryReader | undefined
  /** Whether a host name names an embedded hub. */
  isHub(hostName: string): boolean
}

export function createHubDevices(options: {
  readonly hubs: HubDirectory
  readonly clock: { now(): number }
  /** The CA certificates (DER) `certificateAuthority` devices may chain to, read at each X.509 CONNECT. */
  readonly trustedCas: () => Promise<Uint8Array[]>
  /** The CAs issuing device certificates from CSRs, and revocation (docs/protocol.md §1.7). */
  readonly issuedCertificates?: IssuedCertificateTrust
  /** A hub's shared access policies, for devices connecting with a policy token (DeviceConnect). */
  readonly policiesOf?: (hubHostName: string) => readonly HubAccessPolicy[]
  readonly telemetryLimits?: Partial<TelemetryLimits>
  /** Durable telemetry: messages are stored here before they are acknowledged. */
  readonly telemetryStore?: TelemetryStore
  /** Partitions of each hub's telemetry in the store (default 4). */
  readonly telemetryPartitions?: number
}): HubDevices {
  const { hubs, clock, trustedCas } = options
  const buffers = new Map<string, HubTelemetryReader & { append?: TelemetryBuffer['append'] }>()
  const store = options.telemetryStore
  const sink = store === undefined ? undefined : createTelemetrySink(store, { partitions: options.telemetryPartitions ?? 4, clock })
  for (const hub of hubs.values()) buffers.set(hub.hostName.toLowerCase(), store === undefined ? new TelemetryBuffer(clock, options.telemetryLimits) : telemetryReaderOf(store, hub.hostName))
  const hubNamed = (name: string) => hubs.get(name)

  const api: HubDeviceApi = {
    async authenticate(request) {
      const hub = hubNamed(request.hostName)
      const device = await authenticateHubDevice(
        {
          deviceId: request.deviceId,
          ...(request.sasToken === undefined ? {} : { sasToken: request.sasToken }),
          ...(request.clientCertificates === undefined ? {} : { clientCertificates: request.clientCertificates }),
        },
        {
          hostName: hub.hostName,
          nowMs: clock.now(),
          getDevice: (id) => hub.getDevice(id),
          trustedCas,
          policies: () => options.policiesOf?.(hub.hostName) ?? [],
          ...(options.issuedCertificates === undefined ? {} : { issuedCertificates: options.issuedCertificates }),
        },
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
      // Durable: the transport acknowledges once this resolves (stored).
      if (sink !== undefined) return sink(hubs.get(hostName).hostName, deviceId, message)
      buffer.append!(deviceId, message)
      return undefined
    },
  }
  return {
    api,
    telemetry: (hostName) => buffers.get(hostName.toLowerCase()),
    isHub: (hostName) => hubs.has(hostName),
  }
}
