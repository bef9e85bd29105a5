/**
 * The TPM 2.0 command stream in front of the software TPM (TPM 2.0 Part 1 §18, Part 3): checks a
 * command's header, reads each command's handles, authorization area and parameters, routes it
 * to the typed operation of {@link SoftwareTpm} and marshals the response. Bytes in, bytes out;
 * what each operation does is software-tpm.ts's, the framing helpers command-frame.ts's.
 */
import { errorResponse, readCommandFrame, response } from './command-frame.js'
import { TpmError } from './errors.js'
import { TpmReader, TpmWriter, sized } from './marshal.js'
import type { SoftwareTpm } from './software-tpm.js'
import { TPM_ALG, TPM_LIMITS, marshalTpm2bPublic, readTpm2bPublic } from './structures.js'
import { MAX_BUFFER, MAX_COMMAND_SIZE, TPM_CC, TPM_RC, TPM_RH, TPM_ST, TpmCommandError } from './tpm-codes.js'

const { NO_SESSIONS: ST_NO_SESSIONS, SESSIONS: ST_SESSIONS, CREATION: ST_CREATION, AUTH_SECRET: ST_AUTH_SECRET } = TPM_ST
const TPM_CAP_TPM_PROPERTIES = 6
const PT_INPUT_BUFFER = 0x10d
const PT_MAX_DIGEST = 0x120

/**
 * Executes one TPM 2.0 command (header, handles, authorization area, parameters) and returns
 * the response. Never throws: malformed commands get a response code.
 */
export function executeCommand(tpm: SoftwareTpm, command: Uint8Array): Uint8Array {
  let cc = 0
  try {
    if (command.length < 10) return errorResponse(TPM_RC.COMMAND_SIZE)
    if (command.length > MAX_COMMAND_SIZE) return errorResponse(TPM_RC.COMMAND_SIZE)
    const r = new TpmReader(command, 'TPM command')
    const tag = r.u16('tag')
    const size = r.u32('commandSize')
    cc = r.u32('commandCode')
    tpm.commandLog.push(cc)
    if (tag !== ST_NO_SESSIONS && tag !== ST_SESSIONS) return errorResponse(TPM_RC.BAD_TAG)
    if (size !== command.length) return errorResponse(TPM_RC.COMMAND_SIZE)
    if (cc !== TPM_CC.Startup && !tpm.started) return errorResponse(TPM_RC.INITIALIZE)
    return dispatch(tpm, cc, tag, r)
  } catch (error) {
    if (error instanceof TpmCommandError && error.code === 'TPM_COMMAND_FAILED') return errorResponse(error.rc)
    if (error instanceof TpmError) return errorResponse(error.code === 'TPM_TRUNCATED' ? TPM_RC.COMMAND_SIZE : TPM_RC.SIZE)
    return errorResponse(TPM_RC.FAILURE)
  }
}

