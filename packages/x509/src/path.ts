/**
 * Certification path building and validation (RFC 5280 §6.1, reduced to our profile): from a
 * device leaf, through intermediates taken from a pool (what the device sent), to one of the
 * trust anchors (the enrollment's certificate: a group's signing certificate or a verified CA).
 *
 * Checks, each with a reason naming the certificate and the rule:
 * - signatures with the WASM core (signature.ts), the TBS algorithm equal to the outer one;
 * - validity (notBefore ≤ now ≤ notAfter) of every certificate including the anchor;
 * - name chaining (issuer of each = subject of the next); AKI/SKI only order the candidates;
 * - CA certificates: basicConstraints critical with cA (§4.2.1.9), pathLenConstraint counting
 *   non-self-issued intermediates (§6.1.4 (l)-(m)), keyUsage with keyCertSign if present;
 * - any certificate asserting keyCertSign must be a CA (§4.2.1.3);
 * - the leaf: not a CA, keyUsage (if present) with digitalSignature, extKeyUsage (if present)
 *   with the required purpose (clientAuth for DPS devices) or anyExtendedKeyUsage (§4.2.1.12);
 * - name constraints (§4.2.1.10) of every CA over the certificates below it, for dNSName,
 *   iPAddress, rfc822Name and directoryName (other forms fail closed); nameConstraints must be
 *   critical and only in CAs; malformed subjectAltName or nameConstraints refuse the certificate;
 * - critical extensions other than the ones we process are refused (§4.2): policy constraints,
 *   certificate policies, AIA and the rest fail closed;
 * - empty issuer names, and CAs with an empty subject, are refused (§4.1.2.4, §4.1.2.6).
 *
 * Path building is a depth-first search over candidate issuers (name match, AKI/SKI as a hint)
 * with cycle detection and a depth bound, so a pool with an expired or wrong duplicate still
 * finds the good path. When no path validates, the error of the deepest attempt is reported.
 */
import { type Certificate, KEY_USAGE, OID, describeCertificate, namesEqual } from './certificate.js'
import { X509Error } from './errors.js'
import { checkNameConstraints, nameConstraintsOf, subjectAltNames } from './names.js'
import { checkSignature } from './signature.js'

/** Options of {@link validatePath}. */
export interface PathOptions {
  /** Validation time, milliseconds since the epoch (the injected clock). */
  readonly nowMs: number
  /** Purpose the leaf must allow when it has extKeyUsage (default clientAuth); null: none. */
  readonly requiredExtKeyUsage?: string | null
  /** Most intermediates allowed between leaf and anchor (default 8). */
  readonly maxIntermediates?: number
  /** Also check each anchor's own validity (default true). */
  readonly checkAnchors?: boolean
  /** Extension OIDs the caller processes itself, so they may be critical. */
  readonly handledCriticalExtensions?: readonly string[]
}

/** A validated path, leaf first, the anchor last. */
export interface ValidPath {
  readonly ok: true
  readonly path: readonly Certificate[]
  readonly anchor: Certificate
}

/** Why no path validated. */
export interface InvalidPath {
  readonly ok: false
  readonly error: X509Error
}

const PROCESSED = new Set<string>([OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectAltName, OID.subjectKeyIdentifier, OID.authorityKeyIdentifier, OID.nameConstraints])

