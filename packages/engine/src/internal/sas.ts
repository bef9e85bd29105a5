/**
 * The SAS pieces the engine uses (docs/protocol.md §2), over @provisio/protocol's token parser and
 * verifier and @provisio/crypto's prepared HMAC keys:
 *
 * - device tokens: `skn=registration` or no `skn` at all (the Embedded C SDK signs none;
 *   docs/protocol.md §13.1), resource `{idScope}/registrations/{registrationId}`,
 *   verified over `sr` as sent, with the lenient `sr` spellings of §2.1 tried on failure;
 * - group key derivation (§2.2) with the group key's HMAC schedule computed once;
 * - service tokens (§2.3): `sr` = the instance's service host (segment-prefix match), `skn` = a
 *   policy, which must grant the permission asked for.
 *
 * Keys arrive as base64 text from enrollments; prepared HMAC keys are cached by that text, so a
 * device's individual keys are prepared once, not per registration.
 */
import {
  DEVICE_SAS_KEY_NAME,
  ProvisioError,
  grants,
  rightMissing,
  isProvisioError,
  parseSasToken,
  sasStringToSign,
  verifySasToken,
  type ParsedSasToken,
} from '@provisio/protocol'
import { base64Decode, createHmacSha256Key, verifyHmacSha256Base64, type HmacSha256Key } from '@provisio/crypto'
import type { InstanceConfig, ServicePermission } from '../instances.js'

/** A parsed token (protocol's ParsedSasToken). */
export type ParsedDeviceToken = ParsedSasToken

/** Parse result; bad tokens are results. */
export type ParseResult = { readonly ok: true; readonly token: ParsedDeviceToken } | { readonly ok: false; readonly error: ProvisioError }

/** Parses a token in any field order, within protocol's size limits. */
export function parseDeviceToken(text: string): ParseResult {
  try {
    return { ok: true, token: parseSasToken(text) }
  } catch (error) {
    if (isProvisioError(error)) return { ok: false, error }
    return { ok: false, error: new ProvisioError('SAS_MALFORMED', `SAS token could not be parsed: ${String(error)}`) }
  }
}

/** Verdict of verifyDeviceToken: which candidate (by position in `keys`) verified. */
export type VerifyResult = { readonly ok: true; readonly keyIndex: number } | { readonly ok: false; readonly error: ProvisioError }

/**
 * Prepared keys by base64 text, for the few long-lived keys (group keys, service policy keys);
 * `null` marks text that is not a usable key. Per-device keys are not cached: with many devices a
 * cache would only churn the old generation of the heap (measured: bench/suites/engine.mjs).
 */
const prepared = new Map<string, HmacSha256Key | null>()
const PREPARED_MAX = 4096

function preparedKey(keyBase64: string): HmacSha256Key | undefined {
  let key = prepared.get(keyBase64)
  if (key === undefined) {
    try {
      const bytes = base64Decode(keyBase64)
      // An empty key would be a valid HMAC key anyone can sign with: never accept one.
      key = bytes.length === 0 ? null : createHmacSha256Key(bytes)
      bytes.fill(0)
    } catch {
      key = null
    }
    if (prepared.size >= PREPARED_MAX) prepared.delete(prepared.keys().next().value as string)
    prepared.set(keyBase64, key)
  }
  return key ?? undefined
}

/**
 * Verifies a device token against candidate keys — base64 text (`''` = absent slot, e.g. no
 * secondary) or raw bytes (derived keys): `skn` absent or `registration`, signature over `sr` as sent (other
 * spellings on failure), resource, expiry. `keyIndex` is the position in `keys`.
 */
