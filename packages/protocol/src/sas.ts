/**
 * Shared access signature (SAS) tokens: build, parse, verify (docs/protocol.md §2, §11).
 *
 * ```
 * SharedAccessSignature sr=<resource>&sig=<urlenc(base64 HMAC)>&se=<unix seconds>[&skn=<key name>]
 * ```
 *
 * Three kinds share this shape:
 * - device registration tokens: `sr={idScope}/registrations/{registrationId}`, `skn=registration`
 *   or no `skn` (the Embedded C SDK; docs/protocol.md §13.1), signed with the device key (symmetric key) or the TPM-held identity key (§2.1);
 * - service tokens: `sr={dps or hub host}`, `skn={policy}`, signed with the policy key (§2.3);
 *   the caller checks the policy's permissions;
 * - hub device tokens: `sr={hub}/devices/{deviceId}` URL-encoded, no `skn` (azure-iot-device).
 *
 * The rule that makes every SDK work (§2.1, §11): the signature is HMAC-SHA256 over the `sr` text
 * **exactly as it appears in the token** + `"\n"` + the `se` text, because each SDK signs the
 * string it sends (the Node symmetric-key client raw, the Node TPM path with `encodeURIComponent`,
 * C and azure-sdk-for-c with lower-case `%2f`, Python and .NET with `%2F`). Only after the
 * signature holds is `sr` percent-decoded and compared, case-insensitively, with the resource
 * the request is about. Fields come in any order (Node: sr,sig,skn,se; C/Python: sr,sig,se,skn;
 * Embedded C: sr,sig,se).
 *
 * Every failure has its own code (all are DPS errorCode 401002 on the wire, see errors.ts):
 * SAS_MALFORMED, SAS_WRONG_KEY_NAME, SAS_BAD_SIGNATURE, SAS_WRONG_RESOURCE, SAS_EXPIRED.
 *
 * Speed: verification is the hot path of every registration and connect, so parsing walks the
 * text with `indexOf` and `charCodeAt` (no regular expressions, no split arrays), and the HMAC runs
 * on a prepared key in WASM with the base64 comparison done there too (bench/suites/crypto-sas.mjs).
 *
 * @module
 */
import { base64Decode, createHmacSha256Key, hmacSha256Base64, type HmacSha256Key } from '@provisio/crypto'
import { ProvisioError } from './errors.js'
import { encodeUriComponentStrict, percentDecode } from './percent.js'

/** The `skn` of a DPS device token when it carries one (docs/protocol.md §2.1: it may not). */
export const DEVICE_SAS_KEY_NAME = 'registration'
/** Default tolerance for clocks that run behind or ahead (D-access warns about drift). */
export const SAS_DEFAULT_CLOCK_SKEW_SECONDS = 300
/** Scheme word that starts every token (an HTTP auth-scheme, so case-insensitive: RFC 9110 §11.1). */
export const SAS_SCHEME = 'SharedAccessSignature'

/** Size limits of {@link parseSasToken}. */
export interface SasTokenLimits {
  /** Longest whole token; default 4096 characters. */
  readonly maxLength?: number
  /** Longest single field value (as sent); default 2048 characters. */
  readonly maxFieldLength?: number
  /** Most `name=value` fields, unknown ones included; default 8. */
  readonly maxFields?: number
}

const DEFAULT_MAX_LENGTH = 4096
const DEFAULT_MAX_FIELD_LENGTH = 2048
const DEFAULT_MAX_FIELDS = 8
/** `se` is unix seconds: 15 digits stay below 2^53 and cover the next thirty million years. */
const MAX_SE_DIGITS = 15

/** A token taken apart. Nothing here is trusted until {@link verifySasToken} says so. */
export interface ParsedSasToken {
  /** The `sr` field exactly as sent (possibly percent-encoded): what the signature covers. */
  readonly sr: string
  /** `sr` percent-decoded: the resource the token is for. */
  readonly resourceDecoded: string
  /** The `sig` field percent-decoded: standard base64 of a 32-byte HMAC-SHA256 (44 characters). */
  readonly sig: string
  /** Expiry, unix seconds. */
  readonly se: number
  /** The `se` field exactly as sent: what the signature covers. */
  readonly seText: string
  /** The `skn` field percent-decoded, if present. */
  readonly skn: string | undefined
}

