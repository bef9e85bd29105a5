/**
 * TPM 2.0 structures used by DPS TPM attestation (TPM 2.0 Part 2 "Structures"; docs/protocol.md
 * §5.1, §5.4): TPMT_PUBLIC / TPM2B_PUBLIC for RSA and KEYEDHASH objects, TPMT_SENSITIVE, object
 * Names. Only SHA-256 name algorithms are accepted (every DPS key uses it, §5.1); other values
 * fail with TPM_UNSUPPORTED naming the field.
 */
import { sha256 } from '@provisio/crypto'
import { TpmError } from './errors.js'
import { TpmReader, TpmWriter, concat } from './marshal.js'

/** TPM_ALG_ID values (Part 2 §6.3) that DPS structures use. */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECC: 0x0023,
  CFB: 0x0043,
} as const

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const TPMA_OBJECT = {
  fixedTPM: 0x00000002,
  stClear: 0x00000004,
  fixedParent: 0x00000010,
  sensitiveDataOrigin: 0x00000020,
  userWithAuth: 0x00000040,
  adminWithPolicy: 0x00000080,
  noDA: 0x00000400,
  encryptedDuplication: 0x00000800,
  restricted: 0x00010000,
  decrypt: 0x00020000,
  sign: 0x00040000,
} as const

/** Size limits of the sized structures (Part 2 §10, §11, §12 with RSA up to 4096 bits). */
export const TPM_LIMITS = {
  /** TPM2B_DIGEST / TPM2B_AUTH / TPM2B_NONCE: the largest digest (SHA-512). */
  digest: 64,
  /** TPM2B_PUBLIC_KEY_RSA: a 4096-bit modulus. */
  rsaPublic: 512,
  /** TPM2B_PRIVATE_KEY_RSA: one prime of a 4096-bit key. */
  rsaPrivate: 256,
  /** TPM2B_SENSITIVE_DATA (MAX_SYM_DATA). */
  sensitiveData: 128,
  /** TPM2B_PUBLIC: a TPMT_PUBLIC with a 4096-bit modulus and a SHA-512 policy fits with room. */
  public: 1024,
  /** TPM2B_ENCRYPTED_SECRET: one RSA-4096 ciphertext. */
  encryptedSecret: 512,
  /** TPM2B_ID_OBJECT: TPM2B_DIGEST integrityHMAC ‖ TPM2B_DIGEST-sized encIdentity. */
  idObject: 2 * (2 + 64),
  /** TPM2B_PRIVATE: outer HMAC ‖ encrypted TPM2B_SENSITIVE of an RSA-4096 key. */
  private: 1024,
  /**
   * TPM2B_DATA. Part 2 bounds it by sizeof(TPMT_HA) = 66; the DPS blob's trailing "URI data" has
   * been seen carrying a URL (§5.4), so the blob parser allows this much.
   */
  data: 1024,
} as const

/** TPMT_SYM_DEF_OBJECT; `null` stands for TPM_ALG_NULL. */
export interface SymDef {
  readonly algorithm: number
  readonly keyBits: number
  readonly mode: number
}

/** TPMS_RSA_PARMS. */
export interface RsaParms {
  readonly symmetric: SymDef | null
  /** TPMT_RSA_SCHEME: scheme id and, when the scheme has one, its hash. */
  readonly scheme: { readonly scheme: number; readonly hashAlg?: number }
  readonly keyBits: number
  /** 0 means the default 65537 (Part 2 §12.2.3.5). */
  readonly exponent: number
}

/** TPMS_KEYEDHASH_PARMS (TPMT_KEYEDHASH_SCHEME). */
export interface KeyedHashParms {
  readonly scheme: number
  readonly hashAlg?: number
  readonly kdf?: number
}

interface PublicCommon {
  readonly nameAlg: number
  readonly objectAttributes: number
  readonly authPolicy: Uint8Array
}

/** An RSA TPMT_PUBLIC; `unique` is the modulus. */
export interface RsaPublic extends PublicCommon {
  readonly type: 'rsa'
  readonly parameters: RsaParms
  readonly unique: Uint8Array
}

/** A KEYEDHASH TPMT_PUBLIC; `unique` is H(seedValue ‖ key) (Part 1 §27.2.6). */
export interface KeyedHashPublic extends PublicCommon {
  readonly type: 'keyedHash'
  readonly parameters: KeyedHashParms
  readonly unique: Uint8Array
}

/** TPMT_PUBLIC of the kinds DPS uses. */
export type TpmtPublic = RsaPublic | KeyedHashPublic

function checkNameAlg(alg: number, what: string): void {
  if (alg !== TPM_ALG.SHA256) {
    throw new TpmError('TPM_UNSUPPORTED', `${what}: nameAlg 0x${alg.toString(16).padStart(4, '0')} is not supported (only SHA-256, 0x000b, as every DPS key uses, docs/protocol.md §5.1)`)
  }
}

