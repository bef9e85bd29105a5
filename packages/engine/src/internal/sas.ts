/**
 * SAS handling the engine needs (dps-protocol.md §2): device tokens (parse, verify against
 * candidate keys), group-key derivation (§2.2), service tokens (§2.3).
 *
 * INTERIM: the protocol package's `parseSasToken` / `verifySasToken` are not published yet; this
 * module implements the same rules on @provisio/crypto so the engine can run, behind the small
 * API below. Swap the bodies for the protocol functions when they land; callers do not change.
 */
import { ProvisioError, percentDecode } from '@provisio/protocol'
import { base64Decode, createHmacSha256Key, type HmacSha256Key } from '@provisio/crypto'
import type { InstanceConfig, ServicePermission } from '../instances.js'

/** Longest token accepted (a DPS token is about 200 characters). */
const MAX_TOKEN_LENGTH = 4096
const PREFIX = 'SharedAccessSignature '

/** A parsed token: fields as sent (`sr` raw, `sig` percent-decoded). */
export interface ParsedDeviceToken {
  readonly sr: string
  readonly sig: string
  readonly se: number
  readonly seText: string
  readonly skn: string | undefined
}

/** Parse result. */
export type ParseResult = { readonly ok: true; readonly token: ParsedDeviceToken } | { readonly ok: false; readonly error: ProvisioError }

/** Parses `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]` in any field order (§2.1). */
export function parseDeviceToken(text: string): ParseResult {
  const bad = (why: string): ParseResult => ({ ok: false, error: new ProvisioError('SAS_MALFORMED', `SAS token ${why}`) })
  if (typeof text !== 'string') return bad('is not a string')
  if (text.length > MAX_TOKEN_LENGTH) return bad(`is ${text.length} characters long; the limit is ${MAX_TOKEN_LENGTH}`)
  if (!text.startsWith(PREFIX)) return bad(`does not start with "${PREFIX.trim()} "`)
  const fields = new Map<string, string>()
  for (const part of text.slice(PREFIX.length).split('&')) {
    const eq = part.indexOf('=')
    if (eq <= 0) return bad(`has a field without "=": ${JSON.stringify(part.slice(0, 40))}`)
    const name = part.slice(0, eq)
    if (fields.has(name)) return bad(`repeats field ${name}`)
    fields.set(name, part.slice(eq + 1))
  }
  const sr = fields.get('sr')
  const sigRaw = fields.get('sig')
  const seText = fields.get('se')
  if (sr === undefined || sr === '') return bad('has no sr field')
  if (sigRaw === undefined || sigRaw === '') return bad('has no sig field')
  if (seText === undefined || !/^\d{1,12}$/.test(seText)) return bad('has no valid se field (unix seconds)')
  const sig = percentDecode(sigRaw)
  if (sig === undefined) return bad('has a sig field that is not valid percent-encoding')
  return { ok: true, token: { sr, sig, se: Number(seText), seText, skn: fields.get('skn') } }
}

/** Verdict of verifyDeviceToken. */
export type VerifyResult = { readonly ok: true; readonly keyIndex: number } | { readonly ok: false; readonly error: ProvisioError }

const keyCache = new Map<string, HmacSha256Key | null>()

function hmacKey(keyBase64: string): HmacSha256Key | undefined {
  let key = keyCache.get(keyBase64)
  if (key === undefined) {
    try {
      key = createHmacSha256Key(base64Decode(keyBase64))
    } catch {
      key = null
    }
    if (keyCache.size >= 8192) keyCache.delete(keyCache.keys().next().value as string)
    keyCache.set(keyBase64, key)
  }
  return key ?? undefined
}

/** `sr` spellings SDKs sign (§2.1): as sent, decoded, and with `%2F` / `%2f` separators. */
function srVariants(sr: string): string[] {
  const decoded = percentDecode(sr) ?? sr
  const upper = decoded.replaceAll('/', '%2F')
  const lower = decoded.replaceAll('/', '%2f')
  return [...new Set([sr, decoded, upper, lower])]
}

/**
 * Verifies a device token (§2.1): `skn` is `registration`, the decoded `sr` names
 * `expectedResource` (case-insensitively), `se` is not past (with skew), and the HMAC of
 * `sr + "\n" + se` under one of `keys` (base64; '' = absent) equals `sig`.
 */
