// Unit tests of @provisio/x509 against OpenSSL-made certificates and Node's own X.509 reading.
import { execFileSync } from 'node:child_process'
import { X509Certificate, createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  X509Error,
  certificateInfo,
  checkProofOfPossession,
  decodeCertificateText,
  parseCertificate,
  sha1,
  validatePath,
  verificationCodeFrom,
  type Certificate,
} from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'provisio-x509-unit-'))
let n = 0
interface Made { pem: string; cert: Certificate; path: string; key: string }

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}
const KEYS: Record<string, string[]> = {
  rsa: ['-newkey', 'rsa:2048'],
  pss: ['-newkey', 'rsa:2048'],
  p256: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  p384: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
}
function load(path: string, key: string): Made {
  const pem = readFileSync(path, 'utf8')
  return { pem, cert: parseCertificate(decodeCertificateText(pem)[0]!), path, key }
}
function root(cn: string, key = 'p256', ext: string[] = []): Made {
  const base = join(dir, `r${++n}`)
  openssl(['req', '-x509', ...KEYS[key]!, '-nodes', '-keyout', `${base}.key`, '-out', `${base}.pem`, '-days', '5', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign', ...ext.flatMap((e) => ['-addext', e])])
  return load(`${base}.pem`, `${base}.key`)
}
function issue(cn: string, issuer: Made, options: { key?: string; ext?: string; days?: number; sign?: string[] } = {}): Made {
  const base = join(dir, `c${++n}`)
  writeFileSync(`${base}.ext`, options.ext ?? 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n')
  openssl(['req', '-new', ...KEYS[options.key ?? 'p256']!, '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${cn}`])
  openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', issuer.path, '-CAkey', issuer.key, '-set_serial', String(n), '-days', String(options.days ?? 5),
    '-extfile', `${base}.ext`, ...(options.sign ?? ['-sha256']), '-out', `${base}.pem`])
  return load(`${base}.pem`, `${base}.key`)
}
const CA_EXT = 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign\n'
const now = () => Date.now() + 5000

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('sha1 (thumbprints)', () => {
  it('equals node:crypto for any input, across block boundaries', () => {
    for (const len of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000]) {
      const data = new Uint8Array(len).map((_, i) => (i * 31 + 7) & 0xff)
      expect(Buffer.from(sha1(data)).toString('hex')).toBe(createHash('sha1').update(data).digest('hex'))
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (data) => Buffer.from(sha1(data)).toString('hex') === createHash('sha1').update(data).digest('hex')))
  })
})

describe('parseCertificate', () => {
  let ca: Made
  let leaf: Made
  beforeAll(() => {
    ca = root('Unit Root', 'rsa')
    leaf = issue('unit-device', ca)
  })

  it('reads what Node reads: names, validity, serial, thumbprints', () => {
    const node = new X509Certificate(leaf.pem)
    const info = certificateInfo(leaf.cert)
    expect(info.subjectName).toBe('CN=unit-device')
    expect(info.issuerName).toBe('CN=Unit Root')
    expect(info.version).toBe(3)
    expect(info.sha1Thumbprint).toBe(node.fingerprint.replace(/:/g, ''))
    expect(info.sha256Thumbprint).toBe(node.fingerprint256.replace(/:/g, ''))
    expect(Date.parse(info.notBeforeUtc)).toBe(Date.parse(node.validFrom))
    expect(Date.parse(info.notAfterUtc)).toBe(Date.parse(node.validTo))
    expect(BigInt('0x' + info.serialNumber)).toBe(BigInt('0x' + node.serialNumber))
    expect(leaf.cert.extKeyUsage).toEqual(['1.3.6.1.5.5.7.3.2'])
    expect(ca.cert.basicConstraints).toEqual({ ca: true, critical: true })
  })

  it('keeps the SubjectPublicKeyInfo and the names as received (the DER inside the certificate)', () => {
    for (const made of [leaf, ca]) {
      const der = made.cert.der
      const contains = (part: Uint8Array) => Buffer.from(der).indexOf(Buffer.from(part)) > 0
      // The key as node:crypto exports it from the certificate is the SPKI we keep, byte for byte.
      expect(Buffer.from(made.cert.spki).equals(new X509Certificate(made.pem).publicKey.export({ type: 'spki', format: 'der' }))).toBe(true)
      expect(contains(made.cert.subject.der)).toBe(true)
      expect(contains(made.cert.issuer.der)).toBe(true)
      expect(made.cert.subject.der[0]).toBe(0x30) // a SEQUENCE (RDNSequence)
    }
    // A v1 certificate (no [0] version field): the SPKI is found one field earlier.
    const base = join(dir, `v1-${++n}`)
    openssl(['req', '-new', ...KEYS.p256!, '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', '/CN=v1-device'])
    openssl(['x509', '-req', '-in', `${base}.csr`, '-signkey', `${base}.key`, '-days', '5', '-out', `${base}.pem`])
    const v1 = load(`${base}.pem`, `${base}.key`)
    expect(v1.cert.version).toBe(1)
    expect(Buffer.from(v1.cert.spki).equals(new X509Certificate(v1.pem).publicKey.export({ type: 'spki', format: 'der' }))).toBe(true)
  })

  it('decodes PEM bundles and base64 DER alike', () => {
    const both = decodeCertificateText(leaf.pem + ca.pem)
    expect(both).toHaveLength(2)
    const b64 = Buffer.from(both[1]!).toString('base64')
    expect(parseCertificate(decodeCertificateText(b64)[0]!).sha256Hex).toBe(ca.cert.sha256Hex)
  })

  it('decodes base64 of the PEM text (Azure portal upload, Microsoft\'s Node e2e tests), one block or a bundle', () => {
    const one = decodeCertificateText(Buffer.from(ca.pem).toString('base64'))
    expect(one).toHaveLength(1)
    expect(parseCertificate(one[0]!).sha256Hex).toBe(ca.cert.sha256Hex)
    const bundle = decodeCertificateText(Buffer.from('\r\n' + leaf.pem + ca.pem).toString('base64'))
    expect(bundle.map((der) => parseCertificate(der).sha256Hex)).toEqual([leaf.cert.sha256Hex, ca.cert.sha256Hex])
  })

  it('says why certificate text does not decode', () => {
    const reason = (text: string): string => {
      try {
        decodeCertificateText(text)
      } catch (error) {
        expect(error).toBeInstanceOf(X509Error)
        return (error as X509Error).message
      }
      throw new Error('expected a refusal')
    }
    expect(reason('')).toMatch(/empty/)
    expect(reason('not a certificate!')).toMatch(/base64 alphabet/)
    expect(reason('-----BEGIN CERTIFICATE-----\nMIIB')).toMatch(/no complete/)
    expect(reason(Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB').toString('base64'))).toMatch(/inside|without a complete/)
  })

  it('refuses anything else with an X509Error, never another exception', () => {
    const der = decodeCertificateText(leaf.pem)[0]!
    for (const bad of [new Uint8Array(0), der.subarray(0, der.length - 1), Uint8Array.from([...der, 0]), new Uint8Array(20_000)]) {
      expect(() => parseCertificate(bad)).toThrow(X509Error)
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 }), (junk, at, value) => {
        const mutated = der.slice()
        mutated[at] = value
        for (const input of [junk, mutated]) {
          try {
            parseCertificate(input)
          } catch (e) {
            if (!(e instanceof X509Error)) return false
          }
        }
        return true
      }),
      { numRuns: 300 },
    )
    expect(() => decodeCertificateText('-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----')).toThrow(X509Error)
  })
})