function readSymDef(r: TpmReader, field: string): SymDef | null {
  const algorithm = r.u16(`${field}.algorithm`)
  if (algorithm === TPM_ALG.NULL) return null
  if (algorithm !== TPM_ALG.AES) {
    throw new TpmError('TPM_UNSUPPORTED', `${r.what}: ${field}.algorithm 0x${algorithm.toString(16)} is not supported (AES or NULL)`)
  }
  const keyBits = r.u16(`${field}.keyBits`)
  if (keyBits !== 128 && keyBits !== 192 && keyBits !== 256) {
    throw new TpmError('TPM_INVALID', `${r.what}: ${field}.keyBits ${keyBits} is not an AES key size (128, 192, 256)`)
  }
  const mode = r.u16(`${field}.mode`)
  return { algorithm, keyBits, mode }
}

function writeSymDef(w: TpmWriter, s: SymDef | null): void {
  if (s === null) {
    w.u16(TPM_ALG.NULL)
    return
  }
  w.u16(s.algorithm).u16(s.keyBits).u16(s.mode)
}

/** Schemes whose details are a single hash algorithm (TPMS_SCHEME_HASH, Part 2 §11.2). */
const RSA_HASH_SCHEMES = new Set<number>([TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.OAEP])

/** Reads a TPMT_PUBLIC from `r` (Part 2 §12.2.4). */
export function readTpmtPublic(r: TpmReader): TpmtPublic {
  const type = r.u16('type')
  const nameAlg = r.u16('nameAlg')
  checkNameAlg(nameAlg, r.what)
  const objectAttributes = r.u32('objectAttributes')
  const authPolicy = r.tpm2b('authPolicy', TPM_LIMITS.digest)
  if (type === TPM_ALG.RSA) {
    const symmetric = readSymDef(r, 'parameters.symmetric')
    const scheme = r.u16('parameters.scheme.scheme')
    let hashAlg: number | undefined
    if (RSA_HASH_SCHEMES.has(scheme)) hashAlg = r.u16('parameters.scheme.hashAlg')
    else if (scheme !== TPM_ALG.NULL && scheme !== TPM_ALG.RSAES) {
      throw new TpmError('TPM_UNSUPPORTED', `${r.what}: RSA scheme 0x${scheme.toString(16)} is not supported`)
    }
    const keyBits = r.u16('parameters.keyBits')
    if (keyBits !== 1024 && keyBits !== 2048 && keyBits !== 3072 && keyBits !== 4096) {
      throw new TpmError('TPM_UNSUPPORTED', `${r.what}: RSA keyBits ${keyBits} is not supported (1024, 2048, 3072, 4096)`)
    }
    const exponent = r.u32('parameters.exponent')
    const unique = r.tpm2b('unique', TPM_LIMITS.rsaPublic)
    if (unique.length !== 0 && unique.length !== keyBits / 8) {
      throw new TpmError('TPM_INVALID', `${r.what}: unique (RSA modulus) is ${unique.length} bytes, keyBits ${keyBits} needs ${keyBits / 8}`)
    }
    return {
      type: 'rsa',
      nameAlg,
      objectAttributes,
      authPolicy,
      parameters: { symmetric, scheme: hashAlg === undefined ? { scheme } : { scheme, hashAlg }, keyBits, exponent },
      unique,
    }
  }
  if (type === TPM_ALG.KEYEDHASH) {
    const scheme = r.u16('parameters.scheme.scheme')
    let parameters: KeyedHashParms
    if (scheme === TPM_ALG.HMAC) parameters = { scheme, hashAlg: r.u16('parameters.scheme.hashAlg') }
    else if (scheme === TPM_ALG.XOR) parameters = { scheme, hashAlg: r.u16('parameters.scheme.hashAlg'), kdf: r.u16('parameters.scheme.kdf') }
    else if (scheme === TPM_ALG.NULL) parameters = { scheme }
    else throw new TpmError('TPM_UNSUPPORTED', `${r.what}: KEYEDHASH scheme 0x${scheme.toString(16)} is not supported (HMAC, XOR, NULL)`)
    const unique = r.tpm2b('unique', TPM_LIMITS.digest)
    return { type: 'keyedHash', nameAlg, objectAttributes, authPolicy, parameters, unique }
  }
  throw new TpmError('TPM_UNSUPPORTED', `${r.what}: object type 0x${type.toString(16).padStart(4, '0')} is not supported (RSA 0x0001 or KEYEDHASH 0x0008)`)
}

/** Writes a TPMT_PUBLIC. */
export function writeTpmtPublic(w: TpmWriter, p: TpmtPublic): void {
  w.u16(p.type === 'rsa' ? TPM_ALG.RSA : TPM_ALG.KEYEDHASH).u16(p.nameAlg).u32(p.objectAttributes).tpm2b(p.authPolicy)
  if (p.type === 'rsa') {
    writeSymDef(w, p.parameters.symmetric)
    w.u16(p.parameters.scheme.scheme)
    if (p.parameters.scheme.hashAlg !== undefined) w.u16(p.parameters.scheme.hashAlg)
    w.u16(p.parameters.keyBits).u32(p.parameters.exponent)
  } else {
    w.u16(p.parameters.scheme)
    if (p.parameters.hashAlg !== undefined) w.u16(p.parameters.hashAlg)
    if (p.parameters.kdf !== undefined) w.u16(p.parameters.kdf)
  }
  w.tpm2b(p.unique)
}