/** Checks that apply to a certificate on its own (position = index in the path, 0 = leaf). */
function checkAlone(cert: Certificate, position: number, role: 'leaf' | 'ca' | 'anchor', options: PathOptions, handled: ReadonlySet<string>): X509Error | undefined {
  const who = describeCertificate(cert, position)
  if (options.checkAnchors !== false || role !== 'anchor') {
    if (options.nowMs < cert.notBeforeMs) return new X509Error('X509_NOT_YET_VALID', `${who} is not valid before ${cert.notBeforeIso} (RFC 5280 §4.1.2.5)`)
    if (options.nowMs > cert.notAfterMs) return new X509Error('X509_EXPIRED', `${who} expired at ${cert.notAfterIso} (RFC 5280 §4.1.2.5)`)
  }
  for (const e of cert.extensions) {
    if (e.critical && !PROCESSED.has(e.oid) && !handled.has(e.oid)) {
      return new X509Error('X509_CRITICAL_EXTENSION', `${who} has critical extension ${e.oid} that we do not process (RFC 5280 §4.2)`)
    }
    if (e.critical && (e.oid === OID.subjectKeyIdentifier || e.oid === OID.authorityKeyIdentifier)) {
      return new X509Error('X509_BAD_EXTENSION', `${who} marks ${e.oid === OID.subjectKeyIdentifier ? 'subjectKeyIdentifier' : 'authorityKeyIdentifier'} critical; RFC 5280 §4.2.1.1-2 requires non-critical`)
    }
  }
  if (cert.tbsSignatureAlgorithm.oid !== cert.signatureAlgorithm.oid || !sameBytes(cert.tbsSignatureAlgorithm.params, cert.signatureAlgorithm.params)) {
    return new X509Error('X509_MALFORMED', `${who}: the TBSCertificate signature algorithm differs from the outer signatureAlgorithm (RFC 5280 §4.1.1.2)`)
  }
  if (cert.extensions.length > 0 && cert.version !== 3) {
    return new X509Error('X509_MALFORMED', `${who} carries extensions but is X.509 v${cert.version}; extensions MUST only appear in v3 (RFC 5280 §4.1.2.9)`)
  }
  if (cert.issuer.empty) return new X509Error('X509_MALFORMED', `${who} has an empty issuer name (RFC 5280 §4.1.2.4)`)
  // Names: a malformed subjectAltName or nameConstraints refuses the certificate.
  let hasNameConstraints = false
  try {
    const sans = subjectAltNames(cert)
    const san = cert.extensions.find((e) => e.oid === OID.subjectAltName)
    if (cert.subject.empty && (san === undefined || !san.critical || sans.length === 0)) {
      return new X509Error('X509_BAD_EXTENSION', `${who} has an empty subject, so it needs a critical subjectAltName (RFC 5280 §4.2.1.6)`)
    }
    hasNameConstraints = nameConstraintsOf(cert) !== undefined
  } catch (e) {
    return e instanceof X509Error ? new X509Error(e.code, `${who}: ${e.message}`) : new X509Error('X509_BAD_EXTENSION', `${who}: ${String(e)}`)
  }
  if (hasNameConstraints) {
    if (role === 'leaf') return new X509Error('X509_BAD_EXTENSION', `${who} is an end-entity certificate with nameConstraints, which MUST be used only in CA certificates (RFC 5280 §4.2.1.10)`)
    if (!cert.extensions.find((e) => e.oid === OID.nameConstraints)!.critical) {
      return new X509Error('X509_BAD_EXTENSION', `${who} has a non-critical nameConstraints; RFC 5280 §4.2.1.10 requires it critical`)
    }
  }
  const ku = cert.keyUsage
  const ca = cert.basicConstraints?.ca === true
  if (ku?.has(KEY_USAGE.keyCertSign) && !ca) {
    return new X509Error('X509_KEY_USAGE', `${who} asserts keyCertSign without basicConstraints cA (RFC 5280 §4.2.1.3)`)
  }
  if (role === 'leaf') {
    if (ca) return new X509Error('X509_NOT_CA', `${who} is the device (end-entity) certificate but has basicConstraints cA=true`)
    if (ku !== undefined && !ku.has(KEY_USAGE.digitalSignature)) {
      return new X509Error('X509_KEY_USAGE', `${who} has keyUsage without digitalSignature, which TLS client authentication needs (RFC 5280 §4.2.1.3)`)
    }
    const want = options.requiredExtKeyUsage === undefined ? OID.clientAuth : options.requiredExtKeyUsage
    if (want !== null && cert.extKeyUsage !== undefined && !cert.extKeyUsage.includes(want) && !cert.extKeyUsage.includes(OID.anyExtendedKeyUsage)) {
      return new X509Error('X509_EXTENDED_KEY_USAGE', `${who} has extKeyUsage [${cert.extKeyUsage.join(', ')}] without ${want === OID.clientAuth ? 'clientAuth' : want} (RFC 5280 §4.2.1.12)`)
    }
    return undefined
  }
  // Issuing certificates (RFC 5280 §6.1.4 (k), (n)).
  if (cert.version !== 3) return new X509Error('X509_NOT_CA', `${who} issues certificates but is X.509 v${cert.version}; only v3 carries basicConstraints`)
  if (cert.subject.empty) return new X509Error('X509_MALFORMED', `${who} is a CA with an empty subject (RFC 5280 §4.1.2.6)`)
  if (!cert.basicConstraints) return new X509Error('X509_NOT_CA', `${who} issues certificates but has no basicConstraints (RFC 5280 §6.1.4 (k))`)
  if (!ca) return new X509Error('X509_NOT_CA', `${who} issues certificates but its basicConstraints has cA=false (RFC 5280 §6.1.4 (k))`)
  if (!cert.basicConstraints.critical) return new X509Error('X509_BAD_EXTENSION', `${who} is a CA whose basicConstraints is not critical (RFC 5280 §4.2.1.9: MUST be critical)`)
  if (ku !== undefined && !ku.has(KEY_USAGE.keyCertSign)) return new X509Error('X509_KEY_USAGE', `${who} issues certificates but its keyUsage lacks keyCertSign (RFC 5280 §6.1.4 (n))`)
  return undefined
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  return a.length === b.length && a.every((x, i) => x === b[i])
}

