// X.509 device identities for the e2e bench: one ECDSA P-256 root CA (the enrollment group's
// signing certificate) and leaf certificates with CN = registrationId, issued with PKI.js over
// WebCrypto. Every leaf carries the same device key pair: what the server does per device (chain
// validation, CertificateVerify in the handshake) costs the same whether keys differ or not, and
// one key makes thousands of identities cheap to make.
import { webcrypto } from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto })
const ALG = { name: 'ECDSA', namedCurve: 'P-256' }
const DAY = 86_400_000

const pem = (label, der) => `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`

function ext(extnID, critical, schema) {
  return new pkijs.Extension({ extnID, critical, extnValue: schema.toBER(false) })
}

let serial = 1
async function certificate(subjectCn, issuerCn, publicKey, signingKey, ca) {
  const cert = new pkijs.Certificate()
  cert.version = 2
  cert.serialNumber = new asn1js.Integer({ value: serial++ })
  cert.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: subjectCn }) }))
  cert.issuer.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: issuerCn }) }))
  cert.notBefore.value = new Date(Date.now() - 3_600_000)
  cert.notAfter.value = new Date(Date.now() + 30 * DAY)
  await cert.subjectPublicKeyInfo.importKey(publicKey, engine)
  cert.extensions = ca
    ? [ext('2.5.29.19', true, new pkijs.BasicConstraints({ cA: true, pathLenConstraint: 1 }).toSchema()), ext('2.5.29.15', true, new asn1js.BitString({ valueHex: new Uint8Array([0x06]).buffer, unusedBits: 1 }))]
    : [ext('2.5.29.19', true, new pkijs.BasicConstraints({ cA: false }).toSchema()), ext('2.5.29.15', true, new asn1js.BitString({ valueHex: new Uint8Array([0x80]).buffer, unusedBits: 7 })), ext('2.5.29.37', false, new pkijs.ExtKeyUsage({ keyPurposes: ['1.3.6.1.5.5.7.3.2'] }).toSchema())]
  await cert.sign(signingKey, 'SHA-256', engine)
  return pem('CERTIFICATE', cert.toSchema().toBER(false))
}

/** A root CA and a device issuer: `issue(registrationId)` → { cert, key } (PEM). */
export async function createX509Fleet(name = 'Provisio Bench Root') {
  const root = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])
  const rootPem = await certificate(name, name, root.publicKey, root.privateKey, true)
  const device = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])
  const keyPem = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', device.privateKey))
  return {
    rootPem,
    async issue(registrationId) {
      return { cert: await certificate(registrationId, name, device.publicKey, root.privateKey, false), key: keyPem }
    },
  }
}
