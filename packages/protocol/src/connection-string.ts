/**
 * Azure connection strings: `Key=Value` pairs separated by `;`, in any order.
 *
 * Three shapes matter to Provisio:
 * - shared-access-key strings of IoT hubs and of DPS itself:
 *   `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…` (docs/architecture.md §7, docs/protocol.md §2.3);
 * - device strings: `HostName=…;DeviceId=…;` plus one credential, `SharedAccessKey=…`, `x509=true`
 *   or `SharedAccessSignature=…`, and optionally `ModuleId=…` and `GatewayHostName=…`
 *   (docs/protocol.md §11: the gateway moves only the TCP/TLS target).
 *
 * Rules: keys are matched case-insensitively (a key given twice in any spelling is an error), the
 * value is everything after the first `=` (base64 padding survives), empty segments (a trailing
 * `;`) are ignored, keys we do not interpret are kept in order and written back by the
 * formatters. Errors name the key at fault and never echo key material.
 *
 * @module
 */
import { ProvisioError } from './errors.js'
import { isBase64 } from './percent.js'

/** Size limits of {@link parseConnectionString}. */
export interface ConnectionStringLimits {
  /** Longest accepted text; default 4096 characters. */
  readonly maxLength?: number
  /** Most `Key=Value` pairs; default 32. */
  readonly maxFields?: number
}

const DEFAULT_MAX_LENGTH = 4096
const DEFAULT_MAX_FIELDS = 32

/** Ordered `[key, value]` pairs, keys in their original spelling. */
export type ConnectionStringFields = ReadonlyArray<readonly [key: string, value: string]>

function malformed(reason: string): ProvisioError {
  return new ProvisioError('CONNECTION_STRING_MALFORMED', reason)
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d
}

/**
 * Splits a connection string into ordered pairs. Surrounding whitespace of the whole text is
 * ignored (copy-paste), whitespace inside keys is not allowed, values are taken verbatim.
 *
 * @throws ProvisioError CONNECTION_STRING_MALFORMED (syntax, size) or
 *   CONNECTION_STRING_DUPLICATE_KEY (a key twice, compared case-insensitively)
 * @example
 * ```ts
 * parseConnectionString('HostName=h;SharedAccessKey=YWJj==')
 * // [['HostName', 'h'], ['SharedAccessKey', 'YWJj==']]
 * ```
 */
export function parseConnectionString(text: string, limits?: ConnectionStringLimits): ConnectionStringFields {
  return splitFields(text, limits, 'connection string')
}

/** {@link parseConnectionString} with `label` ("IoT hub connection string") leading every reason. */
function splitFields(text: string, limits: ConnectionStringLimits | undefined, label: string): ConnectionStringFields {
  if (typeof text !== 'string') throw malformed(`${label} must be a string, got ${typeof text}`)
  const maxLength = limits?.maxLength ?? DEFAULT_MAX_LENGTH
  const maxFields = limits?.maxFields ?? DEFAULT_MAX_FIELDS
  if (text.length > maxLength) {
    throw malformed(`${label} is ${text.length} characters long; the limit is ${maxLength}`)
  }
  let start = 0
  let end = text.length
  while (start < end && isSpace(text.charCodeAt(start))) start++
  while (end > start && isSpace(text.charCodeAt(end - 1))) end--
  if (start === end) throw malformed(`${label} is empty`)

  const fields: Array<readonly [string, string]> = []
  const seen = new Set<string>()
  let pos = start
  while (pos < end) {
    let semi = text.indexOf(';', pos)
    if (semi < 0 || semi > end) semi = end
    if (semi > pos) {
      const eq = text.indexOf('=', pos)
      if (eq < 0 || eq >= semi) {
        throw malformed(`${label}: segment ${fields.length + 1} at offset ${pos} has no '=' (expected Key=Value)`)
      }
      if (eq === pos) throw malformed(`${label}: segment ${fields.length + 1} at offset ${pos} has an empty key`)
      const key = text.slice(pos, eq)
      for (let i = 0; i < key.length; i++) {
        const c = key.charCodeAt(i)
        if (c <= 0x20 || c === 0x7f) {
          throw malformed(`${label}: key ${JSON.stringify(key)} at offset ${pos} contains whitespace or a control character`)
        }
      }
      const folded = key.toLowerCase()
      if (seen.has(folded)) {
        throw new ProvisioError('CONNECTION_STRING_DUPLICATE_KEY', `${label} has the key ${key} more than once`)
      }
      seen.add(folded)
      if (fields.length === maxFields) throw malformed(`${label} has more than ${maxFields} fields`)
      fields.push([key, text.slice(eq + 1, semi)])
    }
    pos = semi + 1
  }
  return fields
}

