/**
 * CA certificates of an instance and their proof of possession (docs/protocol.md §6, D-pop), the
 * engine side of @provisio/protocol's CaCertificateApi:
 *
 * - upload (PUT): the certificate must parse and be a CA (basicConstraints cA); it starts
 *   unverified unless the caller sets `isVerified: true` ("verified on upload", as DPS allows);
 *   replacing the certificate resets verification;
 * - generateVerificationCode: a fresh random code, stored on the record (If-Match honoured);
 * - verify: a certificate whose subject CN is the code and whose signature verifies with the CA's
 *   key (WASM, @provisio/x509 checkProofOfPossession) marks the CA verified and spends the code.
 *
 * Only verified CA certificates admit devices through a group's `caReferences` (x509-verifier.ts).
 * At most 25 per instance (§9 quota).
 */
import { ProvisioError, formatDpsTimestamp } from '@provisio/protocol'
import type { CaCertificateApi, CaCertificateView, ConditionalOptions } from '@provisio/protocol'
import {
  VERIFICATION_CODE_BYTES,
  X509Error,
  checkProofOfPossession,
  decodeCertificateText,
  parseCertificate,
  toPem,
  verificationCodeFrom,
  type Certificate,
} from '@provisio/x509'
import { newEtag } from './ids.js'
import type { Clock, Random } from './ports.js'
import type { CaCertificateRecord, Store, WriteCondition } from './store.js'

/** CA certificates per instance (docs/protocol.md §9). */
export const MAX_CA_CERTIFICATES = 25

/** Certificate names: what ARM allows for certificate resource names, bounded. */
const NAME = /^[A-Za-z0-9_.-]{1,128}$/

/** What {@link createCaCertificateApi} needs. */
export interface CaCertificateApiOptions {
  readonly store: Store
  readonly clock: Clock
  readonly random: Random
}

function condition(options?: ConditionalOptions): WriteCondition | undefined {
  return options?.ifMatch === undefined ? undefined : { ifMatch: options.ifMatch }
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ProvisioError('VALIDATION_FAILED', `CA certificate name ${JSON.stringify(String(name).slice(0, 140))} must be 1-128 letters, digits, '-', '.', '_'`)
  }
}

/** Reads `certificate` (and `isVerified`) from a flat body or ARM's `{properties: {…}}`. */
function certificateBody(body: unknown, what: string): { certificate: string; isVerified?: boolean } {
  const outer = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined
  if (!outer) throw new ProvisioError('VALIDATION_FAILED', `${what}: the body must be a JSON object with a "certificate" member`)
  const inner = typeof outer.properties === 'object' && outer.properties !== null ? (outer.properties as Record<string, unknown>) : outer
  const certificate = inner.certificate
  if (typeof certificate !== 'string' || certificate.length === 0) throw new ProvisioError('VALIDATION_FAILED', `${what}: "certificate" must be a string: PEM, base64 of DER or base64 of PEM`)
  const isVerified = inner.isVerified
  if (isVerified !== undefined && typeof isVerified !== 'boolean') throw new ProvisioError('VALIDATION_FAILED', `${what}: "isVerified" must be a boolean`)
  return isVerified === undefined ? { certificate } : { certificate, isVerified }
}

