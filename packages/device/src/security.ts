/**
 * Security providers: how a device proves who it is (docs/protocol.md §2, §5, §6).
 *
 * - `symmetricKey({ registrationId, key })` — an individual enrollment's key, or
 *   `symmetricKey({ registrationId, groupKey })` — the device key derived from an enrollment group's
 *   key (HMAC-SHA256(groupKey, registrationId), §2.2). Works everywhere.
 * - `x509({ registrationId?, cert, key })` — a TLS client certificate (PEM). Node only: browsers do
 *   not let a page present a client certificate.
 * - `tpm({ tpm, registrationId? })` — a TPM: `softwareTpm(seed)` (our software TPM, anywhere) or, in
 *   Node, `tpmSimulator({ host, port })` (a Microsoft TPM-simulator TCP endpoint).
 */
import { base64Decode, base64Encode, deriveDeviceKey, utf8Encode } from '@provisio/crypto'
import { DEVICE_SAS_KEY_NAME, buildSasToken, deviceRegistrationResource } from '@provisio/protocol'
import { SoftwareTpm, TpmDevice, defaultRegistrationId } from '@provisio/tpm'
import { DeviceError } from './errors.js'

/** A symmetric-key device. */
export interface SymmetricKeySecurity {
  readonly kind: 'symmetricKey'
  readonly registrationId: string
  /** The device key, base64 (derived already when a group key was given). */
  readonly key: string
}

/** An X.509 device (Node only). */
export interface X509Security {
  readonly kind: 'x509'
  /** Defaults to the certificate's subject CN (read by the Node entry). */
  readonly registrationId: string
  /** Device certificate PEM, optionally followed by its intermediates (leaf first). */
  readonly cert: string
  /** Private key PEM. */
  readonly key: string
}

/**
 * What the SDK needs from a TPM (docs/protocol.md §5.5): the public EK and SRK (TPM2B_PUBLIC bytes),
 * activation of a DPS activation blob (ActivateCredential + Import + Load + persist), and HMAC
 * signing with the imported identity key.
 */
export interface DeviceTpm {
  endorsementKey(): Promise<Uint8Array>
  storageRootKey(): Promise<Uint8Array>
  activate(blob: Uint8Array): Promise<void>
  sign(data: Uint8Array): Promise<Uint8Array>
  close?(): Promise<void>
}

/** A TPM device. */
export interface TpmSecurity {
  readonly kind: 'tpm'
  /** Defaults to the SDKs' rule: lowercase base32 of SHA-256(EK) (§5.1). */
  readonly registrationId: string | undefined
  readonly tpm: DeviceTpm
}

/** Any of the three. */
export type SecurityProvider = SymmetricKeySecurity | X509Security | TpmSecurity

/** Options of {@link symmetricKey}. */
export type SymmetricKeyOptions =
  | { readonly registrationId: string; readonly key: string }
  | { readonly registrationId: string; readonly groupKey: string }

function checkRegistrationId(id: unknown, what: string): string {
  if (typeof id !== 'string' || id === '' || id.length > 128) {
    throw new DeviceError('INVALID_ARGUMENT', `${what}: registrationId must be a string of 1-128 characters`)
  }
  return id
}

/** Checks base64 shape in plain JS (the WASM core may not be ready yet in a browser). */
function checkBase64Key(key: unknown, what: string): string {
  if (typeof key !== 'string') throw new DeviceError('INVALID_ARGUMENT', `${what} must be base64 text`)
  if (key.length === 0 || key.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(key)) {
    throw new DeviceError('INVALID_ARGUMENT', `${what} is not standard base64 (a non-empty multiple of 4 characters of A-Z a-z 0-9 + / and = padding)`)
  }
  return key
}

