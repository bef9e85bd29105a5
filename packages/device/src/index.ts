/**
 * @provisio/device — Node entry. Provisions devices with a DPS-compatible service (Provisio or
 * Azure DPS) over http, mqtt, mqtt-ws, amqp and amqp-ws, with symmetric keys, X.509 certificates or
 * a TPM. Browsers get `./browser` (chosen automatically through the `browser` export condition).
 */
import { X509Certificate } from 'node:crypto'
import { ProvisioningClientCore, type ProvisioningClientOptions, type RegisterEvents } from './client.js'
import { DeviceError } from './errors.js'
import { HubClient, type HubClientOptions } from './hub.js'
import { nodePlatform } from './node/platform.js'
import type { X509Security } from './security.js'

export * from './common.js'
export { tpmSimulator, type TpmSimulatorOptions } from './node/tpm-simulator.js'

/** Connects a provisioned device to its hub over MQTT (see HubClient). */
export function connectHub(options: HubClientOptions): Promise<HubClient> {
  return HubClient.connect(options, nodePlatform)
}

/** Registers devices; see ProvisioningClientOptions. */
export class ProvisioningClient extends ProvisioningClientCore {
  constructor(options: ProvisioningClientOptions, events?: RegisterEvents) {
    super(options, nodePlatform, events)
  }
}

/** Options of {@link x509}. */
export interface X509Options {
  /** Device certificate PEM, optionally followed by intermediates (leaf first). */
  readonly cert: string
  /** Private key PEM. */
  readonly key: string
  /** Defaults to the leaf certificate's subject CN (DPS requires them equal, §6). */
  readonly registrationId?: string
}

/** An X.509 device: the TLS client certificate is its credential on every transport (Node only). */
export function x509(options: X509Options): X509Security {
  if (typeof options?.cert !== 'string' || typeof options.key !== 'string') {
    throw new DeviceError('INVALID_ARGUMENT', 'x509: cert and key must be PEM strings')
  }
  let registrationId = options.registrationId
  if (registrationId === undefined) {
    let subject: string
    try {
      subject = new X509Certificate(options.cert).subject
    } catch (cause) {
      throw new DeviceError('INVALID_ARGUMENT', `x509: cert is not a PEM certificate: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    }
    const cn = subject.split('\n').find((line) => line.startsWith('CN='))
    if (cn === undefined) throw new DeviceError('INVALID_ARGUMENT', 'x509: the certificate has no subject CN; pass registrationId')
    registrationId = cn.slice(3)
  }
  return { kind: 'x509', registrationId, cert: options.cert, key: options.key }
}
