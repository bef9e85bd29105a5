/**
 * Subject alternative names and name constraints (RFC 5280 §4.2.1.6, §4.2.1.10, §6.1.3 (b)-(c),
 * §6.1.4 (g)) for the name forms a device PKI uses: dNSName, iPAddress, rfc822Name and
 * directoryName. A constraint of another form, when a certificate below carries a name of that
 * form, fails closed. Malformed names and constraints are refused, not skipped.
 */
import { type Certificate, type Name, describeCertificate } from './certificate.js'
import { CONTEXT, type DerElement, TAG, checkStructure, children, content, isUniversal, oidText, readSingle, stringValue } from './der.js'
import { X509Error } from './errors.js'

/** One GeneralName in the forms we compare. */
export type GeneralName =
  | { readonly kind: 'dns'; readonly value: string }
  | { readonly kind: 'ip'; readonly bytes: Uint8Array }
  | { readonly kind: 'email'; readonly value: string }
  | { readonly kind: 'dn'; readonly normalized: string }
  | { readonly kind: 'other'; readonly tag: number }

/** Parsed NameConstraints: permitted (undefined = absent) and excluded subtrees. */
export interface NameConstraints {
  readonly permitted?: readonly GeneralName[]
  readonly excluded?: readonly GeneralName[]
}

function bad(what: string): X509Error {
  return new X509Error('X509_BAD_EXTENSION', what)
}

function single(value: Uint8Array, what: string): DerElement {
  const e = readSingle(value, what, 'X509_BAD_EXTENSION')
  try {
    checkStructure(e)
  } catch (err) {
    throw bad(`${what} is not a single DER value (${(err as Error).message})`)
  }
  return e
}

/** Decodes one context-tagged GeneralName (RFC 5280 §4.2.1.6). */
function generalName(item: DerElement, inConstraint: boolean): GeneralName {
  if (item.tagClass !== CONTEXT) throw bad('a GeneralName is not context-tagged')
  const tag = item.tag
  const raw = item.constructed ? undefined : content(item)
  const text = () => {
    if (raw === undefined) throw bad(`GeneralName [${tag}] is not a primitive string`)
    let s = ''
    for (const b of raw) {
      if (b < 0x20 || b > 0x7e) throw bad(`GeneralName [${tag}] is not printable IA5String text`)
      s += String.fromCharCode(b)
    }
    return s
  }
  switch (tag) {
    case 1:
      return { kind: 'email', value: text().toLowerCase() }
    case 2: {
      const value = text().toLowerCase()
      if (!validDns(value, inConstraint)) throw bad(`dNSName '${value}' is not a valid DNS name${inConstraint ? ' constraint' : ''} (RFC 5280 §4.2.1.6)`)
      return { kind: 'dns', value }
    }
    case 7: {
      if (raw === undefined) throw bad('iPAddress is not an OCTET STRING')
      const ok = inConstraint ? (raw.length === 8 || raw.length === 32) && contiguousMask(raw.subarray(raw.length / 2)) : raw.length === 4 || raw.length === 16
      if (!ok) throw bad(inConstraint ? `iPAddress constraint of ${raw.length} bytes is not an address and a contiguous mask (RFC 5280 §4.2.1.10)` : `iPAddress of ${raw.length} bytes is neither IPv4 nor IPv6`)
      return { kind: 'ip', bytes: raw.slice() }
    }
    case 4: {
      const inner = item.constructed ? children(item, 'directoryName')[0] : undefined
      if (!isUniversal(inner, TAG.sequence)) throw bad('directoryName is not a Name')
      return { kind: 'dn', normalized: normalizedAttributes(inner) }
    }
    default:
      return { kind: 'other', tag }
  }
}

/** The comparison form of a Name (RFC 5280 §7.1, simplified as for certificate names); non-string values compare as '#'. */
function normalizedAttributes(name: DerElement): string {
  const out: string[] = []
  for (const rdn of children(name, 'directoryName')) {
    if (!isUniversal(rdn, TAG.set)) throw bad('directoryName has a RelativeDistinguishedName that is not a SET')
    for (const atv of children(rdn, 'directoryName')) {
      const tv = isUniversal(atv, TAG.sequence) ? children(atv, 'directoryName') : []
      if (tv.length !== 2) throw bad('directoryName has an attribute without exactly a type and a value')
      const v = stringValue(tv[1]!)
      out.push(`${oidText(tv[0]!, 'directoryName attribute type', 'X509_BAD_EXTENSION')}=${v === undefined ? '#' : v.trim().replace(/\s+/g, ' ').toLowerCase()}`)
    }
  }
  return out.join('\u0000')
}

