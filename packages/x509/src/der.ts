/**
 * A lean, strict DER reader (ITU-T X.690 §8, §10) for the fields certificate validation needs.
 * It reads tag-length-value elements in place (no copies, no object trees), refuses what DER
 * forbids (indefinite and non-minimal lengths, high-tag-number forms below 31, lengths past the
 * enclosing element) and bounds nesting depth and element counts, so hostile input costs at most
 * a linear scan. Every refusal is an X509Error with a reason.
 */
import { X509Error } from './errors.js'

/** Deepest nesting the reader follows (a certificate needs about 8). */
export const MAX_DER_DEPTH = 32
/** Most elements read inside one constructed element. */
export const MAX_DER_CHILDREN = 4096

/** Tag classes (X.690 §8.1.2.2). */
export const UNIVERSAL = 0
export const APPLICATION = 1
export const CONTEXT = 2
export const PRIVATE = 3

/** Universal tag numbers used by certificates. */
export const TAG = {
  boolean: 1,
  integer: 2,
  bitString: 3,
  octetString: 4,
  null: 5,
  oid: 6,
  utf8String: 12,
  sequence: 16,
  set: 17,
  printableString: 19,
  utcTime: 23,
  generalizedTime: 24,
  universalString: 28,
  bmpString: 30,
} as const

/** One DER element: where its header and contents sit in `bytes`. */
export interface DerElement {
  readonly bytes: Uint8Array
  readonly tagClass: number
  readonly constructed: boolean
  readonly tag: number
  /** Offset of the identifier octet. */
  readonly start: number
  /** Offset of the first content octet. */
  readonly contentStart: number
  /** Offset just past the contents. */
  readonly end: number
}

function derError(reason: string, code: 'X509_MALFORMED' | 'X509_BAD_EXTENSION' = 'X509_MALFORMED'): X509Error {
  return new X509Error(code, reason)
}

/**
 * Reads one element starting at `at` that must end at or before `limit`.
 * @throws X509Error when the header is not DER or the length runs past `limit`
 */
export function readElement(bytes: Uint8Array, at: number, limit: number): DerElement {
  if (at >= limit) throw derError('DER ends where an element was expected')
  const id = bytes[at]!
  const tagClass = id >> 6
  const constructed = (id & 0x20) !== 0
  let tag = id & 0x1f
  let p = at + 1
  if (tag === 0x1f) {
    // High tag number form (X.690 §8.1.2.4): base-128, minimal, at least 31.
    tag = 0
    for (let n = 0; ; n++) {
      if (p >= limit) throw derError('DER tag runs past the end')
      const b = bytes[p++]!
      if (n === 0 && b === 0x80) throw derError('DER tag number has a leading zero octet')
      if (n >= 3) throw derError('DER tag number is too large')
      tag = tag * 128 + (b & 0x7f)
      if ((b & 0x80) === 0) break
    }
    if (tag < 31) throw derError('DER tag number below 31 uses the long form')
  }
  if (p >= limit) throw derError('DER length runs past the end')
  const first = bytes[p++]!
  let length: number
  if (first < 0x80) length = first
  else {
    const count = first & 0x7f
    if (count === 0) throw derError('indefinite length is not DER (X.690 §10.1)')
    if (count > 4) throw derError(`DER length of ${count} octets is too large`)
    if (p + count > limit) throw derError('DER length runs past the end')
    if (bytes[p] === 0) throw derError('DER length is not minimal (leading zero octet)')
    length = 0
    for (let i = 0; i < count; i++) length = length * 256 + bytes[p++]!
    if (length < 0x80) throw derError('DER length is not minimal (long form for a short length)')
  }
  const end = p + length
  if (end > limit) throw derError(`DER element of ${length} bytes runs past the end of its container`)
  return { bytes, tagClass, constructed, tag, start: at, contentStart: p, end }
}

/** Reads a whole buffer as exactly one element. */
export function readSingle(bytes: Uint8Array, what: string, code: 'X509_MALFORMED' | 'X509_BAD_EXTENSION' = 'X509_MALFORMED'): DerElement {
  let e: DerElement
  try {
    e = readElement(bytes, 0, bytes.length)
  } catch (err) {
    throw derError(`${what} is not a single DER value (${(err as Error).message})`, code)
  }
  if (e.end !== bytes.length) throw derError(`${what} is not a single DER value (trailing bytes)`, code)
  return e
}

/** The elements inside a constructed element, checked recursively to `depth` levels for well-formed headers. */
export function children(e: DerElement, what: string): DerElement[] {
  if (!e.constructed) throw derError(`${what} is primitive where a constructed value was expected`)
  const out: DerElement[] = []
  let at = e.contentStart
  while (at < e.end) {
    if (out.length >= MAX_DER_CHILDREN) throw derError(`${what} holds more than ${MAX_DER_CHILDREN} elements`)
    const c = readElement(e.bytes, at, e.end)
    out.push(c)
    at = c.end
  }
  return out
}

