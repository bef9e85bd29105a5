/**
 * The DPS activation blob built in software (docs/protocol.md §5.4, §5.6): credential protection
 * to the EK bound to the SRK's Name (TPM 2.0 Part 1 §24 "Credential Protection", MakeCredential)
 * and duplication of a fresh HMAC identity key under the SRK with an inner wrapper (Part 1 §23.3
 * "Duplication", Part 1 §22 "Protected Storage"), followed by the trailing TPM2B_DATA.
 *
 * The same wrapping primitives serve the software TPM (unwrapping, and its own private blobs),
 * so both directions are exercised by the same tests.
 */
import { aesCfbDecrypt, aesCfbEncrypt, hmacSha256, kdfa, rsaOaepEncrypt, rsaPublicKey, sha256, timingSafeEqual } from '@provisio/crypto'
import { TpmError } from './errors.js'
import { TpmReader, TpmWriter, concat, sized } from './marshal.js'
import {
  TPMA_OBJECT,
  TPM_ALG,
  TPM_LIMITS,
  exponentBytes,
  marshalTpmtPublic,
  marshalTpmtSensitive,
  objectName,
  readTpm2bPublic,
  rsaExponent,
} from './structures.js'
import type { KeyedHashPublic, RsaPublic, TpmtPublic, TpmtSensitive } from './structures.js'

/** Source of random bytes (the caller's port; this package has no ambient randomness). */
export type RandomBytes = (n: number) => Uint8Array

/** OAEP labels of Part 1 §B.10.3 (the terminating NUL is part of the label). */
const LABEL_IDENTITY = 'IDENTITY\u0000'
const LABEL_DUPLICATE = 'DUPLICATE\u0000'

/** SHA-256 digest size: seeds and HMAC keys of SHA-256 parents (Part 1 §24.4, §23.3.2.3). */
const DIGEST = 32

const ZERO_IV = new Uint8Array(16)

/** PolicyCommandCode(TPM_CC_Duplicate) digest: the ID key's authPolicy (§5.6). */
export const DUPLICATE_POLICY_SHA256 = sha256(concat(new Uint8Array(32), new Uint8Array([0, 0, 0x01, 0x6c, 0, 0, 0x01, 0x4b])))

function rsaKey(p: RsaPublic) {
  return rsaPublicKey({ n: p.unique, e: exponentBytes(rsaExponent(p)) })
}

function symKeyBits(p: RsaPublic, role: string): number {
  const sym = p.parameters.symmetric
  if (sym === null || sym.algorithm !== TPM_ALG.AES || sym.mode !== TPM_ALG.CFB) {
    throw new TpmError('TPM_UNSUPPORTED', `${role} has no AES-CFB symmetric definition to protect with`)
  }
  return sym.keyBits
}

/**
 * Outer protection with a seed (Part 1 §22.4 and §24.4 share it): symKey = KDFa(seed,
 * "STORAGE", name), encrypted = AES-CFB(symKey, IV 0, plaintext), hmacKey = KDFa(seed,
 * "INTEGRITY"), result = TPM2B_DIGEST(HMAC(hmacKey, encrypted ‖ name)) ‖ encrypted.
 */
export function protectWithSeed(seed: Uint8Array, name: Uint8Array, keyBits: number, plaintext: Uint8Array): Uint8Array {
  const symKey = kdfa('SHA-256', seed, 'STORAGE', name, new Uint8Array(0), keyBits)
  const encrypted = aesCfbEncrypt(symKey, ZERO_IV, plaintext)
  const hmacKey = kdfa('SHA-256', seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), DIGEST * 8)
  const integrity = hmacSha256(hmacKey, concat(encrypted, name))
  return concat(sized(integrity), encrypted)
}

/**
 * Inverse of protectWithSeed: checks the outer HMAC first (Part 1 §24.5: no decryption before
 * integrity), then decrypts. Throws TPM_INTEGRITY when the HMAC does not match.
 */
export function unprotectWithSeed(seed: Uint8Array, name: Uint8Array, keyBits: number, blob: Uint8Array, what: string): Uint8Array {
  const r = new TpmReader(blob, what)
  const integrity = r.tpm2b('integrityHMAC', TPM_LIMITS.digest)
  const encrypted = r.raw(r.remaining, 'encrypted part')
  const hmacKey = kdfa('SHA-256', seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), DIGEST * 8)
  const expected = hmacSha256(hmacKey, concat(encrypted, name))
  if (integrity.length !== expected.length || !timingSafeEqual(integrity, expected)) {
    throw new TpmError('TPM_INTEGRITY', `${what}: integrity HMAC does not match (wrong seed, or the blob is bound to another object's Name)`)
  }
  const symKey = kdfa('SHA-256', seed, 'STORAGE', name, new Uint8Array(0), keyBits)
  return aesCfbDecrypt(symKey, ZERO_IV, encrypted)
}

