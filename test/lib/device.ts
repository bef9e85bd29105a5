/**
 * @provisio/device against a test server: the DPS port each transport dials (mqtt on the MQTT
 * listener, amqp on the AMQP one, http and the WebSocket transports on HTTPS) and the client
 * options that point a device at the server, trusting its CA.
 */
import type { ProvisioningClient, SecurityProvider, TransportName } from '@provisio/device'
import type { TestServer } from './server.js'

type ClientOptions = ConstructorParameters<typeof ProvisioningClient>[0]

/** The port of `server` that `transport` connects to. */
export function dpsPortOf(server: TestServer, transport: TransportName): number {
  const p = server.endpoints.ports
  return transport === 'mqtt' ? p.mqtt : transport === 'amqp' ? p.amqp! : p.https
}

/** Options of a ProvisioningClient registering with `server` over `transport`; `extra` adds or overrides. */
export function clientOptions(server: TestServer, transport: TransportName, security: SecurityProvider, extra: Partial<ClientOptions> = {}): ClientOptions {
  return {
    idScope: server.endpoints.idScope,
    globalEndpoint: 'localhost',
    port: dpsPortOf(server, transport),
    transport,
    security,
    ca: server.caPem,
    ...extra,
  }
}
