/**
 * Editing a device's desired properties from the page: a twin PATCH on the hub's service API
 * (`PATCH /twins/{deviceId}`, as `azure-iothub`'s Registry.updateTwin sends it), signed in the page
 * with the hub connection string the user types in (hub-service.ts says how it is handled).
 */
import { HubServiceError, SERVICE_API_VERSION, hubServiceRequest, type FetchForHub } from './hub-service.js'

/** The api-version azure-iothub sends on twin calls. */
export const TWIN_API_VERSION = SERVICE_API_VERSION
/** Largest patch the page sends (the hub's own limit on a twin's desired section is 32 KiB). */
export const MAX_PATCH_BYTES = 32 * 1024

export type FetchForEdit = FetchForHub

export interface DesiredEdit {
  readonly connectionString: string
  readonly deviceId: string
  /** The patch as typed: a JSON object (null members delete). */
  readonly patchText: string
  /** Where the hub's service API is reached: the form's host and port. */
  readonly host: string
  readonly port: number
  readonly nowSeconds: number
}

/** Thrown for input the page can name the fault of (connection string, patch); `field` is the input. */
export class DesiredEditError extends HubServiceError {
  override readonly name = 'DesiredEditError'
  constructor(field: 'connectionString' | 'patch' | 'hub', message: string) {
    super(field, message)
  }
}

/** The patch object, or why not. */
export function parsePatch(text: string): Record<string, unknown> {
  if (new TextEncoder().encode(text).length > MAX_PATCH_BYTES) throw new DesiredEditError('patch', `the patch is larger than ${MAX_PATCH_BYTES} bytes`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new DesiredEditError('patch', `the patch is not JSON: ${(error as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DesiredEditError('patch', 'the patch must be a JSON object of desired properties, e.g. {"telemetryIntervalSeconds": 5}')
  if (Object.keys(value).some((k) => k.startsWith('$'))) throw new DesiredEditError('patch', 'names starting with $ are the hub\'s own ($version, $metadata)')
  return value as Record<string, unknown>
}

/** Sends the patch; resolves with the desired version the hub answered with. Call after `ready()` (WebAssembly HMAC). */
export async function patchDesired(fetchImpl: FetchForEdit, edit: DesiredEdit): Promise<{ version: number | undefined }> {
  const patch = parsePatch(edit.patchText)
  const res = await hubServiceRequest(fetchImpl, {
    ...edit,
    method: 'PATCH',
    path: `/twins/${encodeURIComponent(edit.deviceId)}`,
    headers: { 'if-match': '*' },
    body: JSON.stringify({ properties: { desired: patch } }),
  })
  const text = res.text
  if (!res.ok) throw new DesiredEditError('hub', `the hub answered ${res.status}: ${text.slice(0, 300)}`)
  let version: number | undefined
  try {
    const body = JSON.parse(text) as { properties?: { desired?: { $version?: unknown } } }
    const v = body.properties?.desired?.$version
    if (typeof v === 'number') version = v
  } catch {
    // A 2xx without a twin body still applied the patch.
  }
  return { version }
}
