// The X.509 verifier's DPS matching order and reasons, and the CA-certificate API, on the
// in-memory store with certificates made by openssl.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import { createCaCertificateApi, createX509Verifier, MAX_CA_CERTIFICATES } from '../src/index.js'
import { HUB_A, ID_SCOPE, setup } from './helpers/setup.js'

const dir = mkdtempSync(join(tmpdir(), 'provisio-engine-x509-'))
let n = 0
interface Made { pem: string; der: Uint8Array; path: string; key: string }

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}
function made(path: string, key: string): Made {
  const pem = readFileSync(path, 'utf8')
  return { pem, der: new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64')), path, key }
}
function root(cn: string): Made {
  const base = join(dir, `r${++n}`)
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.pem`, '-days', '5', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign'])
  return made(`${base}.pem`, `${base}.key`)
}
function issue(cn: string, issuer: Made, ca = false): Made {
  const base = join(dir, `c${++n}`)
  writeFileSync(`${base}.ext`, ca ? 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign\n' : 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n')
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${cn}`])
  openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', issuer.path, '-CAkey', issuer.key, '-set_serial', String(n), '-days', '5', '-extfile', `${base}.ext`, '-out', `${base}.pem`])
  return made(`${base}.pem`, `${base}.key`)
}

let rootCa: Made
let intermediate: Made
afterAll(() => rmSync(dir, { recursive: true, force: true }))
beforeAll(() => {
  rootCa = root('Engine Test Root')
  intermediate = issue('Engine Test Intermediate', rootCa, true)
})

function world() {
  const w = setup({ verifiers: [createX509Verifier()] })
  // openssl dates have whole seconds: a little ahead of the wall clock, every fresh certificate is valid
  w.clock.ms = Date.now() + 5000
  const failures: { reason: string; enrollment?: { kind: string; id: string } }[] = []
  w.raw.on('registrationFailed', (e) => void failures.push(e))
  const register = (registrationId: string, chain: Made[]) =>
    w.engine.register({ idScope: ID_SCOPE, registrationId, evidence: { type: 'x509', chain: chain.map((c) => c.der) }, apiVersion: '2021-10-01' })
  const refusal = async (registrationId: string, chain: Made[]) => {
    const error = await register(registrationId, chain).then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(ProvisioError)
    expect((error as ProvisioError).errorCode).toBe(401002)
    return { error: error as ProvisioError, event: failures.at(-1)! }
  }
  const group = (id: string, cert: Made, status: 'enabled' | 'disabled' = 'enabled', text = cert.pem) =>
    w.engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: id, attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: text } } } }, iotHubs: [HUB_A], provisioningStatus: status })
  const individual = (id: string, cert: Made, status: 'enabled' | 'disabled' = 'enabled', text = cert.pem) =>
    w.engine.createOrUpdateEnrollment(ID_SCOPE, { registrationId: id, attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: text } } } }, iotHubs: [HUB_A], provisioningStatus: status })
  return { ...w, register, refusal, group, individual, failures }
}

