/**
 * A software TPM 2.0 with just what a DPS device needs (docs/protocol.md §5.5, §11): primary keys
 * (EK, SRK) from templates, deterministic from a seed; persistent handles; policy sessions with
 * PolicySecret; ActivateCredential; Import; Load; HMAC; GetRandom; GetCapability; ReadPublic.
 * Pure (no Node, no globals): the browser device emulator and the Microsoft-simulator TCP front
 * (server package) both drive it through `execute(command) → response`, the TPM 2.0 command
 * stream format of TPM 2.0 Part 1 §18 / Part 3 (parsed and routed by command-dispatch.ts).
 *
 * Scope and honesty notes:
 * - Authorization: password sessions must carry the (empty) authValue of our hierarchies and
 *   objects; the EK's admin role needs a policy session whose digest equals the EK authPolicy
 *   (PolicySecret(TPM_RH_ENDORSEMENT), computed here per Part 3 §23.4). HMAC sessions, salted or
 *   bound sessions and parameter encryption are not implemented (TPM_RC_MODE is returned).
 * - Primary keys are derived from a hierarchy seed and the template like a real TPM, but with our
 *   own prime-search procedure (not Part 1 §B.8's), so keys differ from another TPM's with the
 *   same seed.
 * - Private blobs made by Import are protected like a real TPM's (Part 1 §22.4: the parent's
 *   symmetric seed, STORAGE/INTEGRITY keys) and loadable only by this TPM with the same seed.
 *
 * This file holds the TPM's state and its typed operations (authorization included); the command
 * dispatch (bytes to operation and back) is command-dispatch.ts's, the numbers of the command
 * stream are in tpm-codes.ts, its framing (handles, authorization area, responses) in
 * command-frame.ts.
 */
import { aesCfbDecrypt, hmacSha256, sha256 } from '@provisio/crypto'
import { protectWithSeed, unprotectWithSeed } from './blob.js'
import { executeCommand } from './command-dispatch.js'
import type { AuthSession } from './command-frame.js'
import { TpmError } from './errors.js'
import { TpmReader, bytesEqual, concat, sized } from './marshal.js'
import { TPMA_OBJECT, TPM_ALG, TPM_LIMITS, marshalTpm2bPublic, marshalTpmtSensitive, objectName, parseTpmtSensitive, rsaExponent } from './structures.js'
import type { RsaPublic, TpmtPublic } from './structures.js'
import { SeededBytes, bigIntToBytes, generateRsaKey, rsaOaepDecrypt } from './rsa-private.js'
import type { RsaPrivateKey } from './rsa-private.js'
import { MAX_BUFFER, TPM_RC, TPM_RH, TpmCommandError } from './tpm-codes.js'

/** A loaded object: public area, private parts, and the storage seed children are protected with. */
interface TpmObject {
  readonly public: TpmtPublic
  readonly name: Uint8Array
  readonly rsa?: RsaPrivateKey
  /** KEYEDHASH key bytes. */
  readonly keyedHash?: Uint8Array
  /** Symmetric seed of a storage parent (Part 1 §22.4). */
  readonly storageSeed?: Uint8Array
  readonly hierarchy: number
  readonly authValue: Uint8Array
}

interface PolicySession {
  readonly handle: number
  digest: Uint8Array
  readonly nonceTpm: Uint8Array
}

/** Options of SoftwareTpm. */
export interface SoftwareTpmOptions {
  /** Seed of everything: hierarchy seeds and the TPM's random generator (≥ 16 bytes). */
  readonly seed: Uint8Array
}

/** Keys generated for (hierarchy seed, template): RSA generation is the slow part; reuse it. */
const primaryKeyCache = new Map<string, RsaPrivateKey>()

function hex(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += b.toString(16).padStart(2, '0')
  return s
}

/**
 * The software TPM. Use `execute` for the TPM command stream, or the typed methods
 * (`createPrimary`, `activateCredential`, `importObject`, `load`, `hmac`) directly.
 */