// ---------------------------------------------------------------------------------------------
// Parsing

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09
}

/** 'SharedAccessSignature' compared ASCII-case-insensitively at `text[start…]`. */
function hasScheme(text: string, start: number): boolean {
  if (text.length - start < SAS_SCHEME.length) return false
  for (let i = 0; i < SAS_SCHEME.length; i++) {
    if ((text.charCodeAt(start + i) | 0x20) !== (SAS_SCHEME.charCodeAt(i) | 0x20)) return false
  }
  return true
}

/** True when `sig` is 43 base64 characters and one '=' (the encoding of exactly 32 bytes). */
function isSha256Base64(sig: string): boolean {
  if (sig.length !== 44 || sig.charCodeAt(43) !== 0x3d) return false
  for (let i = 0; i < 43; i++) {
    const c = sig.charCodeAt(i)
    const ok =
      (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f
    if (!ok) return false
  }
  return true
}

function sigShapeReason(sig: string): string {
  return `field sig must be the 44-character base64 of a 32-byte HMAC-SHA256, got ${
    sig.length === 44 ? 'characters outside the base64 alphabet or padding' : `${sig.length} characters`
  }`
}

/**
 * The parser proper. Returns the token, or a string saying why it is malformed: building a
 * string instead of an Error keeps the no-throw verification path cheap.
 */
function parse(text: string, limits: SasTokenLimits | undefined): ParsedSasToken | string {
  if (typeof text !== 'string') return `token must be a string, got ${text === null ? 'null' : typeof text}`
  const maxLength = limits?.maxLength ?? DEFAULT_MAX_LENGTH
  const maxFieldLength = limits?.maxFieldLength ?? DEFAULT_MAX_FIELD_LENGTH
  const maxFields = limits?.maxFields ?? DEFAULT_MAX_FIELDS
  if (text.length > maxLength) return `token is ${text.length} characters long; the limit is ${maxLength}`

  let start = 0
  let end = text.length
  while (start < end && isOws(text.charCodeAt(start))) start++
  while (end > start && isOws(text.charCodeAt(end - 1))) end--
  if (start === end) return 'token is empty'
  if (!hasScheme(text, start)) return `token must start with '${SAS_SCHEME} '`
  let pos = start + SAS_SCHEME.length
  if (pos >= end || !isOws(text.charCodeAt(pos))) return `'${SAS_SCHEME}' must be followed by a space and the fields`
  while (pos < end && isOws(text.charCodeAt(pos))) pos++
  if (pos === end) return 'token has no fields after the scheme'

  let sr: string | undefined
  let sigRaw: string | undefined
  let seText: string | undefined
  let sknRaw: string | undefined
  let fields = 0
  for (;;) {
    let amp = text.indexOf('&', pos)
    if (amp < 0 || amp > end) amp = end
    if (amp === pos) return `empty field at offset ${pos} ('&&', or '&' at an end)`
    if (++fields > maxFields) return `token has more than ${maxFields} fields`
    const eq = text.indexOf('=', pos)
    if (eq < 0 || eq >= amp) return `field at offset ${pos} has no '=' (expected name=value)`
    if (eq === pos) return `field at offset ${pos} has an empty name`
    const valueLength = amp - eq - 1
    // Recognise the four names by length and characters: no substring until we know we need it.
    const nameLength = eq - pos
    let name = ''
    if (text.charCodeAt(pos) === 0x73 /* s */) {
      const c1 = text.charCodeAt(pos + 1)
      if (nameLength === 2) {
        if (c1 === 0x72 /* r */) name = 'sr'
        else if (c1 === 0x65 /* e */) name = 'se'
      } else if (nameLength === 3) {
        const c2 = text.charCodeAt(pos + 2)
        if (c1 === 0x69 /* i */ && c2 === 0x67 /* g */) name = 'sig'
        else if (c1 === 0x6b /* k */ && c2 === 0x6e /* n */) name = 'skn'
      }
    }
    if (name !== '') {
      if (valueLength === 0) return `field ${name} is empty`
      if (valueLength > maxFieldLength) {
        return `field ${name} is ${valueLength} characters long; the limit is ${maxFieldLength}`
      }
      const value = text.slice(eq + 1, amp)
      if (name === 'sr') {
        if (sr !== undefined) return 'field sr appears more than once'
        sr = value
      } else if (name === 'sig') {
        if (sigRaw !== undefined) return 'field sig appears more than once'
        sigRaw = value
      } else if (name === 'se') {
        if (seText !== undefined) return 'field se appears more than once'
        seText = value
      } else {
        if (sknRaw !== undefined) return 'field skn appears more than once'
        sknRaw = value
      }
    } else if (valueLength > maxFieldLength) {
      // Unknown fields are tolerated (forward compatibility) but bounded like the others.
      return `field ${JSON.stringify(text.slice(pos, Math.min(eq, pos + 16)))} is longer than ${maxFieldLength} characters`
    }
    if (amp === end) break
    pos = amp + 1
  }

  if (sr === undefined) return 'field sr is missing'
  if (sigRaw === undefined) return 'field sig is missing'
  if (seText === undefined) return 'field se is missing'

  if (seText.length > MAX_SE_DIGITS) return `field se has ${seText.length} digits; at most ${MAX_SE_DIGITS} are accepted`
  let se = 0
  for (let i = 0; i < seText.length; i++) {
    const d = seText.charCodeAt(i) - 0x30
    if (d < 0 || d > 9) return `field se must be unix seconds in decimal digits; character ${i} is not a digit`
    se = se * 10 + d
  }

  const resourceDecoded = percentDecode(sr)
  if (resourceDecoded === undefined) return 'field sr has an invalid percent-encoding (bad %XX escape or not UTF-8)'
  const sig = percentDecode(sigRaw)
  if (sig === undefined) return 'field sig has an invalid percent-encoding'
  // Only the length is checked here; the alphabet is checked by parseSasToken, and on the
  // verification path only once the HMAC comparison has failed (the WASM comparison rejects
  // non-base64 anyway). A per-character JS loop over a sliced string cost about 40% of the
  // parse time (measured, bench/suites/crypto-sas.mjs).
  if (sig.length !== 44) return sigShapeReason(sig)
  let skn: string | undefined
  if (sknRaw !== undefined) {
    skn = percentDecode(sknRaw)
    if (skn === undefined) return 'field skn has an invalid percent-encoding'
  }
  return { sr, resourceDecoded, sig, se, seText, skn }
}

/**
 * Parses a SAS token, fields in any order. Unknown fields are ignored but count toward the
 * limits; each known field may appear once.
 *
 * @throws ProvisioError SAS_MALFORMED, its reason saying exactly what is wrong (size, missing or
 *   duplicate field, non-numeric `se`, bad percent-encoding, a `sig` that cannot be an HMAC-SHA256)
 * @example
 * ```ts
 * const t = parseSasToken('SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fdev1&sig=…&se=1700003600&skn=registration')
 * t.resourceDecoded // '0ne00000A0A/registrations/dev1'
 * ```
 */
export function parseSasToken(text: string, limits?: SasTokenLimits): ParsedSasToken {
  const parsed = parse(text, limits)
  if (typeof parsed === 'string') throw new ProvisioError('SAS_MALFORMED', parsed)
  if (!isSha256Base64(parsed.sig)) throw new ProvisioError('SAS_MALFORMED', sigShapeReason(parsed.sig))
  return parsed
}

// ---------------------------------------------------------------------------------------------
// Verification

/**
 * A candidate key: base64 text (as stored in enrollments and connection strings), raw bytes, or
 * a key prepared once with `createHmacSha256Key` from @provisio/crypto, which is the fast form
 * (its HMAC padding states are computed once).
 */
export type SasKey = string | Uint8Array | HmacSha256Key

/** Options of {@link verifySasToken}. */
export interface VerifySasOptions {
  /** One key or candidates in order (e.g. primary, secondary); the first that verifies wins. */
  readonly keys: SasKey | readonly SasKey[]
  /** The resource the request is about, unencoded, e.g. `0ne00000A0A/registrations/dev1`. */
  readonly expectedResource: string
  /** The caller's clock, unix seconds. */
  readonly nowSeconds: number
  /** Tolerance for `se`; default {@link SAS_DEFAULT_CLOCK_SKEW_SECONDS}. */
  readonly clockSkewSeconds?: number
  /**
   * Required `skn`: a string must match exactly (`'registration'` for devices, the policy name
   * for service tokens); `null` demands that there is none (hub device tokens); `undefined`
   * leaves it unchecked.
   */
  readonly keyName?: string | null
  /**
   * With a string `keyName`: also accept a token that carries no `skn` at all, while a present
   * `skn` must still equal `keyName`. DPS device tokens need it: the Embedded C SDK
   * (`az_iot_provisioning_client`) signs `sr=…&sig=…&se=…` with no key name, and Azure DPS
   * admits it (docs/protocol.md §2.1).
   */
  readonly keyNameOptional?: boolean
  /**
   * `'exact'` (default; device tokens): the decoded resource equals the expected one, ignoring
   * ASCII case. `'segmentPrefix'` (service policies, D-access): the token's resource may also be
   * a prefix of the expected one ending at a `/`, so a token for `myhub.azure-devices.net` covers
   * `myhub.azure-devices.net/devices/d1`.
   */
  readonly resourceMatch?: 'exact' | 'segmentPrefix'
  /**
   * Also accept a signature made over another encoding of the same `sr` (decoded, `%2F`-encoded,
   * `%2f`-encoded): the server-side leniency docs/protocol.md §2.1 infers. Off by default: every
   * SDK we know signs the `sr` it sends. Costs up to three extra HMACs per key on failure only.
   */
  readonly lenientSrEncoding?: boolean
}

/** Outcome of {@link verifySasToken}; bad tokens are results, not exceptions. */
export type SasVerification =
  | { readonly ok: true; /** Index of the candidate key that verified. */ readonly keyIndex: number }
  | { readonly ok: false; readonly error: ProvisioError }

/** Outcome of {@link parseAndVerifySasToken}: on success the parsed token too. */
export type SasTokenCheck =
  | { readonly ok: true; readonly keyIndex: number; readonly token: ParsedSasToken }
  | { readonly ok: false; readonly error: ProvisioError }

// Successful results are immutable and carry only the key index: share them (no allocation).
const OK: ReadonlyArray<SasVerification> = Object.freeze(
  [0, 1, 2, 3, 4, 5, 6, 7].map((keyIndex) => Object.freeze({ ok: true as const, keyIndex })),
)

function fail(code: 'SAS_MALFORMED' | 'SAS_EXPIRED' | 'SAS_BAD_SIGNATURE' | 'SAS_WRONG_RESOURCE' | 'SAS_WRONG_KEY_NAME' | 'INTERNAL_ERROR', reason: string): { ok: false; error: ProvisioError } {
  return { ok: false, error: new ProvisioError(code, reason) }
}

function isPreparedKey(key: SasKey): key is HmacSha256Key {
  return typeof key === 'object' && key !== null && !(key instanceof Uint8Array) && typeof key.verifyBase64 === 'function'
}

/** Turns a candidate into a prepared key, or a reason it cannot be one. */
function prepare(key: SasKey, index: number): HmacSha256Key | string {
  if (isPreparedKey(key)) return key
  let bytes: Uint8Array
  if (key instanceof Uint8Array) bytes = key
  else if (typeof key === 'string') {
    try {
      bytes = base64Decode(key)
    } catch {
      return `candidate key ${index} is not valid base64`
    }
  } else return `candidate key ${index} is neither base64 text, bytes nor a prepared HMAC key`
  // An empty HMAC key is a key everyone knows: a token "signed" with it proves nothing.
  if (bytes.length === 0) return `candidate key ${index} is empty`
  return createHmacSha256Key(bytes)
}

/** ASCII case-insensitive equality of `a[0…n)` and `b[0…n)`; other characters compare exactly. */
function equalsIgnoreAsciiCase(a: string, b: string, n: number): boolean {
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0x41 && x <= 0x5a) x += 0x20
    if (y >= 0x41 && y <= 0x5a) y += 0x20
    if (x !== y) return false
  }
  return true
}