describe('X.509 enrollment matching (docs/protocol.md §6)', () => {
  it('the individual enrollment for the leaf comes first, and pins the thumbprint on the hub', async () => {
    const w = world()
    const leaf = issue('dev-ind', intermediate)
    await w.group('by-root', rootCa)
    await w.individual('dev-ind', leaf)
    const r = await w.register('dev-ind', [leaf, intermediate])
    expect(r.body.registrationState?.x509?.enrollmentGroupId).toBeUndefined()
    expect(r.body.registrationState?.x509?.certificateInfo?.subjectName).toBe('CN=dev-ind')
    expect(w.hubs.device(HUB_A, 'dev-ind')?.auth).toMatchObject({ type: 'selfSigned', thumbprints: { primary: expect.stringMatching(/^[0-9A-F]{64}$/) } })
  })

  it('an individual enrollment with another certificate decides alone: refused even though a group would admit', async () => {
    const w = world()
    await w.group('by-root', rootCa)
    await w.individual('dev-other', issue('dev-other', intermediate))
    const { error, event } = await w.refusal('dev-other', [issue('dev-other', intermediate), intermediate])
    expect(error.code).toBe('CERTIFICATE_INVALID')
    expect(event.reason).toMatch(/neither the primary nor the secondary certificate of individual enrollment 'dev-other'/)
  })

  it('a disabled individual enrollment refuses and marks the record disabled', async () => {
    const w = world()
    const leaf = issue('dev-off', intermediate)
    await w.group('by-root', rootCa)
    await w.individual('dev-off', leaf, 'disabled')
    const { error } = await w.refusal('dev-off', [leaf, intermediate])
    expect(error.code).toBe('ENROLLMENT_DISABLED')
    expect((await w.engine.getRegistrationState(ID_SCOPE, 'dev-off')).status).toBe('disabled')
  })

  it('the group of the first certificate above the leaf decides before the root group', async () => {
    const w = world()
    await w.group('by-root', rootCa)
    await w.group('by-intermediate', intermediate, 'disabled')
    const { error, event } = await w.refusal('dev-order', [issue('dev-order', intermediate), intermediate, rootCa])
    expect(error.code).toBe('ENROLLMENT_DISABLED')
    expect(event.enrollment).toEqual({ kind: 'group', id: 'by-intermediate' })
    // with the intermediate group gone, the root group admits, naming the root as signing certificate
    await w.engine.deleteEnrollmentGroup(ID_SCOPE, 'by-intermediate')
    const r = await w.register('dev-order', [issue('dev-order', intermediate), intermediate])
    expect(r.body.registrationState?.x509).toMatchObject({ enrollmentGroupId: 'by-root', signingCertificateInfo: { subjectName: 'CN=Engine Test Root' } })
    expect(w.hubs.device(HUB_A, 'dev-order')?.auth).toEqual({ type: 'certificateAuthority' })
  })

  /** The three encodings DPS accepts for enrollment certificates (docs/protocol.md §13.2). */
  const encodings: [string, (c: Made) => string][] = [
    ['PEM', (c) => c.pem],
    ['base64 of DER', (c) => Buffer.from(c.der).toString('base64')],
    ['base64 of PEM (Azure portal, Microsoft\'s Node e2e)', (c) => Buffer.from(c.pem).toString('base64')],
  ]
  for (const [name, encode] of encodings) {
    it(`admits with certificates written as ${name}, individual and group`, async () => {
      const w = world()
      const leaf = issue('dev-enc-i', intermediate)
      await w.individual('dev-enc-i', leaf, 'enabled', encode(leaf))
      expect((await w.register('dev-enc-i', [leaf, intermediate])).body.status).toBe('assigned')
      await w.group('enc-group', intermediate, 'enabled', encode(intermediate))
      const r = await w.register('dev-enc-g', [issue('dev-enc-g', intermediate), intermediate])
      expect(r.body.registrationState?.x509?.enrollmentGroupId).toBe('enc-group')
    })
  }

  it('refuses a certificate that does not parse when the enrollment is written, naming the member and why', async () => {
    const w = world()
    const garbage = Buffer.from('-----BEGIN CERTIFICATE-----\nMIIBxyz=\n-----END CERTIFICATE-----\n').toString('base64')
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => w.individual('dev-bad', rootCa, 'enabled', 'not a certificate!'), /attestation\.x509\.clientCertificates\.primary\.certificate: must be PEM, base64 of DER or base64 of PEM/],
      [() => w.individual('dev-bad', rootCa, 'enabled', Buffer.from('not a certificate').toString('base64')), /attestation\.x509\.clientCertificates\.primary\.certificate does not parse: certificate is malformed/],
      [() => w.group('bad-group', rootCa, 'enabled', garbage), /attestation\.x509\.signingCertificates\.primary\.certificate does not parse: .*malformed/],
      [() => w.group('bad-der', rootCa, 'enabled', Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]).toString('base64')), /signingCertificates\.primary\.certificate does not parse/],
    ]
    for (const [write, reason] of cases) {
      const error = await write().then(() => undefined, (e: unknown) => e)
      expect(error).toBeInstanceOf(ProvisioError)
      expect((error as ProvisioError).code).toBe('VALIDATION_FAILED')
      expect((error as ProvisioError).httpStatus).toBe(400)
      expect((error as ProvisioError).reason).toMatch(reason)
    }
    // Nothing was stored.
    await expect(w.engine.getEnrollment(ID_SCOPE, 'dev-bad')).rejects.toMatchObject({ code: 'ENROLLMENT_RECORD_NOT_FOUND' })
    await expect(w.engine.getEnrollmentGroup(ID_SCOPE, 'bad-group')).rejects.toMatchObject({ code: 'ENROLLMENT_GROUP_NOT_FOUND' })
  })

  it('garbage evidence is refused with a reason, never thrown as something else', async () => {
    const w = world()
    const { error, event } = await w.refusal('dev-junk', [{ pem: '', der: new Uint8Array([0x30, 0x03, 0x02, 0x01]), path: '', key: '' }])
    expect(error.code).toBe('CERTIFICATE_INVALID')
    expect(event.reason).toMatch(/certificate 0 sent by the device does not parse/)
  })

  it('a poll must present the admitted certificate', async () => {
    const w = world()
    await w.group('by-root', rootCa)
    const leaf = issue('dev-poll', intermediate)
    const r = await w.register('dev-poll', [leaf, intermediate])
    const poll = (chain: Made[]) => w.engine.operationStatus({ idScope: ID_SCOPE, registrationId: 'dev-poll', operationId: r.body.operationId, evidence: { type: 'x509', chain: chain.map((c) => c.der) } })
    expect((await poll([leaf, intermediate])).body.status).toBe('assigned')
    const other = await poll([issue('dev-poll', intermediate), intermediate]).then(() => undefined, (e: unknown) => e)
    expect((other as ProvisioError).reason).toMatch(/not the certificate admitted by group enrollment 'by-root'/)
  })
})