/** Output of makeCredential: the two MakeCredential results (Part 3 §12.6). */
export interface Credential {
  /** TPMS_ID_OBJECT contents (the TPM2B_ID_OBJECT without its size). */
  readonly credentialBlob: Uint8Array
  /** The RSA-OAEP encrypted seed (TPM2B_ENCRYPTED_SECRET without its size). */
  readonly secret: Uint8Array
}

/**
 * MakeCredential in software (Part 1 §24; §5.6): protects `credential` so that only the TPM
 * holding `ek` can recover it, and only for an object whose Name is `objectName`.
 */
export function makeCredential(ek: RsaPublic, objectName: Uint8Array, credential: Uint8Array, random: RandomBytes): Credential {
  if (credential.length > TPM_LIMITS.digest) throw new TpmError('TPM_TOO_LARGE', `credential is ${credential.length} bytes, a TPM2B_DIGEST holds at most ${TPM_LIMITS.digest}`)
  const seed = random(DIGEST)
  const secret = rsaOaepEncrypt(rsaKey(ek), 'SHA-256', seed, LABEL_IDENTITY, { random })
  const credentialBlob = protectWithSeed(seed, objectName, symKeyBits(ek, 'the endorsement key'), sized(credential))
  return { credentialBlob, secret }
}

/** A freshly generated HMAC identity key: public and sensitive areas (§5.6). */
export interface IdentityKey {
  readonly public: KeyedHashPublic
  readonly sensitive: TpmtSensitive
}

/**
 * The DPS identity key for `key` (§5.6): KEYEDHASH, HMAC-SHA256 scheme, sign|userWithAuth|noDA,
 * authPolicy PolicyCommandCode(Duplicate), unique = SHA-256(seedValue ‖ key) (Part 1 §27.2.6,
 * the binding a TPM checks on Import).
 */
export function identityKey(key: Uint8Array, random: RandomBytes): IdentityKey {
  if (key.length === 0 || key.length > TPM_LIMITS.sensitiveData) {
    throw new TpmError('TPM_INVALID', `identity key must be 1..${TPM_LIMITS.sensitiveData} bytes, got ${key.length}`)
  }
  const seedValue = random(DIGEST)
  return {
    public: {
      type: 'keyedHash',
      nameAlg: TPM_ALG.SHA256,
      objectAttributes: TPMA_OBJECT.sign | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA,
      authPolicy: DUPLICATE_POLICY_SHA256,
      parameters: { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 },
      unique: sha256(concat(seedValue, key)),
    },
    sensitive: { type: 'keyedHash', authValue: new Uint8Array(0), seedValue, sensitive: key },
  }
}

/** Output of duplicate: TPM2B_PRIVATE contents and the encrypted seed. */
export interface Duplicate {
  /** TPM2B_PRIVATE contents: TPM2B_DIGEST(outerHMAC) ‖ dupSensitive. */
  readonly duplicate: Uint8Array
  /** TPM2B_ENCRYPTED_SECRET contents: OAEP(parent, seed, "DUPLICATE\0"). */
  readonly inSymSeed: Uint8Array
}

/**
 * Duplication of an object to a new parent in software (Part 1 §23.3.2; §5.6): inner wrapper
 * with `innerKey` (AES-CFB, IV 0, integrity SHA-256(TPM2B_SENSITIVE ‖ Name)), outer wrapper with a
 * seed RSA-OAEP encrypted to `parent`.
 */
export function duplicate(parent: RsaPublic, object: TpmtPublic, sensitive: TpmtSensitive, innerKey: Uint8Array, random: RandomBytes): Duplicate {
  const name = objectName(object)
  const sens2b = sized(marshalTpmtSensitive(sensitive))
  const innerIntegrity = sha256(concat(sens2b, name))
  const encSensitive = aesCfbEncrypt(innerKey, ZERO_IV, concat(sized(innerIntegrity), sens2b))
  const seed = random(DIGEST)
  const inSymSeed = rsaOaepEncrypt(rsaKey(parent), 'SHA-256', seed, LABEL_DUPLICATE, { random })
  return { duplicate: protectWithSeed(seed, name, symKeyBits(parent, 'the storage root key'), encSensitive), inSymSeed }
}

