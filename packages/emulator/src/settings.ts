/**
 * What the emulator is asked to run, checked in one place: the form's raw strings in, typed
 * settings (or one error per field, saying why) out. Pure: no DOM, so the rules are unit-tested.
 */

/** Transports a browser can open: WebSockets (MQTT, AMQP) and HTTPS (fetch). */
export const TRANSPORTS = ['mqtt-ws', 'amqp-ws', 'http'] as const
export type Transport = (typeof TRANSPORTS)[number]

/** How the emulated devices prove who they are. X.509 is not among them (see X509_NOTE). */
export const CREDENTIAL_KINDS = ['group-key', 'individual-keys', 'tpm'] as const
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number]

/** Why there is no X.509 choice: a page cannot present a client certificate on a WebSocket or fetch it opens. */
export const X509_NOTE =
  'X.509 devices cannot be emulated in a browser: a page cannot choose the TLS client certificate of a WebSocket or a fetch. ' +
  'Use `provisio simulate` (Node) for X.509 fleets.'

/** Most devices one run may start (each holds a socket while it works). */
export const MAX_DEVICES = 100_000
/** Most devices working at the same time. */
export const MAX_CONCURRENCY = 1_000
/** Most software TPMs made in the page (each one generates two RSA-2048 keys). */
export const MAX_TPMS = 500
/** Longest telemetry interval, s. */
export const MAX_TELEMETRY_INTERVAL_SECONDS = 3600

export interface IndividualKey {
  readonly registrationId: string
  readonly key: string
}

export interface EmulatorSettings {
  /** Host of the DPS global endpoint (and of the hub the devices are assigned to). */
  readonly host: string
  /** HTTPS / WebSocket port. */
  readonly port: number
  readonly idScope: string
  readonly transport: Transport
  readonly credential: CredentialKind
  /** Group key (base64) for `group-key`. */
  readonly groupKey: string
  /** Registration ids are `<prefix><index>` for group keys and TPMs. */
  readonly registrationIdPrefix: string
  /** Devices and keys for `individual-keys` (one per line: `registrationId key`). */
  readonly individualKeys: readonly IndividualKey[]
  /** Number of devices (for `individual-keys`: the number of lines). */
  readonly count: number
  readonly concurrency: number
  /** Read each assigned device's twin from its hub. */
  readonly readTwins: boolean
  /**
   * Keep each assigned device connected to its hub after reading its twin (desired changes
   * arrive, telemetry is sent) until Stop.
   */
  readonly stayConnected: boolean
  /** Telemetry interval of a connected device, s; 0 sends none. */
  readonly telemetryIntervalSeconds: number
}

/** The form's fields, as strings (what a text input holds). */
export interface RawSettings {
  readonly host?: string
  readonly port?: string
  readonly idScope?: string
  readonly transport?: string
  readonly credential?: string
  readonly groupKey?: string
  readonly registrationIdPrefix?: string
  readonly individualKeys?: string
  readonly count?: string
  readonly concurrency?: string
  readonly readTwins?: string
  readonly stayConnected?: string
  readonly telemetryIntervalSeconds?: string
}

export interface FieldError {
  readonly field: keyof RawSettings
  readonly message: string
}

export type ParseResult = { readonly ok: true; readonly settings: EmulatorSettings } | { readonly ok: false; readonly errors: readonly FieldError[] }

/** DPS registration id rule (docs/protocol.md §0): lowercase alphanumerics and `-._:`, 1-128. */
const REGISTRATION_ID = /^[a-z0-9\-._:]{1,128}$/
const ID_SCOPE = /^0ne[0-9A-Fa-f]{8}$/
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\d{1,3}(?:\.\d{1,3}){3})$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Most bytes of the individual-keys text (100,000 lines of id + 44-char key fit). */
export const MAX_KEYS_TEXT = 20 * 1024 * 1024

