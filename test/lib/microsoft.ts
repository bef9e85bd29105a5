/**
 * Microsoft's MQTT provisioning transports pointed at a test server: `Mqtt` dials the MQTT port
 * given as `host:port`, `MqttWs` the HTTPS port through an agent; both trust the server's CA.
 * `server` is read when a transport is made (suites start their server in beforeAll).
 */
import { Mqtt, MqttWs } from 'azure-iot-provisioning-device-mqtt'
import { MqttBase } from 'azure-iot-mqtt-base'
import type { TestServer } from './server.js'
import { webSocketAgent } from './tls-plumbing.js'

export interface MicrosoftTransport {
  /** The `transport` label of the server's metrics. */
  readonly label: string
  /** The provisioning host to give ProvisioningDeviceClient.create. */
  host(): string
  make(): unknown
}

export function mqttTransports(server: () => TestServer): { readonly Mqtt: MicrosoftTransport; readonly MqttWs: MicrosoftTransport } {
  const base = (options: object) => {
    const b = new MqttBase()
    b.setOptions({ ca: server().caPem, ...options } as never)
    return b as never
  }
  return {
    Mqtt: { label: 'mqtt', host: () => `localhost:${server().endpoints.ports.mqtt}`, make: () => new Mqtt(base({})) },
    MqttWs: { label: 'mqtt-ws', host: () => 'localhost', make: () => new MqttWs(base({ mqtt: { webSocketAgent: webSocketAgent(server()) } })) },
  }
}