function validDns(value: string, constraint: boolean): boolean {
  if (value.length === 0) return constraint // an empty constraint matches every name
  // A constraint may start with '.' (subdomains only); a certificate name may have a wildcard
  // leftmost label (RFC 6125 §6.4.3), which name constraints treat as a name under the rest.
  const body = constraint && value.startsWith('.') ? value.slice(1) : !constraint && value.startsWith('*.') ? value.slice(2) : value
  return body.split('.').every((label) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label))
}

function contiguousMask(mask: Uint8Array): boolean {
  let zero = false
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = ((byte >> bit) & 1) === 1
      if (set && zero) return false
      if (!set) zero = true
    }
  }
  return true
}

// Certificates are immutable values: their decoded names are kept beside them.
const sanCache = new WeakMap<Certificate, GeneralName[] | X509Error>()
const ncCache = new WeakMap<Certificate, NameConstraints | X509Error | null>()

/** The subjectAltName entries of a certificate (empty when absent); malformed → X509Error. */
export function subjectAltNames(cert: Certificate): GeneralName[] {
  let hit = sanCache.get(cert)
  if (hit === undefined) {
    try {
      hit = readSubjectAltNames(cert)
    } catch (e) {
      if (!(e instanceof X509Error)) throw e
      hit = e
    }
    sanCache.set(cert, hit)
  }
  if (hit instanceof X509Error) throw hit
  return hit
}

function readSubjectAltNames(cert: Certificate): GeneralName[] {
  const ext = cert.extensions.find((e) => e.oid === '2.5.29.17')
  if (!ext) return []
  const seq = single(ext.value, 'subjectAltName')
  const items = isUniversal(seq, TAG.sequence) ? children(seq, 'subjectAltName') : []
  if (items.length === 0) throw bad(`${describeCertificate(cert)}: subjectAltName is not a non-empty SEQUENCE OF GeneralName (RFC 5280 §4.2.1.6)`)
  return items.map((item) => generalName(item, false))
}

/** The nameConstraints of a certificate, or undefined when absent; malformed → X509Error. */
export function nameConstraintsOf(cert: Certificate): NameConstraints | undefined {
  let hit = ncCache.get(cert)
  if (hit === undefined) {
    try {
      hit = readNameConstraints(cert) ?? null
    } catch (e) {
      if (!(e instanceof X509Error)) throw e
      hit = e
    }
    ncCache.set(cert, hit)
  }
  if (hit instanceof X509Error) throw hit
  return hit ?? undefined
}

function readNameConstraints(cert: Certificate): NameConstraints | undefined {
  const ext = cert.extensions.find((e) => e.oid === '2.5.29.30')
  if (!ext) return undefined
  const seq = single(ext.value, 'nameConstraints')
  if (!isUniversal(seq, TAG.sequence)) throw bad('nameConstraints is not a SEQUENCE')
  let permitted: GeneralName[] | undefined
  let excluded: GeneralName[] | undefined
  for (const item of children(seq, 'nameConstraints')) {
    if (item.tagClass !== CONTEXT || (item.tag !== 0 && item.tag !== 1)) throw bad('nameConstraints member is neither permittedSubtrees [0] nor excludedSubtrees [1]')
    const subtrees = item.constructed ? children(item, 'nameConstraints subtrees') : []
    const bases = subtrees.map((st) => {
      const parts = isUniversal(st, TAG.sequence) ? children(st, 'GeneralSubtree') : []
      if (parts.length === 0) throw bad('GeneralSubtree is not a SEQUENCE')
      return generalName(parts[0]!, true)
    })
    // "Conforming CAs MUST NOT issue certificates where name constraints is an empty sequence" (§4.2.1.10)
    if (bases.length === 0) throw bad(`${describeCertificate(cert)}: nameConstraints has an empty ${item.tag === 0 ? 'permitted' : 'excluded'}Subtrees`)
    if (item.tag === 0) permitted = bases
    else excluded = bases
  }
  if (permitted === undefined && excluded === undefined) throw bad(`${describeCertificate(cert)}: nameConstraints has neither permitted nor excluded subtrees (RFC 5280 §4.2.1.10)`)
  return { ...(permitted ? { permitted } : {}), ...(excluded ? { excluded } : {}) }
}

