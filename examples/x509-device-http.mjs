// An X.509 device with Microsoft's SDK: a test root CA and a device certificate made with
// `provisio pki`, an enrollment group on the root made with azure-iot-provisioning-service, and
// the device provisioning over HTTPS with azure-iot-security-x509 (it presents its certificate
// chain in the TLS handshake). Run against `provisio serve`:
//
//   export NODE_EXTRA_CA_CERTS=$PWD/.provisio/ca.pem
//   node examples/x509-device-http.mjs [registrationId]      # writes the certificates to ./pki
//
// Ports: Microsoft's HTTP transport always dials port 443; an https agent whose defaultPort is the
// server's HTTPS port, made Node's default agent, sends it there (examples/provisio.mjs).
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import provisioningDevice from 'azure-iot-provisioning-device'
import provisioningHttp from 'azure-iot-provisioning-device-http'
import x509Security from 'azure-iot-security-x509'
import provisioningService from 'azure-iot-provisioning-service'
import { call, endpoints, useHttpsPort } from './provisio.mjs'

// Microsoft's packages are CommonJS: import the module, then take its members.
const { ProvisioningDeviceClient } = provisioningDevice
const { Http } = provisioningHttp
const { X509Security } = x509Security
const { ProvisioningServiceClient } = provisioningService

const e = endpoints()
const agent = useHttpsPort(e.ports.https)
const registrationId = process.argv[2] ?? `example-x509-${randomBytes(3).toString('hex')}`
const dir = resolve(process.env.PKI_DIR ?? 'pki')

// 1. Certificates: `provisio pki` (the CLI of this repository) makes a P-256 root and a device
// certificate whose CN is the registration ID; the device presents <name>-chain.pem.
const provisio = fileURLToPath(new URL('../packages/server/bin/provisio.js', import.meta.url))
const pki = (...args) => execFileSync(process.execPath, [provisio, 'pki', ...args, '--dir', dir], { encoding: 'utf8' })
pki('root', '--cn', 'Provisio Example Root', '--name', 'example-root')
pki('device', '--cn', registrationId, '--issuer', 'example-root')
const cert = readFileSync(join(dir, `${registrationId}-chain.pem`), 'utf8')
const key = readFileSync(join(dir, `${registrationId}-key.pem`), 'utf8')

// 2. The enrollment group: devices whose chain leads to this root are admitted.
const service = ProvisioningServiceClient.fromConnectionString(e.serviceConnectionString)
await service.createOrUpdateEnrollmentGroup({
  enrollmentGroupId: 'example-x509-group',
  attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: readFileSync(join(dir, 'example-root.pem'), 'utf8') } } } },
})
console.log(`enrollment group example-x509-group on ${join(dir, 'example-root.pem')}`)

// 3. The device registers over HTTPS with its certificate.
const client = ProvisioningDeviceClient.create(e.deviceEndpoint, e.idScope, new Http(), new X509Security(registrationId, { cert, key }))
const result = await call((cb) => client.register(cb))
console.log(`provisioned ${registrationId}: hub ${result.assignedHub}, device ${result.deviceId}, X.509 group ${result.x509?.enrollmentGroupId}`)
agent.destroy()