export function verifyDeviceToken(
  token: ParsedDeviceToken,
  keys: readonly string[],
  expectedResource: string,
  nowMs: number,
  clockSkewSeconds: number,
): VerifyResult {
  if (token.skn !== undefined && token.skn !== 'registration') {
    return { ok: false, error: new ProvisioError('SAS_WRONG_KEY_NAME', `skn is ${JSON.stringify(token.skn.slice(0, 64))}; device tokens use skn=registration (§2.1)`) }
  }
  const resource = percentDecode(token.sr)
  if (resource === undefined) return { ok: false, error: new ProvisioError('SAS_MALFORMED', 'sr is not valid percent-encoding') }
  if (resource.toLowerCase() !== expectedResource.toLowerCase()) {
    return { ok: false, error: new ProvisioError('SAS_WRONG_RESOURCE', `token is for resource ${JSON.stringify(resource.slice(0, 200))}, expected ${JSON.stringify(expectedResource)}`) }
  }
  const nowSeconds = Math.floor(nowMs / 1000)
  if (token.se + clockSkewSeconds <= nowSeconds) {
    return { ok: false, error: new ProvisioError('SAS_EXPIRED', `token expired at se=${token.se}, now ${nowSeconds} (skew ${clockSkewSeconds} s)`) }
  }
  const variants = srVariants(token.sr)
  for (let k = 0; k < keys.length; k++) {
    const keyText = keys[k]!
    if (keyText === '') continue
    const key = hmacKey(keyText)
    if (!key) continue
    for (const sr of variants) {
      if (key.verifyBase64(`${sr}\n${token.seText}`, token.sig)) return { ok: true, keyIndex: k }
    }
  }
  return { ok: false, error: new ProvisioError('SAS_BAD_SIGNATURE', `signature matches none of ${keys.filter((k) => k !== '').length} candidate key(s)`) }
}

/** Derives device keys under one group key (§2.2); the key schedule is computed once. */
export type DeviceKeyDeriver = (registrationId: string) => string

/** A deriver for a base64 group key, or undefined when the key is not valid base64. */
export function deviceKeyDeriver(groupKeyBase64: string): DeviceKeyDeriver | undefined {
  const key = hmacKey(groupKeyBase64)
  return key ? (registrationId) => key.macBase64(registrationId) : undefined
}

/**
 * Service token check (§2.3): `sr` is the instance's service host name (prefix match by path
 * segment), `skn` names one of its policies, the policy has `permission`, not expired, and the
 * signature verifies with the policy's primary or secondary key.
 */
export function authorizeServiceToken(
  text: string,
  permission: ServicePermission,
  instances: readonly InstanceConfig[],
  nowMs: number,
  clockSkewSeconds: number,
): { idScope: string; policy: string; keyIndex: number } {
  const parsed = parseDeviceToken(text)
  if (!parsed.ok) throw parsed.error
  const token = parsed.token
  const resource = percentDecode(token.sr)?.toLowerCase()
  if (resource === undefined) throw new ProvisioError('SAS_MALFORMED', 'sr is not valid percent-encoding')
  const instance = instances.find((i) => {
    const host = i.serviceHostName.toLowerCase()
    return resource === host || resource.startsWith(host + '/')
  })
  if (!instance) throw new ProvisioError('SAS_WRONG_RESOURCE', `service token is for ${JSON.stringify(resource.slice(0, 200))}, which names no DPS instance here`)
  if (token.skn === undefined) throw new ProvisioError('SAS_WRONG_KEY_NAME', 'service token has no skn (policy name)')
  const policy = instance.accessPolicies.find((p) => p.name === token.skn)
  if (!policy) throw new ProvisioError('SAS_WRONG_KEY_NAME', `no access policy ${JSON.stringify(token.skn.slice(0, 64))} in ID scope ${instance.idScope}`)
  const nowSeconds = Math.floor(nowMs / 1000)
  if (token.se + clockSkewSeconds <= nowSeconds) {
    throw new ProvisioError('SAS_EXPIRED', `service token expired at se=${token.se}, now ${nowSeconds} (skew ${clockSkewSeconds} s)`)
  }
  const keys = [policy.primaryKey, policy.secondaryKey]
  for (let k = 0; k < keys.length; k++) {
    const key = hmacKey(keys[k]!)
    if (!key) continue
    for (const sr of srVariants(token.sr)) {
      if (key.verifyBase64(`${sr}\n${token.seText}`, token.sig)) {
        if (!policy.permissions.includes(permission)) {
          throw new ProvisioError('SAS_PERMISSION_DENIED', `policy ${policy.name} of ID scope ${instance.idScope} lacks permission ${permission}`)
        }
        return { idScope: instance.idScope, policy: policy.name, keyIndex: k }
      }
    }
  }
  throw new ProvisioError('SAS_BAD_SIGNATURE', `service token signature matches neither key of policy ${policy.name} in ID scope ${instance.idScope}`)
}
