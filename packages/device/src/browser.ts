/**
 * @provisio/device — browser entry: http (fetch), mqtt-ws (mqtt.js) and amqp-ws (rhea over the
 * global WebSocket), with symmetric keys or the software TPM. Call `await ready()` once before the
 * first registration (it compiles the WebAssembly crypto core; browsers refuse to do that
 * synchronously). X.509 is not supported in browsers: a page cannot present a TLS client
 * certificate; `x509()` throws DeviceError UNSUPPORTED. Raw `mqtt`/`amqp` need TCP and are refused too.
 */
import { ProvisioningClientCore, type ProvisioningClientOptions, type RegisterEvents } from './client.js'
import { DeviceError } from './errors.js'
import { HubClient, type HubClientOptions } from './hub.js'
import { browserPlatform } from './browser/platform.js'
import type { X509Security } from './security.js'

export * from './common.js'

/** Connects a provisioned device to its hub over MQTT (see HubClient). */
export function connectHub(options: HubClientOptions): Promise<HubClient> {
  return HubClient.connect(options, browserPlatform)
}

/** Registers devices from a browser; see ProvisioningClientOptions. */
export class ProvisioningClient extends ProvisioningClientCore {
  constructor(options: ProvisioningClientOptions, events?: RegisterEvents) {
    super(options, browserPlatform, events)
  }
}

/** Not available in browsers (always throws DeviceError UNSUPPORTED). */
export function x509(_options: { cert: string; key: string; registrationId?: string }): X509Security {
  throw new DeviceError('UNSUPPORTED', 'X.509 attestation is not supported in browsers: a page cannot present a TLS client certificate. Use the Node entry of @provisio/device.')
}


/** Not available in browsers (always throws DeviceError UNSUPPORTED): use softwareTpm(seed), or commandTpm(execute) with your own channel. */
export function tpmSimulator(_options?: { host?: string; port?: number }): never {
  throw new DeviceError('UNSUPPORTED', 'a TPM simulator over TCP is not reachable from a browser; use softwareTpm(seed) or commandTpm(execute)')
}