/** A symmetric-key device, with its own key or one derived from a group key (§2.2). */
export function symmetricKey(options: SymmetricKeyOptions): SymmetricKeySecurity {
  const registrationId = checkRegistrationId(options.registrationId, 'symmetricKey')
  if ('groupKey' in options) {
    const groupKey = checkBase64Key(options.groupKey, 'symmetricKey: groupKey')
    // Derived on first use: in a browser the WASM core is ready only after `await ready()`.
    let derived: string | undefined
    return {
      kind: 'symmetricKey',
      registrationId,
      get key() {
        derived ??= deriveDeviceKey(groupKey, registrationId)
        return derived
      },
    }
  }
  return { kind: 'symmetricKey', registrationId, key: checkBase64Key(options.key, 'symmetricKey: key') }
}

/** Options of {@link tpm}. */
export interface TpmOptions {
  readonly tpm: DeviceTpm
  readonly registrationId?: string
}

/** A TPM device. */
export function tpm(options: TpmOptions): TpmSecurity {
  if (options.registrationId !== undefined) checkRegistrationId(options.registrationId, 'tpm')
  return { kind: 'tpm', registrationId: options.registrationId, tpm: options.tpm }
}

/**
 * Our software TPM (@provisio/tpm) as a device TPM: EK and SRK from the SDK templates, keys derived
 * from `seed` (≥ 16 bytes; the same seed gives the same EK). Runs in Node and browsers.
 */
export function softwareTpm(seed: Uint8Array | SoftwareTpm): DeviceTpm {
  const device = new TpmDevice(seed instanceof SoftwareTpm ? seed : new SoftwareTpm({ seed }))
  return {
    endorsementKey: () => Promise.resolve(device.endorsementKey()),
    storageRootKey: () => Promise.resolve(device.storageRootKey()),
    activate: (blob) => Promise.resolve(device.activate(blob)),
    sign: (data) => Promise.resolve(device.sign(data)),
  }
}

/** The registrationId of a provider (for TPM without one: the SDK default from the EK). */
export async function resolveRegistrationId(security: SecurityProvider): Promise<string> {
  if (security.kind !== 'tpm') return security.registrationId
  if (security.registrationId !== undefined) return security.registrationId
  return defaultRegistrationId(await security.tpm.endorsementKey())
}

/** Device SAS lifetime: one hour, like the Node SDK. */
export const SAS_LIFETIME_SECONDS = 3600

/** A DPS device token signed with a symmetric key (`sr` encoded with %2F, fields sr,sig,se,skn). */
export function symmetricKeySasToken(idScope: string, registrationId: string, key: string, nowMs: number): string {
  return buildSasToken({
    resource: deviceRegistrationResource(idScope, registrationId),
    key,
    expiresAt: Math.floor(nowMs / 1000) + SAS_LIFETIME_SECONDS,
    keyName: DEVICE_SAS_KEY_NAME,
  })
}

/** A SAS token whose signature comes from a TPM (HMAC with the imported identity key, §5.5). */
export async function tpmSasToken(resource: string, tpmDevice: DeviceTpm, nowMs: number, keyName?: string): Promise<string> {
  const sr = encodeURIComponent(resource)
  const se = String(Math.floor(nowMs / 1000) + SAS_LIFETIME_SECONDS)
  let sig: Uint8Array
  try {
    sig = await tpmDevice.sign(utf8Encode(sr + '\n' + se))
  } catch (cause) {
    throw new DeviceError('TPM', `the TPM could not sign the SAS token: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
  }
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(base64Encode(sig))}&se=${se}${keyName === undefined ? '' : `&skn=${keyName}`}`
}

/** Activates a blob in the TPM, mapping failures to a TPM DeviceError. */
export async function activateBlob(tpmDevice: DeviceTpm, blobBase64: string, what: string): Promise<void> {
  let blob: Uint8Array
  try {
    blob = base64Decode(blobBase64)
  } catch (cause) {
    throw new DeviceError('PROTOCOL', `${what}: authenticationKey is not base64`, { cause })
  }
  try {
    await tpmDevice.activate(blob)
  } catch (cause) {
    throw new DeviceError('TPM', `${what}: the TPM could not activate the blob: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
  }
}
