/**
 * The numbers of the TPM 2.0 command stream this TPM speaks (TPM 2.0 Part 2): command codes,
 * response codes, permanent handles, structure tags, the command size limit, and the error a
 * failed command throws.
 */
import { TpmError } from './errors.js'

/** Command codes (Part 2 §6.5.2) this TPM implements. */
export const TPM_CC = {
  EvictControl: 0x120,
  CreatePrimary: 0x131,
  ActivateCredential: 0x147,
  Startup: 0x144,
  Shutdown: 0x145,
  PolicySecret: 0x151,
  HMAC: 0x155,
  Import: 0x156,
  Load: 0x157,
  FlushContext: 0x165,
  ReadPublic: 0x173,
  StartAuthSession: 0x176,
  GetCapability: 0x17a,
  GetRandom: 0x17b,
  PolicyGetDigest: 0x189,
} as const

/** Response codes (Part 2 §6.6) this TPM returns. */
export const TPM_RC = {
  SUCCESS: 0x000,
  BAD_TAG: 0x01e,
  INITIALIZE: 0x100,
  FAILURE: 0x101,
  COMMAND_SIZE: 0x142,
  COMMAND_CODE: 0x143,
  AUTHSIZE: 0x144,
  NV_DEFINED: 0x14c,
  AUTH_MISSING: 0x125,
  ATTRIBUTES: 0x082,
  HASH: 0x083,
  VALUE: 0x084,
  MODE: 0x089,
  TYPE: 0x08a,
  HANDLE: 0x08b,
  AUTH_FAIL: 0x08e,
  SIZE: 0x095,
  INSUFFICIENT: 0x09a,
  KEY: 0x09c,
  POLICY_FAIL: 0x09d,
  INTEGRITY: 0x09f,
  BINDING: 0x0a5,
  /** Format-one modifiers: which handle/parameter/session the code refers to. */
  P: 0x040,
  S: 0x800,
  N1: 0x100,
  N2: 0x200,
  N3: 0x300,
  N4: 0x400,
  N5: 0x500,
} as const

/** Permanent handles (Part 2 §7.4). */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  PW: 0x40000009,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const

/** Structure tags (Part 2 §6.9) of command and response headers and tickets. */
export const TPM_ST = {
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  CREATION: 0x8021,
  AUTH_SECRET: 0x8023,
} as const

/** Largest command accepted (the simulator's MAX_COMMAND_SIZE). */
export const MAX_COMMAND_SIZE = 4096

/**
 * A TPM command failed with response code `rc` (Part 2 §6.6). Thrown by the typed operations;
 * `execute` turns it into a response.
 */
export class TpmCommandError extends TpmError {
  constructor(
    readonly rc: number,
    message: string,
  ) {
    super('TPM_COMMAND_FAILED', `${message} (TPM_RC 0x${rc.toString(16).padStart(3, '0')})`)
  }
}

/** Largest TPM2B_MAX_BUFFER (Part 2 MAX_DIGEST_BUFFER): what GetCapability(INPUT_BUFFER) reports. */
export const MAX_BUFFER = 1024
