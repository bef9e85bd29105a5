/**
 * Default Allocator. INTERIM: @provisio/allocation (issue 4 item 5, another engineer) is not
 * published yet; until it is, this file holds a small implementation of the four policies with the
 * DPS rules the engine depends on, so the engine and its end-to-end suite run. When the package
 * lands, `defaultAllocator` delegates to it and the interim code goes.
 *
 * Rules (dps-protocol.md §7, §8): candidates are the enrollment's `iotHubs` when set, else the
 * linked hubs with applyAllocationPolicy; hashed is deterministic per registrationId and
 * proportional to allocationWeight; static takes `iotHubHostName` or the single `iotHubs`
 * entry; geoLatency takes the lowest latency from the device's region, ties hashed; custom POSTs
 * the AllocationRequest and requires a linked hub in the answer (400207 otherwise).
 */
import { validateAllocationResponse } from '@provisio/protocol'
import type { AllocationRequest, AllocationResponse, JsonObject } from '@provisio/protocol'
import type { AllocationCall, AllocationVerdict, Allocator } from './allocation-port.js'
import type { LinkedHub } from './instances.js'

/** FNV-1a 32-bit over UTF-16 code units: stable across runtimes, good enough spread for weights. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  // final avalanche (murmur3 fmix32) so that similar ids spread
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function candidates(call: AllocationCall): LinkedHub[] {
  const e = call.enrollment.value
  if (e.iotHubs !== undefined && e.iotHubs.length > 0) {
    const wanted = new Set(e.iotHubs.map((h) => h.toLowerCase()))
    return call.linkedHubs.filter((h) => wanted.has(h.hostName.toLowerCase()))
  }
  return call.linkedHubs.filter((h) => h.applyAllocationPolicy !== false)
}

function hashed(registrationId: string, hubs: readonly LinkedHub[]): LinkedHub | undefined {
  if (hubs.length === 0) return undefined
  const sorted = [...hubs].sort((a, b) => (a.hostName.toLowerCase() < b.hostName.toLowerCase() ? -1 : 1))
  const total = sorted.reduce((sum, h) => sum + (h.allocationWeight ?? 1), 0)
  let point = fnv1a(registrationId.toLowerCase()) % total
  for (const hub of sorted) {
    point -= hub.allocationWeight ?? 1
    if (point < 0) return hub
  }
  return sorted[sorted.length - 1]
}

function noHub(reason: string): AllocationVerdict {
  return { ok: false, code: 'NO_HUB_ASSIGNABLE', reason, errorMessage: 'No IoT hub could be assigned.' }
}

function customFailed(reason: string, errorMessage: string): AllocationVerdict {
  return { ok: false, code: 'CUSTOM_ALLOCATION_FAILED', reason, errorMessage }
}

async function custom(call: AllocationCall, timeoutMs: number): Promise<AllocationVerdict> {
  const e = call.enrollment.value
  const def = e.customAllocationDefinition
  if (!def) return customFailed(`${call.enrollment.kind} enrollment has allocationPolicy custom but no customAllocationDefinition`, 'Custom allocation failed: no webhook configured.')
  if (call.forcedWebhookStatus !== undefined) {
    return customFailed(`fault injection: webhook treated as answering ${call.forcedWebhookStatus}`, `Custom allocation failed with status code: ${call.forcedWebhookStatus}`)
  }
  if (!call.fetch) return customFailed('no Fetch port was given to the engine, so the webhook cannot be called', 'Custom allocation failed.')
  const linkedHubs = call.linkedHubs.map((h) => h.hostName)
  const body: AllocationRequest = {
    ...(call.enrollment.kind === 'individual' ? { individualEnrollment: call.enrollment.value } : { enrollmentGroup: call.enrollment.value }),
    deviceRuntimeContext: call.runtime,
    linkedHubs,
  }
  let status: number
  let text: string
  try {
    const response = await call.fetch(def.webhookUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8', accept: 'application/json' },
      body: JSON.stringify(body),
      timeoutMs: call.instance.webhookTimeoutMs ?? timeoutMs,
    })
    status = response.status
    text = await response.text()
  } catch (error) {
    return customFailed(`webhook ${redact(def.webhookUrl)} could not be reached: ${error instanceof Error ? error.message : String(error)}`, 'Custom allocation failed: the webhook could not be reached.')
  }
  if (status < 200 || status > 299) {
    return customFailed(`webhook ${redact(def.webhookUrl)} answered HTTP ${status}`, `Custom allocation failed with status code: ${status}`)
  }
  let answer: AllocationResponse
  try {
    answer = validateAllocationResponse(JSON.parse(text) as unknown)
  } catch (error) {
    return customFailed(`webhook ${redact(def.webhookUrl)} answered an invalid AllocationResponse: ${error instanceof Error ? error.message : String(error)}`, 'Custom allocation failed: invalid webhook response.')
  }
  const hub = call.linkedHubs.find((h) => h.hostName.toLowerCase() === answer.iotHubHostName.toLowerCase())
  if (!hub) {
    return customFailed(`webhook chose ${answer.iotHubHostName}, which is not linked (linked: ${linkedHubs.join(', ')})`, 'Custom allocation failed: the chosen IoT hub is not linked.')
  }
  return {
    ok: true,
    hostName: hub.hostName,
    ...(answer.initialTwin !== undefined ? { initialTwin: answer.initialTwin } : {}),
    ...(answer.payload !== undefined ? { payload: answer.payload as JsonObject } : {}),
  }
}

/** Drops the query (Azure Functions keys ride there as `?code=…`). */
function redact(url: string): string {
  const q = url.indexOf('?')
  return q < 0 ? url : url.slice(0, q) + '?…'
}

/** The engine's default allocator. */
export function defaultAllocator(webhookTimeoutMs: number): Allocator {
  return async (call) => {
    const e = call.enrollment.value
    switch (call.policy) {
      case 'custom':
        return custom(call, webhookTimeoutMs)
      case 'static': {
        const name = e.iotHubHostName ?? (e.iotHubs?.length === 1 ? e.iotHubs[0] : undefined)
        if (name === undefined) return noHub('allocationPolicy static needs iotHubHostName or exactly one iotHubs entry')
        const hub = call.linkedHubs.find((h) => h.hostName.toLowerCase() === name.toLowerCase())
        return hub ? { ok: true, hostName: hub.hostName } : noHub(`static hub ${name} is not linked`)
      }
      case 'geoLatency': {
        const hubs = candidates(call)
        if (hubs.length === 0) return noHub('no candidate hub (none linked, or none with applyAllocationPolicy)')
        const payloadRegion = call.runtime.payload?.['region']
        const region = typeof payloadRegion === 'string' ? payloadRegion : call.instance.geoLatency?.defaultDeviceRegion
        const table = region === undefined ? undefined : call.instance.geoLatency?.latencyMs?.[region]
        let best: LinkedHub[] = []
        let bestMs = Infinity
        for (const hub of hubs) {
          const ms = hub.location === undefined ? Infinity : (table?.[hub.location] ?? (hub.location === region ? 0 : Infinity))
          if (ms < bestMs) {
            bestMs = ms
            best = [hub]
          } else if (ms === bestMs) best.push(hub)
        }
        const hub = hashed(call.runtime.registrationId, best)!
        return { ok: true, hostName: hub.hostName }
      }
      case 'hashed':
      default: {
        const hub = hashed(call.runtime.registrationId, candidates(call))
        return hub ? { ok: true, hostName: hub.hostName } : noHub('no candidate hub (none linked, or none with applyAllocationPolicy)')
      }
    }
  }
}
