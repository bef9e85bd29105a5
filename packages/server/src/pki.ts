/**
 * The development PKI of `provisio serve`: a CA and a TLS server certificate, made with PKI.js
 * over Node's WebCrypto and kept in the data directory. Devices and SDKs trust the CA through
 * NODE_EXTRA_CA_CERTS (docs/architecture.md §9).
 *
 * Keys are ECDSA P-256 (small, fast handshakes, accepted by every TLS stack the SDKs use). The
 * server certificate is re-issued when the configured host names change or it nears expiry;
 * the CA is kept, so a trust set up once stays valid.
 */
import { X509Certificate, webcrypto } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { join } from 'node:path'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { writeFileAtomic } from './files.js'

const crypto = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto })
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const
const DAY_MS = 86_400_000

/** File names inside the data directory. */
export const PKI_FILES = {
  caCertificate: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCertificate: 'server.pem',
  serverKey: 'server-key.pem',
} as const

/** PEM material of the TLS listeners. */
export interface ServerPki {
  readonly caCertificatePath: string
  readonly caCertificatePem: string
  readonly certificatePem: string
  readonly keyPem: string
  /** True when this call created or re-issued something (worth telling the user). */
  readonly created: { readonly ca: boolean; readonly server: boolean }
}

/**
 * Loads the dev CA and server certificate from `dir`, creating or re-issuing what is missing,
 * expiring within 30 days, or lacking one of `hostNames` among its SANs.
 */
export async function ensureDevPki(dir: string, hostNames: readonly string[], nowMs: number): Promise<ServerPki> {
  const caPath = join(dir, PKI_FILES.caCertificate)
  const caKeyPath = join(dir, PKI_FILES.caKey)
  const createdCa = await ensureDevCa(dir, nowMs)
  const caPem = readFileSync(caPath, 'utf8')
  const serverPath = join(dir, PKI_FILES.serverCertificate)
  const serverKeyPath = join(dir, PKI_FILES.serverKey)
  let createdServer = false
  if (
    createdCa ||
    !existsSync(serverPath) ||
    !existsSync(serverKeyPath) ||
    expiresSoon(readFileSync(serverPath, 'utf8'), nowMs) ||
    !coversHosts(readFileSync(serverPath, 'utf8'), hostNames)
  ) {
    const issued = await issueServerCertificate(caPem, readFileSync(caKeyPath, 'utf8'), hostNames, nowMs)
    writeFileAtomic(serverKeyPath, issued.keyPem, 0o600)
    writeFileAtomic(serverPath, issued.certificatePem)
    createdServer = true
  }
  return {
    caCertificatePath: caPath,
    caCertificatePem: caPem,
    certificatePem: readFileSync(serverPath, 'utf8'),
    keyPem: readFileSync(serverKeyPath, 'utf8'),
    created: { ca: createdCa, server: createdServer },
  }
}

/** Creates the dev CA in `dir` when missing or expiring within 30 days; true when it did. */
export async function ensureDevCa(dir: string, nowMs: number): Promise<boolean> {
  const caPath = join(dir, PKI_FILES.caCertificate)
  const caKeyPath = join(dir, PKI_FILES.caKey)
  if (existsSync(caPath) && existsSync(caKeyPath) && !expiresSoon(readFileSync(caPath, 'utf8'), nowMs)) return false
  const ca = await issueCa(nowMs)
  writeFileAtomic(caKeyPath, ca.keyPem, 0o600)
  writeFileAtomic(caPath, ca.certificatePem)
  return true
}

function expiresSoon(pem: string, nowMs: number): boolean {
  return new Date(new X509Certificate(pem).validTo).getTime() - nowMs < 30 * DAY_MS
}

function coversHosts(pem: string, hostNames: readonly string[]): boolean {
  const cert = new X509Certificate(pem)
  return hostNames.every((h) => (isIP(h) ? cert.checkIP(h) !== undefined : cert.checkHost(h) !== undefined))
}

interface Issued {
  readonly certificatePem: string
  readonly keyPem: string
}

async function issueCa(nowMs: number): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair
  const cert = await baseCertificate('Provisio Dev CA', 'Provisio Dev CA', keys.publicKey, nowMs, 10 * 365)
  const ski = await keyIdentifier(cert)
  cert.extensions = [
    extension('2.5.29.19', true, new pkijs.BasicConstraints({ cA: true, pathLenConstraint: 1 }).toSchema()),
    extension('2.5.29.15', true, keyUsage(0x06)), // keyCertSign | cRLSign
    extension('2.5.29.14', false, new asn1js.OctetString({ valueHex: ski })),
  ]
  await cert.sign(keys.privateKey as CryptoKey, 'SHA-256', crypto)
  return { certificatePem: toPem('CERTIFICATE', cert.toSchema().toBER()), keyPem: await privateKeyPem(keys.privateKey as CryptoKey) }
}

