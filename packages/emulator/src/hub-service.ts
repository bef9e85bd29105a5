/**
 * Calls on the hub's service API from the page (twin PATCH, direct methods), signed in the page
 * with the hub connection string the user types in (`iothubowner`, printed by `provisio serve`).
 *
 * The credential is typed in like the group key: it is never published by the server, never put
 * in a URL and never stored; the token the page signs lives one hour. The request goes to the
 * server the page talks to (host and port of the form) with the hub named by the token's
 * resource, so for the page served by `provisio serve` it is same-origin and needs no CORS.
 */
import { buildSasToken, parseHubConnectionString } from '@provisio/protocol'

/** The api-version azure-iothub sends on twin and method calls. */
export const SERVICE_API_VERSION = '2021-04-12'
/** Life of the token the page signs, s. */
const TOKEN_SECONDS = 3600

export type FetchForHub = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string },
) => Promise<{ ok: boolean; status: number; text(): Promise<string> }>

/** Thrown for input the page can name the fault of; `field` is the input (or `hub` for the hub's refusal). */
export class HubServiceError extends Error {
  override readonly name: string = 'HubServiceError'
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message)
  }
}

/** One signed call: the connection string, where the server is, and the request. */
export interface HubServiceRequest {
  readonly connectionString: string
  /** Where the hub's service API is reached: the form's host and port. */
  readonly host: string
  readonly port: number
  readonly nowSeconds: number
  readonly method: string
  /** The path below the server, without the api-version (added here). */
  readonly path: string
  readonly headers?: Readonly<Record<string, string>>
  readonly body: string
}

/** Sends the request with a SAS signed by the connection string's policy; resolves with the hub's status and body text. Call after `ready()` (WebAssembly HMAC). */
export async function hubServiceRequest(fetchImpl: FetchForHub, r: HubServiceRequest): Promise<{ ok: boolean; status: number; text: string }> {
  let cs: ReturnType<typeof parseHubConnectionString>
  try {
    cs = parseHubConnectionString(r.connectionString.trim())
  } catch (error) {
    throw new HubServiceError('connectionString', `the hub connection string is not valid: ${(error as Error).message}`)
  }
  const token = buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt: r.nowSeconds + TOKEN_SECONDS })
  const res = await fetchImpl(`https://${r.host}:${r.port}${r.path}?api-version=${SERVICE_API_VERSION}`, {
    method: r.method,
    headers: { authorization: token, 'content-type': 'application/json', ...r.headers },
    body: r.body,
  })
  return { ok: res.ok, status: res.status, text: await res.text() }
}
