/**
 * DPS instances hosted by one engine: each is an ID scope with its linked hubs, default
 * allocation policy and service access policies (docs/protocol.md §0, §2.3, §7; docs/architecture.md §7).
 */
import { DPS_RIGHTS, ProvisioError } from '@provisio/protocol'
import type { AllocationPolicy, ServicePermission } from '@provisio/protocol'
import type { FaultProfile } from './faults.js'

/** Permissions of a service access policy (docs/protocol.md §2.3, D-access; protocol api.ts). */
export type { ServicePermission }

/** All permissions, in the order Azure lists them (protocol access.ts). */
export const SERVICE_PERMISSIONS: readonly ServicePermission[] = DPS_RIGHTS

/** A shared access policy of the service API (`provisioningserviceowner` by default in Azure). */
export interface ServiceAccessPolicy {
  /** `skn` of the tokens it signs. */
  readonly name: string
  /** Base64 keys. */
  readonly primaryKey: string
  readonly secondaryKey: string
  readonly permissions: readonly ServicePermission[]
}

/** A hub linked to a DPS instance (connection string as Azure takes it, docs/architecture.md §7). */
export interface LinkedHub {
  readonly hostName: string
  /** `HostName=…;SharedAccessKeyName=iothubowner;SharedAccessKey=…` */
  readonly connectionString: string
  /** Weight for hashed allocation, 1-1000 (default 1). */
  readonly allocationWeight?: number
  /** Whether instance-level allocation may choose this hub (default true). */
  readonly applyAllocationPolicy?: boolean
  /** Region of the hub, for geoLatency allocation. */
  readonly location?: string
}

/** Configuration of one DPS instance. */
export interface InstanceConfig {
  readonly idScope: string
  /** Host name of the service endpoint (`{dpsName}.azure-devices-provisioning.net`): the `sr` of service tokens. */
  readonly serviceHostName: string
  readonly linkedHubs: readonly LinkedHub[]
  /** Policy used when an enrollment sets none (default `hashed`). */
  readonly allocationPolicy?: AllocationPolicy
  readonly accessPolicies: readonly ServiceAccessPolicy[]
  /**
   * geoLatency: the region the DPS instance sees devices from (a device's region can also come
   * from its payload member `region`), and the latency table region → region → ms.
   */
  readonly geoLatency?: {
    readonly defaultDeviceRegion?: string
    readonly latencyMs?: Readonly<Record<string, Readonly<Record<string, number>>>>
  }
  /** Custom allocation webhook timeout (default 10 s). */
  readonly webhookTimeoutMs?: number
  /** Fault-injection profile for testing device retry logic. */
  readonly faults?: FaultProfile
}

const ALLOCATION_POLICIES: readonly AllocationPolicy[] = ['hashed', 'geoLatency', 'static', 'custom']

/**
 * Checks an instance configuration and returns a frozen, normalised copy.
 * @throws ProvisioError VALIDATION_FAILED naming the field and rule.
 */
export function normaliseInstance(config: InstanceConfig): InstanceConfig {
  const bad = (reason: string): never => {
    throw new ProvisioError('VALIDATION_FAILED', `instance ${JSON.stringify(config.idScope)}: ${reason}`)
  }
  if (typeof config.idScope !== 'string' || config.idScope.length === 0 || config.idScope.length > 64) {
    bad('idScope must be a non-empty string of at most 64 characters')
  }
  if (typeof config.serviceHostName !== 'string' || config.serviceHostName.length === 0) bad('serviceHostName is required')
  if (config.allocationPolicy !== undefined && !ALLOCATION_POLICIES.includes(config.allocationPolicy)) {
    bad(`allocationPolicy must be one of ${ALLOCATION_POLICIES.join(', ')}`)
  }
  // D-limits: at most 50 linked hubs per instance (docs/protocol.md §9).
  if (config.linkedHubs.length > 50) bad(`at most 50 linked hubs, got ${config.linkedHubs.length}`)
  const seen = new Set<string>()
  const hubs = config.linkedHubs.map((hub, i) => {
    if (typeof hub.hostName !== 'string' || hub.hostName.length === 0) bad(`linkedHubs[${i}].hostName is required`)
    const key = hub.hostName.toLowerCase()
    if (seen.has(key)) bad(`linkedHubs[${i}].hostName ${hub.hostName} is linked twice`)
    seen.add(key)
    if (typeof hub.connectionString !== 'string' || !/(^|;)\s*HostName=/i.test(hub.connectionString)) {
      bad(`linkedHubs[${i}].connectionString must be an IoT hub connection string with HostName=…`)
    }
    const weight = hub.allocationWeight ?? 1
    if (!Number.isInteger(weight) || weight < 1 || weight > 1000) {
      bad(`linkedHubs[${i}].allocationWeight must be an integer from 1 to 1000, got ${String(hub.allocationWeight)}`)
    }
    return Object.freeze({ ...hub, allocationWeight: weight, applyAllocationPolicy: hub.applyAllocationPolicy ?? true })
  })
  const names = new Set<string>()
  const policies = config.accessPolicies.map((p, i) => {
    if (typeof p.name !== 'string' || p.name.length === 0) bad(`accessPolicies[${i}].name is required`)
    if (names.has(p.name)) bad(`accessPolicies[${i}].name ${p.name} is used twice`)
    names.add(p.name)
    if (typeof p.primaryKey !== 'string' || p.primaryKey.length === 0) bad(`accessPolicies[${i}].primaryKey is required`)
    if (typeof p.secondaryKey !== 'string' || p.secondaryKey.length === 0) bad(`accessPolicies[${i}].secondaryKey is required`)
    for (const perm of p.permissions) {
      if (!SERVICE_PERMISSIONS.includes(perm)) bad(`accessPolicies[${i}].permissions has unknown ${JSON.stringify(perm)}`)
    }
    return Object.freeze({ ...p, permissions: Object.freeze([...p.permissions]) })
  })
  return Object.freeze({
    ...config,
    allocationPolicy: config.allocationPolicy ?? 'hashed',
    linkedHubs: Object.freeze(hubs),
    accessPolicies: Object.freeze(policies),
  })
}
