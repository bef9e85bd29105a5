// `provisio pki` certificates, checked by OpenSSL (not by our own validator): the device chain
// verifies for TLS client authentication, CA flags and key types are as asked, and the
// verification certificate is signed by the CA's key.
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { issuePkiCertificate } from '../src/pki-tools.js'

const dir = mkdtempSync(join(tmpdir(), 'provisio-pki-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

describe('provisio pki', () => {
  it('makes root (RSA) → intermediate (P-256, pathLen 0) → device (P-384) that OpenSSL verifies for clientAuth', async () => {
    const nowMs = Date.now()
    await issuePkiCertificate({ kind: 'root', dir, name: 'root', commonName: 'Test Root', keyType: 'rsa', nowMs })
    const int = await issuePkiCertificate({ kind: 'intermediate', dir, name: 'int', commonName: 'Test Intermediate', issuer: 'root', keyType: 'ec', pathLength: 0, nowMs })
    const dev = await issuePkiCertificate({ kind: 'device', dir, name: 'dev', commonName: 'device-01', issuer: 'int', keyType: 'ec384', nowMs })
    expect(int.chainPath).toBeDefined()
    const out = openssl(['verify', '-purpose', 'sslclient', '-x509_strict', '-CAfile', 'root.pem', '-untrusted', 'int.pem', 'dev.pem'])
    expect(out.trim()).toBe('dev.pem: OK')
    // The device chain file is leaf + intermediate (what TLS presents), without the root.
    const chain = readFileSync(dev.chainPath!, 'utf8').match(/BEGIN CERTIFICATE/g)
    expect(chain).toHaveLength(2)
    const leaf = new X509Certificate(readFileSync(dev.certificatePath))
    expect(leaf.subject).toBe('CN=device-01')
    expect(leaf.ca).toBe(false)
    expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1')
    expect(new X509Certificate(readFileSync(int.certificatePath)).ca).toBe(true)
    expect(openssl(['x509', '-in', 'int.pem', '-noout', '-ext', 'basicConstraints'])).toMatch(/critical[\s\S]*CA:TRUE, pathlen:0/)
  })

  it('makes the proof-of-possession certificate: CN = code, signed by the CA key', async () => {
    const nowMs = Date.now()
    await issuePkiCertificate({ kind: 'root', dir, name: 'ca2', commonName: 'PoP CA', keyType: 'ec', nowMs })
    const pop = await issuePkiCertificate({ kind: 'verification', dir, name: 'pop', commonName: 'ABCDEF0123', issuer: 'ca2', nowMs })
    const cert = new X509Certificate(readFileSync(pop.certificatePath))
    const ca = new X509Certificate(readFileSync(join(dir, 'ca2.pem')))
    expect(cert.subject).toBe('CN=ABCDEF0123')
    expect(cert.verify(ca.publicKey)).toBe(true)
    const other = new X509Certificate(readFileSync(join(dir, 'root.pem')))
    expect(cert.verify(other.publicKey)).toBe(false)
  })

  it('explains a missing issuer and bad arguments', async () => {
    await expect(issuePkiCertificate({ kind: 'device', dir, name: 'x', commonName: 'x', issuer: 'nope', nowMs: Date.now() })).rejects.toThrow(/issuer 'nope'.*does not exist/)
    await expect(issuePkiCertificate({ kind: 'root', dir, name: 'bad/name', commonName: 'x', nowMs: Date.now() })).rejects.toThrow(/--name/)
    await expect(issuePkiCertificate({ kind: 'root', dir, name: 'r', commonName: 'x', pathLength: -1, nowMs: Date.now() })).rejects.toThrow(/--path-len/)
  })
})