export class SoftwareTpm {
  readonly #endorsementSeed: Uint8Array
  readonly #ownerSeed: Uint8Array
  readonly #random: SeededBytes
  readonly #objects = new Map<number, TpmObject>()
  readonly #sessions = new Map<number, PolicySession>()
  #nextTransient = 0x80000000
  #nextSession = 0x03000000
  #started = false
  /** Log of command codes executed (diagnostics and tests). */
  readonly commandLog: number[] = []

  constructor(options: SoftwareTpmOptions) {
    if (!(options.seed instanceof Uint8Array) || options.seed.length < 16) {
      throw new TpmError('TPM_INVALID', 'SoftwareTpm seed must be a Uint8Array of at least 16 bytes')
    }
    this.#endorsementSeed = hmacSha256(options.seed, new TextEncoder().encode('endorsement primary seed'))
    this.#ownerSeed = hmacSha256(options.seed, new TextEncoder().encode('storage primary seed'))
    this.#random = new SeededBytes(options.seed, 'random')
  }

  /** Random bytes from the TPM's generator (deterministic from the seed). */
  random(n: number): Uint8Array {
    return this.#random.next(n)
  }

  /** Power cycle: transient objects and sessions are lost, persistent ones stay (Part 1 §36.3). */
  restart(): void {
    for (const h of [...this.#objects.keys()]) if (h >>> 24 === 0x80) this.#objects.delete(h)
    this.#sessions.clear()
    this.#started = false
  }

  // -- typed operations --------------------------------------------------------------------------

  /**
   * CreatePrimary (Part 3 §24.1) of an RSA storage key (EK or SRK templates): the key is derived
   * from the hierarchy seed and the marshalled template, so the same template gives the same key.
   * Returns the transient handle.
   */
  createPrimary(hierarchy: number, template: TpmtPublic): number {
    if (hierarchy !== TPM_RH.ENDORSEMENT && hierarchy !== TPM_RH.OWNER) {
      throw new TpmCommandError(TPM_RC.HANDLE | TPM_RC.N1, `CreatePrimary: hierarchy 0x${hierarchy.toString(16)} is not supported (endorsement or owner)`)
    }
    if (template.type !== 'rsa') throw new TpmCommandError(TPM_RC.TYPE | TPM_RC.P | TPM_RC.N2, 'CreatePrimary: only RSA templates are supported')
    const attrs = template.objectAttributes
    const storage = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt
    if ((attrs & storage) !== storage || (attrs & TPMA_OBJECT.sign) !== 0 || template.parameters.symmetric === null) {
      throw new TpmCommandError(TPM_RC.ATTRIBUTES | TPM_RC.P | TPM_RC.N2, 'CreatePrimary: only restricted decryption (storage) keys are supported')
    }
    const seed = hierarchy === TPM_RH.ENDORSEMENT ? this.#endorsementSeed : this.#ownerSeed
    const label = hex(sha256(marshalTpm2bPublic(template)))
    const cacheKey = hex(seed) + label + template.parameters.keyBits
    let rsa = primaryKeyCache.get(cacheKey)
    if (rsa === undefined) {
      rsa = generateRsaKey(seed, 'primary ' + label, template.parameters.keyBits, rsaExponent(template))
      primaryKeyCache.set(cacheKey, rsa)
    }
    const pub: RsaPublic = { ...template, unique: bigIntToBytes(rsa.n, rsa.k) }
    const storageSeed = hmacSha256(seed, new TextEncoder().encode('symmetric seed ' + label))
    const handle = this.#nextTransient++
    this.#objects.set(handle, { public: pub, name: objectName(pub), rsa, storageSeed, hierarchy, authValue: new Uint8Array(0) })
    return handle
  }

  /** Public area and Name of a loaded or persistent object. */
  readPublic(handle: number): { public: TpmtPublic; name: Uint8Array } {
    const o = this.#object(handle, 1)
    return { public: o.public, name: o.name }
  }

  /** EvictControl (Part 3 §28.5): persists a transient object, or removes a persistent one. */
  evictControl(auth: number, objectHandle: number, persistentHandle: number): void {
    if (auth !== TPM_RH.OWNER && auth !== TPM_RH.PLATFORM) throw new TpmCommandError(TPM_RC.HANDLE | TPM_RC.N1, 'EvictControl: auth must be owner or platform')
    if (persistentHandle >>> 24 !== 0x81) throw new TpmCommandError(TPM_RC.VALUE | TPM_RC.P | TPM_RC.N1, `EvictControl: 0x${persistentHandle.toString(16)} is not a persistent handle`)
    const o = this.#object(objectHandle, 2)
    if (objectHandle >>> 24 === 0x81) {
      if (objectHandle !== persistentHandle) throw new TpmCommandError(TPM_RC.HANDLE | TPM_RC.N2, 'EvictControl: persistentHandle must equal objectHandle when evicting')
      this.#objects.delete(objectHandle)
      return
    }
    if (this.#objects.has(persistentHandle)) throw new TpmCommandError(TPM_RC.NV_DEFINED, `EvictControl: 0x${persistentHandle.toString(16)} is already in use`)
    this.#objects.set(persistentHandle, o)
  }

  /** FlushContext (Part 3 §28.4): drops a transient object or a session. */
  flushContext(handle: number): void {
    if (handle >>> 24 === 0x80 && this.#objects.delete(handle)) return
    if (handle >>> 24 === 0x03 && this.#sessions.delete(handle)) return
    throw new TpmCommandError(TPM_RC.HANDLE | TPM_RC.P | TPM_RC.N1, `FlushContext: 0x${handle.toString(16)} is not a loaded transient object or session`)
  }

  /** Starts a policy session (SHA-256, unsalted, unbound; Part 3 §11.1). */
  startPolicySession(): { handle: number; nonceTpm: Uint8Array } {
    const handle = this.#nextSession++
    const nonceTpm = this.random(32)
    this.#sessions.set(handle, { handle, digest: new Uint8Array(32), nonceTpm })
    return { handle, nonceTpm }
  }

  /** The current digest of a policy session. */
  policyDigest(session: number): Uint8Array {
    return this.#session(session).digest.slice()
  }

  /**
   * PolicySecret (Part 3 §23.4): after authorizing `authHandle`, extends the session digest with
   * TPM_CC_PolicySecret ‖ authName, then with policyRef (PolicyUpdate, Part 3 §23.2.3). For a
   * permanent handle the Name is the handle itself.
   */
  policySecret(authHandle: number, session: number, policyRef: Uint8Array = new Uint8Array(0)): void {
    const s = this.#session(session)
    const authName = this.#nameOf(authHandle)
    const cc = new Uint8Array([0, 0, 0x01, 0x51])
    s.digest = sha256(concat(sha256(concat(s.digest, cc, authName)), policyRef))
  }

  /**
   * ActivateCredential (Part 3 §12.5; Part 1 §24.5): recovers the credential protected to
   * `keyHandle` (the EK) for the object `activateHandle` (the SRK). Needs the EK's policy to have
   * been satisfied (checked by `execute`; typed callers authorize themselves).
   */
  activateCredential(activateHandle: number, keyHandle: number, credentialBlob: Uint8Array, secret: Uint8Array): Uint8Array {
    const activated = this.#object(activateHandle, 1)
    const key = this.#object(keyHandle, 2)
    if (!key.rsa || key.public.type !== 'rsa' || key.public.parameters.symmetric === null) {
      throw new TpmCommandError(TPM_RC.TYPE | TPM_RC.N2, 'ActivateCredential: keyHandle must be an RSA decryption key with a symmetric definition')
    }
    const seed = rsaOaepDecrypt(key.rsa, secret, new TextEncoder().encode('IDENTITY\u0000'))
    if (seed === undefined) throw new TpmCommandError(TPM_RC.VALUE | TPM_RC.P | TPM_RC.N2, 'ActivateCredential: the secret does not decrypt under keyHandle (OAEP "IDENTITY")')
    const plain = this.#unprotect(seed, activated.name, key.public.parameters.symmetric.keyBits, credentialBlob, 'credentialBlob', TPM_RC.N1)
    const r = new TpmReader(plain, 'credential')
    try {
      const credential = r.tpm2b('credential', TPM_LIMITS.digest)
      r.end()
      return credential
    } catch {
      throw new TpmCommandError(TPM_RC.SIZE | TPM_RC.P | TPM_RC.N1, 'ActivateCredential: the decrypted credential is not a TPM2B_DIGEST')
    }
  }

  /**
   * Import (Part 3 §13.3; Part 1 §23.3.2.3): unwraps a duplicate made for `parentHandle` (outer
   * wrapper with the OAEP "DUPLICATE" seed, then the inner wrapper with `encryptionKey` when
   * `symmetric` is AES-CFB), checks the sensitive area is bound to `objectPublic`, and returns a
   * private blob for Load.
   */
  importObject(
    parentHandle: number,
    encryptionKey: Uint8Array,
    objectPublic: TpmtPublic,
    duplicate: Uint8Array,
    inSymSeed: Uint8Array,
    symmetric: { algorithm: number; keyBits: number; mode: number } | null,
  ): Uint8Array {
    const parent = this.#storageParent(parentHandle)
    if ((objectPublic.objectAttributes & (TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent)) !== 0) {
      throw new TpmCommandError(TPM_RC.ATTRIBUTES | TPM_RC.P | TPM_RC.N2, 'Import: an object with fixedTPM or fixedParent cannot be imported')
    }
    const name = objectName(objectPublic)
    const seed = rsaOaepDecrypt(parent.rsa!, inSymSeed, new TextEncoder().encode('DUPLICATE\u0000'))
    if (seed === undefined) throw new TpmCommandError(TPM_RC.VALUE | TPM_RC.P | TPM_RC.N4, 'Import: inSymSeed does not decrypt under the parent (OAEP "DUPLICATE")')
    let sens2b = this.#unprotect(seed, name, parent.public.type === 'rsa' ? (parent.public.parameters.symmetric?.keyBits ?? 128) : 128, duplicate, 'duplicate', TPM_RC.N3)
    if (symmetric !== null) {
      if (symmetric.algorithm !== TPM_ALG.AES || symmetric.mode !== TPM_ALG.CFB) throw new TpmCommandError(TPM_RC.MODE | TPM_RC.P | TPM_RC.N5, 'Import: only AES-CFB inner wrappers are supported')
      if (encryptionKey.length * 8 !== symmetric.keyBits) {
        throw new TpmCommandError(TPM_RC.SIZE | TPM_RC.P | TPM_RC.N1, `Import: encryptionKey is ${encryptionKey.length} bytes, symmetricAlg says ${symmetric.keyBits} bits`)
      }
      sens2b = this.#innerUnwrap(encryptionKey, name, sens2b)
    }
    const r = new TpmReader(sens2b, 'TPM2B_SENSITIVE')
    let sensitive
    try {
      sensitive = parseTpmtSensitive(r.tpm2b('sensitive', TPM_LIMITS.private), 'TPMT_SENSITIVE')
      r.end()
    } catch {
      throw new TpmCommandError(TPM_RC.SIZE | TPM_RC.P | TPM_RC.N3, 'Import: the unwrapped duplicate is not a TPM2B_SENSITIVE')
    }
    this.#checkBinding(objectPublic, sensitive.seedValue, sensitive.sensitive, sensitive.type, TPM_RC.N3)
    return protectWithSeed(parent.storageSeed!, name, 128, sized(marshalTpmtSensitive(sensitive)))
  }

  /** Load (Part 3 §12.2) of a private blob made by Import under the same parent. */
  load(parentHandle: number, inPrivate: Uint8Array, inPublic: TpmtPublic): { handle: number; name: Uint8Array } {
    const parent = this.#storageParent(parentHandle)
    const name = objectName(inPublic)
    const sens2b = this.#unprotect(parent.storageSeed!, name, 128, inPrivate, 'inPrivate', TPM_RC.N1)
    let sensitive
    try {
      const r = new TpmReader(sens2b, 'TPM2B_SENSITIVE')
      sensitive = parseTpmtSensitive(r.tpm2b('sensitive', TPM_LIMITS.private), 'TPMT_SENSITIVE')
      r.end()
    } catch {
      throw new TpmCommandError(TPM_RC.SIZE | TPM_RC.P | TPM_RC.N1, 'Load: inPrivate does not hold a TPM2B_SENSITIVE')
    }
    if (inPublic.type !== 'keyedHash' || sensitive.type !== 'keyedHash') throw new TpmCommandError(TPM_RC.TYPE | TPM_RC.P | TPM_RC.N2, 'Load: only KEYEDHASH objects can be loaded')
    this.#checkBinding(inPublic, sensitive.seedValue, sensitive.sensitive, sensitive.type, TPM_RC.N2)
    const handle = this.#nextTransient++
    this.#objects.set(handle, { public: inPublic, name, keyedHash: sensitive.sensitive, hierarchy: parent.hierarchy, authValue: sensitive.authValue })
    return { handle, name }
  }

  /** HMAC (Part 3 §15.5) with a loaded KEYEDHASH signing key. */
  hmac(handle: number, data: Uint8Array, hashAlg: number = TPM_ALG.NULL): Uint8Array {
    const o = this.#object(handle, 1)
    if (o.public.type !== 'keyedHash' || o.keyedHash === undefined) throw new TpmCommandError(TPM_RC.TYPE | TPM_RC.N1, 'HMAC: the key is not a KEYEDHASH object')
    if ((o.public.objectAttributes & TPMA_OBJECT.sign) === 0) throw new TpmCommandError(TPM_RC.KEY | TPM_RC.N1, 'HMAC: the key is not a signing key')
    const scheme = o.public.parameters
    const alg = hashAlg === TPM_ALG.NULL ? scheme.hashAlg : hashAlg
    if (alg !== TPM_ALG.SHA256 || (scheme.hashAlg !== undefined && scheme.hashAlg !== alg)) {
      throw new TpmCommandError(TPM_RC.HASH | TPM_RC.P | TPM_RC.N2, 'HMAC: only SHA-256, matching the key scheme, is supported')
    }
    if (data.length > MAX_BUFFER) throw new TpmCommandError(TPM_RC.SIZE | TPM_RC.P | TPM_RC.N1, `HMAC: buffer is ${data.length} bytes, at most ${MAX_BUFFER}`)
    return hmacSha256(o.keyedHash, data)
  }

  // -- internals ---------------------------------------------------------------------------------

  #object(handle: number, n: number): TpmObject {
    const o = this.#objects.get(handle)
    if (!o) throw new TpmCommandError(TPM_RC.HANDLE | (n === 1 ? TPM_RC.N1 : TPM_RC.N2), `handle 0x${handle.toString(16)} is not loaded`)
    return o
  }

  #session(handle: number): PolicySession {
    const s = this.#sessions.get(handle)
    if (!s) throw new TpmCommandError(TPM_RC.HANDLE | TPM_RC.N2, `session 0x${handle.toString(16)} does not exist`)
    return s
  }

  #nameOf(handle: number): Uint8Array {
    if (handle >>> 24 === 0x40) return new Uint8Array([(handle >>> 24) & 0xff, (handle >>> 16) & 0xff, (handle >>> 8) & 0xff, handle & 0xff])
    return this.#object(handle, 1).name
  }

  #storageParent(handle: number): TpmObject {
    const o = this.#object(handle, 1)
    if (!o.rsa || !o.storageSeed || (o.public.objectAttributes & TPMA_OBJECT.restricted) === 0) {
      throw new TpmCommandError(TPM_RC.TYPE | TPM_RC.N1, `0x${handle.toString(16)} is not a storage parent`)
    }
    return o
  }

  #unprotect(seed: Uint8Array, name: Uint8Array, keyBits: number, blob: Uint8Array, what: string, n: number): Uint8Array {
    try {
      return unprotectWithSeed(seed, name, keyBits, blob, what)
    } catch (error) {
      if (error instanceof TpmError && error.code === 'TPM_INTEGRITY') throw new TpmCommandError(TPM_RC.INTEGRITY | TPM_RC.P | n, error.message)
      throw new TpmCommandError(TPM_RC.SIZE | TPM_RC.P | n, `${what} is malformed: ${error instanceof Error ? error.message : String(error)}`)
    }
  }