/**
 * Walks every element under `e` (headers only), refusing nesting deeper than {@link MAX_DER_DEPTH}.
 * Used once per certificate so that any later reads stay within well-formed bounds.
 */
export function checkStructure(e: DerElement, depth = 0): void {
  if (depth > MAX_DER_DEPTH) throw derError(`DER nesting deeper than ${MAX_DER_DEPTH} levels`)
  if (!e.constructed) return
  let at = e.contentStart
  let n = 0
  while (at < e.end) {
    if (++n > MAX_DER_CHILDREN) throw derError(`a DER element holds more than ${MAX_DER_CHILDREN} elements`)
    const c = readElement(e.bytes, at, e.end)
    checkStructure(c, depth + 1)
    at = c.end
  }
}

/** Is `e` the universal primitive/constructed element with tag `tag`? */
export function isUniversal(e: DerElement | undefined, tag: number): e is DerElement {
  return e !== undefined && e.tagClass === UNIVERSAL && e.tag === tag && e.constructed === (tag === TAG.sequence || tag === TAG.set)
}

/** Is `e` a context-specific [n] element? */
export function isContext(e: DerElement | undefined, n: number): e is DerElement {
  return e !== undefined && e.tagClass === CONTEXT && e.tag === n
}

/** The content octets (a view, not a copy). */
export function content(e: DerElement): Uint8Array {
  return e.bytes.subarray(e.contentStart, e.end)
}

/** The whole encoding, header included (a view, not a copy). */
export function encoding(e: DerElement): Uint8Array {
  return e.bytes.subarray(e.start, e.end)
}

/** Dotted text of an OBJECT IDENTIFIER (X.690 §8.19). */
export function oidText(e: DerElement, what: string, code: 'X509_MALFORMED' | 'X509_BAD_EXTENSION' = 'X509_MALFORMED'): string {
  if (!isUniversal(e, TAG.oid)) throw derError(`${what} is not an OBJECT IDENTIFIER`, code)
  const b = e.bytes
  if (e.end === e.contentStart) throw derError(`${what} is an empty OBJECT IDENTIFIER`, code)
  if (e.end - e.contentStart > 128) throw derError(`${what} is an OBJECT IDENTIFIER over 128 bytes`, code)
  const arcs: string[] = []
  let value = 0
  let big: bigint | undefined
  let startOfArc = true
  for (let i = e.contentStart; i < e.end; i++) {
    const byte = b[i]!
    if (startOfArc && byte === 0x80) throw derError(`${what} has a non-minimal OBJECT IDENTIFIER arc`, code)
    startOfArc = false
    if (big !== undefined) big = big * 128n + BigInt(byte & 0x7f)
    else {
      value = value * 128 + (byte & 0x7f)
      if (value > 0x1f_ffff_ffff_ffff / 128) big = BigInt(value)
    }
    if ((byte & 0x80) === 0) {
      const arc = big ?? value
      if (arcs.length === 0) {
        if (arc < 40) arcs.push('0', String(arc))
        else if (arc < 80) arcs.push('1', String(Number(arc) - 40))
        else arcs.push('2', typeof arc === 'bigint' ? String(arc - 80n) : String(arc - 80))
      } else arcs.push(String(arc))
      value = 0
      big = undefined
      startOfArc = true
    }
  }
  if (!startOfArc) throw derError(`${what} ends inside an OBJECT IDENTIFIER arc`, code)
  return arcs.join('.')
}

/** A BOOLEAN (DER: one octet, 0x00 or 0xFF). */
export function booleanValue(e: DerElement, what: string, code: 'X509_MALFORMED' | 'X509_BAD_EXTENSION' = 'X509_MALFORMED'): boolean {
  if (!isUniversal(e, TAG.boolean) || e.end - e.contentStart !== 1) throw derError(`${what} is not a one-octet BOOLEAN`, code)
  const v = e.bytes[e.contentStart]!
  if (v !== 0 && v !== 0xff) throw derError(`${what} BOOLEAN is neither 0x00 nor 0xFF (X.690 §11.1)`, code)
  return v === 0xff
}

/** A small non-negative INTEGER as a number, or undefined when negative or past 2^53. */
export function smallInteger(e: DerElement): number | undefined {
  const n = e.end - e.contentStart
  if (n === 0 || n > 7) return undefined
  const b = e.bytes
  if (b[e.contentStart]! & 0x80) return undefined
  let v = 0
  for (let i = e.contentStart; i < e.end; i++) v = v * 256 + b[i]!
  return Number.isSafeInteger(v) ? v : undefined
}

