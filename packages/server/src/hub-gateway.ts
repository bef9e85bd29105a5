/**
 * The engine's HubGateway port: hubs embedded in this process are written directly (docs/architecture.md
 * §7: the in-process shortcut); every other linked hub — a real Azure IoT Hub, or another
 * Provisio — through `remote`, the IoT Hub registry REST API (@provisio/hub createRestHubGateway).
 */
import type { HubDeviceSpec, HubGateway, HubTarget, Twin } from '@provisio/engine'
import { toAuthentication, type EmbeddedHub } from '@provisio/hub'
import { ProvisioError } from '@provisio/protocol'

export function createLocalHubGateway(hubs: ReadonlyMap<string, EmbeddedHub>, remote?: HubGateway): HubGateway {
  const hubOf = (target: HubTarget): EmbeddedHub => {
    const hub = hubs.get(target.hostName.toLowerCase())
    if (hub === undefined) throw new ProvisioError('HUB_UNAUTHORIZED', `hub ${target.hostName} is not embedded in this server and no remote gateway is configured`)
    return hub
  }
  const local: HubGateway = {
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
  const route = (target: HubTarget): HubGateway => (remote !== undefined && !hubs.has(target.hostName.toLowerCase()) ? remote : local)
  return {
    createOrUpdateDevice: (spec) => route(spec.hub).createOrUpdateDevice(spec),
    getTwin: (args) => route(args.hub).getTwin(args),
    deleteDevice: (args) => route(args.hub).deleteDevice(args),
  }
}
