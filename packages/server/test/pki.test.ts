import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ensureDevPki } from '../src/pki.js'

describe('dev PKI', () => {
  it('creates a CA and a server certificate for the host names, signed by that CA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-pki-'))
    const pki = await ensureDevPki(dir, ['localhost', '127.0.0.1', 'dps.example'], Date.now())
    expect(pki.created).toEqual({ ca: true, server: true })
    const ca = new X509Certificate(pki.caCertificatePem)
    const server = new X509Certificate(pki.certificatePem)
    expect(ca.ca).toBe(true)
    expect(server.ca).toBe(false)
    expect(server.verify(ca.publicKey)).toBe(true)
    expect(server.checkIssued(ca)).toBe(true)
    expect(server.checkHost('dps.example')).toBe('dps.example')
    expect(server.checkHost('localhost')).toBe('localhost')
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1')
    expect(server.checkHost('other.example')).toBeUndefined()
    expect(server.keyUsage).toContain('1.3.6.1.5.5.7.3.1')
  })

  it('reuses what exists and re-issues only the server certificate when host names change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-pki-'))
    const first = await ensureDevPki(dir, ['localhost'], Date.now())
    const again = await ensureDevPki(dir, ['localhost'], Date.now())
    expect(again.created).toEqual({ ca: false, server: false })
    expect(again.certificatePem).toBe(first.certificatePem)
    const widened = await ensureDevPki(dir, ['localhost', 'new.example'], Date.now())
    expect(widened.created).toEqual({ ca: false, server: true })
    expect(widened.caCertificatePem).toBe(first.caCertificatePem)
    expect(new X509Certificate(widened.certificatePem).checkHost('new.example')).toBe('new.example')
    expect(readFileSync(join(dir, 'ca.pem'), 'utf8')).toBe(first.caCertificatePem)
  })

  it('re-issues the server certificate when it is about to expire', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-pki-'))
    await ensureDevPki(dir, ['localhost'], Date.now())
    const later = await ensureDevPki(dir, ['localhost'], Date.now() + 820 * 86_400_000)
    expect(later.created.server).toBe(true)
  })
})

describe('dev PKI serial numbers', () => {
  it('are positive minimal DER INTEGERs every time (a leading 0x00 would break parsers)', async () => {
    // 40 certificates; with an unconstrained first byte about 1 in 256 was non-minimal.
    for (let i = 0; i < 20; i++) {
      const dir = mkdtempSync(join(tmpdir(), 'provisio-pki-serial-'))
      const pki = await ensureDevPki(dir, ['localhost'], Date.now())
      for (const pem of [pki.caCertificatePem, pki.certificatePem]) {
        const serial = new X509Certificate(pem).serialNumber
        expect(serial).toMatch(/^[4-7][0-9A-F]{31}$/)
      }
    }
  })
})
