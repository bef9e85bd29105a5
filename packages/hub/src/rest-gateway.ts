/**
 * The engine's HubGateway over the IoT Hub registry REST API (api-version 2021-04-12), signed
 * with each linked hub's connection string — the same requests azure-iothub sends, so it works
 * against a real Azure IoT Hub and against our embedded hub alike (docs/architecture.md §7).
 *
 * Every call is idempotent (an operation taken over after a crash repeats them):
 * create is `PUT /devices/{id}` without If-Match, and on 409 (it exists) the same PUT with
 * `If-Match: "*"`; the twin is written with `PUT /twins/{id}` (replace tags and desired);
 * delete treats 404 as done.
 */
import { ProvisioError, buildSasToken, parseHubConnectionString } from '@provisio/protocol'
import type { DeviceAuthentication, HubDeviceSpec, HubGateway, HubTarget, Twin } from '@provisio/protocol'

/** The fetch subset the gateway needs (WHATWG fetch fits). */
export type RegistryFetch = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
) => Promise<{ readonly status: number; text(): Promise<string> }>

export interface RestHubGatewayOptions {
  readonly fetch: RegistryFetch
  readonly clock: { now(): number }
  /** Lifetime of the SAS tokens it signs (default 1 h, like azure-iothub). */
  readonly tokenLifetimeSeconds?: number
  /** Port of the hubs' HTTPS endpoint (default 443; tests point it at a local server). */
  readonly port?: number
}

const API = 'api-version=2021-04-12'