function resourceMatches(actual: string, expected: string, mode: 'exact' | 'segmentPrefix'): boolean {
  // Same case is the common case, and the engine's string comparison is a memcmp.
  if (actual === expected) return true
  if (actual.length === expected.length) return equalsIgnoreAsciiCase(actual, expected, actual.length)
  if (mode === 'exact') return false
  // A trailing '/' on the token's resource adds nothing ("host/" covers what "host" covers).
  let n = actual.length
  if (n > 0 && actual.charCodeAt(n - 1) === 0x2f) n--
  if (n === 0 || n > expected.length) return false
  if (n < expected.length && expected.charCodeAt(n) !== 0x2f) return false
  return equalsIgnoreAsciiCase(actual, expected, n)
}

/** Other spellings of `sr` a lenient server tries (docs/protocol.md §2.1), minus the one sent. */
function srVariants(token: ParsedSasToken): string[] {
  const decoded = token.resourceDecoded
  let upper: string
  try {
    upper = encodeURIComponent(decoded)
  } catch {
    // A lone surrogate cannot be encoded; then there is no other spelling to try.
    return decoded === token.sr ? [] : [decoded]
  }
  let lower = ''
  for (let i = 0; i < upper.length; i++) {
    const c = upper.charCodeAt(i)
    // Lower-case only the hex digits of escapes: "%2F" -> "%2f".
    const inEscape = (i >= 1 && upper.charCodeAt(i - 1) === 0x25) || (i >= 2 && upper.charCodeAt(i - 2) === 0x25)
    lower += inEscape && c >= 0x41 && c <= 0x46 ? String.fromCharCode(c + 0x20) : upper[i]
  }
  const out: string[] = []
  for (const v of [decoded, upper, lower]) if (v !== token.sr && !out.includes(v)) out.push(v)
  return out
}

