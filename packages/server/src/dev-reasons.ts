/**
 * Development reasons (`provisio serve --dev-reasons`, on by default when the server listens on
 * loopback only): a refused device is told why, in the service's own words.
 *
 * A DPS refusal is `{errorCode, trackingId, message, timestampUtc}` with a generic message
 * ("Unauthorized"); the reason (no enrollment, which groups were tried, which rule of a
 * certificate failed) stays in the server's log. With development reasons on, the device API's
 * refusals carry it in `message` as well — `Unauthorized (development reason: no individual
 * enrollment 'x' in ID scope …)` — and errorCode, status and trackingId stay what every client
 * parses.
 *
 * An MQTT CONNACK and an AMQP sasl-outcome have no room for text, so in this mode the connection
 * is accepted without the credential check at CONNECT / SASL (`authenticate` resolves), and the
 * check happens where it always happens as well: at the register or poll, whose refusal carries
 * the message. Run with `--dev-reasons false` to see the production behaviour (CONNACK 5, SASL
 * auth failure) and generic messages.
 */
import { withDeveloperReason, type DeviceApi } from '@provisio/protocol'

/** Whether `bind` is a loopback address only (the default of --dev-reasons follows it). */
export function isLoopbackBind(bind: string): boolean {
  const host = bind.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1')
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host)
}

/** The device API whose refusals carry their reason, and whose connection-time check defers to the request. */
export function withDevReasons(api: DeviceApi): DeviceApi {
  const reveal = (error: unknown): never => {
    throw withDeveloperReason(error)
  }
  return {
    register: (request) => api.register(request).catch(reveal),
    operationStatus: (request) => api.operationStatus(request).catch(reveal),
    registrationStatus: (request) => api.registrationStatus(request).catch(reveal),
    authenticate: () => Promise.resolve(),
  }
}
