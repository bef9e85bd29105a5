// CSR parsing (self-signature in WASM) and the hub-side check of X.509 device identities.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { X509Error, checkHubDeviceCertificate, decodeCertificateText, parseCertificate, parseCertificationRequest, type Certificate } from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'provisio-x509-csr-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}
function der(path: string): Uint8Array {
  return decodeCertificateText(readFileSync(path, 'utf8').replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE'))[0]!
}
function csr(cn: string, key: string[]): string {
  const base = join(dir, `q${++n}`)
  openssl(['req', '-new', ...key, '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${cn}`])
  return base
}
function root(cn: string): { cert: Certificate; base: string } {
  const base = join(dir, `r${++n}`)
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.pem`, '-days', '5', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign'])
  return { cert: parseCertificate(der(`${base}.pem`)), base }
}
function leaf(cn: string, issuer: { base: string }): Certificate {
  const base = csr(cn, ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'])
  writeFileSync(`${base}.ext`, 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n')
  openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', `${issuer.base}.pem`, '-CAkey', `${issuer.base}.key`, '-set_serial', String(n), '-days', '5', '-extfile', `${base}.ext`, '-out', `${base}.pem`])
  return parseCertificate(der(`${base}.pem`))
}
const now = () => Date.now() + 5000

describe('parseCertificationRequest', () => {
  it('reads CN and key of RSA and P-256 requests and checks their self-signature', () => {
    for (const key of [['-newkey', 'rsa:2048'], ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']]) {
      const base = csr('device-csr-1', key)
      const parsed = parseCertificationRequest(der(`${base}.csr`))
      expect(parsed.subjectCommonNames).toEqual(['device-csr-1'])
      expect(parsed.spki.length).toBeGreaterThan(60)
    }
  })

  it('refuses a tampered signature, garbage and oversize input with an X509Error', () => {
    const good = der(`${csr('device-csr-2', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'])}.csr`)
    const bad = good.slice()
    bad[bad.length - 3]! ^= 0x40
    expect(() => parseCertificationRequest(bad)).toThrow(/self-signature/)
    for (const junk of [new Uint8Array(0), new Uint8Array([0x30, 0x00]), good.subarray(0, 40), new Uint8Array(9000)]) expect(() => parseCertificationRequest(junk)).toThrow(X509Error)
  })
})

describe('checkHubDeviceCertificate', () => {
  it('selfSigned: the presented leaf must carry a pinned thumbprint (SHA-1 or SHA-256)', () => {
    const ca = root('Hub Root')
    const device = leaf('hub-dev-1', ca)
    expect(checkHubDeviceCertificate('hub-dev-1', [device], { type: 'selfSigned', primaryThumbprint: device.sha256Thumbprint }, [], now())).toBeUndefined()
    expect(checkHubDeviceCertificate('hub-dev-1', [device], { type: 'selfSigned', primaryThumbprint: 'AA', secondaryThumbprint: device.sha1Thumbprint.toLowerCase() }, [], now())).toBeUndefined()
    expect(checkHubDeviceCertificate('hub-dev-1', [device], { type: 'selfSigned', primaryThumbprint: 'AA' }, [], now())?.message).toMatch(/matches neither thumbprint/)
    expect(checkHubDeviceCertificate('hub-dev-1', [device], { type: 'selfSigned', primaryThumbprint: device.sha256Thumbprint }, [], now() + 30 * 86_400_000)?.code).toBe('X509_EXPIRED')
  })

  it('certificateAuthority: CN = device id and a chain to a trusted CA', () => {
    const ca = root('Hub CA')
    const device = leaf('hub-dev-2', ca)
    expect(checkHubDeviceCertificate('hub-dev-2', [device], { type: 'certificateAuthority' }, [ca.cert], now())).toBeUndefined()
    expect(checkHubDeviceCertificate('other-id', [device], { type: 'certificateAuthority' }, [ca.cert], now())?.code).toBe('X509_CN_MISMATCH')
    expect(checkHubDeviceCertificate('hub-dev-2', [device], { type: 'certificateAuthority' }, [root('Hub CA').cert], now())?.code).toBe('X509_BAD_SIGNATURE')
    expect(checkHubDeviceCertificate('hub-dev-2', [], { type: 'certificateAuthority' }, [ca.cert], now())?.code).toBe('X509_NO_PATH')
  })
})