function parseOne(text: string, what: string): Certificate {
  try {
    const ders = decodeCertificateText(text)
    if (ders.length !== 1) throw new X509Error('X509_MALFORMED', `expected exactly one certificate, got ${ders.length}`)
    return parseCertificate(ders[0]!)
  } catch (e) {
    throw new ProvisioError('VALIDATION_FAILED', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  }
}

function view(record: CaCertificateRecord, cert: Certificate): CaCertificateView {
  return {
    name: record.name,
    etag: record.etag,
    properties: {
      subject: cert.subject.text,
      expiry: cert.notAfterIso,
      thumbprint: cert.sha1Thumbprint,
      sha256Thumbprint: cert.sha256Thumbprint,
      isVerified: record.isVerified,
      created: formatDpsTimestamp(record.createdAtMs),
      updated: formatDpsTimestamp(record.updatedAtMs),
      certificate: record.certificate,
      ...(record.verificationCode === undefined ? {} : { verificationCode: record.verificationCode }),
    },
  }
}

/** Creates the CA-certificate API over the engine's store. */
export function createCaCertificateApi(options: CaCertificateApiOptions): CaCertificateApi {
  const { store, clock, random } = options

  async function load(idScope: string, name: string): Promise<{ record: CaCertificateRecord; cert: Certificate }> {
    checkName(name)
    const record = await store.getCaCertificate(idScope, name)
    if (!record) throw new ProvisioError('NOT_FOUND', `no CA certificate '${name}' in ID scope ${idScope}`)
    return { record, cert: parseOne(record.certificate, `stored CA certificate '${name}'`) }
  }

  async function write(idScope: string, record: CaCertificateRecord, cond: WriteCondition | undefined, what: string): Promise<void> {
    const result = await store.putCaCertificate(idScope, record, cond)
    if (result.ok) return
    if (result.reason === 'etagMismatch') throw new ProvisioError('PRECONDITION_FAILED', `${what}: If-Match does not match the current etag ${result.currentEtag ?? ''}`.trim())
    if (result.reason === 'notFound') throw new ProvisioError('NOT_FOUND', `${what}: the CA certificate does not exist`)
    throw new ProvisioError('CONFLICT', `${what}: the CA certificate already exists`)
  }

  return {
    async createOrUpdateCaCertificate(idScope, name, body, opts) {
      checkName(name)
      const what = `CA certificate '${name}'`
      const input = certificateBody(body, what)
      const cert = parseOne(input.certificate, `${what}: "certificate"`)
      if (cert.basicConstraints?.ca !== true) {
        throw new ProvisioError('VALIDATION_FAILED', `${what}: '${cert.subject.text}' is not a CA certificate (basicConstraints cA is not set, RFC 5280 §4.2.1.9)`)
      }
      const existing = await store.getCaCertificate(idScope, name)
      if (!existing && (await store.listCaCertificates(idScope)).length >= MAX_CA_CERTIFICATES) {
        throw new ProvisioError('CONFLICT', `ID scope ${idScope} already has ${MAX_CA_CERTIFICATES} CA certificates (the DPS quota, §9)`)
      }
      const now = clock.now()
      const pem = toPem(cert.der)
      const same = existing !== undefined && existing.certificate === pem
      const record: CaCertificateRecord = {
        name,
        certificate: pem,
        // Replacing the certificate voids an earlier proof; `isVerified: true` is "verified on upload".
        isVerified: input.isVerified ?? (same ? existing.isVerified : false),
        ...(same && existing.verificationCode !== undefined ? { verificationCode: existing.verificationCode } : {}),
        etag: newEtag(random),
        createdAtMs: existing?.createdAtMs ?? now,
        updatedAtMs: now,
      }
      await write(idScope, record, condition(opts), what)
      return view(record, cert)
    },

    async getCaCertificate(idScope, name) {
      const { record, cert } = await load(idScope, name)
      return view(record, cert)
    },

    async deleteCaCertificate(idScope, name, opts) {
      checkName(name)
      const result = await store.deleteCaCertificate(idScope, name, condition(opts))
      if (result.ok) return
      if (result.reason === 'notFound') throw new ProvisioError('NOT_FOUND', `no CA certificate '${name}' in ID scope ${idScope}`)
      throw new ProvisioError('PRECONDITION_FAILED', `CA certificate '${name}': If-Match does not match the current etag ${result.currentEtag ?? ''}`.trim())
    },

    async listCaCertificates(idScope) {
      const records = await store.listCaCertificates(idScope)
      return records.map((r) => view(r, parseOne(r.certificate, `stored CA certificate '${r.name}'`)))
    },

    async generateVerificationCode(idScope, name, opts) {
      const { record, cert } = await load(idScope, name)
      const next: CaCertificateRecord = {
        ...record,
        verificationCode: verificationCodeFrom(random.bytes(VERIFICATION_CODE_BYTES)),
        etag: newEtag(random),
        updatedAtMs: clock.now(),
      }
      await write(idScope, next, { ifMatch: opts?.ifMatch ?? record.etag }, `CA certificate '${name}'`)
      return view(next, cert)
    },

    async verifyCaCertificate(idScope, name, body, opts) {
      const { record, cert } = await load(idScope, name)
      const what = `CA certificate '${name}'`
      if (record.verificationCode === undefined) {
        throw new ProvisioError('VALIDATION_FAILED', `${what}: no verification code was generated; call generateVerificationCode first`)
      }
      const proof = parseOne(certificateBody(body, what).certificate, `${what}: proof-of-possession certificate`)
      const failure = checkProofOfPossession(cert, proof, record.verificationCode, clock.now())
      if (failure) throw new ProvisioError('VALIDATION_FAILED', `${what} not verified: ${failure.message}`, { cause: failure })
      const { verificationCode: _spent, ...rest } = record
      const next: CaCertificateRecord = { ...rest, isVerified: true, etag: newEtag(random), updatedAtMs: clock.now() }
      await write(idScope, next, { ifMatch: opts?.ifMatch ?? record.etag }, what)
      return view(next, cert)
    },
  }
}

/**
 * The certificates (DER) an instance trusts as issuers of hub devices' chains: its verified CA
 * certificates and the signing certificates of its X.509 groups. An embedded hub admits
 * `certificateAuthority` devices that chain to one of them (@provisio/hub createHubDevices).
 */
export async function trustedCaCertificates(store: Store, idScope: string): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for (const ca of await store.listCaCertificates(idScope)) {
    if (ca.isVerified) out.push(...safeDecode(ca.certificate))
  }
  let after: string | undefined
  for (;;) {
    const groups = await store.listGroups(idScope, { limit: 200, ...(after === undefined ? {} : { after }) })
    for (const g of groups) {
      const signing = g.attestation.type === 'x509' ? g.attestation.x509.signingCertificates : undefined
      for (const slot of [signing?.primary, signing?.secondary]) if (slot?.certificate !== undefined) out.push(...safeDecode(slot.certificate))
    }
    if (groups.length < 200) break
    after = groups[groups.length - 1]!.enrollmentGroupId.toLowerCase()
  }
  return out
}

function safeDecode(text: string): Uint8Array[] {
  try {
    return decodeCertificateText(text)
  } catch {
    // A stored certificate that does not decode trusts nothing; the engine refused it at write.
    return []
  }
}