/** Does `name` fall within the subtree `base` (same form only)? undefined = different forms. */
function within(name: GeneralName, base: GeneralName): boolean | undefined {
  if (name.kind !== base.kind) return undefined
  switch (base.kind) {
    case 'dns': {
      const n = (name as { value: string }).value
      if (base.value === '') return true
      if (base.value.startsWith('.')) return n.endsWith(base.value)
      return n === base.value || n.endsWith('.' + base.value)
    }
    case 'email': {
      const n = (name as { value: string }).value
      if (base.value.includes('@')) return n === base.value
      const host = n.slice(n.lastIndexOf('@') + 1)
      return base.value.startsWith('.') ? host.endsWith(base.value) : host === base.value
    }
    case 'ip': {
      const ip = (name as { bytes: Uint8Array }).bytes
      const half = base.bytes.length / 2
      if (ip.length !== half) return false
      for (let i = 0; i < half; i++) if ((ip[i]! & base.bytes[half + i]!) !== (base.bytes[i]! & base.bytes[half + i]!)) return false
      return true
    }
    case 'dn': {
      const n = (name as { normalized: string }).normalized
      // RFC 5280 §4.2.1.10: the constraint's RDNs must be a prefix of the name's
      return base.normalized === '' || n === base.normalized || n.startsWith(base.normalized + '\u0000')
    }
    case 'other':
      return undefined // forms we do not compare; callers fail closed
  }
}

/**
 * Checks the names of `cert` (subject DN if non-empty, and its subjectAltNames) against the
 * constraints of the CA certificate `ca`. Returns undefined when allowed, else the reason.
 */
export function checkNameConstraints(cert: Certificate, position: number, sans: readonly GeneralName[], ca: Certificate, caPosition: number, nc: NameConstraints): X509Error | undefined {
  const names: GeneralName[] = [...sans]
  if (!cert.subject.empty) names.push({ kind: 'dn', normalized: subjectNormalized(cert.subject) })
  for (const name of names) {
    for (const base of nc.excluded ?? []) {
      if (base.kind === 'other' && name.kind === 'other' && name.tag === base.tag) return refusal(cert, position, ca, caPosition, `has a name of form [${base.tag}] that an excluded subtree of an unsupported form may cover`)
      if (within(name, base) === true) return refusal(cert, position, ca, caPosition, `has ${describe(name)} inside an excluded subtree`)
    }
    const sameForm = (nc.permitted ?? []).filter((b) => b.kind === name.kind)
    if (sameForm.length === 0) continue
    if (name.kind === 'other') return refusal(cert, position, ca, caPosition, `has a name of form [${name.tag}] that permitted subtrees of an unsupported form may not cover`)
    if (!sameForm.some((b) => within(name, b) === true)) return refusal(cert, position, ca, caPosition, `has ${describe(name)} outside every permitted ${name.kind} subtree`)
  }
  return undefined
}

function subjectNormalized(name: Name): string {
  return name.normalized
}

function describe(name: GeneralName): string {
  switch (name.kind) {
    case 'dns':
      return `dNSName '${name.value}'`
    case 'email':
      return `rfc822Name '${name.value}'`
    case 'ip':
      return `iPAddress ${name.bytes.length === 4 ? [...name.bytes].join('.') : [...name.bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`
    case 'dn':
      return `directoryName '${name.normalized.split('\u0000').join(', ')}'`
    case 'other':
      return `GeneralName [${name.tag}]`
  }
}

function refusal(cert: Certificate, position: number, ca: Certificate, caPosition: number, what: string): X509Error {
  return new X509Error('X509_NAME_CONSTRAINTS', `${describeCertificate(cert, position)} ${what} of the name constraints of ${describeCertificate(ca, caPosition)} (RFC 5280 §4.2.1.10)`)
}

