// X.509 chain validation as a DPS registration does it: the device's leaf and intermediate arrive
// as DER, the trust anchor (the enrollment group's certificate) is parsed once. Ours: PKI.js
// parsing + @provisio/x509 validatePath with signatures in WebAssembly. Peers: node:crypto's
// X509Certificate (OpenSSL) and node-forge's verifyCertificateChain (RSA only: forge has no ECDSA).
// Chains are made by openssl at load time.
import { strict as assert } from 'node:assert'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import forge from 'node-forge'
import { decodeCertificateText, parseCertificate, validatePath } from '@provisio/x509'

const dir = mkdtempSync(join(tmpdir(), 'provisio-bench-x509-'))
const run = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
const KEY = { rsa: ['-newkey', 'rsa:2048'], ec: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] }
function chain(type) {
  run(['req', '-x509', ...KEY[type], '-nodes', '-keyout', `${type}-root.key`, '-out', `${type}-root.pem`, '-days', '30', '-subj', '/CN=Bench Root',
    '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign'])
  writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign\n')
  writeFileSync(join(dir, 'leaf.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n')
  const issue = (name, cn, issuer, ext) => {
    run(['req', '-new', ...KEY[type], '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`])
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-set_serial', '7', '-days', '30', '-sha256', '-extfile', ext, '-out', `${name}.pem`])
  }
  issue(`${type}-int`, 'Bench Intermediate', `${type}-root`, 'ca.ext')
  issue(`${type}-leaf`, 'bench-device', `${type}-int`, 'leaf.ext')
  const pem = (n) => readFileSync(join(dir, `${type}-${n}.pem`), 'utf8')
  return { rootPem: pem('root'), intPem: pem('int'), leafPem: pem('leaf') }
}
const rsa = chain('rsa')
const ec = chain('ec')
rmSync(dir, { recursive: true, force: true })

function prepare({ rootPem, intPem, leafPem }) {
  const der = (p) => decodeCertificateText(p)[0]
  const leafDer = der(leafPem)
  const intDer = der(intPem)
  const anchor = parseCertificate(der(rootPem))
  const nodeRoot = new X509Certificate(rootPem)
  const nowMs = Date.now()
  return {
    ours: () => {
      const r = validatePath(parseCertificate(leafDer), [parseCertificate(intDer)], [anchor], { nowMs })
      return r.ok
    },
    node: () => {
      const leaf = new X509Certificate(leafDer)
      const int = new X509Certificate(intDer)
      const now = new Date(nowMs)
      return leaf.checkIssued(int) && int.checkIssued(nodeRoot) && leaf.verify(int.publicKey) && int.verify(nodeRoot.publicKey) &&
        int.ca && new Date(leaf.validTo) > now && new Date(int.validTo) > now && new Date(leaf.validFrom) <= now
    },
    forge: () => {
      const store = forge.pki.createCaStore([rootPem])
      const asCert = (d) => forge.pki.certificateFromAsn1(forge.asn1.fromDer(forge.util.binary.raw.encode(d)))
      return forge.pki.verifyCertificateChain(store, [asCert(leafDer), asCert(intDer)])
    },
  }
}
const r = prepare(rsa)
const e = prepare(ec)
let sink = 0

export default {
  file: 'crypto',
  title: '@provisio/x509 chain validation (leaf + intermediate as DER, anchor parsed once)',
  notes: 'Ours parses both certificates with its DER reader (packages/x509/src/der.ts) each call and checks every rule of our profile (packages/x509/README.md); prepared public keys are cached per certificate, as in the server. node:crypto parses with OpenSSL and is given the same signature, issuer and date checks; forge runs its own chain verification (RSA only).',
  cases: [
    {
      name: 'validate RSA-2048 chain (leaf → intermediate → root)',
      unit: 'ops',
      check() {
        assert.equal(r.ours(), true)
        assert.equal(r.node(), true)
        assert.equal(r.forge(), true)
      },
      ours() {
        sink += r.ours() ? 1 : 0
      },
      peers: {
        'node:crypto': () => {
          sink += r.node() ? 1 : 0
        },
        'node-forge': () => {
          sink += r.forge() ? 1 : 0
        },
      },
    },
    {
      name: 'validate P-256 chain (leaf → intermediate → root)',
      unit: 'ops',
      check() {
        assert.equal(e.ours(), true)
        assert.equal(e.node(), true)
        assert.ok(sink >= 0) // results are accumulated so no call can be optimised away
      },
      ours() {
        sink += e.ours() ? 1 : 0
      },
      peers: {
        'node:crypto': () => {
          sink += e.node() ? 1 : 0
        },
      },
    },
  ],
}