function verifyAgainst(key: HmacSha256Key, token: ParsedSasToken, lenient: boolean): boolean {
  if (key.verifyBase64(token.sr + '\n' + token.seText, token.sig)) return true
  if (!lenient) return false
  for (const sr of srVariants(token)) {
    if (key.verifyBase64(sr + '\n' + token.seText, token.sig)) return true
  }
  return false
}

/**
 * Verifies a parsed token: key name, then the HMAC over `sr` as sent (docs/protocol.md §2.1),
 * then the decoded resource, then expiry with clock skew. Never throws on a bad token.
 *
 * @returns `{ ok: true, keyIndex }`, or `{ ok: false, error }` with SAS_WRONG_KEY_NAME,
 *   SAS_BAD_SIGNATURE, SAS_WRONG_RESOURCE or SAS_EXPIRED (INTERNAL_ERROR if a candidate key
 *   itself is unusable, a configuration fault)
 * @throws TypeError only for caller bugs: no keys, or a non-finite `nowSeconds`
 * @example
 * ```ts
 * const r = verifySasToken(parseSasToken(header), {
 *   keys: [primary, secondary], expectedResource: `${idScope}/registrations/${registrationId}`,
 *   nowSeconds: clock.nowSeconds(), keyName: DEVICE_SAS_KEY_NAME,
 * })
 * if (!r.ok) throw r.error
 * ```
 */