/** Checks an INTEGER's encoding is minimal (X.690 §8.3.2). */
export function checkInteger(e: DerElement, what: string, code: 'X509_MALFORMED' | 'X509_BAD_EXTENSION' = 'X509_MALFORMED'): void {
  if (!isUniversal(e, TAG.integer)) throw derError(`${what} is not an INTEGER`, code)
  const n = e.end - e.contentStart
  if (n === 0) throw derError(`${what} is an empty INTEGER`, code)
  if (n > 1) {
    const a = e.bytes[e.contentStart]!
    const b = e.bytes[e.contentStart + 1]!
    if ((a === 0 && (b & 0x80) === 0) || (a === 0xff && (b & 0x80) !== 0)) throw derError(`${what} INTEGER is not minimally encoded`, code)
  }
}

/** A BIT STRING's bytes (after the unused-bits octet) and its count of unused bits. */
export function bitString(e: DerElement, what: string, code: 'X509_MALFORMED' | 'X509_BAD_EXTENSION' = 'X509_MALFORMED'): { bytes: Uint8Array; unused: number } {
  if (!isUniversal(e, TAG.bitString) || e.end === e.contentStart) throw derError(`${what} is not a BIT STRING`, code)
  const unused = e.bytes[e.contentStart]!
  if (unused > 7 || (unused > 0 && e.end - e.contentStart === 1)) throw derError(`${what} BIT STRING has an invalid unused-bits count`, code)
  return { bytes: e.bytes.subarray(e.contentStart + 1, e.end), unused }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Text of a directory string value (X.520) as people read it: UTF8String as UTF-8 (bytes as
 * Latin-1 when invalid), BMPString as UTF-16BE, UniversalString as UTF-32BE, the other string
 * types byte for byte; undefined for non-string values.
 */
export function stringValue(e: DerElement): string | undefined {
  if (e.tagClass !== UNIVERSAL || e.constructed) return undefined
  const bytes = content(e)
  switch (e.tag) {
    case TAG.utf8String:
      try {
        return utf8.decode(bytes)
      } catch {
        return latin1(bytes)
      }
    case TAG.bmpString: {
      let s = ''
      for (let i = 0; i + 1 < bytes.length; i += 2) s += String.fromCharCode((bytes[i]! << 8) | bytes[i + 1]!)
      return s
    }
    case TAG.universalString: {
      let s = ''
      for (let i = 0; i + 3 < bytes.length; i += 4) {
        const cp = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0
        s += cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? '\ufffd' : String.fromCodePoint(cp)
      }
      return s
    }
    case 18: // NumericString
    case 19: // PrintableString
    case 20: // TeletexString
    case 21: // VideotexString
    case 22: // IA5String
    case 25: // GraphicString
    case 26: // VisibleString
    case 27: // GeneralString
    case 29: // CharacterString
      return latin1(bytes)
    default:
      return undefined
  }
}

function latin1(bytes: Uint8Array): string {
  let s = ''
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!)
  return s
}

/** Milliseconds since the epoch of a UTCTime or GeneralizedTime in the forms RFC 5280 §4.1.2.5 allows. */
export function timeValue(e: DerElement, what: string): number {
  const s = latin1(content(e))
  let m: RegExpExecArray | null
  let year: number
  if (isUniversal(e, TAG.utcTime)) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
    if (m === null) throw derError(`${what} UTCTime '${s.slice(0, 32)}' is not YYMMDDHHMMSSZ (RFC 5280 §4.1.2.5.1)`)
    const yy = Number(m[1])
    year = yy >= 50 ? 1900 + yy : 2000 + yy
  } else if (isUniversal(e, TAG.generalizedTime)) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
    if (m === null) throw derError(`${what} GeneralizedTime '${s.slice(0, 32)}' is not YYYYMMDDHHMMSSZ (RFC 5280 §4.1.2.5.2)`)
    year = Number(m[1])
  } else throw derError(`${what} is neither UTCTime nor GeneralizedTime`)
  const month = Number(m[2])
  const day = Number(m[3])
  const hour = Number(m[4])
  const minute = Number(m[5])
  const second = Number(m[6])
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
    throw derError(`${what} '${s}' is not a valid date and time`)
  }
  return ((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute) * 60_000 + second * 1000
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
}

/** Days since 1970-01-01 of a proleptic Gregorian date (month 1-12), by 400-year eras. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yearOfEra = y - era * 400
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear
  return era * 146_097 + dayOfEra - 719_468
}

/** `YYYY-MM-DDTHH:MM:SSZ` of whole-second milliseconds since the epoch (the inverse of {@link daysFromCivil}). */
export function isoSeconds(ms: number): string {
  const days = Math.floor(ms / 86_400_000)
  let rest = (ms - days * 86_400_000) / 1000
  const z = days + 719_468
  const era = Math.floor(z / 146_097)
  const dayOfEra = z - era * 146_097
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365)
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100))
  const mp = Math.floor((5 * dayOfYear + 2) / 153)
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
  const hour = Math.floor(rest / 3600)
  rest -= hour * 3600
  const minute = Math.floor(rest / 60)
  const second = rest - minute * 60
  const two = (n: number) => String(n).padStart(2, '0')
  return `${String(year).padStart(4, '0')}-${two(month)}-${two(day)}T${two(hour)}:${two(minute)}:${two(second)}Z`
}