describe('validatePath', () => {
  it('validates RSA-PSS, P-384/SHA-384 and mixed chains with the WASM verifiers', () => {
    const rsa = root('PSS Root', 'rsa')
    const pssLeaf = issue('pss-device', rsa, { sign: ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'] })
    expect(pssLeaf.cert.signatureAlgorithm.oid).toBe('1.2.840.113549.1.1.10')
    expect(validatePath(pssLeaf.cert, [], [rsa.cert], { nowMs: now() }).ok).toBe(true)
    const p384 = root('P-384 Root', 'p384')
    const int = issue('P-256 Intermediate', p384, { ext: CA_EXT, sign: ['-sha384'] })
    const leaf = issue('rsa-under-ec', int, { key: 'rsa', sign: ['-sha512'] })
    const ok = validatePath(leaf.cert, [int.cert], [p384.cert], { nowMs: now() })
    expect(ok.ok && ok.path.map((c) => c.subject.text)).toEqual(['CN=rsa-under-ec', 'CN=P-256 Intermediate', 'CN=P-384 Root'])
  })

  it('refuses, naming certificate and rule: tampered signature, expiry, pathLen, EKU, unknown critical extension, non-CA issuer', () => {
    const ca = root('Rules Root', 'p256', [])
    const reason = (r: ReturnType<typeof validatePath>) => (r.ok ? 'valid' : `${r.error.code}: ${r.error.message}`)
    const leaf = issue('rules-device', ca)
    const der = leaf.cert.der.slice()
    der[der.length - 5]! ^= 1
    expect(reason(validatePath(parseCertificate(der), [], [ca.cert], { nowMs: now() }))).toMatch(/^X509_BAD_SIGNATURE: .*'CN=rules-device' does not verify with the public key of 'CN=Rules Root'/)
    expect(reason(validatePath(leaf.cert, [], [ca.cert], { nowMs: now() + 10 * 86_400_000 }))).toMatch(/^X509_EXPIRED: certificate 0 \('CN=rules-device'/)
    const zero = issue('Zero Intermediate', ca, { ext: 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign\n' })
    const lower = issue('Lower Intermediate', zero, { ext: CA_EXT })
    expect(reason(validatePath(issue('deep-device', lower).cert, [lower.cert, zero.cert], [ca.cert], { nowMs: now() }))).toMatch(/X509_PATH_LENGTH: certificate 2 \('CN=Zero Intermediate'.*pathLenConstraint 0 but 1/)
    const server = issue('server-only', ca, { ext: 'extendedKeyUsage=serverAuth\n' })
    expect(reason(validatePath(server.cert, [], [ca.cert], { nowMs: now() }))).toMatch(/X509_EXTENDED_KEY_USAGE: .* without clientAuth/)
    const critical = issue('critical-ext', ca, { ext: 'basicConstraints=CA:FALSE\n1.2.3.4=critical,ASN1:NULL\n' })
    expect(reason(validatePath(critical.cert, [], [ca.cert], { nowMs: now() }))).toMatch(/X509_CRITICAL_EXTENSION: .*critical extension 1\.2\.3\.4/)
    const notCa = issue('Not A CA', ca, { ext: 'basicConstraints=critical,CA:false\n' })
    expect(reason(validatePath(issue('under-leaf', notCa).cert, [notCa.cert], [ca.cert], { nowMs: now() }))).toMatch(/X509_NOT_CA: certificate 1 \('CN=Not A CA'.*cA=false/)
    expect(reason(validatePath(leaf.cert, [], [root('Other Root').cert], { nowMs: now() }))).toMatch(/X509_NO_PATH: .*no certificate named 'CN=Rules Root'/)
  })
})

describe('name constraints', () => {
  it('a constrained CA admits names inside its subtree and refuses others, naming both certificates', () => {
    const ca = root('Constrained Root', 'p256', ['nameConstraints=critical,permitted;DNS:devices.example.com'])
    const inside = issue('in', ca, { ext: 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:a.devices.example.com\n' })
    const outside = issue('out', ca, { ext: 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:a.example.org\n' })
    expect(validatePath(inside.cert, [], [ca.cert], { nowMs: now() }).ok).toBe(true)
    const r = validatePath(outside.cert, [], [ca.cert], { nowMs: now() })
    expect(r.ok ? 'valid' : `${r.error.code}: ${r.error.message}`).toMatch(/^X509_NAME_CONSTRAINTS: certificate 0 \('CN=out'.*dNSName 'a\.example\.org' outside every permitted dns subtree of the name constraints of certificate 1 \('CN=Constrained Root'/)
  })
})

describe('proof of possession', () => {
  it('accepts CN = code signed by the CA; refuses another CN or another key', () => {
    const ca = root('PoP Root')
    const code = verificationCodeFrom(new Uint8Array(24).fill(0xab))
    expect(code).toBe('AB'.repeat(24))
    expect(checkProofOfPossession(ca.cert, issue(code, ca).cert, code, now())).toBeUndefined()
    expect(checkProofOfPossession(ca.cert, issue('other', ca).cert, code, now())?.code).toBe('X509_CN_MISMATCH')
    expect(checkProofOfPossession(ca.cert, issue(code, root('PoP Root')).cert, code, now())?.code).toBe('X509_BAD_SIGNATURE')
    expect(() => verificationCodeFrom(new Uint8Array(4))).toThrow(RangeError)
  })
})