export function verifySasToken(token: ParsedSasToken, options: VerifySasOptions): SasVerification {
  const { keys, expectedResource, nowSeconds } = options
  if (!Number.isFinite(nowSeconds)) throw new TypeError('verifySasToken: nowSeconds must be a finite number')
  const skew = options.clockSkewSeconds ?? SAS_DEFAULT_CLOCK_SKEW_SECONDS

  // 1. Key name: structural, needs no secret, so it is checked before any HMAC work.
  const keyName = options.keyName
  if (keyName !== undefined) {
    if (keyName === null) {
      if (token.skn !== undefined) return fail('SAS_WRONG_KEY_NAME', `token names key ${JSON.stringify(token.skn)} but this resource takes tokens without skn`)
    } else if (token.skn !== keyName && !(token.skn === undefined && options.keyNameOptional === true)) {
      return fail(
        'SAS_WRONG_KEY_NAME',
        token.skn === undefined
          ? `token has no skn; expected ${JSON.stringify(keyName)}`
          : `token names key ${JSON.stringify(token.skn)}; expected ${JSON.stringify(keyName)}`,
      )
    }
  }

  // 2. Signature over sr exactly as sent.
  const lenient = options.lenientSrEncoding === true
  let keyIndex = -1
  if (Array.isArray(keys)) {
    const list = keys as readonly SasKey[]
    if (list.length === 0) throw new TypeError('verifySasToken: keys is empty')
    for (let i = 0; i < list.length; i++) {
      const key = prepare(list[i] as SasKey, i)
      if (typeof key === 'string') return fail('INTERNAL_ERROR', key)
      if (verifyAgainst(key, token, lenient)) {
        keyIndex = i
        break
      }
    }
  } else {
    const key = prepare(keys as SasKey, 0)
    if (typeof key === 'string') return fail('INTERNAL_ERROR', key)
    if (verifyAgainst(key, token, lenient)) keyIndex = 0
  }
  if (keyIndex < 0) {
    // A sig that is not even base64 is malformed rather than forged (checked only now: see parse).
    if (!isSha256Base64(token.sig)) return fail('SAS_MALFORMED', sigShapeReason(token.sig))
    const n = Array.isArray(keys) ? keys.length : 1
    return fail('SAS_BAD_SIGNATURE', `signature over sr ${JSON.stringify(token.sr)} and se ${token.seText} matches none of ${n} candidate key(s)`)
  }

  // 3. Resource, decoded, ASCII case-insensitive.
  if (!resourceMatches(token.resourceDecoded, expectedResource, options.resourceMatch ?? 'exact')) {
    return fail('SAS_WRONG_RESOURCE', `token is for ${JSON.stringify(token.resourceDecoded)}, not ${JSON.stringify(expectedResource)}`)
  }

  // 4. Expiry: valid while now < se + skew.
  if (token.se + skew <= nowSeconds) {
    return fail('SAS_EXPIRED', `token expired at ${token.se} (unix s); now ${nowSeconds}, clock skew allowed ${skew} s`)
  }
  return OK[keyIndex] ?? { ok: true, keyIndex }
}