/**
 * Writes pairs back as `Key=Value;Key=Value`.
 *
 * @throws ProvisioError CONNECTION_STRING_MALFORMED when a key is empty or holds `=`, `;` or
 *   whitespace, or a value holds `;` (neither could be read back)
 */
export function formatConnectionString(fields: ConnectionStringFields): string {
  let out = ''
  for (const [key, value] of fields) {
    if (key.length === 0) throw malformed('cannot format an empty key')
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i)
      if (c === 0x3d || c === 0x3b || c <= 0x20 || c === 0x7f) {
        throw malformed(`cannot format key ${JSON.stringify(key)}: it contains '=', ';', whitespace or a control character`)
      }
    }
    if (value.indexOf(';') >= 0) throw malformed(`cannot format the value of ${key}: it contains ';'`)
    if (out.length > 0) out += ';'
    out += key + '=' + value
  }
  return out
}

/** Case-insensitive lookup of the canonical keys we interpret. */
class FieldReader {
  private readonly byKey = new Map<string, string>()
  private readonly known: Set<string>

  constructor(
    private readonly fields: ConnectionStringFields,
    knownKeys: readonly string[],
  ) {
    for (const [key, value] of fields) this.byKey.set(key.toLowerCase(), value)
    this.known = new Set(knownKeys.map((k) => k.toLowerCase()))
  }

  optional(key: string): string | undefined {
    return this.byKey.get(key.toLowerCase())
  }

  required(key: string, what: string): string {
    const value = this.byKey.get(key.toLowerCase())
    if (value === undefined) {
      throw new ProvisioError('CONNECTION_STRING_MISSING_KEY', `${what} connection string has no ${key}`)
    }
    if (value.length === 0) {
      throw new ProvisioError('CONNECTION_STRING_MISSING_KEY', `${what} connection string has an empty ${key}`)
    }
    return value
  }

  extra(): ConnectionStringFields {
    return this.fields.filter(([key]) => !this.known.has(key.toLowerCase()))
  }
}

function checkHostName(value: string, key: string, what: string): string {
  // Host names (RFC 1123 labels) or host:port; we only refuse what can never be a host.
  if (value.length > 261) throw malformed(`${what} connection string: ${key} is longer than 261 characters`)
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f || c === 0x2f || c === 0x40) {
      throw malformed(`${what} connection string: ${key} contains a character that cannot appear in a host name at index ${i}`)
    }
  }
  return value
}

function checkKey(value: string, key: string, what: string): string {
  if (!isBase64(value)) {
    throw malformed(`${what} connection string: ${key} is not standard padded base64 (${value.length} characters)`)
  }
  return value
}

/** A shared-access-key connection string of an IoT hub or of a DPS instance. */
export interface SharedAccessKeyConnectionString {
  /** `HostName`: the hub or DPS host, e.g. `myhub.azure-devices.net`. */
  readonly hostName: string
  /** `SharedAccessKeyName`: the access policy, e.g. `iothubowner`, `provisioningserviceowner`. */
  readonly sharedAccessKeyName: string
  /** `SharedAccessKey`: the policy key, base64. */
  readonly sharedAccessKey: string
  /** Keys we do not interpret, in order and original spelling. */
  readonly extra: ConnectionStringFields
}

