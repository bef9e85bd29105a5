// The service side with Microsoft's azure-iot-provisioning-service: an enrollment group for
// symmetric-key devices (their keys are derived from the group key) and an individual enrollment,
// then a query of the individual enrollments. Run against `provisio serve`:
//
//   export NODE_EXTRA_CA_CERTS=$PWD/.provisio/ca.pem
//   node examples/service-enrollments.mjs            # GROUP_KEY=<base64> to choose the group key
//
// It ends with the GROUP_KEY=… line that examples/device-mqtt-group-key.mjs takes.
import { randomBytes } from 'node:crypto'
import provisioningService from 'azure-iot-provisioning-service'
import { endpoints, useHttpsPort } from './provisio.mjs'

// Microsoft's packages are CommonJS: import the module, then take its members.
const { ProvisioningServiceClient } = provisioningService
const e = endpoints()
// The connection string names the host (HostName=localhost); the client dials its port 443.
const agent = useHttpsPort(e.ports.https)
const service = ProvisioningServiceClient.fromConnectionString(e.serviceConnectionString)

const groupKey = process.env.GROUP_KEY ?? randomBytes(64).toString('base64')
const group = await service.createOrUpdateEnrollmentGroup({
  enrollmentGroupId: 'example-group',
  attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: randomBytes(64).toString('base64') } },
  initialTwin: { tags: { fleet: 'examples' }, properties: { desired: { telemetryInterval: 30 } } },
})
console.log(`enrollment group ${group.responseBody.enrollmentGroupId}: etag ${group.responseBody.etag}`)

const deviceKey = randomBytes(32).toString('base64')
const individual = await service.createOrUpdateIndividualEnrollment({
  registrationId: 'example-device',
  attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: deviceKey, secondaryKey: randomBytes(32).toString('base64') } },
})
console.log(`individual enrollment ${individual.responseBody.registrationId}: etag ${individual.responseBody.etag}`)

const query = service.createIndividualEnrollmentQuery({ query: 'SELECT * FROM enrollments' }, 100)
const page = await query.next()
console.log(`individual enrollments: ${page.responseBody.map((r) => r.registrationId).join(', ')}`)

agent.destroy()
console.log(`GROUP_KEY=${groupKey}`)