/**
 * {@link parseSasToken} then {@link verifySasToken}, never throwing on a bad token: the one call
 * a transport makes with the token text it received.
 */
export function parseAndVerifySasToken(text: string, options: VerifySasOptions, limits?: SasTokenLimits): SasTokenCheck {
  const token = parse(text, limits)
  if (typeof token === 'string') return fail('SAS_MALFORMED', token)
  const result = verifySasToken(token, options)
  if (!result.ok) return result
  return { ok: true, keyIndex: result.keyIndex, token }
}

// ---------------------------------------------------------------------------------------------
// Building

/** The string a SAS signature covers: `sr` as written in the token, a line feed, `se`. */
export function sasStringToSign(sr: string, se: string | number): string {
  return sr + '\n' + se
}

/** Token field names, for {@link BuildSasTokenOptions.fieldOrder}. */
export type SasField = 'sr' | 'sig' | 'se' | 'skn'

/** Options of {@link buildSasToken}. */
export interface BuildSasTokenOptions {
  /** The resource, unencoded: `{idScope}/registrations/{id}`, `{host}`, `{hub}/devices/{id}`. */
  readonly resource: string
  /** Signing key: base64 text, raw bytes, or a prepared HMAC key. */
  readonly key: SasKey
  /** Expiry, unix seconds (a positive integer). */
  readonly expiresAt: number
  /** `skn`; omitted when undefined (hub device tokens). */
  readonly keyName?: string
  /**
   * How `sr` is written (and therefore signed): `'encodeURIComponent'` (default; `%2F`, as the
   * Node TPM path, Python and .NET), `'encodeUriComponentStrict'` (also escapes `!'()*`, as
   * azure-iot-device for hub tokens) or `'raw'` (as the Node symmetric-key client).
   */
  readonly encodeResource?: 'raw' | 'encodeURIComponent' | 'encodeUriComponentStrict'
  /** Field order; default `sr, sig, se, skn` (C, Python, Node TPM). Node's symmetric-key client uses `sr, sig, skn, se`. */
  readonly fieldOrder?: readonly SasField[]
}

