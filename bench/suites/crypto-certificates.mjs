// Certificates issued from CSRs per second (docs/protocol.md §1.7), P-256 and RSA-2048 requests, one
// P-256 issuing CA. Ours: @provisio/engine issueFromCsr — the CSR parsed with PKI.js, its
// self-signature checked in WebAssembly, the leaf built by @provisio/x509 and signed by a
// node:crypto KeyObject behind the IssuingAuthority port, as the server does. Peer: PKI.js over
// node:crypto's WebCrypto doing the same job (CSR verify, then build and sign the same leaf).
import { strict as assert } from 'node:assert'
import { X509Certificate, createPrivateKey, sign as nodeSign, webcrypto } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { issueFromCsr } from '@provisio/engine'

const dir = mkdtempSync(join(tmpdir(), 'provisio-bench-issue-'))
const run = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=Bench Issuing CA',
  '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign', '-addext', 'subjectKeyIdentifier=hash'])
const csr = (name, key) => {
  run(['req', '-new', ...key, '-nodes', '-keyout', `${name}.key`, '-subj', '/CN=bench-device', '-outform', 'DER', '-out', `${name}.der`])
  return new Uint8Array(readFileSync(join(dir, `${name}.der`)))
}
const csrs = { p256: csr('p256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']), rsa: csr('rsa', ['-newkey', 'rsa:2048']) }
const caPem = readFileSync(join(dir, 'ca.pem'), 'utf8')
const caKeyPem = readFileSync(join(dir, 'ca.key'), 'utf8')
rmSync(dir, { recursive: true, force: true })

const caDer = new Uint8Array(new X509Certificate(caPem).raw)
const caKey = createPrivateKey(caKeyPem)
const authority = {
  chain: [caDer],
  signatureAlgorithm: 'ecdsa-sha256',
  policy: { validityDays: 30, keyTypes: ['ecdsa-p256', 'ecdsa-p384', 'rsa'] },
  sign: (tbs) => Promise.resolve(new Uint8Array(nodeSign('sha256', tbs, caKey))),
}
let counter = 0
const random = { bytes: (n) => webcrypto.getRandomValues(new Uint8Array(n)) }
const b64 = (u8) => Buffer.from(u8).toString('base64')

// Peer: the same certificate with PKI.js over node:crypto's WebCrypto.
const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto })
const caCert = pkijs.Certificate.fromBER(caDer)
const caCryptoKey = await webcrypto.subtle.importKey('pkcs8', caKey.export({ type: 'pkcs8', format: 'der' }), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
async function peerIssue(der) {
  const request = pkijs.CertificationRequest.fromBER(der)
  if (!(await request.verify(engine))) throw new Error('csr signature')
  const cert = new pkijs.Certificate()
  cert.version = 2
  cert.serialNumber = new asn1js.Integer({ valueHex: random.bytes(16).map((b, i) => (i === 0 ? (b & 0x7f) | 1 : b)) })
  cert.issuer = caCert.subject
  cert.subject = request.subject
  const now = Date.now()
  cert.notBefore.value = new Date(now - 300_000)
  cert.notAfter.value = new Date(now + 30 * 86_400_000)
  cert.subjectPublicKeyInfo = request.subjectPublicKeyInfo
  const ext = (extnID, critical, value) => new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) })
  cert.extensions = [
    ext('2.5.29.19', true, new pkijs.BasicConstraints({ cA: false }).toSchema()),
    ext('2.5.29.15', true, new asn1js.BitString({ valueHex: new Uint8Array([0x80]), unusedBits: 7 })),
    ext('2.5.29.37', false, new pkijs.ExtKeyUsage({ keyPurposes: ['1.3.6.1.5.5.7.3.2'] }).toSchema()),
  ]
  await cert.sign(caCryptoKey, 'SHA-256', engine)
  return new Uint8Array(cert.toSchema().toBER(false))
}

let sink = 0
function caseFor(label, der) {
  const csrB64 = b64(der)
  return {
    name: `issue a leaf for a ${label} CSR (verify CSR, build, sign with a P-256 CA)`,
    unit: 'ops',
    async: true,
    async check() {
      const ours = await issueFromCsr(authority, random, 'bench-device', csrB64, Date.now())
      const leaf = new X509Certificate(Buffer.from(ours.chain[0], 'base64'))
      assert.ok(leaf.verify(new X509Certificate(caPem).publicKey))
      const peer = new X509Certificate(Buffer.from(await peerIssue(der)))
      assert.ok(peer.verify(new X509Certificate(caPem).publicKey))
      assert.equal(leaf.subject, peer.subject)
      assert.ok(sink >= 0) // results are accumulated so no call can be optimised away
    },
    async ours() {
      const r = await issueFromCsr(authority, random, 'bench-device', csrB64, Date.now() + counter++)
      sink += r.chain.length
    },
    peers: {
      'PKI.js + node:crypto WebCrypto': async () => {
        sink += (await peerIssue(der)).length
      },
    },
  }
}

export default {
  file: 'crypto',
  title: 'certificate issuance from a CSR (docs/protocol.md §1.7)',
  notes: 'Ours: issueFromCsr as the engine runs it (CSR self-signature in WebAssembly, leaf built by @provisio/x509, signature by node:crypto behind the IssuingAuthority port). Peer: PKI.js verifying the CSR and signing the same kind of leaf over node:crypto WebCrypto.',
  cases: [caseFor('P-256', csrs.p256), caseFor('RSA-2048', csrs.rsa)],
}