/** Marshals a TPMT_PUBLIC (no size prefix). */
export function marshalTpmtPublic(p: TpmtPublic): Uint8Array {
  const w = new TpmWriter()
  writeTpmtPublic(w, p)
  return w.bytes()
}

/** Marshals a TPM2B_PUBLIC (UINT16 size ‖ TPMT_PUBLIC), the DPS wire form of EK and SRK (§1.2). */
export function marshalTpm2bPublic(p: TpmtPublic): Uint8Array {
  return new TpmWriter().tpm2b(marshalTpmtPublic(p)).bytes()
}

/** Parses a TPMT_PUBLIC that must fill `bytes` exactly. */
export function parseTpmtPublic(bytes: Uint8Array, what = 'TPMT_PUBLIC'): TpmtPublic {
  if (bytes.length > TPM_LIMITS.public) throw new TpmError('TPM_TOO_LARGE', `${what} is ${bytes.length} bytes, the limit is ${TPM_LIMITS.public}`)
  const r = new TpmReader(bytes, what)
  const p = readTpmtPublic(r)
  r.end()
  return p
}

/** Reads a TPM2B_PUBLIC whose size must match the TPMT_PUBLIC inside. */
export function readTpm2bPublic(r: TpmReader, field: string): TpmtPublic {
  const inner = r.tpm2b(field, TPM_LIMITS.public)
  if (inner.length === 0) throw new TpmError('TPM_INVALID', `${r.what}: ${field} is empty`)
  return parseTpmtPublic(inner, `${r.what}: ${field}`)
}

/** Parses a TPM2B_PUBLIC that must fill `bytes` exactly. */
export function parseTpm2bPublic(bytes: Uint8Array, what = 'TPM2B_PUBLIC'): TpmtPublic {
  if (bytes.length > TPM_LIMITS.public + 2) throw new TpmError('TPM_TOO_LARGE', `${what} is ${bytes.length} bytes, the limit is ${TPM_LIMITS.public + 2}`)
  const r = new TpmReader(bytes, what)
  const p = readTpm2bPublic(r, 'publicArea')
  r.end()
  return p
}

/** TPM_ALG_ID of a SHA-256 Name (the only name algorithm accepted here). */
const NAME_ALG_PREFIX = new Uint8Array([0x00, 0x0b])

/** Object Name (Part 1 §16): nameAlg ‖ H_nameAlg(marshalled TPMT_PUBLIC). */
export function objectName(p: TpmtPublic | Uint8Array): Uint8Array {
  const marshalled = p instanceof Uint8Array ? p : marshalTpmtPublic(p)
  return concat(NAME_ALG_PREFIX, sha256(marshalled))
}

/** TPMT_SENSITIVE (Part 2 §12.3.2.4) for KEYEDHASH (`sensitive` = the key) or RSA (a prime). */
export interface TpmtSensitive {
  readonly type: 'rsa' | 'keyedHash'
  readonly authValue: Uint8Array
  readonly seedValue: Uint8Array
  readonly sensitive: Uint8Array
}

/** Marshals a TPMT_SENSITIVE (no size prefix). */
export function marshalTpmtSensitive(s: TpmtSensitive): Uint8Array {
  return new TpmWriter()
    .u16(s.type === 'rsa' ? TPM_ALG.RSA : TPM_ALG.KEYEDHASH)
    .tpm2b(s.authValue)
    .tpm2b(s.seedValue)
    .tpm2b(s.sensitive)
    .bytes()
}

/** Parses a TPMT_SENSITIVE that must fill `bytes` exactly. */
export function parseTpmtSensitive(bytes: Uint8Array, what = 'TPMT_SENSITIVE'): TpmtSensitive {
  const r = new TpmReader(bytes, what)
  const t = r.u16('sensitiveType')
  if (t !== TPM_ALG.RSA && t !== TPM_ALG.KEYEDHASH) {
    throw new TpmError('TPM_UNSUPPORTED', `${what}: sensitiveType 0x${t.toString(16)} is not supported (RSA or KEYEDHASH)`)
  }
  const authValue = r.tpm2b('authValue', TPM_LIMITS.digest)
  const seedValue = r.tpm2b('seedValue', TPM_LIMITS.digest)
  const sensitive = r.tpm2b('sensitive', t === TPM_ALG.RSA ? TPM_LIMITS.rsaPrivate : TPM_LIMITS.sensitiveData)
  r.end()
  return { type: t === TPM_ALG.RSA ? 'rsa' : 'keyedHash', authValue, seedValue, sensitive }
}

/** The public exponent of an RSA key (0 in the template means 65537). */
export function rsaExponent(p: RsaPublic): number {
  return p.parameters.exponent === 0 ? 65537 : p.parameters.exponent
}

/** Big-endian bytes of a small number, no leading zeros. */
export function exponentBytes(e: number): Uint8Array {
  const out: number[] = []
  let v = e
  while (v > 0) {
    out.unshift(v & 0xff)
    v = Math.floor(v / 256)
  }
  return new Uint8Array(out)
}