function dispatch(tpm: SoftwareTpm, cc: number, tag: number, r: TpmReader): Uint8Array {
  switch (cc) {
    case TPM_CC.Startup: {
      r.u16('startupType')
      if (!tpm.startup()) return errorResponse(TPM_RC.INITIALIZE)
      return response(tag, [], new Uint8Array(0), 0)
    }
    case TPM_CC.Shutdown: {
      r.u16('shutdownType')
      return response(tag, [], new Uint8Array(0), 0)
    }
    case TPM_CC.GetRandom: {
      const n = Math.min(r.u16('bytesRequested'), 32)
      return response(tag, [], sized(tpm.random(n)), 0)
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
      const { public: pub, name } = tpm.readPublic(handles[0]!)
      return response(tag, [], new TpmWriter().raw(marshalTpm2bPublic(pub)).tpm2b(name).tpm2b(name).bytes(), 0)
    }
    case TPM_CC.CreatePrimary: {
      const { handles, sessions } = readCommandFrame(r, tag, 1, 1)
      tpm.authorize(sessions[0]!, handles[0]!, 1)
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
      const handle = tpm.createPrimary(handles[0]!, template)
      const { public: pub, name } = tpm.readPublic(handle)
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
      tpm.authorize(sessions[0]!, handles[0]!, 1)
      tpm.evictControl(handles[0]!, handles[1]!, r.u32('persistentHandle'))
      return response(tag, [], new Uint8Array(0), sessions.length)
    }
    case TPM_CC.FlushContext: {
      tpm.flushContext(r.u32('flushHandle'))
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
      const s = tpm.startPolicySession()
      return response(tag, [s.handle], sized(s.nonceTpm), 0)
    }
    case TPM_CC.PolicySecret: {
      const { handles, sessions } = readCommandFrame(r, tag, 2, 1)
      tpm.authorize(sessions[0]!, handles[0]!, 1)
      r.tpm2b('nonceTPM', TPM_LIMITS.digest)
      r.tpm2b('cpHashA', TPM_LIMITS.digest)
      const policyRef = r.tpm2b('policyRef', TPM_LIMITS.digest)
      r.u32('expiration')
      tpm.policySecret(handles[0]!, handles[1]!, policyRef)
      const params = new TpmWriter().tpm2b(new Uint8Array(0)).u16(ST_AUTH_SECRET).u32(TPM_RH.NULL).tpm2b(new Uint8Array(0)).bytes()
      return response(tag, [], params, sessions.length)
    }
    case TPM_CC.PolicyGetDigest: {
      const { handles } = readCommandFrame(r, tag, 1, 0)
      return response(tag, [], sized(tpm.policyDigest(handles[0]!)), 0)
    }
    case TPM_CC.ActivateCredential: {
      const { handles, sessions } = readCommandFrame(r, tag, 2, 2)
      tpm.authorize(sessions[0]!, handles[0]!, 1)
      // keyHandle needs the ADMIN role: with adminWithPolicy, only its policy (Part 1 §19.7.3).
      tpm.authorize(sessions[1]!, handles[1]!, 2, 'admin')
      const credentialBlob = r.tpm2b('credentialBlob', TPM_LIMITS.idObject)
      const secret = r.tpm2b('secret', TPM_LIMITS.encryptedSecret)
      const certInfo = tpm.activateCredential(handles[0]!, handles[1]!, credentialBlob, secret)
      return response(tag, [], sized(certInfo), sessions.length)
    }
    case TPM_CC.Import: {
      const { handles, sessions } = readCommandFrame(r, tag, 1, 1)
      tpm.authorize(sessions[0]!, handles[0]!, 1)
      const encryptionKey = r.tpm2b('encryptionKey', TPM_LIMITS.digest)
      const objectPublic = readTpm2bPublic(r, 'objectPublic')
      const dup = r.tpm2b('duplicate', TPM_LIMITS.private)
      const inSymSeed = r.tpm2b('inSymSeed', TPM_LIMITS.encryptedSecret)
      const alg = r.u16('symmetricAlg.algorithm')
      const symmetric = alg === TPM_ALG.NULL ? null : { algorithm: alg, keyBits: r.u16('symmetricAlg.keyBits'), mode: r.u16('symmetricAlg.mode') }
      const outPrivate = tpm.importObject(handles[0]!, encryptionKey, objectPublic, dup, inSymSeed, symmetric)
      return response(tag, [], sized(outPrivate), sessions.length)
    }
    case TPM_CC.Load: {
      const { handles, sessions } = readCommandFrame(r, tag, 1, 1)
      tpm.authorize(sessions[0]!, handles[0]!, 1)
      const inPrivate = r.tpm2b('inPrivate', TPM_LIMITS.private)
      const inPublic = readTpm2bPublic(r, 'inPublic')
      const loaded = tpm.load(handles[0]!, inPrivate, inPublic)
      return response(tag, [loaded.handle], sized(loaded.name), sessions.length)
    }
    case TPM_CC.HMAC: {
      const { handles, sessions } = readCommandFrame(r, tag, 1, 1)
      tpm.authorize(sessions[0]!, handles[0]!, 1)
      const buffer = r.tpm2b('buffer', MAX_BUFFER)
      const hashAlg = r.u16('hashAlg')
      return response(tag, [], sized(tpm.hmac(handles[0]!, buffer, hashAlg)), sessions.length)
    }
    default:
      return errorResponse(TPM_RC.COMMAND_CODE)
  }
}