describe('CA certificates and caReferences', () => {
  it('a group by caReferences admits only once the CA is verified by proof of possession', async () => {
    const w = world()
    const ca = createCaCertificateApi({ store: w.store, clock: w.clock, random: w.random })
    const uploaded = await ca.createOrUpdateCaCertificate(ID_SCOPE, 'root-1', { certificate: rootCa.pem })
    expect(uploaded.properties.isVerified).toBe(false)
    await w.engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'by-ref', attestation: { type: 'x509', x509: { caReferences: { primary: 'root-1' } } }, iotHubs: [HUB_A] })
    const leaf = issue('dev-ref', intermediate)
    const { event } = await w.refusal('dev-ref', [leaf, intermediate])
    expect(event.reason).toMatch(/names a CA certificate that is not verified/)

    await expect(ca.verifyCaCertificate(ID_SCOPE, 'root-1', { certificate: issue('x', rootCa).pem })).rejects.toThrow(/no verification code was generated/)
    await expect(ca.generateVerificationCode(ID_SCOPE, 'root-1', { ifMatch: '"stale"' })).rejects.toMatchObject({ code: 'PRECONDITION_FAILED' })
    const code = (await ca.generateVerificationCode(ID_SCOPE, 'root-1')).properties.verificationCode!
    await expect(ca.verifyCaCertificate(ID_SCOPE, 'root-1', { certificate: issue(code, root('Engine Test Root')).pem })).rejects.toThrow(/not signed by the CA's key/)
    await expect(ca.verifyCaCertificate(ID_SCOPE, 'root-1', { certificate: issue('ABC', rootCa).pem })).rejects.toThrow(/subject CN equal to the verification code/)
    const verified = await ca.verifyCaCertificate(ID_SCOPE, 'root-1', { certificate: issue(code, rootCa).pem })
    expect(verified.properties).toMatchObject({ isVerified: true })
    expect(verified.properties.verificationCode).toBeUndefined()
    const r = await w.register('dev-ref', [leaf, intermediate])
    expect(r.body.registrationState?.x509?.enrollmentGroupId).toBe('by-ref')

    // replacing the certificate voids the proof
    const replaced = await ca.createOrUpdateCaCertificate(ID_SCOPE, 'root-1', { certificate: intermediate.pem })
    expect(replaced.properties.isVerified).toBe(false)
  })

  it('refuses non-CA certificates, garbage and more than the quota', async () => {
    const w = world()
    const ca = createCaCertificateApi({ store: w.store, clock: w.clock, random: w.random })
    await expect(ca.createOrUpdateCaCertificate(ID_SCOPE, 'leaf', { certificate: issue('leafy', rootCa).pem })).rejects.toThrow(/is not a CA certificate/)
    await expect(ca.createOrUpdateCaCertificate(ID_SCOPE, 'junk', { certificate: 'not base64 !' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', reason: expect.stringMatching(/"certificate".*base64 alphabet/) })
    // base64 of the PEM text, as the Azure portal uploads it, is a certificate like the others.
    expect((await ca.createOrUpdateCaCertificate(ID_SCOPE, 'b64pem', { certificate: Buffer.from(rootCa.pem).toString('base64') })).properties.subject).toContain('Engine Test Root')
    await ca.deleteCaCertificate(ID_SCOPE, 'b64pem')
    await expect(ca.createOrUpdateCaCertificate(ID_SCOPE, 'bad name/x', { certificate: rootCa.pem })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    for (let i = 0; i < MAX_CA_CERTIFICATES; i++) await ca.createOrUpdateCaCertificate(ID_SCOPE, `ca-${i}`, { certificate: rootCa.pem, isVerified: true })
    await expect(ca.createOrUpdateCaCertificate(ID_SCOPE, 'one-too-many', { certificate: rootCa.pem })).rejects.toMatchObject({ code: 'CONFLICT' })
    expect(await ca.listCaCertificates(ID_SCOPE)).toHaveLength(MAX_CA_CERTIFICATES)
    await ca.deleteCaCertificate(ID_SCOPE, 'ca-0')
    await expect(ca.getCaCertificate(ID_SCOPE, 'ca-0')).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })
})