export function verifyDeviceToken(
  token: ParsedDeviceToken,
  keys: readonly (string | Uint8Array)[],
  expectedResource: string,
  nowMs: number,
  clockSkewSeconds: number,
): VerifyResult {
  let candidates: (string | Uint8Array)[] = keys as (string | Uint8Array)[]
  let positions: number[] | undefined
  for (let i = 0; i < keys.length; i++) {
    if (keys[i]!.length === 0) {
      // Rare: a missing key. Rebuild the list without empty slots, remembering positions.
      candidates = []
      positions = []
      for (let j = 0; j < keys.length; j++) {
        if (keys[j]!.length === 0) continue
        candidates.push(keys[j]!)
        positions.push(j)
      }
      break
    }
  }
  if (candidates.length === 0) {
    return { ok: false, error: new ProvisioError('SAS_BAD_SIGNATURE', 'the enrollment has no usable key to verify against') }
  }
  const verdict = verifySasToken(token, {
    keys: candidates,
    expectedResource,
    nowSeconds: Math.floor(nowMs / 1000),
    clockSkewSeconds,
    keyName: DEVICE_SAS_KEY_NAME,
    keyNameOptional: true,
    lenientSrEncoding: true,
  })
  if (!verdict.ok) return verdict
  return positions === undefined ? verdict : { ok: true, keyIndex: positions[verdict.keyIndex]! }
}

/** Raw HMAC check of the token's signature over `sr` exactly as sent, with a raw key (no key object). */
export function signatureMatches(token: ParsedDeviceToken, key: Uint8Array): boolean {
  return verifyHmacSha256Base64(key, sasStringToSign(token.sr, token.seText), token.sig)
}

/** Derives raw device keys under one group key (§2.2); the group key's HMAC schedule is kept. */
export type DeviceKeyDeriver = (registrationIdUtf8: Uint8Array) => Uint8Array

/** A deriver for a base64 group key, or undefined when the key is not usable. */
export function deviceKeyDeriver(groupKeyBase64: string): DeviceKeyDeriver | undefined {
  const key = preparedKey(groupKeyBase64)
  return key ? (id) => key.mac(id) : undefined
}

/**
 * Service token check (§2.3) against the instances' access policies: the first instance whose
 * service host covers `sr` decides; its policy named by `skn` must verify the signature and
 * grant `permission`.
 * @throws ProvisioError SAS_* naming what failed.
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
  const resource = token.resourceDecoded.toLowerCase()
  const instance = instances.find((i) => {
    const host = i.serviceHostName.toLowerCase()
    return resource === host || resource === host + '/' || resource.startsWith(host + '/')
  })
  if (!instance) throw new ProvisioError('SAS_WRONG_RESOURCE', `service token is for ${JSON.stringify(token.resourceDecoded.slice(0, 200))}, which names no DPS instance here`)
  if (token.skn === undefined) throw new ProvisioError('SAS_WRONG_KEY_NAME', 'service token has no skn (policy name)')
  const policy = instance.accessPolicies.find((p) => p.name === token.skn)
  if (!policy) throw new ProvisioError('SAS_WRONG_KEY_NAME', `no access policy ${JSON.stringify(token.skn.slice(0, 64))} in ID scope ${instance.idScope}`)
  const keys = [policy.primaryKey, policy.secondaryKey].map(preparedKey)
  const usable = keys.filter((k): k is HmacSha256Key => k !== undefined)
  if (usable.length === 0) throw new ProvisioError('SAS_BAD_SIGNATURE', `policy ${policy.name} of ID scope ${instance.idScope} has no usable key`)
  const verdict = verifySasToken(token, {
    keys: usable,
    expectedResource: instance.serviceHostName,
    nowSeconds: Math.floor(nowMs / 1000),
    clockSkewSeconds,
    keyName: policy.name,
    resourceMatch: 'segmentPrefix',
    lenientSrEncoding: true,
  })
  if (!verdict.ok) throw new ProvisioError(verdict.error.code, `policy ${policy.name} of ID scope ${instance.idScope}: ${verdict.error.reason}`, { cause: verdict.error })
  if (!grants(policy.permissions, permission)) throw rightMissing(`ID scope ${instance.idScope}`, policy.name, permission)
  const keyIndex = usable[verdict.keyIndex] === keys[0] ? 0 : 1
  return { idScope: instance.idScope, policy: policy.name, keyIndex }
}
