/**
 * A software TPM 2.0 with just what a DPS device needs (docs/protocol.md §5.5, §11): primary keys
 * (EK, SRK) from templates, deterministic from a seed; persistent handles; policy sessions with
 * PolicySecret; ActivateCredential; Import; Load; HMAC; GetRandom; GetCapability; ReadPublic.
 * Pure (no Node, no globals): the browser device emulator and the Microsoft-simulator TCP front
 * (server package) both drive it through `execute(command) → response`, the TPM 2.0 command
 * stream format of TPM 2.0 Part 1 §18 / Part 3.
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
 * This file holds the TPM's state, its typed operations and the command dispatch; the numbers
 * of the command stream are in tpm-codes.ts, its framing (handles, authorization area,
 * responses) in command-frame.ts.
 */
import { aesCfbDecrypt, hmacSha256, sha256 } from '@provisio/crypto'
import { protectWithSeed, unprotectWithSeed } from './blob.js'
import { errorResponse, readCommandFrame, response, type AuthSession } from './command-frame.js'
import { TpmError } from './errors.js'
import { TpmReader, TpmWriter, bytesEqual, concat, sized } from './marshal.js'
import { TPMA_OBJECT, TPM_ALG, TPM_LIMITS, marshalTpm2bPublic, marshalTpmtSensitive, objectName, parseTpmtSensitive, readTpm2bPublic, rsaExponent } from './structures.js'
import type { RsaPublic, TpmtPublic } from './structures.js'
import { SeededBytes, bigIntToBytes, generateRsaKey, rsaOaepDecrypt } from './rsa-private.js'
import type { RsaPrivateKey } from './rsa-private.js'
import { MAX_COMMAND_SIZE, TPM_CC, TPM_RC, TPM_RH, TPM_ST, TpmCommandError } from './tpm-codes.js'

