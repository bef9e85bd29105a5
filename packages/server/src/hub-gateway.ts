/**
 * The engine's HubGateway port served by embedded hubs in this process (DESIGN.md "Hubs": the
 * in-process shortcut). Hubs that are not embedded are reached over the IoT Hub registry REST
 * API, which arrives with the hub issue; until then they are refused with the reason.
 */
import type { HubDeviceSpec, HubGateway, HubTarget, Twin } from '@provisio/engine'
import type { DeviceAuthentication, EmbeddedHub } from '@provisio/hub'
import { ProvisioError } from '@provisio/protocol'

export function createLocalHubGateway(hubs: ReadonlyMap<string, EmbeddedHub>): HubGateway {
  const hubOf = (target: HubTarget): EmbeddedHub => {
    const hub = hubs.get(target.hostName.toLowerCase())
    if (hub === undefined) {
      throw new ProvisioError('HUB_UNAUTHORIZED', `hub ${target.hostName} is not embedded in this server and remote hubs are not supported yet`)
    }
    return hub
  }
  return {
    async createOrUpdateDevice(spec: HubDeviceSpec): Promise<void> {
      // A twin travels with the identity, in the same write: the enrollment's initial twin on
      // creation or reset, the previous hub's twin on migration (§7 ReprovisionPolicy).
      const twin = spec.migratedTwin ?? spec.initialTwin
      const desired = twin?.properties?.desired as Record<string, unknown> | undefined
      await hubOf(spec.hub).createOrUpdateDevice(
        { deviceId: spec.deviceId, authentication: toAuthentication(spec), capabilities: { iotEdge: spec.iotEdge } },
        twin === undefined
          ? {}
          : {
              twin: {
                ...(twin.tags === undefined ? {} : { tags: twin.tags as Record<string, unknown> }),
                ...(desired === undefined ? {} : { properties: { desired } }),
              },
              replaceTwin: true,
            },
      )
    },
    async getTwin({ hub, deviceId }): Promise<Twin | undefined> {
      const twin = await hubOf(hub).getTwin(deviceId)
      if (twin === undefined) return undefined
      const { $version: _d, ...desired } = twin.properties.desired
      const { $version: _r, ...reported } = twin.properties.reported
      return { tags: twin.tags, properties: { desired, reported } }
    },
    async deleteDevice({ hub, deviceId }): Promise<void> {
      await hubOf(hub).deleteDevice(deviceId)
    },
  }
}

function toAuthentication(spec: HubDeviceSpec): DeviceAuthentication {
  const auth = spec.auth
  switch (auth.type) {
    case 'sas':
      return { type: 'sas', symmetricKey: { primaryKey: auth.primaryKey, secondaryKey: auth.secondaryKey } }
    case 'selfSigned':
      return { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: auth.thumbprints.primary, secondaryThumbprint: auth.thumbprints.secondary ?? null } }
    case 'certificateAuthority':
      return { type: 'certificateAuthority' }
  }
}