export function parseSettings(raw: RawSettings): ParseResult {
  const errors: FieldError[] = []
  const fail = (field: keyof RawSettings, message: string): void => void errors.push({ field, message })

  const host = (raw.host ?? '').trim()
  if (!HOST.test(host)) fail('host', `"${host}" is not a host name or IPv4 address`)

  const port = wholeNumber(raw.port, 1, 65_535)
  if (port === undefined) fail('port', `port must be a whole number from 1 to 65535, got "${raw.port ?? ''}"`)

  const idScope = (raw.idScope ?? '').trim()
  if (!ID_SCOPE.test(idScope)) fail('idScope', `ID scope must look like 0ne followed by 8 hex digits, got "${idScope}"`)

  const transport = (raw.transport ?? '') as Transport
  if (!TRANSPORTS.includes(transport)) fail('transport', `transport must be one of ${TRANSPORTS.join(', ')}`)

  const credential = (raw.credential ?? '') as CredentialKind
  if (!CREDENTIAL_KINDS.includes(credential)) fail('credential', `credential must be one of ${CREDENTIAL_KINDS.join(', ')}`)

  if (credential === 'tpm' && transport === 'mqtt-ws') fail('transport', 'DPS has no TPM attestation over MQTT: choose AMQP over WebSockets or HTTPS')

  const prefix = (raw.registrationIdPrefix ?? '').trim()
  const groupKey = (raw.groupKey ?? '').trim()
  let individualKeys: IndividualKey[] = []
  let count = wholeNumber(raw.count, 1, credential === 'tpm' ? MAX_TPMS : MAX_DEVICES)

  if (credential === 'group-key' || credential === 'tpm') {
    if (count === undefined) {
      const max = credential === 'tpm' ? MAX_TPMS : MAX_DEVICES
      fail('count', `number of devices must be a whole number from 1 to ${max}${credential === 'tpm' ? ' (software TPMs are made in the page)' : ''}, got "${raw.count ?? ''}"`)
    } else if (!REGISTRATION_ID.test(`${prefix}${count - 1}`)) {
      fail('registrationIdPrefix', `registration ids "${prefix}0"… must be lowercase letters, digits and - . _ : (at most 128 characters)`)
    }
  }
  if (credential === 'group-key') {
    if (groupKey === '' || !BASE64.test(groupKey) || groupKey.length > 1024) fail('groupKey', 'group key must be the base64 primary or secondary key of the enrollment group')
  }
  if (credential === 'individual-keys') {
    const parsed = parseIndividualKeys(raw.individualKeys ?? '')
    if (typeof parsed === 'string') fail('individualKeys', parsed)
    else {
      individualKeys = parsed
      count = parsed.length
    }
  }

  const concurrency = wholeNumber(raw.concurrency, 1, MAX_CONCURRENCY)
  if (concurrency === undefined) fail('concurrency', `concurrency must be a whole number from 1 to ${MAX_CONCURRENCY}, got "${raw.concurrency ?? ''}"`)

  const stayConnected = raw.stayConnected === 'true'
  const telemetryText = (raw.telemetryIntervalSeconds ?? '').trim()
  const telemetryIntervalSeconds = telemetryText === '' ? 0 : wholeNumber(telemetryText, 0, MAX_TELEMETRY_INTERVAL_SECONDS)
  if (telemetryIntervalSeconds === undefined) {
    fail('telemetryIntervalSeconds', `telemetry interval must be a whole number of seconds from 0 (none) to ${MAX_TELEMETRY_INTERVAL_SECONDS}, got "${telemetryText}"`)
  } else if (telemetryIntervalSeconds > 0 && !stayConnected) {
    fail('telemetryIntervalSeconds', 'telemetry is sent by devices that stay connected: tick "Stay connected", or set the interval to 0')
  }
  if (stayConnected && raw.readTwins === 'false') fail('stayConnected', 'a device that stays connected reads its twin: tick "Read each device\'s twin" too')

  if (errors.length > 0) return { ok: false, errors }
  return {
    ok: true,
    settings: {
      host,
      port: port!,
      idScope,
      transport,
      credential,
      groupKey,
      registrationIdPrefix: prefix,
      individualKeys,
      count: count!,
      concurrency: concurrency!,
      readTwins: raw.readTwins !== 'false',
      stayConnected,
      telemetryIntervalSeconds: telemetryIntervalSeconds!,
    },
  }
}

/**
 * Individual enrollments, one per line: `registrationId key` (space, tab, comma or `;` between).
 * Blank lines and lines starting with `#` are ignored. Returns the reason as a string when a line is wrong.
 */
export function parseIndividualKeys(text: string): IndividualKey[] | string {
  if (text.length > MAX_KEYS_TEXT) return `the key list is larger than ${MAX_KEYS_TEXT} characters`
  const out: IndividualKey[] = []
  const seen = new Set<string>()
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    const parts = line.split(/[\s,;]+/)
    if (parts.length !== 2) return `line ${i + 1}: expected "registrationId key", got ${parts.length} field(s)`
    const [registrationId, key] = parts as [string, string]
    if (!REGISTRATION_ID.test(registrationId)) return `line ${i + 1}: "${registrationId}" is not a valid registration id (lowercase letters, digits, - . _ :)`
    if (!BASE64.test(key) || key.length === 0) return `line ${i + 1}: the key of ${registrationId} is not base64`
    if (seen.has(registrationId)) return `line ${i + 1}: ${registrationId} is listed twice`
    seen.add(registrationId)
    out.push({ registrationId, key })
    if (out.length > MAX_DEVICES) return `more than ${MAX_DEVICES} devices listed`
  }
  if (out.length === 0) return 'list at least one device: one line "registrationId key" each'
  return out
}

function wholeNumber(raw: string | undefined, min: number, max: number): number | undefined {
  const text = (raw ?? '').trim()
  if (!/^\d{1,9}$/.test(text)) return undefined
  const n = Number(text)
  return n >= min && n <= max ? n : undefined
}

/** Registration ids of a group-key or TPM run. */
export function registrationIds(settings: Pick<EmulatorSettings, 'registrationIdPrefix' | 'count'>): string[] {
  return Array.from({ length: settings.count }, (_, i) => `${settings.registrationIdPrefix}${i}`)
}