const { NO_SESSIONS: ST_NO_SESSIONS, SESSIONS: ST_SESSIONS, CREATION: ST_CREATION, AUTH_SECRET: ST_AUTH_SECRET } = TPM_ST
const TPM_CAP_TPM_PROPERTIES = 6
const PT_INPUT_BUFFER = 0x10d
const PT_MAX_DIGEST = 0x120
/** Largest TPM2B_MAX_BUFFER (Part 2 MAX_DIGEST_BUFFER): what GetCapability(INPUT_BUFFER) reports. */
const MAX_BUFFER = 1024
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

  // -- command stream ------------------------------------------------------------------------------

  /**
   * Executes one TPM 2.0 command (header, handles, authorization area, parameters) and returns
   * the response. Never throws: malformed commands get a response code.
   */
  execute(command: Uint8Array): Uint8Array {
    let cc = 0
    try {
      if (command.length < 10) return errorResponse(TPM_RC.COMMAND_SIZE)
      if (command.length > MAX_COMMAND_SIZE) return errorResponse(TPM_RC.COMMAND_SIZE)
      const r = new TpmReader(command, 'TPM command')
      const tag = r.u16('tag')
      const size = r.u32('commandSize')
      cc = r.u32('commandCode')
      this.commandLog.push(cc)
      if (tag !== ST_NO_SESSIONS && tag !== ST_SESSIONS) return errorResponse(TPM_RC.BAD_TAG)
      if (size !== command.length) return errorResponse(TPM_RC.COMMAND_SIZE)
      if (cc !== TPM_CC.Startup && !this.#started) return errorResponse(TPM_RC.INITIALIZE)
      return this.#dispatch(cc, tag, r)
    } catch (error) {
      if (error instanceof TpmCommandError && error.code === 'TPM_COMMAND_FAILED') return errorResponse(error.rc)
      if (error instanceof TpmError) return errorResponse(error.code === 'TPM_TRUNCATED' ? TPM_RC.COMMAND_SIZE : TPM_RC.SIZE)
      return errorResponse(TPM_RC.FAILURE)
    }
  }

  /** Checks one authorization: a password equal to the entity's authValue, or a satisfied policy. */
  #authorize(s: AuthSession, entity: number, index: number, needPolicy?: Uint8Array): void {
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

  #dispatch(cc: number, tag: number, r: TpmReader): Uint8Array {
    switch (cc) {
      case TPM_CC.Startup: {
        r.u16('startupType')
        if (this.#started) return errorResponse(TPM_RC.INITIALIZE)
        this.#started = true
        return response(tag, [], new Uint8Array(0), 0)
      }
      case TPM_CC.Shutdown: {
        r.u16('shutdownType')
        return response(tag, [], new Uint8Array(0), 0)
      }
      case TPM_CC.GetRandom: {
        const n = Math.min(r.u16('bytesRequested'), 32)
        return response(tag, [], sized(this.random(n)), 0)
      }
      case TPM_CC.GetCapability: {
        const capability = r.u32('capability')
        const property = r.u32('property')
        const count = r.u32('propertyCount')
        if (capability !== TPM_CAP_TPM_PROPERTIES) throw new TpmCommandError(TPM_RC.VALUE | TPM_RC.P | TPM_RC.N1, 'GetCapability: only TPM_CAP_TPM_PROPERTIES is implemented')
        const known: [number, number][] = [
          [PT_INPUT_BUFFER, MAX_BUFFER],
          [PT_MAX_DIGEST, 32],
        ]
        const props = known.filter(([p]) => p >= property).slice(0, Math.max(0, Math.min(count, 16)))
        const w = new TpmWriter().u8(0).u32(TPM_CAP_TPM_PROPERTIES).u32(props.length)
        for (const [p, v] of props) w.u32(p).u32(v)
        return response(tag, [], w.bytes(), 0)
      }
      case TPM_CC.ReadPublic: {
        const { handles } = readCommandFrame(r, tag, 1, 0)
        const { public: pub, name } = this.readPublic(handles[0]!)
        return response(tag, [], new TpmWriter().raw(marshalTpm2bPublic(pub)).tpm2b(name).tpm2b(name).bytes(), 0)
      }
      case TPM_CC.CreatePrimary: {
        const { handles, sessions } = readCommandFrame(r, tag, 1, 1)
        this.#authorize(sessions[0]!, handles[0]!, 1)
        const sensitiveCreate = new TpmReader(r.tpm2b('inSensitive', 2 + 64 + 2 + 128), 'TPM2B_SENSITIVE_CREATE')
        const userAuth = sensitiveCreate.tpm2b('userAuth', TPM_LIMITS.digest)
        const data = sensitiveCreate.tpm2b('data', TPM_LIMITS.sensitiveData)
        if (userAuth.length !== 0 || data.length !== 0) throw new TpmCommandError(TPM_RC.VALUE | TPM_RC.P | TPM_RC.N1, 'CreatePrimary: userAuth and data must be empty here')
        const template = readTpm2bPublic(r, 'inPublic')
        r.tpm2b('outsideInfo', TPM_LIMITS.digest + 2)
        const pcrCount = r.u32('creationPCR.count')
        if (pcrCount > 16) throw new TpmCommandError(TPM_RC.SIZE | TPM_RC.P | TPM_RC.N4, 'too many PCR selections')
        for (let i = 0; i < pcrCount; i++) {
          r.u16('hash')
          r.raw(r.u8('sizeofSelect'), 'pcrSelect')
        }
        const handle = this.createPrimary(handles[0]!, template)
        const { public: pub, name } = this.readPublic(handle)
        const params = new TpmWriter()
          .raw(marshalTpm2bPublic(pub))
          .u16(0) // TPM2B_CREATION_DATA: not produced (no PCR or creation ticket use in DPS)
          .tpm2b(new Uint8Array(0)) // creationHash
          .u16(ST_CREATION)
          .u32(handles[0]!)
          .tpm2b(new Uint8Array(0)) // creationTicket.digest
          .tpm2b(name)
          .bytes()
        return response(tag, [handle], params, sessions.length)
      }
      case TPM_CC.EvictControl: {
        const { handles, sessions } = readCommandFrame(r, tag, 2, 1)
        this.#authorize(sessions[0]!, handles[0]!, 1)
        this.evictControl(handles[0]!, handles[1]!, r.u32('persistentHandle'))
        return response(tag, [], new Uint8Array(0), sessions.length)
      }
      case TPM_CC.FlushContext: {
        this.flushContext(r.u32('flushHandle'))
        return response(tag, [], new Uint8Array(0), 0)
      }
      case TPM_CC.StartAuthSession: {
        const { handles } = readCommandFrame(r, tag, 2, 0)
        r.tpm2b('nonceCaller', TPM_LIMITS.digest)
        const salt = r.tpm2b('encryptedSalt', TPM_LIMITS.encryptedSecret)
        const type = r.u8('sessionType')
        const symAlg = r.u16('symmetric.algorithm')
        if (symAlg !== TPM_ALG.NULL) {
          r.u16('symmetric.keyBits')
          r.u16('symmetric.mode')
        }
        const authHash = r.u16('authHash')
        if (handles[0] !== TPM_RH.NULL || handles[1] !== TPM_RH.NULL || salt.length !== 0 || symAlg !== TPM_ALG.NULL) {
          throw new TpmCommandError(TPM_RC.MODE, 'StartAuthSession: only unsalted, unbound sessions without parameter encryption are implemented')
        }
        if (type !== 1) throw new TpmCommandError(TPM_RC.MODE | TPM_RC.P | TPM_RC.N3, 'StartAuthSession: only policy sessions (TPM_SE_POLICY) are implemented')
        if (authHash !== TPM_ALG.SHA256) throw new TpmCommandError(TPM_RC.HASH | TPM_RC.P | TPM_RC.N5, 'StartAuthSession: only SHA-256 sessions')
        const s = this.startPolicySession()
        return response(tag, [s.handle], sized(s.nonceTpm), 0)
      }
      case TPM_CC.PolicySecret: {
        const { handles, sessions } = readCommandFrame(r, tag, 2, 1)
        this.#authorize(sessions[0]!, handles[0]!, 1)
        r.tpm2b('nonceTPM', TPM_LIMITS.digest)
        r.tpm2b('cpHashA', TPM_LIMITS.digest)
        const policyRef = r.tpm2b('policyRef', TPM_LIMITS.digest)
        r.u32('expiration')
        this.policySecret(handles[0]!, handles[1]!, policyRef)
        const params = new TpmWriter().tpm2b(new Uint8Array(0)).u16(ST_AUTH_SECRET).u32(TPM_RH.NULL).tpm2b(new Uint8Array(0)).bytes()
        return response(tag, [], params, sessions.length)
      }
      case TPM_CC.PolicyGetDigest: {
        const { handles } = readCommandFrame(r, tag, 1, 0)
        return response(tag, [], sized(this.policyDigest(handles[0]!)), 0)
      }
      case TPM_CC.ActivateCredential: {
        const { handles, sessions } = readCommandFrame(r, tag, 2, 2)
        this.#authorize(sessions[0]!, handles[0]!, 1)
        // keyHandle needs the ADMIN role: with adminWithPolicy, only its policy (Part 1 §19.7.3).
        const key = this.#object(handles[1]!, 2)
        const adminPolicy = (key.public.objectAttributes & TPMA_OBJECT.adminWithPolicy) !== 0 ? key.public.authPolicy : undefined
        this.#authorize(sessions[1]!, handles[1]!, 2, adminPolicy)
        const credentialBlob = r.tpm2b('credentialBlob', TPM_LIMITS.idObject)
        const secret = r.tpm2b('secret', TPM_LIMITS.encryptedSecret)
        const certInfo = this.activateCredential(handles[0]!, handles[1]!, credentialBlob, secret)
        return response(tag, [], sized(certInfo), sessions.length)
      }
      case TPM_CC.Import: {
        const { handles, sessions } = readCommandFrame(r, tag, 1, 1)
        this.#authorize(sessions[0]!, handles[0]!, 1)
        const encryptionKey = r.tpm2b('encryptionKey', TPM_LIMITS.digest)
        const objectPublic = readTpm2bPublic(r, 'objectPublic')
        const dup = r.tpm2b('duplicate', TPM_LIMITS.private)
        const inSymSeed = r.tpm2b('inSymSeed', TPM_LIMITS.encryptedSecret)
        const alg = r.u16('symmetricAlg.algorithm')
        const symmetric = alg === TPM_ALG.NULL ? null : { algorithm: alg, keyBits: r.u16('symmetricAlg.keyBits'), mode: r.u16('symmetricAlg.mode') }
        const outPrivate = this.importObject(handles[0]!, encryptionKey, objectPublic, dup, inSymSeed, symmetric)
        return response(tag, [], sized(outPrivate), sessions.length)
      }
      case TPM_CC.Load: {
        const { handles, sessions } = readCommandFrame(r, tag, 1, 1)
        this.#authorize(sessions[0]!, handles[0]!, 1)
        const inPrivate = r.tpm2b('inPrivate', TPM_LIMITS.private)
        const inPublic = readTpm2bPublic(r, 'inPublic')
        const loaded = this.load(handles[0]!, inPrivate, inPublic)
        return response(tag, [loaded.handle], sized(loaded.name), sessions.length)
      }
      case TPM_CC.HMAC: {
        const { handles, sessions } = readCommandFrame(r, tag, 1, 1)
        this.#authorize(sessions[0]!, handles[0]!, 1)
        const buffer = r.tpm2b('buffer', MAX_BUFFER)
        const hashAlg = r.u16('hashAlg')
        return response(tag, [], sized(this.hmac(handles[0]!, buffer, hashAlg)), sessions.length)
      }
      default:
        return errorResponse(TPM_RC.COMMAND_CODE)
    }
  }
}

function aesCfbDecryptZeroIv(key: Uint8Array, data: Uint8Array): Uint8Array {
  if (key.length !== 16 && key.length !== 32) throw new TpmCommandError(TPM_RC.SIZE | TPM_RC.P | TPM_RC.N1, 'encryptionKey must be 16 or 32 bytes')
  return aesCfbDecrypt(key, new Uint8Array(16), data)
}
