/**
 * Editing a device's desired properties from the page: a twin PATCH on the hub's service API
 * (`PATCH /twins/{deviceId}`, as `azure-iothub`'s Registry.updateTwin sends it), signed in the page
 * with the hub connection string the user types in (`iothubowner`, printed by `provisio serve`).
 *
 * The credential is typed in like the group key: it is never published by the server, never put
 * in a URL and never stored; the token the page signs lives one hour. The request goes to the
 * server the page talks to (host and port of the form) with the hub named by the token's
 * resource, so for the page served by `provisio serve` it is same-origin and needs no CORS.
 */
import { buildSasToken, parseHubConnectionString } from '@provisio/protocol'

/** The api-version azure-iothub sends on twin calls. */
export const TWIN_API_VERSION = '2021-04-12'
/** Largest patch the page sends (the hub's own limit on a twin's desired section is 32 KiB). */
export const MAX_PATCH_BYTES = 32 * 1024
/** Life of the token the page signs, s. */
const TOKEN_SECONDS = 3600

export type FetchForEdit = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string },
) => Promise<{ ok: boolean; status: number; text(): Promise<string> }>

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
export class DesiredEditError extends Error {
  override readonly name = 'DesiredEditError'
  constructor(
    readonly field: 'connectionString' | 'patch' | 'hub',
    message: string,
  ) {
    super(message)
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
  let cs: ReturnType<typeof parseHubConnectionString>
  try {
    cs = parseHubConnectionString(edit.connectionString.trim())
  } catch (error) {
    throw new DesiredEditError('connectionString', `the hub connection string is not valid: ${(error as Error).message}`)
  }
  const token = buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt: edit.nowSeconds + TOKEN_SECONDS })
  const url = `https://${edit.host}:${edit.port}/twins/${encodeURIComponent(edit.deviceId)}?api-version=${TWIN_API_VERSION}`
  const res = await fetchImpl(url, {
    method: 'PATCH',
    headers: { authorization: token, 'content-type': 'application/json', 'if-match': '*' },
    body: JSON.stringify({ properties: { desired: patch } }),
  })
  const text = await res.text()
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