const SAK_KEYS = ['HostName', 'SharedAccessKeyName', 'SharedAccessKey']

/**
 * Parses `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…` in any order: the IoT hub service
 * (`iothubowner`) strings DPS links hubs with, and DPS service strings (`provisioningserviceowner`).
 *
 * @param what names the string in error reasons, e.g. `'IoT hub'` or `'DPS service'`
 * @throws ProvisioError CONNECTION_STRING_MISSING_KEY naming the key, CONNECTION_STRING_DUPLICATE_KEY,
 *   CONNECTION_STRING_MALFORMED
 */
export function parseSharedAccessKeyConnectionString(
  text: string,
  what = 'shared access key',
  limits?: ConnectionStringLimits,
): SharedAccessKeyConnectionString {
  const reader = new FieldReader(splitFields(text, limits, `${what} connection string`), SAK_KEYS)
  const hostName = checkHostName(reader.required('HostName', what), 'HostName', what)
  const sharedAccessKeyName = reader.required('SharedAccessKeyName', what)
  const sharedAccessKey = checkKey(reader.required('SharedAccessKey', what), 'SharedAccessKey', what)
  return { hostName, sharedAccessKeyName, sharedAccessKey, extra: reader.extra() }
}

/** {@link parseSharedAccessKeyConnectionString} for an IoT hub (`iothubowner`-style) string. */
export function parseHubConnectionString(text: string, limits?: ConnectionStringLimits): SharedAccessKeyConnectionString {
  return parseSharedAccessKeyConnectionString(text, 'IoT hub', limits)
}

/** {@link parseSharedAccessKeyConnectionString} for a DPS service (`provisioningserviceowner`-style) string. */
export function parseDpsServiceConnectionString(
  text: string,
  limits?: ConnectionStringLimits,
): SharedAccessKeyConnectionString {
  return parseSharedAccessKeyConnectionString(text, 'DPS service', limits)
}

/** Writes a shared-access-key connection string in the canonical order, then the extra keys. */
export function formatSharedAccessKeyConnectionString(cs: {
  readonly hostName: string
  readonly sharedAccessKeyName: string
  readonly sharedAccessKey: string
  readonly extra?: ConnectionStringFields
}): string {
  return formatConnectionString([
    ['HostName', cs.hostName],
    ['SharedAccessKeyName', cs.sharedAccessKeyName],
    ['SharedAccessKey', cs.sharedAccessKey],
    ...(cs.extra ?? []),
  ])
}

/** How a device connection string authenticates. */
export type DeviceCredential =
  | { readonly kind: 'sharedAccessKey'; readonly sharedAccessKey: string }
  | { readonly kind: 'x509' }
  | { readonly kind: 'sharedAccessSignature'; readonly sharedAccessSignature: string }

/** A device (or module) connection string of an IoT hub. */
export interface DeviceConnectionString {
  readonly hostName: string
  readonly deviceId: string
  readonly moduleId?: string
  /** `GatewayHostName`: where to open the TCP/TLS connection instead of `hostName`. */
  readonly gatewayHostName?: string
  readonly credential: DeviceCredential
  /** Keys we do not interpret, in order and original spelling. */
  readonly extra: ConnectionStringFields
}

const DEVICE_KEYS = ['HostName', 'DeviceId', 'ModuleId', 'GatewayHostName', 'SharedAccessKey', 'x509', 'SharedAccessSignature']

/**
 * Parses a device connection string: `HostName` and `DeviceId`, exactly one credential
 * (`SharedAccessKey`, `x509=true` or `SharedAccessSignature`), optional `ModuleId` and
 * `GatewayHostName`, in any order.
 *
 * @throws ProvisioError CONNECTION_STRING_MISSING_KEY naming the key, CONNECTION_STRING_DUPLICATE_KEY,
 *   CONNECTION_STRING_MALFORMED (e.g. two credentials, `x509=maybe`, a key that is not base64)
 * @example
 * ```ts
 * parseDeviceConnectionString('HostName=h.azure-devices.net;DeviceId=d1;x509=true').credential // { kind: 'x509' }
 * ```
 */
