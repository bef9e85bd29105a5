/**
 * The registry REST API (protocol HubRegistryApi) over the hubs a server embeds. Hub service
 * tokens are checked against the hub's shared access policies (`sr` = the hub host name, matched
 * by path segment; `skn` = the policy), whose rights must grant what the route needs (protocol
 * access.ts: the policies IoT Hub creates, and which right includes which).
 */
import { ProvisioError, grants, parseSasToken, rightMissing, verifySasToken, wrapUnknown } from '@provisio/protocol'
import type { BulkDeviceOutcome, DeviceIdentity, DeviceTwin, HubPermission, HubRegistryApi, ModuleIdentity, ModuleTwin } from '@provisio/protocol'
import type { HubDirectory } from './directory.js'
import type { EmbeddedHub } from './hub.js'
import type { CloudToDevice } from './c2d.js'
import type { DirectMethods } from './methods.js'
import type { HubTelemetryReader } from './device-api.js'

/** A hub shared access policy (`iothubowner`, …): its name, keys and rights. */
export interface HubAccessPolicy {
  readonly name: string
  readonly primaryKey: string
  readonly secondaryKey: string
  readonly rights: readonly HubPermission[]
}

export function createHubRegistryApi(
  hubs: HubDirectory,
  policiesOf: (hubHostName: string) => readonly HubAccessPolicy[],
  clock: { now(): number },
  telemetryOf: (hubHostName: string) => HubTelemetryReader | undefined = () => undefined,
  /** Direct method calls in flight; without it, method calls are answered SERVICE_UNAVAILABLE. */
  methods?: DirectMethods,
  /** Cloud-to-device queues; without it, purge is answered SERVICE_UNAVAILABLE. */
  c2d?: CloudToDevice,
): HubRegistryApi {
  const hubNamed = (name: string): EmbeddedHub => hubs.get(name)
  const missing = (hub: EmbeddedHub, deviceId: string) =>
    new ProvisioError('NOT_FOUND', `device ${JSON.stringify(deviceId.slice(0, 130))} does not exist on hub ${hub.hostName}`, {
      deviceMessage: `Device ${deviceId.slice(0, 130)} not found.`,
    })

  /** A missing module: IoT Hub says ModuleNotFound, or DeviceNotFound when the device is missing too. */
  const moduleMissing = async (hub: EmbeddedHub, deviceId: string, moduleId: string) => {
    if ((await hub.getDevice(deviceId)) === undefined) return missing(hub, deviceId)
    const text = `Module ${moduleId.slice(0, 130)} of device ${deviceId.slice(0, 130)} not found.`
    return new ProvisioError('NOT_FOUND', `module ${JSON.stringify(moduleId.slice(0, 130))} of device ${JSON.stringify(deviceId.slice(0, 130))} does not exist on hub ${hub.hostName}`, {
      deviceMessage: text,
      info: { notFound: 'module' },
    })
  }

  return {
    authorizeHub(token: string, permission: HubPermission): string {
      const parsed = parseSasToken(token)
      const host = parsed.resourceDecoded.split('/')[0]!
      const hub = hubs.find(host)
      if (hub === undefined) throw new ProvisioError('SAS_WRONG_RESOURCE', `token resource ${JSON.stringify(host.slice(0, 100))} names no hub embedded here`)
      const policy = policiesOf(hub.hostName).find((p) => p.name.toLowerCase() === (parsed.skn ?? '').toLowerCase())
      if (policy === undefined) {
        throw new ProvisioError('SAS_WRONG_KEY_NAME', `hub ${hub.hostName} has no shared access policy ${JSON.stringify((parsed.skn ?? '').slice(0, 64))}`)
      }
      const verdict = verifySasToken(parsed, {
        keys: [policy.primaryKey, policy.secondaryKey],
        expectedResource: hub.hostName,
        resourceMatch: 'segmentPrefix',
        keyName: policy.name,
        nowSeconds: Math.floor(clock.now() / 1000),
      })
      if (!verdict.ok) throw new ProvisioError(verdict.error.code, `policy ${policy.name} of hub ${hub.hostName}: ${verdict.error.reason}`, { cause: verdict.error })
      if (!grants(policy.rights, permission)) throw rightMissing(`hub ${hub.hostName}`, policy.name, permission)
      return hub.hostName
    },
    createDevice: (hub, spec) => hubNamed(hub).createOrUpdateDevice(spec, { ifNoneMatch: true }),
    updateDevice: (hub, spec, ifMatch) => hubNamed(hub).createOrUpdateDevice(spec, { ifMatch }),
    async getDevice(hub, deviceId): Promise<DeviceIdentity> {
      const h = hubNamed(hub)
      const device = await h.getDevice(deviceId)
      if (device === undefined) throw missing(h, deviceId)
      return device
    },
    async deleteDevice(hub, deviceId, ifMatch): Promise<void> {
      const h = hubNamed(hub)
      if (!(await h.deleteDevice(deviceId, ifMatch === undefined ? {} : { ifMatch }))) throw missing(h, deviceId)
      // A device created again under the same id starts with no telemetry and an empty queue.
      await telemetryOf(h.hostName)?.clear(deviceId)
      await c2d?.deviceDeleted(h.hostName, deviceId)
    },
    listDevices: (hub, top) => hubNamed(hub).listDevices({ limit: top }),
    async bulkDevices(hub, operations) {
      const h = hubNamed(hub)
      const outcomes: BulkDeviceOutcome[] = []
      for (const op of operations) {
        const deviceId = op.spec.deviceId
        try {
          if (op.mode === 'create') await h.createOrUpdateDevice(op.spec, { ifNoneMatch: true })
          else if (op.mode === 'update' || op.mode === 'updateIfMatchETag') await h.createOrUpdateDevice(op.spec, { ifMatch: op.mode === 'update' ? '*' : op.eTag! })
          else if (!(await h.deleteDevice(deviceId, op.mode === 'delete' ? {} : { ifMatch: op.eTag! }))) throw missing(h, deviceId)
          else await telemetryOf(h.hostName)?.clear(deviceId)
          outcomes.push({ deviceId })
        } catch (error) {
          outcomes.push({ deviceId, error: wrapUnknown(error) })
        }
      }
      return outcomes
    },
    async getTwin(hub, deviceId): Promise<DeviceTwin> {
      const h = hubNamed(hub)
      const twin = await h.getTwin(deviceId)
      if (twin === undefined) throw missing(h, deviceId)
      return twin
    },
    async readTelemetry(hub, deviceId, options) {
      const h = hubNamed(hub)
      const device = await h.getDevice(deviceId)
      if (device === undefined) throw missing(h, deviceId)
      const page = await telemetryOf(h.hostName)?.read(device.deviceId, options)
      return page ?? { deviceId: device.deviceId, messages: [], dropped: 0, lastSequenceNumber: 0 }
    },
    async invokeMethod(hub, deviceId, call, abandoned) {
      const h = hubNamed(hub)
      const device = await h.getDevice(deviceId)
      if (device === undefined) throw missing(h, deviceId)
      if (methods === undefined) throw new ProvisioError('SERVICE_UNAVAILABLE', `direct methods are not served by this server (hub ${h.hostName})`)
      return methods.invoke(h.hostName, device.deviceId, call, abandoned)
    },
    async purgeCloudToDeviceQueue(hub, deviceId) {
      const h = hubNamed(hub)
      const device = await h.getDevice(deviceId)
      if (device === undefined) throw missing(h, deviceId)
      if (c2d === undefined) throw new ProvisioError('SERVICE_UNAVAILABLE', `cloud-to-device messages are not served by this server (hub ${h.hostName})`)
      const totalMessagesPurged = await c2d.purge(h.hostName, device.deviceId)
      return { deviceId: device.deviceId, moduleId: null, totalMessagesPurged }
    },
    createModule: (hub, spec) => hubNamed(hub).createOrUpdateModule(spec, { ifNoneMatch: true }),
    updateModule: (hub, spec, ifMatch) => hubNamed(hub).createOrUpdateModule(spec, { ifMatch }),
    async getModule(hub, deviceId, moduleId): Promise<ModuleIdentity> {
      const h = hubNamed(hub)
      const module = await h.getModule(deviceId, moduleId)
      if (module === undefined) throw await moduleMissing(h, deviceId, moduleId)
      return module
    },
    async listModules(hub, deviceId): Promise<ModuleIdentity[]> {
      const h = hubNamed(hub)
      const modules = await h.listModules(deviceId)
      if (modules === undefined) throw missing(h, deviceId)
      return modules
    },
    async deleteModule(hub, deviceId, moduleId, ifMatch): Promise<void> {
      const h = hubNamed(hub)
      if (!(await h.deleteModule(deviceId, moduleId, ifMatch === undefined ? {} : { ifMatch }))) throw await moduleMissing(h, deviceId, moduleId)
    },
    async getModuleTwin(hub, deviceId, moduleId): Promise<ModuleTwin> {
      const h = hubNamed(hub)
      const twin = await h.getModuleTwin(deviceId, moduleId)
      if (twin === undefined) throw await moduleMissing(h, deviceId, moduleId)
      return twin
    },
    updateModuleTwin: (hub, deviceId, moduleId, patch, options) =>
      hubNamed(hub).updateModuleTwin(deviceId, moduleId, patch, { replace: options.replace, ...(options.ifMatch === undefined ? {} : { ifMatch: options.ifMatch }) }),
    updateTwin: (hub, deviceId, patch, options) =>
      hubNamed(hub).updateTwin(deviceId, patch, { replace: options.replace, ...(options.ifMatch === undefined ? {} : { ifMatch: options.ifMatch }) }),
  }
}