  #innerUnwrap(key: Uint8Array, name: Uint8Array, encrypted: Uint8Array): Uint8Array {
    const plain = aesCfbDecryptZeroIv(key, encrypted)
    try {
      const r = new TpmReader(plain, 'inner wrapper')
      const integrity = r.tpm2b('innerIntegrity', TPM_LIMITS.digest)
      const sens2b = r.raw(r.remaining, 'TPM2B_SENSITIVE')
      if (!bytesEqual(integrity, sha256(concat(sens2b, name)))) throw new Error('inner integrity')
      return sens2b
    } catch {
      throw new TpmCommandError(TPM_RC.INTEGRITY | TPM_RC.P | TPM_RC.N3, 'Import: the inner integrity digest does not match (wrong encryptionKey or Name)')
    }
  }

  #checkBinding(pub: TpmtPublic, seedValue: Uint8Array, key: Uint8Array, type: 'rsa' | 'keyedHash', n: number): void {
    if (pub.type !== type) throw new TpmCommandError(TPM_RC.TYPE | TPM_RC.P | n, 'sensitive and public areas differ in type')
    if (pub.type === 'keyedHash' && !bytesEqual(pub.unique, sha256(concat(seedValue, key)))) {
      throw new TpmCommandError(TPM_RC.BINDING | TPM_RC.P | n, 'public unique is not SHA-256(seedValue ‖ key) (Part 1 §27.2.6 binding)')
    }
  }

  // -- authorization and power ------------------------------------------------------------------

  /**
   * Authorizes one use of `entity` (Part 1 §19): a password session must carry the entity's
   * authValue (empty for hierarchies); a policy session must hold the digest of its authPolicy —
   * for the ADMIN role of an object with adminWithPolicy, only that policy (Part 1 §19.7.3).
   * `index` is the entity's position in the command (1 or 2), for the response code.
   */
  authorize(s: AuthSession, entity: number, index: number, role: 'user' | 'admin' = 'user'): void {
    let needPolicy: Uint8Array | undefined
    if (role === 'admin') {
      const o = this.#object(entity, index)
      if ((o.public.objectAttributes & TPMA_OBJECT.adminWithPolicy) !== 0) needPolicy = o.public.authPolicy
    }
    const sessionRc = TPM_RC.S | (index << 8)
    if (s.handle === TPM_RH.PW) {
      if (needPolicy !== undefined) throw new TpmCommandError(TPM_RC.POLICY_FAIL | sessionRc, 'this role requires a policy session')
      const auth = entity >>> 24 === 0x40 ? new Uint8Array(0) : this.#object(entity, index).authValue
      if (!bytesEqual(s.hmac, auth)) throw new TpmCommandError(TPM_RC.AUTH_FAIL | sessionRc, 'password does not match')
      return
    }
    const session = this.#sessions.get(s.handle)
    if (!session) throw new TpmCommandError(TPM_RC.MODE | sessionRc, `session 0x${s.handle.toString(16)} is not a policy session of this TPM (HMAC sessions are not implemented)`)
    const policy = needPolicy ?? (entity >>> 24 === 0x40 ? undefined : this.#object(entity, index).public.authPolicy)
    if (policy === undefined || !bytesEqual(session.digest, policy)) throw new TpmCommandError(TPM_RC.POLICY_FAIL | sessionRc, 'policy digest does not match the authPolicy')
    // A used policy session starts over (Part 1 §19.7.8); it ends unless continueSession is set.
    session.digest = new Uint8Array(32)
    if ((s.attributes & 1) === 0) this.#sessions.delete(s.handle)
  }

  /** TPM2_Startup (Part 3 §9.3): false when the TPM was started already. */
  startup(): boolean {
    if (this.#started) return false
    this.#started = true
    return true
  }

  /** Whether Startup ran since the last power cycle (every other command needs it). */
  get started(): boolean {
    return this.#started
  }

  /**
   * Executes one TPM 2.0 command (header, handles, authorization area, parameters) and returns
   * the response. Never throws: malformed commands get a response code. Parsing and routing are
   * command-dispatch.ts's.
   */
  execute(command: Uint8Array): Uint8Array {
    return executeCommand(this, command)
  }
}

function aesCfbDecryptZeroIv(key: Uint8Array, data: Uint8Array): Uint8Array {
  if (key.length !== 16 && key.length !== 32) throw new TpmCommandError(TPM_RC.SIZE | TPM_RC.P | TPM_RC.N1, 'encryptionKey must be 16 or 32 bytes')
  return aesCfbDecrypt(key, new Uint8Array(16), data)
}