/** One signed registry request with a hub connection string, as azure-iothub sends it. */
async function registryCall(
  options: RestHubGatewayOptions,
  connectionString: string,
  method: string,
  path: string,
  body?: unknown,
  ifMatch?: string,
): Promise<{ status: number; text: string }> {
  const cs = parseHubConnectionString(connectionString)
  const token = buildSasToken({
    resource: cs.hostName,
    key: cs.sharedAccessKey,
    keyName: cs.sharedAccessKeyName,
    expiresAt: Math.floor(options.clock.now() / 1000) + (options.tokenLifetimeSeconds ?? 3600),
  })
  const headers: Record<string, string> = { authorization: token, accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json; charset=utf-8'
  if (ifMatch !== undefined) headers['if-match'] = ifMatch
  const port = options.port === undefined || options.port === 443 ? '' : `:${options.port}`
  const res = await options.fetch(`https://${cs.hostName}${port}${path}${path.includes('?') ? '&' : '?'}${API}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.status, text: await res.text() }
}

/**
 * Checks that a hub connection string holds the rights DPS needs of a linked hub, on the hub
 * itself (a connection string does not say what its key name may do): RegistryRead by
 * `GET /devices?top=1`, RegistryWrite by deleting a device id no one uses with `If-Match: *`
 * (404 when allowed). Works against a real Azure IoT Hub and the embedded hub alike.
 * @throws ProvisioError HUB_UNAUTHORIZED naming the right the key name lacks, or INTERNAL_ERROR
 *   when the hub answers otherwise.
 */
export async function checkLinkedHubRights(connectionString: string, options: RestHubGatewayOptions, probeDeviceId = 'provisio-rights-probe'): Promise<void> {
  const cs = parseHubConnectionString(connectionString)
  const probes: readonly (readonly [right: string, method: string, path: string, ok: readonly number[]])[] = [
    ['RegistryRead', 'GET', '/devices?top=1', [200]],
    ['RegistryWrite', 'DELETE', `/devices/${encodeURIComponent(probeDeviceId)}`, [204, 200, 404]],
  ]
  for (const [right, method, path, ok] of probes) {
    const res = await registryCall(options, connectionString, method, path, undefined, method === 'DELETE' ? '"*"' : undefined).catch((error: unknown) => {
      throw new ProvisioError('INTERNAL_ERROR', `hub ${cs.hostName} could not be reached to check the rights of ${cs.sharedAccessKeyName}: ${String(error)}`)
    })
    if (res.status === 401 || res.status === 403) {
      throw new ProvisioError('HUB_UNAUTHORIZED', `the connection string of hub ${cs.hostName} uses policy ${cs.sharedAccessKeyName}, which lacks ${right}: DPS needs RegistryRead and RegistryWrite of a linked hub (use iothubowner or registryReadWrite)`)
    }
    if (!ok.includes(res.status)) {
      throw new ProvisioError('INTERNAL_ERROR', `hub ${cs.hostName}: checking ${right} with ${method} ${path} answered ${res.status}: ${res.text.slice(0, 300)}`)
    }
  }
}

export function createRestHubGateway(options: RestHubGatewayOptions): HubGateway {
  const call = (target: HubTarget, method: string, path: string, body?: unknown, ifMatch?: string) =>
    registryCall(options, target.connectionString, method, path, body, ifMatch)

  function fail(target: HubTarget, what: string, res: { status: number; text: string }): never {
    const detail = res.text.slice(0, 300)
    if (res.status === 401 || res.status === 403) {
      throw new ProvisioError('HUB_UNAUTHORIZED', `hub ${target.hostName} refused ${what} (${res.status}): ${detail}`)
    }
    throw new ProvisioError('INTERNAL_ERROR', `hub ${target.hostName}: ${what} answered ${res.status}: ${detail}`)
  }

  const devicePath = (id: string) => `/devices/${encodeURIComponent(id)}`
  const twinPath = (id: string) => `/twins/${encodeURIComponent(id)}`

  return {
    async createOrUpdateDevice(spec: HubDeviceSpec): Promise<void> {
      const body = { deviceId: spec.deviceId, status: 'enabled', authentication: toAuthentication(spec), capabilities: { iotEdge: spec.iotEdge } }
      let res = await call(spec.hub, 'PUT', devicePath(spec.deviceId), body)
      if (res.status === 409) res = await call(spec.hub, 'PUT', devicePath(spec.deviceId), body, '"*"')
      if (res.status !== 200 && res.status !== 201) fail(spec.hub, `creating device ${spec.deviceId}`, res)
      const twin = spec.migratedTwin ?? spec.initialTwin
      if (twin === undefined) return
      const desired = twin.properties?.desired as Record<string, unknown> | undefined
      const patch = { tags: (twin.tags as Record<string, unknown> | undefined) ?? {}, properties: { desired: desired ?? {} } }
      const t = await call(spec.hub, 'PUT', twinPath(spec.deviceId), patch, '"*"')
      if (t.status !== 200) fail(spec.hub, `writing the twin of ${spec.deviceId}`, t)
    },
    async getTwin({ hub, deviceId }): Promise<Twin | undefined> {
      const res = await call(hub, 'GET', twinPath(deviceId))
      if (res.status === 404) return undefined
      if (res.status !== 200) fail(hub, `reading the twin of ${deviceId}`, res)
      const twin = JSON.parse(res.text) as { tags?: Record<string, unknown>; properties?: { desired?: Record<string, unknown>; reported?: Record<string, unknown> } }
      return { tags: twin.tags ?? {}, properties: { desired: userProperties(twin.properties?.desired), reported: userProperties(twin.properties?.reported) } }
    },
    async deleteDevice({ hub, deviceId }): Promise<void> {
      const res = await call(hub, 'DELETE', devicePath(deviceId), undefined, '"*"')
      if (res.status !== 204 && res.status !== 200 && res.status !== 404) fail(hub, `deleting device ${deviceId}`, res)
    },
  }
}

/** A twin section without its `$version` and `$metadata` bookkeeping. */
function userProperties(section: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(section ?? {})) if (!k.startsWith('$')) out[k] = v
  return out
}

/** The registry's `authentication` member for the credentials the engine admitted the device with. */
export function toAuthentication(spec: Pick<HubDeviceSpec, 'auth'>): DeviceAuthentication {
  const auth = spec.auth
  switch (auth.type) {
    case 'sas':
      return { type: 'sas', symmetricKey: { primaryKey: auth.primaryKey, secondaryKey: auth.secondaryKey } }
    case 'selfSigned':
      return { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: auth.thumbprints.primary, secondaryThumbprint: auth.thumbprints.secondary ?? null } }
    case 'certificateAuthority':
      return { type: 'certificateAuthority' }
  }
}
