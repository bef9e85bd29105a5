// A device with Microsoft's SDK: provisions over MQTT with a key derived from its enrollment
// group's key, then connects to the hub it was assigned, sends telemetry and reports a property.
// Run against `provisio serve`, with the key examples/service-enrollments.mjs printed:
//
//   export NODE_EXTRA_CA_CERTS=$PWD/.provisio/ca.pem
//   GROUP_KEY=<base64> node examples/device-mqtt-group-key.mjs [registrationId]
//
// Ports: Azure's endpoints listen on the protocols' standard ports; a local server on other ones
// is reached by giving `host:port` as the provisioning host (MQTT, AMQP) and GatewayHostName
// (`host:port`) in the hub connection string.
import { createHmac, randomBytes } from 'node:crypto'
import provisioningDevice from 'azure-iot-provisioning-device'
import provisioningMqtt from 'azure-iot-provisioning-device-mqtt'
import symmetricKeySecurity from 'azure-iot-security-symmetric-key'
import device from 'azure-iot-device'
import deviceMqtt from 'azure-iot-device-mqtt'
import { call, endpoints, fail } from './provisio.mjs'

// Microsoft's packages are CommonJS: import the module, then take its members.
const { ProvisioningDeviceClient } = provisioningDevice
const { Mqtt } = provisioningMqtt
const { SymmetricKeySecurityClient } = symmetricKeySecurity
const { Client, Message } = device
const HubMqtt = deviceMqtt.Mqtt

const e = endpoints()
const groupKey = process.env.GROUP_KEY ?? fail('GROUP_KEY=<base64 key of a symmetric-key enrollment group> is required (examples/service-enrollments.mjs prints one)')
const registrationId = process.argv[2] ?? `example-${randomBytes(3).toString('hex')}`

// The device key of a group member: HMAC-SHA256 of its registration ID under the group key.
const deviceKey = createHmac('sha256', Buffer.from(groupKey, 'base64')).update(registrationId, 'utf8').digest('base64')

// 1. Provision: the MQTT transport dials mqtts://<host>, so host:port picks the port.
const provisioning = ProvisioningDeviceClient.create(`${e.deviceEndpoint}:${e.ports.mqtt}`, e.idScope, new Mqtt(), new SymmetricKeySecurityClient(registrationId, deviceKey))
const result = await call((cb) => provisioning.register(cb))
console.log(`provisioned ${registrationId}: hub ${result.assignedHub}, device ${result.deviceId}`)

// 2. Connect to the assigned hub. HostName is the hub's name (it signs the SAS token); the
// embedded hubs are served by the same server, reached through GatewayHostName host:port.
const connectionString = `HostName=${result.assignedHub};DeviceId=${result.deviceId};SharedAccessKey=${deviceKey};GatewayHostName=${e.deviceEndpoint}:${e.ports.mqtt}`
const hub = Client.fromConnectionString(connectionString, HubMqtt)
await hub.open()
console.log(`connected to ${result.assignedHub} over MQTT`)

await hub.sendEvent(new Message(JSON.stringify({ temperature: 21.5 })))
console.log('sent telemetry')

const twin = await hub.getTwin()
await call((cb) => twin.properties.reported.update({ firmware: '1.0.0' }, cb))
console.log(`reported firmware 1.0.0; desired properties: ${JSON.stringify(twin.properties.desired)}`)

await hub.close()
