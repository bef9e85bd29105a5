/**
 * Shared access policies and their rights, as Azure names them (dps-protocol.md §2.3 for DPS,
 * iothub-protocol.md for the hub). The tables here decide which right a route needs and what a
 * policy grants; the engine, the hub and the codecs check them, the server only stores keys.
 *
 * DPS rights: ServiceConfig, EnrollmentRead, EnrollmentWrite, RegistrationStatusRead,
 * RegistrationStatusWrite, DeviceConnect. Hub rights: RegistryRead, RegistryWrite, ServiceConnect,
 * DeviceConnect. As in Azure, a write right includes its read right (the default hub policy
 * `registryReadWrite` is stored with RegistryWrite alone and reads the registry).
 *
 * | hub policy | rights |
 * |---|---|
 * | iothubowner | RegistryWrite, ServiceConnect, DeviceConnect |
 * | service | ServiceConnect |
 * | device | DeviceConnect |
 * | registryRead | RegistryRead |
 * | registryReadWrite | RegistryWrite |
 */
import { ProvisioError } from './errors.js'
import type { ServicePermission } from './api.js'
import type { HubPermission } from './hub.js'

/** Every DPS right, in the order Azure lists them. */
export const DPS_RIGHTS: readonly ServicePermission[] = Object.freeze([
  'ServiceConfig',
  'EnrollmentRead',
  'EnrollmentWrite',
  'RegistrationStatusRead',
  'RegistrationStatusWrite',
  'DeviceConnect',
])

/** Every hub right, in the order Azure lists them. */
export const HUB_RIGHTS: readonly HubPermission[] = Object.freeze(['RegistryRead', 'RegistryWrite', 'ServiceConnect', 'DeviceConnect'])

/** The policy every DPS instance starts with, holding every right. */
export const DPS_OWNER_POLICY = 'provisioningserviceowner'

/** The policies IoT Hub creates with a hub, and their rights. */
export const DEFAULT_HUB_POLICIES: Readonly<Record<string, readonly HubPermission[]>> = Object.freeze({
  iothubowner: Object.freeze(['RegistryWrite', 'ServiceConnect', 'DeviceConnect'] as HubPermission[]),
  service: Object.freeze(['ServiceConnect'] as HubPermission[]),
  device: Object.freeze(['DeviceConnect'] as HubPermission[]),
  registryRead: Object.freeze(['RegistryRead'] as HubPermission[]),
  registryReadWrite: Object.freeze(['RegistryWrite'] as HubPermission[]),
})

/** The right that includes `right` (a read is granted by its write). */
const IMPLIED_BY: Readonly<Record<string, string>> = {
  EnrollmentRead: 'EnrollmentWrite',
  RegistrationStatusRead: 'RegistrationStatusWrite',
  RegistryRead: 'RegistryWrite',
}

/** Whether a policy holding `rights` may do what needs `right`. */
export function grants(rights: readonly string[], right: string): boolean {
  if (rights.includes(right)) return true
  const wider = IMPLIED_BY[right]
  return wider !== undefined && rights.includes(wider)
}

/** The refusal of a policy that lacks a right: 401, as Azure answers. */
export function rightMissing(where: string, policy: string, right: string): ProvisioError {
  return new ProvisioError('SAS_PERMISSION_DENIED', `policy ${policy} of ${where} lacks the right ${right}`)
}

/**
 * Parses a rights list (`EnrollmentRead,EnrollmentWrite`, any case, commas or spaces) against
 * the rights `known` (DPS_RIGHTS or HUB_RIGHTS); returns Azure's spelling, each once.
 * @throws ProvisioError VALIDATION_FAILED naming the unknown right.
 */
export function parseRights<R extends string>(text: string | readonly string[], known: readonly R[]): R[] {
  const parts = typeof text === 'string' ? text.split(/[\s,]+/) : [...text]
  if (parts.length > 32) throw new ProvisioError('VALIDATION_FAILED', `at most 32 rights, got ${parts.length}`)
  const out: R[] = []
  for (const part of parts) {
    if (typeof part !== 'string') throw new ProvisioError('VALIDATION_FAILED', 'rights must be strings')
    if (part === '') continue
    const right = known.find((k) => k.toLowerCase() === part.toLowerCase())
    if (right === undefined) {
      throw new ProvisioError('VALIDATION_FAILED', `unknown right ${JSON.stringify(part.slice(0, 40))}; known: ${known.join(', ')}`)
    }
    if (!out.includes(right)) out.push(right)
  }
  if (out.length === 0) throw new ProvisioError('VALIDATION_FAILED', `a policy needs at least one right of ${known.join(', ')}`)
  return out
}
