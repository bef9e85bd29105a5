/**
 * The engine's HubGateway port: hubs embedded in this process are written directly
 * (docs/architecture.md §7: the in-process shortcut, engine → hub → hub store); every other linked
 * hub — a real Azure IoT Hub, or another Provisio — through `remote`, the IoT Hub registry REST API
 * ({@link createRestHubGateway}).
 */
import type { HubDeviceSpec, HubGateway, HubTarget, Twin } from '@provisio/protocol'
import type { HubDirectory } from './directory.js'
import type { EmbeddedHub } from './hub.js'
import { toAuthentication } from './rest-gateway.js'

export function createLocalHubGateway(hubs: HubDirectory, remote?: HubGateway): HubGateway {
  const hubOf = (target: HubTarget): EmbeddedHub => hubs.get(target.hostName, 'HUB_UNAUTHORIZED')
  const local: HubGateway = {
    async createOrUpdateDevice(spec: HubDeviceSpec): Promise<void> {
      // A twin travels with the identity, in the same write: the enrollment's initial twin on
      // creation or reset, the previous hub's twin on migration (§7 ReprovisionPolicy).
      const twin = spec.migratedTwin ?? spec.initialTwin
      const desired = twin?.properties?.desired as Record<string, unknown> | undefined
      await hubOf(spec.hub).createOrUpdateDevice(
        { deviceId: spec.deviceId, authentication: toAuthentication(spec), capabilities: { iotEdge: spec.iotEdge } },
        {
          ...(spec.expectNew === true ? { expectNew: true } : {}),
          ...(twin === undefined
            ? {}
            : {
                twin: {
                  ...(twin.tags === undefined ? {} : { tags: twin.tags as Record<string, unknown> }),
                  ...(desired === undefined ? {} : { properties: { desired } }),
                },
                replaceTwin: true,
              }),
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
  const route = (target: HubTarget): HubGateway => (remote !== undefined && !hubs.has(target.hostName) ? remote : local)
  return {
    createOrUpdateDevice: (spec) => route(spec.hub).createOrUpdateDevice(spec),
    getTwin: (args) => route(args.hub).getTwin(args),
    deleteDevice: (args) => route(args.hub).deleteDevice(args),
  }
}
