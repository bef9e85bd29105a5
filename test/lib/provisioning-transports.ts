/**
 * Microsoft's five provisioning transports (azure-iot-provisioning-device-http, -mqtt `Mqtt` and
 * `MqttWs`, -amqp `Amqp` and `AmqpWs`) pointed at a test server, and one `register` over any of
 * them with any security client. The clients stay unmodified (tls-plumbing.ts says how):
 * - http and the WebSocket transports dial port 443: `http` needs `server.useAsDefaultHttpsAgent()`,
 *   the WebSocket ones get `webSocketAgent`;
 * - `Mqtt` takes the CA through its MqttBase; `Amqp` passes none to rhea, so a suite using it
 *   calls `trustCaOnPort(server.endpoints.ports.amqp, server.caPem)` once.
 */
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { Mqtt, MqttWs } from 'azure-iot-provisioning-device-mqtt'
import { Amqp, AmqpWs } from 'azure-iot-provisioning-device-amqp'
import { MqttBase } from 'azure-iot-mqtt-base'
import type { TestServer } from './server.js'
import { webSocketAgent } from './tls-plumbing.js'

export const PROVISIONING_TRANSPORTS = ['http', 'mqtt', 'mqtt-ws', 'amqp', 'amqp-ws'] as const
export type ProvisioningTransport = (typeof PROVISIONING_TRANSPORTS)[number]

/** The host a transport is given and the transport object, for `server`. */
export function provisioningTransport(server: TestServer, transport: ProvisioningTransport): { host: string; transport: unknown } {
  switch (transport) {
    case 'http':
      return { host: 'localhost', transport: new Http() }
    case 'mqtt': {
      const base = new MqttBase()
      base.setOptions({ ca: server.caPem } as never)
      return { host: `localhost:${server.endpoints.ports.mqtt}`, transport: new Mqtt(base as never) }
    }
    case 'mqtt-ws': {
      const base = new MqttBase()
      base.setOptions({ ca: server.caPem, mqtt: { webSocketAgent: webSocketAgent(server) } } as never)
      return { host: 'localhost', transport: new MqttWs(base as never) }
    }
    case 'amqp':
      return { host: `localhost:${server.endpoints.ports.amqp}`, transport: new Amqp() }
    case 'amqp-ws': {
      const ws = new AmqpWs()
      ws.setTransportOptions({ webSocketAgent: webSocketAgent(server) } as never)
      return { host: 'localhost', transport: ws }
    }
  }
}

/** What ProvisioningDeviceClient.register resolves with. */
export interface ProvisioningResult {
  readonly assignedHub: string
  readonly deviceId: string
  readonly payload?: unknown
}

/** Registers over `transport` with `security` (any of Microsoft's security clients). */
export function registerOver(server: TestServer, transport: ProvisioningTransport, security: unknown): Promise<ProvisioningResult> {
  const t = provisioningTransport(server, transport)
  // Two copies of azure-iot-common in node_modules make the SDK's own types disagree; the objects fit.
  const client = ProvisioningDeviceClient.create(t.host, server.endpoints.idScope, t.transport as never, security as never)
  return new Promise((resolve, reject) => {
    client.register((err?: Error, result?: unknown) => (err ? reject(err) : resolve(result as ProvisioningResult)))
  })
}