function selfIssued(c: Certificate): boolean {
  return namesEqual(c.issuer, c.subject)
}

/** Could `issuer` have issued `child`? Names must chain (RFC 5280 §6.1.3 (a)(4)). */
function couldIssue(issuer: Certificate, child: Certificate): boolean {
  return namesEqual(child.issuer, issuer.subject)
}

/**
 * Candidates whose SKI equals the child's AKI first: key identifiers are only a hint for path
 * building (RFC 5280 §4.2.1.1), the signature decides, so a same-named CA with another key is
 * still tried and refused with "signature does not verify" rather than "not found".
 */
function byKeyIdHint(candidates: readonly Certificate[], child: Certificate): Certificate[] {
  const hinted = (c: Certificate) => (child.authorityKeyId && c.subjectKeyId && sameBytes(child.authorityKeyId, c.subjectKeyId) ? 0 : 1)
  return [...candidates].sort((a, b) => hinted(a) - hinted(b))
}

/**
 * Builds and validates a path from `leaf` to one of `anchors` through `intermediates`.
 * Anchors are trusted by identity (their SHA-256); an anchor equal to the leaf is a valid path of one.
 */
export function validatePath(
  leaf: Certificate,
  intermediates: readonly Certificate[],
  anchors: readonly Certificate[],
  options: PathOptions,
): ValidPath | InvalidPath {
  const handled = new Set(options.handledCriticalExtensions ?? [])
  const maxIntermediates = options.maxIntermediates ?? 8
  const leafError = checkAlone(leaf, 0, 'leaf', options, handled)
  if (leafError) return { ok: false, error: leafError }
  const anchorIds = new Set(anchors.map((a) => a.sha256Hex))
  let best: { depth: number; error: X509Error } | undefined
  const fail = (depth: number, error: X509Error) => {
    if (!best || depth > best.depth) best = { depth, error }
  }
  const anchorChecked = new Map<string, X509Error | undefined>()
  const checkAnchor = (a: Certificate, position: number): X509Error | undefined => {
    if (!anchorChecked.has(a.sha256Hex)) {
      // A trust anchor is trusted as configured (RFC 5280 §6.1.1 (d)): its own signature is not
      // checked (old roots are SHA-1 self-signed), but its validity and CA-ness are.
      anchorChecked.set(a.sha256Hex, checkAlone(a, position, 'anchor', options, handled))
    }
    return anchorChecked.get(a.sha256Hex)
  }

  // path[0] = leaf; extend from the top of the path.
  const search = (path: Certificate[]): ValidPath | undefined => {
    const top = path[path.length - 1]!
    const depth = path.length
    // 1. An anchor that issued `top` ends the path.
    for (const a of byKeyIdHint(anchors, top)) {
      if (!couldIssue(a, top)) continue
      const sig = checkSignature(top, a)
      if (sig) {
        fail(depth, new X509Error(sig.code, `${describeCertificate(top, depth - 1)}: ${sig.message}`))
        continue
      }
      const err = checkAnchor(a, depth) ?? checkPathLengths([...path, a]) ?? checkPathNames([...path, a])
      if (err) {
        fail(depth, err)
        continue
      }
      return { ok: true, path: [...path, a], anchor: a }
    }
    // 2. Otherwise an intermediate from the pool, then recurse.
    // Self-issued intermediates (key rollover) do not count (RFC 5280 §6.1.4 (l)); a hard bound still stops cycles.
    const logical = path.slice(1).filter((p) => !selfIssued(p)).length
    if (logical >= maxIntermediates || depth > maxIntermediates + 8) {
      fail(depth, new X509Error('X509_PATH_LENGTH', `no trust anchor within ${maxIntermediates} intermediate(s) above the leaf`))
      return undefined
    }
    for (const c of byKeyIdHint(intermediates, top)) {
      if (anchorIds.has(c.sha256Hex) || path.some((p) => p.sha256Hex === c.sha256Hex)) continue // anchors handled above; no cycles
      if (!couldIssue(c, top)) continue
      const alone = checkAlone(c, depth, 'ca', options, handled)
      if (alone) {
        fail(depth, alone)
        continue
      }
      const sig = checkSignature(top, c)
      if (sig) {
        fail(depth, new X509Error(sig.code, `${describeCertificate(top, depth - 1)}: ${sig.message}`))
        continue
      }
      const found = search([...path, c])
      if (found) return found
    }
    return undefined
  }

  if (anchorIds.has(leaf.sha256Hex)) {
    const a = anchors.find((x) => x.sha256Hex === leaf.sha256Hex)!
    return { ok: true, path: [leaf], anchor: a }
  }
  const found = search([leaf])
  if (found) return found
  if (best) return { ok: false, error: best.error }
  return {
    ok: false,
    error: new X509Error(
      'X509_NO_PATH',
      `no path from ${describeCertificate(leaf, 0)} to a trusted certificate: no certificate named '${leaf.issuer.text}' (its issuer) was sent or is trusted`,
    ),
  }
}

