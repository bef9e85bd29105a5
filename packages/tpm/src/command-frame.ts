/**
 * The TPM 2.0 command stream's framing (Part 1 §18, Part 3): reading a command's handles and
 * authorization area, and writing success and error responses. What each command does is the
 * software TPM's (software-tpm.ts).
 */
import { TpmReader, TpmWriter } from './marshal.js'
import { TPM_LIMITS } from './structures.js'
import { TPM_RC, TPM_ST, TpmCommandError } from './tpm-codes.js'

const { NO_SESSIONS: ST_NO_SESSIONS, SESSIONS: ST_SESSIONS } = TPM_ST

/** One entry of a command's authorization area (TPMS_AUTH_COMMAND). */
export interface AuthSession {
  readonly handle: number
  readonly nonce: Uint8Array
  readonly attributes: number
  readonly hmac: Uint8Array
}

/** Reads `handleCount` handles, then the authorization area when the tag says so. */
export function readCommandFrame(r: TpmReader, tag: number, handleCount: number, authCount: number): { handles: number[]; sessions: AuthSession[] } {
  const handles: number[] = []
  for (let i = 0; i < handleCount; i++) handles.push(r.u32('handle'))
  const sessions: AuthSession[] = []
  if (tag === ST_SESSIONS) {
    const authSize = r.u32('authorizationSize')
    if (authSize > r.remaining) throw new TpmCommandError(TPM_RC.AUTHSIZE, 'authorization area larger than the command')
    const area = new TpmReader(r.raw(authSize, 'authorization area'), 'authorization area')
    while (area.remaining > 0) {
      if (sessions.length === 3) throw new TpmCommandError(TPM_RC.AUTHSIZE, 'more than three sessions')
      sessions.push({
        handle: area.u32('sessionHandle'),
        nonce: area.tpm2b('nonceCaller', TPM_LIMITS.digest),
        attributes: area.u8('sessionAttributes'),
        hmac: area.tpm2b('hmac', TPM_LIMITS.digest),
      })
    }
  }
  if (sessions.length < authCount) throw new TpmCommandError(TPM_RC.AUTH_MISSING, `command needs ${authCount} authorization(s), got ${sessions.length}`)
  return { handles, sessions }
}

/** A response with no parameters and the error code (tag NO_SESSIONS, Part 1 §18.10). */
export function errorResponse(rc: number): Uint8Array {
  const w = new TpmWriter().u16(ST_NO_SESSIONS).u32(10).u32(rc)
  return w.bytes()
}

/**
 * A success response: handles, then (with sessions) parameterSize, parameters and one empty
 * TPMS_AUTH_RESPONSE per session (nonceTPM, continueSession, empty HMAC).
 */
export function response(tag: number, handles: number[], params: Uint8Array, sessionCount: number): Uint8Array {
  const w = new TpmWriter().u16(tag).u32(0).u32(TPM_RC.SUCCESS)
  for (const h of handles) w.u32(h)
  if (tag === ST_SESSIONS) w.u32(params.length)
  w.raw(params)
  if (tag === ST_SESSIONS) for (let i = 0; i < sessionCount; i++) w.u16(0).u8(1).u16(0)
  w.patchU32(2, w.length)
  return w.bytes()
}