export function parseDeviceConnectionString(text: string, limits?: ConnectionStringLimits): DeviceConnectionString {
  const what = 'device'
  const reader = new FieldReader(splitFields(text, limits, 'device connection string'), DEVICE_KEYS)
  const hostName = checkHostName(reader.required('HostName', what), 'HostName', what)
  const deviceId = reader.required('DeviceId', what)
  const moduleId = reader.optional('ModuleId')
  if (moduleId !== undefined && moduleId.length === 0) {
    throw new ProvisioError('CONNECTION_STRING_MISSING_KEY', 'device connection string has an empty ModuleId')
  }
  const gateway = reader.optional('GatewayHostName')
  const gatewayHostName = gateway === undefined ? undefined : checkHostName(gateway, 'GatewayHostName', what)
  if (gatewayHostName !== undefined && gatewayHostName.length === 0) {
    throw new ProvisioError('CONNECTION_STRING_MISSING_KEY', 'device connection string has an empty GatewayHostName')
  }

  const key = reader.optional('SharedAccessKey')
  const sas = reader.optional('SharedAccessSignature')
  const x509Text = reader.optional('x509')
  let x509 = false
  if (x509Text !== undefined) {
    const folded = x509Text.toLowerCase()
    if (folded === 'true') x509 = true
    else if (folded !== 'false') throw malformed(`device connection string: x509 must be true or false, got ${JSON.stringify(x509Text)}`)
  }
  const given = (key !== undefined ? 1 : 0) + (sas !== undefined ? 1 : 0) + (x509 ? 1 : 0)
  if (given === 0) {
    throw new ProvisioError(
      'CONNECTION_STRING_MISSING_KEY',
      'device connection string has no credential: expected SharedAccessKey, x509=true or SharedAccessSignature',
    )
  }
  if (given > 1) {
    throw malformed('device connection string has more than one credential among SharedAccessKey, x509=true and SharedAccessSignature')
  }
  let credential: DeviceCredential
  if (key !== undefined) {
    credential = { kind: 'sharedAccessKey', sharedAccessKey: checkKey(reader.required('SharedAccessKey', what), 'SharedAccessKey', what) }
  } else if (sas !== undefined) {
    credential = { kind: 'sharedAccessSignature', sharedAccessSignature: reader.required('SharedAccessSignature', what) }
  } else {
    credential = { kind: 'x509' }
  }
  const result: {
    hostName: string
    deviceId: string
    moduleId?: string
    gatewayHostName?: string
    credential: DeviceCredential
    extra: ConnectionStringFields
  } = { hostName, deviceId, credential, extra: reader.extra() }
  if (moduleId !== undefined) result.moduleId = moduleId
  if (gatewayHostName !== undefined) result.gatewayHostName = gatewayHostName
  return result
}

/**
 * Writes a device connection string in the order the Azure portal and SDK samples use:
 * HostName, DeviceId, ModuleId, the credential, GatewayHostName, then the extra keys.
 */
export function formatDeviceConnectionString(cs: {
  readonly hostName: string
  readonly deviceId: string
  readonly moduleId?: string
  readonly gatewayHostName?: string
  readonly credential: DeviceCredential
  readonly extra?: ConnectionStringFields
}): string {
  const fields: Array<readonly [string, string]> = [
    ['HostName', cs.hostName],
    ['DeviceId', cs.deviceId],
  ]
  if (cs.moduleId !== undefined) fields.push(['ModuleId', cs.moduleId])
  const c = cs.credential
  if (c.kind === 'sharedAccessKey') fields.push(['SharedAccessKey', c.sharedAccessKey])
  else if (c.kind === 'sharedAccessSignature') fields.push(['SharedAccessSignature', c.sharedAccessSignature])
  else fields.push(['x509', 'true'])
  if (cs.gatewayHostName !== undefined) fields.push(['GatewayHostName', cs.gatewayHostName])
  return formatConnectionString([...fields, ...(cs.extra ?? [])])
}