const DEFAULT_ORDER: readonly SasField[] = ['sr', 'sig', 'se', 'skn']

/**
 * Builds a token: signs `sr` (written as `encodeResource` says) + `"\n"` + `se` with HMAC-SHA256.
 *
 * @throws TypeError / RangeError for caller bugs: a key that is not base64, a bad expiry, a bad
 *   field order
 * @example
 * ```ts
 * buildSasToken({ resource: '0ne00000A0A/registrations/dev1', key: deviceKey, expiresAt: now + 3600, keyName: 'registration' })
 * // 'SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fdev1&sig=…&se=…&skn=registration'
 * ```
 */
export function buildSasToken(options: BuildSasTokenOptions): string {
  const { resource, key, expiresAt, keyName } = options
  if (typeof resource !== 'string' || resource.length === 0) throw new TypeError('buildSasToken: resource must be a non-empty string')
  if (!Number.isSafeInteger(expiresAt) || expiresAt <= 0) {
    throw new RangeError(`buildSasToken: expiresAt must be a positive integer of unix seconds, got ${expiresAt}`)
  }
  const mode = options.encodeResource ?? 'encodeURIComponent'
  const sr =
    mode === 'raw' ? resource : mode === 'encodeURIComponent' ? encodeURIComponent(resource) : encodeUriComponentStrict(resource)
  const se = String(expiresAt)
  const message = sasStringToSign(sr, se)
  let sig: string
  if (isPreparedKey(key)) sig = key.macBase64(message)
  else if (key instanceof Uint8Array) {
    if (key.length === 0) throw new TypeError('buildSasToken: key is empty')
    sig = hmacSha256Base64(key, message)
  }
  else if (typeof key === 'string') {
    let bytes: Uint8Array
    try {
      bytes = base64Decode(key)
    } catch (cause) {
      throw new TypeError('buildSasToken: key is not valid base64', { cause })
    }
    if (bytes.length === 0) throw new TypeError('buildSasToken: key is empty')
    sig = hmacSha256Base64(bytes, message)
  } else throw new TypeError('buildSasToken: key must be base64 text, bytes or a prepared HMAC key')

  const values: Record<SasField, string | undefined> = {
    sr,
    sig: encodeURIComponent(sig),
    se,
    skn: keyName === undefined ? undefined : encodeUriComponentStrict(keyName),
  }
  const order = options.fieldOrder ?? DEFAULT_ORDER
  let out = SAS_SCHEME + ' '
  let first = true
  const used = new Set<SasField>()
  for (const field of order) {
    if (!Object.prototype.hasOwnProperty.call(values, field) || used.has(field)) throw new RangeError(`buildSasToken: fieldOrder has an unknown or repeated field ${String(field)}`)
    used.add(field)
    const value = values[field]
    if (value === undefined) continue
    out += (first ? '' : '&') + field + '=' + value
    first = false
  }
  for (const field of ['sr', 'sig', 'se'] as const) {
    if (!used.has(field)) throw new RangeError(`buildSasToken: fieldOrder lacks ${field}`)
  }
  if (keyName !== undefined && !used.has('skn')) throw new RangeError('buildSasToken: fieldOrder lacks skn but a keyName was given')
  return out
}

/** `{idScope}/registrations/{registrationId}`: the resource of a DPS device token (§2.1). */
export function deviceRegistrationResource(idScope: string, registrationId: string): string {
  return idScope + '/registrations/' + registrationId
}

/** `{hubHost}/devices/{deviceId}[/modules/{moduleId}]`: the resource of a hub device token. */
export function hubDeviceResource(hubHost: string, deviceId: string, moduleId?: string): string {
  return hubHost + '/devices/' + deviceId + (moduleId === undefined ? '' : '/modules/' + moduleId)
}
