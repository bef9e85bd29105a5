/**
 * The default Allocator: @provisio/allocation's `allocate` (hashed with weights and
 * applyAllocationPolicy, geoLatency over the instance's latency table, static, custom webhook),
 * fed from the instance configuration and the matched enrollment. Its ProvisioErrors
 * (NO_HUB_ASSIGNABLE 400208, CUSTOM_ALLOCATION_FAILED 400207) become failed verdicts.
 */
import { allocate, explainAllocation, type AllocationExplanation, type AllocationInput, type AllocationPorts, type GeoLatencyConfig } from '@provisio/allocation'
import { isProvisioError } from '@provisio/protocol'
import type { AllocationCall, AllocationVerdict, Allocator } from './allocation-port.js'
import type { InstanceConfig } from './instances.js'

/** geoLatency configuration from the instance: hub regions from `linkedHubs[].location`. */
function geoConfig(instance: InstanceConfig): GeoLatencyConfig {
  const hubRegions: Record<string, string> = {}
  for (const hub of instance.linkedHubs) if (hub.location !== undefined) hubRegions[hub.hostName] = hub.location
  return { hubRegions, latencyMs: instance.geoLatency?.latencyMs ?? {} }
}

/** The device's region: a `region` member of its payload (§1.2), else the instance default. */
function deviceRegion(call: AllocationCall): string | undefined {
  const region = call.runtime.payload?.['region']
  return typeof region === 'string' ? region : call.instance.geoLatency?.defaultDeviceRegion
}

/** The allocation package's input for one call. */
function allocationInput(call: AllocationCall): AllocationInput {
  const e = call.enrollment.value
  return {
    policy: call.policy,
    registrationId: call.runtime.registrationId,
    linkedHubs: call.linkedHubs,
    ...(e.iotHubs !== undefined ? { iotHubs: e.iotHubs } : {}),
    ...(e.iotHubHostName !== undefined ? { iotHubHostName: e.iotHubHostName } : {}),
    ...(call.runtime.currentIotHubHostName !== undefined ? { currentHub: call.runtime.currentIotHubHostName } : {}),
    ...(call.runtime.currentDeviceId !== undefined ? { currentDeviceId: call.runtime.currentDeviceId } : {}),
    ...(e.initialTwin !== undefined ? { initialTwin: e.initialTwin } : {}),
    ...(call.policy === 'geoLatency' ? { geo: geoConfig(call.instance) } : {}),
    ...(call.policy === 'geoLatency' && deviceRegion(call) !== undefined ? { deviceRegion: deviceRegion(call)! } : {}),
    ...(call.policy === 'custom' && e.customAllocationDefinition !== undefined
      ? {
          custom: {
            definition: e.customAllocationDefinition,
            enrollment: call.enrollment.kind === 'individual' ? { individualEnrollment: call.enrollment.value } : { enrollmentGroup: call.enrollment.value },
            runtime: {
              ...(call.runtime.x509 !== undefined ? { x509: call.runtime.x509 } : {}),
              ...(call.runtime.symmetricKey !== undefined ? { symmetricKey: call.runtime.symmetricKey } : {}),
              ...(call.runtime.tpm !== undefined ? { tpm: call.runtime.tpm } : {}),
              ...(call.runtime.payload !== undefined ? { payload: call.runtime.payload } : {}),
            },
          },
        }
      : {}),
  }
}

/** Ports of the allocation package: the engine's Fetch with its timeout, or the fault-injected status. */
function allocationPorts(call: AllocationCall, webhookTimeoutMs: number): AllocationPorts {
  const timeoutMs = call.instance.webhookTimeoutMs ?? webhookTimeoutMs
  const fetch = call.fetch
  return {
    timeoutMs,
    ...(call.forcedWebhookStatus !== undefined
      ? // Fault injection: the webhook "answers" the given status without being called.
        { fetch: async () => ({ status: call.forcedWebhookStatus!, text: async () => '' }) }
      : fetch !== undefined
        ? { fetch: (url, init) => fetch(url, { method: init.method, headers: init.headers, body: init.body, timeoutMs }) }
        : {}),
  }
}

/** The engine's default allocator. */
export function defaultAllocator(webhookTimeoutMs: number): Allocator {
  return async (call: AllocationCall): Promise<AllocationVerdict> => {
    try {
      const result = await allocate(allocationInput(call), allocationPorts(call, webhookTimeoutMs))
      return {
        ok: true,
        hostName: result.hostName,
        // Only a webhook's twin is news here: the engine applies the enrollment's own twin itself.
        ...(result.initialTwinSource === 'webhook' && result.initialTwin !== undefined ? { initialTwin: result.initialTwin } : {}),
        ...(result.payload !== undefined ? { payload: result.payload } : {}),
      }
    } catch (error) {
      if (isProvisioError(error) && (error.code === 'NO_HUB_ASSIGNABLE' || error.code === 'CUSTOM_ALLOCATION_FAILED')) {
        return { ok: false, code: error.code, reason: error.reason, errorMessage: error.deviceMessage ?? error.reason }
      }
      throw error
    }
  }
}

/** Dry run of the default allocation (@provisio/allocation explainAllocation): where and why. */
export function explainDefaultAllocation(call: AllocationCall, webhookTimeoutMs: number): Promise<AllocationExplanation> {
  return explainAllocation(allocationInput(call), allocationPorts(call, webhookTimeoutMs))
}
