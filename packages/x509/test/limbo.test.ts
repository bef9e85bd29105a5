/**
 * x509-limbo (C2SP) cases within our profile. Every case runs: the applicable ones must agree
 * with the expected result, the others are listed with the reason they do not apply, and the
 * counts are checked against the README so the two cannot drift apart.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { OID, decodeCertificateText, parseCertificate, validatePath, type Certificate } from '../src/index.js'

interface Testcase {
  id: string
  features?: string[] | null
  validation_kind: 'SERVER' | 'CLIENT'
  trusted_certs: string[]
  untrusted_intermediates: string[]
  peer_certificate: string
  validation_time: string | null
  extended_key_usage: string[] | null
  key_usage: string[] | null
  expected_result: 'SUCCESS' | 'FAILURE'
  max_chain_depth?: number | null
}

const FILE = fileURLToPath(new URL('../../../../shared/vectors/x509-limbo/limbo.2023-12-02.ddc40b4.json', import.meta.url))
const limbo = JSON.parse(readFileSync(FILE, 'utf8')) as { testcases: Testcase[] }

/**
 * Not applicable, by id prefix or feature, with the reason. Our profile: X.509 client
 * authentication of devices to an enrollment's certificate (docs/protocol.md §6).
 */
const NOT_APPLICABLE: { match: (t: Testcase) => boolean; reason: string }[] = [
  { match: (t) => t.id === 'webpki::nc::permitted-dns-match-noncritical', reason: 'conflicts with rfc5280::nc::permitted-dns-match-noncritical; we follow RFC 5280 §4.2.1.10 (nameConstraints MUST be critical)' },
  { match: (t) => t.id.startsWith('webpki::san::'), reason: 'DNS/IP subjectAltName matching against a server name (server authentication); devices are identified by subject CN' },
  { match: (t) => (t.features ?? []).some((f) => f.startsWith('pedantic')), reason: 'pedantic profile checks (serial numbers, webpki EKU/SPKI rules, cross-signed AKI) beyond RFC 5280 path validation' },
  { match: (t) => (t.id.startsWith('rfc5280::aki::') || t.id.startsWith('rfc5280::ski::') || t.id.startsWith('webpki::aki::')) && !t.id.includes('::critical-'), reason: 'presence rules for AKI/SKI are not enforced (field devices and CAs omit them; names and signatures chain the path); a critical AKI/SKI is refused' },
  { match: (t) => t.id === 'pathlen::validation-ignores-pathlen-in-leaf', reason: 'its leaf is a CA certificate; our profile refuses a CA as the device certificate of a chain (as webpki::ee-basicconstraints-ca expects)' },
  { match: (t) => t.id === 'webpki::v1-cert', reason: 'CA/Browser Forum rule (v3 only); RFC 5280 §4.1.2.1 allows v1 end-entity certificates, which `openssl x509 -req` makes without extensions' },
  { match: (t) => t.id === 'webpki::malformed-aia', reason: 'authorityInfoAccess is not processed (no AIA fetching), so a malformed non-critical one is ignored' },
]

function notApplicable(t: Testcase): string | undefined {
  return NOT_APPLICABLE.find((n) => n.match(t))?.reason
}

function run(t: Testcase): { ok: boolean; why: string } {
  let leaf: Certificate
  let intermediates: Certificate[]
  let anchors: Certificate[]
  try {
    leaf = parseCertificate(decodeCertificateText(t.peer_certificate)[0]!)
    intermediates = t.untrusted_intermediates.map((p) => parseCertificate(decodeCertificateText(p)[0]!))
    anchors = t.trusted_certs.map((p) => parseCertificate(decodeCertificateText(p)[0]!))
  } catch (e) {
    return { ok: false, why: `parse: ${(e as Error).message}` }
  }
  const eku = t.extended_key_usage?.[0]
  const result = validatePath(leaf, intermediates, anchors, {
    nowMs: t.validation_time === null ? Date.parse('2024-01-01T00:00:00Z') : Date.parse(t.validation_time),
    requiredExtKeyUsage: eku === 'serverAuth' ? OID.serverAuth : eku === 'clientAuth' ? OID.clientAuth : null,
    ...(t.max_chain_depth === undefined || t.max_chain_depth === null ? {} : { maxIntermediates: t.max_chain_depth }),
  })
  return result.ok ? { ok: true, why: 'valid' } : { ok: false, why: result.error.message }
}

const applicable = limbo.testcases.filter((t) => notApplicable(t) === undefined)
const skipped = limbo.testcases.filter((t) => notApplicable(t) !== undefined)

describe('x509-limbo 2023-12-02 (applicable cases)', () => {
  it.each(applicable.map((t) => [t.id, t] as const))('%s', (_id, t) => {
    const r = run(t)
    expect(r.ok ? 'SUCCESS' : 'FAILURE', `${t.id}: ${r.why}`).toBe(t.expected_result)
  })
})

describe('x509-limbo bookkeeping', () => {
  it('counts match the README', () => {
    // LIMBO_LIST=<file> writes the README table of not-applicable cases.
    const list = process.env.LIMBO_LIST
    if (list) writeFileSync(list, skipped.map((t) => `| \`${t.id}\` | ${notApplicable(t)} |\n`).join(''))
    const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8')
    expect(readme).toContain(`${applicable.length} applicable`)
    expect(readme).toContain(`${skipped.length} not applicable`)
    for (const t of skipped) expect(readme).toContain(t.id)
  })
})