/** The parts of an activation blob (§5.4), each without its TPM2B size. */
export interface ActivationBlobParts {
  readonly credentialBlob: Uint8Array
  readonly secret: Uint8Array
  readonly duplicate: Uint8Array
  readonly inSymSeed: Uint8Array
  readonly idKeyPublic: TpmtPublic
  readonly encryptedUriData: Uint8Array
}

/** Marshals the six parts in the order of §5.4. */
export function marshalActivationBlob(parts: ActivationBlobParts): Uint8Array {
  return new TpmWriter()
    .tpm2b(parts.credentialBlob)
    .tpm2b(parts.secret)
    .tpm2b(parts.duplicate)
    .tpm2b(parts.inSymSeed)
    .tpm2b(marshalTpmtPublic(parts.idKeyPublic))
    .tpm2b(parts.encryptedUriData)
    .bytes()
}

/** Whole-blob limit: the sum of the part limits. */
export const ACTIVATION_BLOB_MAX_BYTES =
  2 + TPM_LIMITS.idObject + 2 * (2 + TPM_LIMITS.encryptedSecret) + 2 + TPM_LIMITS.private + 2 + TPM_LIMITS.public + 2 + TPM_LIMITS.data

/** Parses an activation blob (§5.4). The trailing TPM2B_DATA must be present (Node needs it). */
export function parseActivationBlob(bytes: Uint8Array): ActivationBlobParts {
  if (bytes.length > ACTIVATION_BLOB_MAX_BYTES) {
    throw new TpmError('TPM_TOO_LARGE', `activation blob is ${bytes.length} bytes, the limit is ${ACTIVATION_BLOB_MAX_BYTES}`)
  }
  const r = new TpmReader(bytes, 'activation blob')
  const credentialBlob = r.tpm2b('TPM2B_ID_OBJECT', TPM_LIMITS.idObject)
  const secret = r.tpm2b('TPM2B_ENCRYPTED_SECRET (credential)', TPM_LIMITS.encryptedSecret)
  const duplicate = r.tpm2b('TPM2B_PRIVATE', TPM_LIMITS.private)
  const inSymSeed = r.tpm2b('TPM2B_ENCRYPTED_SECRET (duplication seed)', TPM_LIMITS.encryptedSecret)
  const idKeyPublic = readTpm2bPublic(r, 'TPM2B_PUBLIC (identity key)')
  const encryptedUriData = r.tpm2b('TPM2B_DATA', TPM_LIMITS.data)
  r.end()
  return { credentialBlob, secret, duplicate, inSymSeed, idKeyPublic, encryptedUriData }
}

/** Arguments of buildActivationBlob. */
export interface ActivationBlobInput {
  /** The device's EK (template-checked). */
  readonly endorsementKey: RsaPublic
  /** The device's SRK: the parent the identity key is duplicated to. */
  readonly storageRootKey: RsaPublic
  /** The HMAC key the device will hold (DPS uses 32 bytes). */
  readonly key: Uint8Array
  readonly random: RandomBytes
  /** Plaintext of the trailing "URI data" (§5.4); empty by default. */
  readonly uriData?: Uint8Array
  /** Inner wrapper key size in bytes: 16 (AES-128, what DPS devices expect) or 32. */
  readonly innerKeyBytes?: 16 | 32
}

/**
 * Builds the activation blob of §5.4/§5.6: the device recovers `innerKey` with ActivateCredential
 * (EK, bound to the SRK's Name), imports the identity key under the SRK with it, and signs with
 * HMAC-SHA256(key, ·).
 */
export function buildActivationBlob(input: ActivationBlobInput): Uint8Array {
  const innerKey = input.random(input.innerKeyBytes ?? 16)
  const id = identityKey(input.key, input.random)
  const dup = duplicate(input.storageRootKey, id.public, id.sensitive, innerKey, input.random)
  const cred = makeCredential(input.endorsementKey, objectName(input.storageRootKey), innerKey, input.random)
  const uri = input.uriData ?? new Uint8Array(0)
  return marshalActivationBlob({
    credentialBlob: cred.credentialBlob,
    secret: cred.secret,
    duplicate: dup.duplicate,
    inSymSeed: dup.inSymSeed,
    idKeyPublic: id.public,
    encryptedUriData: uri.length === 0 ? uri : aesCfbEncrypt(innerKey, ZERO_IV, uri),
  })
}