async function issueServerCertificate(caPem: string, caKeyPem: string, hostNames: readonly string[], nowMs: number): Promise<Issued> {
  const caCert = pkijs.Certificate.fromBER(fromPem(caPem))
  const caKey = await webcrypto.subtle.importKey('pkcs8', fromPem(caKeyPem), ALGORITHM, false, ['sign'])
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair
  const cn = hostNames.find((h) => !isIP(h)) ?? hostNames[0] ?? 'localhost'
  const cert = await baseCertificate(cn, 'Provisio Dev CA', keys.publicKey, nowMs, 825)
  cert.issuer = caCert.subject
  const altNames = hostNames.map((h) =>
    isIP(h)
      ? new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipBytes(h) }) })
      : new pkijs.GeneralName({ type: 2, value: h }),
  )
  const caSki = await keyIdentifier(caCert)
  cert.extensions = [
    extension('2.5.29.19', true, new pkijs.BasicConstraints({ cA: false }).toSchema()),
    extension('2.5.29.15', true, keyUsage(0x80)), // digitalSignature
    extension('2.5.29.37', false, new pkijs.ExtKeyUsage({ keyPurposes: ['1.3.6.1.5.5.7.3.1'] }).toSchema()), // serverAuth
    extension('2.5.29.17', false, new pkijs.GeneralNames({ names: altNames }).toSchema()),
    extension('2.5.29.35', false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: caSki }) }).toSchema()),
  ]
  await cert.sign(caKey, 'SHA-256', crypto)
  return { certificatePem: toPem('CERTIFICATE', cert.toSchema().toBER()), keyPem: await privateKeyPem(keys.privateKey as CryptoKey) }
}

async function baseCertificate(cn: string, issuerCn: string, publicKey: CryptoKey, nowMs: number, days: number): Promise<pkijs.Certificate> {
  const cert = new pkijs.Certificate()
  cert.version = 2
  const serial = webcrypto.getRandomValues(new Uint8Array(16))
  // DER INTEGER must be positive and minimal (X.690 §8.3.2): a first byte in 0x40..0x7f is
  // neither a sign bit nor a redundant leading zero.
  serial[0] = (serial[0]! & 0x3f) | 0x40
  cert.serialNumber = new asn1js.Integer({ valueHex: serial })
  cert.subject.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: cn }) }))
  cert.issuer.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: issuerCn }) }))
  // Back-date by an hour so a device with a slightly slow clock accepts it.
  cert.notBefore.value = new Date(nowMs - 3_600_000)
  cert.notAfter.value = new Date(nowMs + days * DAY_MS)
  await cert.subjectPublicKeyInfo.importKey(publicKey, crypto)
  return cert
}

async function keyIdentifier(cert: pkijs.Certificate): Promise<ArrayBuffer> {
  return webcrypto.subtle.digest('SHA-1', cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView)
}

function extension(extnID: string, critical: boolean, value: asn1js.AsnType): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) })
}

function keyUsage(bits: number): asn1js.BitString {
  // One byte of flags; unusedBits counts the trailing zero bits (X.690 §8.6.2.2).
  let unused = 0
  while (unused < 7 && ((bits >> unused) & 1) === 0) unused++
  return new asn1js.BitString({ valueHex: new Uint8Array([bits]).buffer, unusedBits: unused })
}

function ipBytes(ip: string): ArrayBuffer {
  if (isIP(ip) === 4) return new Uint8Array(ip.split('.').map(Number)).buffer
  // IPv6: expand "::" then pack eight 16-bit groups.
  const [head, tail] = ip.split('::') as [string, string | undefined]
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  const out = new Uint8Array(16)
  groups.forEach((g, i) => {
    const v = parseInt(g, 16)
    out[i * 2] = v >> 8
    out[i * 2 + 1] = v & 0xff
  })
  return out.buffer
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return toPem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key))
}

export function toPem(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64')
  return `-----BEGIN ${label}-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`
}

export function fromPem(pem: string): ArrayBuffer {
  const b64 = pem.replace(/-----(BEGIN|END) [^-]+-----/g, '').replace(/\s+/g, '')
  const buf = Buffer.from(b64, 'base64')
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer
}