/**
 * Name constraints of every CA on the path (anchor included) over the certificates below it;
 * self-issued intermediates are exempt, the leaf never is (RFC 5280 §6.1.3 (b)-(c), §6.1.4 (g)).
 */
function checkPathNames(path: readonly Certificate[]): X509Error | undefined {
  for (let k = 1; k < path.length; k++) {
    const nc = nameConstraintsOf(path[k]!)
    if (nc === undefined) continue
    for (let j = 0; j < k; j++) {
      if (j > 0 && selfIssued(path[j]!)) continue
      const err = checkNameConstraints(path[j]!, j, subjectAltNames(path[j]!), path[k]!, k, nc)
      if (err) return err
    }
  }
  return undefined
}

/**
 * pathLenConstraint (RFC 5280 §4.2.1.9, §6.1.4 (l)-(m)): a CA's pathLen bounds the number of
 * non-self-issued intermediates below it (the leaf is not counted).
 */
function checkPathLengths(path: readonly Certificate[]): X509Error | undefined {
  // path: leaf, i1, …, anchor. For CA at index k, intermediates below it are indices 1..k-1.
  for (let k = 1; k < path.length; k++) {
    const limit = path[k]!.basicConstraints?.pathLen
    if (limit === undefined) continue
    let below = 0
    for (let j = 1; j < k; j++) if (!selfIssued(path[j]!)) below++
    if (below > limit) {
      return new X509Error('X509_PATH_LENGTH', `${describeCertificate(path[k]!, k)} has pathLenConstraint ${limit} but ${below} intermediate CA certificate(s) follow it (RFC 5280 §4.2.1.9)`)
    }
  }
  return undefined
}
