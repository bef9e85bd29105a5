// The lean DER reader (src/der.ts): DER rules and bounds, and certificates that break them
// refused with a reason. Dates are checked against the platform's own calendar.
import { X509Certificate } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { MAX_DER_DEPTH, checkStructure, isoSeconds, oidText, readSingle, timeValue } from '../src/der.js'
import { X509Error, decodeCertificateText, parseCertificate } from '../src/index.js'

const bytes = (...b: number[]) => new Uint8Array(b)

function refusal(f: () => unknown): X509Error {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(X509Error)
    return e as X509Error
  }
  throw new Error('expected a refusal')
}

describe('DER headers', () => {
  it('reads definite short and long lengths', () => {
    const e = readSingle(new Uint8Array([0x04, 0x81, 0x80, ...new Uint8Array(0x80)]), 'value')
    expect([e.tag, e.contentStart, e.end]).toEqual([4, 3, 0x83])
  })
  it('refuses indefinite, non-minimal and overlong lengths, and trailing bytes', () => {
    expect(refusal(() => readSingle(bytes(0x30, 0x80, 0x00, 0x00), 'value')).message).toMatch(/indefinite length/)
    expect(refusal(() => readSingle(bytes(0x04, 0x81, 0x01, 0x00), 'value')).message).toMatch(/not minimal/)
    expect(refusal(() => readSingle(bytes(0x04, 0x82, 0x00, 0x81, ...new Uint8Array(0x81)), 'value')).message).toMatch(/not minimal/)
    expect(refusal(() => readSingle(bytes(0x04, 0x05, 0x00), 'value')).message).toMatch(/runs past the end/)
    expect(refusal(() => readSingle(bytes(0x05, 0x00, 0x00), 'value')).message).toMatch(/trailing bytes/)
    expect(refusal(() => readSingle(bytes(0x1f, 0x05, 0x00), 'value')).message).toMatch(/long form/)
  })
  it('bounds nesting depth', () => {
    let inner = bytes(0x05, 0x00)
    for (let i = 0; i <= MAX_DER_DEPTH; i++) inner = new Uint8Array([0x30, ...(inner.length < 0x80 ? [inner.length] : [0x81, inner.length]), ...inner])
    expect(refusal(() => checkStructure(readSingle(inner, 'value'))).message).toMatch(/nesting deeper than 32/)
  })
  it('decodes OBJECT IDENTIFIERs and refuses non-minimal arcs', () => {
    expect(oidText(readSingle(bytes(0x06, 0x03, 0x55, 0x1d, 0x13), 'oid'), 'oid')).toBe('2.5.29.19')
    expect(oidText(readSingle(bytes(0x06, 0x06, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d), 'oid'), 'oid')).toBe('1.2.840.113549')
    expect(refusal(() => oidText(readSingle(bytes(0x06, 0x02, 0x80, 0x01), 'oid'), 'oid')).message).toMatch(/non-minimal/)
    expect(refusal(() => oidText(readSingle(bytes(0x06, 0x01, 0x81), 'oid'), 'oid')).message).toMatch(/ends inside/)
  })
})

describe('times', () => {
  const ascii = (tag: number, s: string) => readSingle(new Uint8Array([tag, s.length, ...[...s].map((c) => c.charCodeAt(0))]), 'time')
  it('agree with the platform calendar for every second of 1950-9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1950, 0, 1) / 1000, max: Date.UTC(9999, 11, 31, 23, 59, 59) / 1000 }), (s) => {
        const iso = new Date(s * 1000).toISOString().replace('.000Z', 'Z')
        expect(isoSeconds(s * 1000)).toBe(iso)
        const digits = iso.replace(/[-:T]/g, '')
        expect(timeValue(ascii(24, digits), 'notAfter')).toBe(s * 1000)
        if (iso < '2050') expect(timeValue(ascii(23, digits.slice(2)), 'notAfter')).toBe(s * 1000)
      }),
      { numRuns: 2000 },
    )
  })
  it('refuses the forms RFC 5280 does not allow and impossible dates', () => {
    expect(refusal(() => timeValue(ascii(23, '2401010000Z'), 'notBefore')).message).toMatch(/YYMMDDHHMMSSZ/)
    expect(refusal(() => timeValue(ascii(23, '240101000000+0100'), 'notBefore')).message).toMatch(/YYMMDDHHMMSSZ/)
    expect(refusal(() => timeValue(ascii(24, '20240101000000.5Z'), 'notBefore')).message).toMatch(/YYYYMMDDHHMMSSZ/)
    expect(refusal(() => timeValue(ascii(23, '230229000000Z'), 'notBefore')).message).toMatch(/not a valid date/)
    expect(refusal(() => timeValue(ascii(23, '241301000000Z'), 'notBefore')).message).toMatch(/not a valid date/)
  })
})

describe('certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'provisio-x509-der-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '5',
    '-subj', '/CN=der test/O=Provisio', '-addext', 'subjectAltName=DNS:device.example,IP:10.0.0.1'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  const pem = readFileSync(join(dir, 'c.pem'), 'utf8')
  const der = decodeCertificateText(pem)[0]!

  it('reads what OpenSSL wrote as OpenSSL reads it', () => {
    const ours = parseCertificate(der)
    const node = new X509Certificate(der)
    expect(ours.serialNumberHex.replace(/^(00)+/, '')).toBe(node.serialNumber.replace(/^(00)+/, ''))
    expect(ours.notBeforeMs).toBe(Date.parse(node.validFrom))
    expect(ours.notAfterMs).toBe(Date.parse(node.validTo))
    expect(ours.subject.commonNames).toEqual(['der test'])
    expect(Buffer.from(ours.spki).equals(node.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true)
    expect(ours.sha1Thumbprint).toBe(node.fingerprint.replace(/:/g, ''))
    expect(ours.sha256Thumbprint).toBe(node.fingerprint256.replace(/:/g, ''))
  })
  it('refuses every truncation and a BER (indefinite-length) re-encoding with X509_MALFORMED', () => {
    for (let cut = 1; cut < der.length; cut += 7) expect(refusal(() => parseCertificate(der.subarray(0, cut))).code).toBe('X509_MALFORMED')
    // The outer SEQUENCE as BER: 0x30 0x80 … 0x00 0x00
    const headerLength = der[1]! & 0x80 ? 2 + (der[1]! & 0x7f) : 2
    const ber = new Uint8Array([0x30, 0x80, ...der.subarray(headerLength), 0x00, 0x00])
    expect(refusal(() => parseCertificate(ber)).message).toMatch(/certificate is malformed: .*indefinite length/)
  })
  it('refuses a BOOLEAN that is neither 0x00 nor 0xFF', () => {
    // basicConstraints as written by OpenSSL for a self-signed certificate: cA TRUE, critical TRUE.
    const at = Buffer.from(der).indexOf(Buffer.from([0x01, 0x01, 0xff]))
    expect(at).toBeGreaterThan(0)
    const bent = der.slice()
    bent[at + 2] = 0x01
    expect(refusal(() => parseCertificate(bent)).message).toMatch(/BOOLEAN is neither 0x00 nor 0xFF/)
  })
})
