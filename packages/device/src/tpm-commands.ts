/**
 * A DeviceTpm over raw TPM 2.0 commands (TPM 2.0 Part 3), for a TPM reached through a command
 * channel — the Microsoft TPM-simulator TCP protocol in Node (node/tpm-simulator.ts), or anything
 * else that can carry command bytes and return response bytes. It does what the SDKs do
 * (docs/protocol.md §5.1, §5.5): EK (0x81010001) and SRK (0x81000001) from the SDK templates,
 * created and persisted when missing; activation = PolicySecret(endorsement) session,
 * ActivateCredential(SRK, EK), Import under the SRK with AES-CFB of the recovered key's length,
 * Load, persist at 0x81000100; signing = TPM2_HMAC with the persisted identity key.
 * Password sessions carry empty passwords; no HMAC or encrypted sessions are used.
 */
import {
  EK_HANDLE,
  EK_TEMPLATE,
  ID_KEY_HANDLE,
  SRK_HANDLE,
  SRK_TEMPLATE,
  TPM_ALG,
  TPM_CC,
  TPM_RC,
  TPM_RH,
  TPM_ST,
  TpmReader,
  TpmWriter,
  marshalTpm2bPublic,
  parseActivationBlob,
  readTpm2bPublic,
} from '@provisio/tpm'
import { DeviceError } from './errors.js'
import type { DeviceTpm } from './security.js'

/** Sends one TPM command and returns the TPM's response. */
export type TpmExecute = (command: Uint8Array) => Promise<Uint8Array>

// Command codes, handles, tags and response codes as @provisio/tpm's software TPM defines them.
const { NO_SESSIONS: ST_NO_SESSIONS, SESSIONS: ST_SESSIONS } = TPM_ST
const { PW: RS_PW, OWNER: RH_OWNER, NULL: RH_NULL, ENDORSEMENT: RH_ENDORSEMENT } = TPM_RH
const CC = TPM_CC
const RC_INITIALIZE = TPM_RC.INITIALIZE
/** Largest TPM2B_MAX_BUFFER a TPM must accept for HMAC (MAX_DIGEST_BUFFER is at least 1024). */
const MAX_HMAC_INPUT = 1024
const MAX_RESPONSE = 8192

/** A TPM response code other than success. */
export class TpmResponseError extends DeviceError {
  constructor(
    readonly responseCode: number,
    command: string,
  ) {
    super('TPM', `TPM2_${command} failed with response code 0x${responseCode.toString(16).padStart(3, '0')}`)
  }
}

interface Auth {
  readonly handle: number
  readonly continueSession?: boolean
}

const PW: Auth = { handle: RS_PW, continueSession: true }

function command(code: number, name: string, handles: readonly number[], auths: readonly Auth[], params: Uint8Array): { bytes: Uint8Array; name: string } {
  const w = new TpmWriter().u16(auths.length > 0 ? ST_SESSIONS : ST_NO_SESSIONS).u32(0).u32(code)
  for (const h of handles) w.u32(h)
  if (auths.length > 0) {
    const area = new TpmWriter()
    for (const a of auths) area.u32(a.handle).tpm2b(new Uint8Array(0)).u8(a.continueSession === true ? 1 : 0).tpm2b(new Uint8Array(0))
    const bytes = area.bytes()
    w.u32(bytes.length).raw(bytes)
  }
  w.raw(params)
  w.patchU32(2, w.length)
  return { bytes: w.bytes(), name }
}

/** The DeviceTpm of a TPM reached through `execute`. `close` is called by DeviceTpm.close(). */
export function commandTpm(execute: TpmExecute, close?: () => Promise<void>): DeviceTpm {
  let started: Promise<void> | undefined
  let provisioned: Promise<void> | undefined

  /** Runs a command; returns the response handles (`outHandles` of them) and a reader over the parameters. */
  const run = async (cmd: ReturnType<typeof command>, outHandles = 0): Promise<{ handles: number[]; params: TpmReader }> => {
    const response = await execute(cmd.bytes)
    if (response.length > MAX_RESPONSE) throw new DeviceError('TPM', `TPM2_${cmd.name}: response of ${response.length} bytes is over the limit`)
    const r = new TpmReader(response, `TPM2_${cmd.name} response`)
    const tag = r.u16('tag')
    const size = r.u32('responseSize')
    const rc = r.u32('responseCode')
    if (size !== response.length) throw new DeviceError('TPM', `TPM2_${cmd.name}: response size field ${size} differs from the ${response.length} bytes received`)
    if (rc !== 0) throw new TpmResponseError(rc, cmd.name)
    const handles: number[] = []
    for (let i = 0; i < outHandles; i++) handles.push(r.u32('handle'))
    if (tag === ST_SESSIONS) {
      const paramSize = r.u32('parameterSize')
      return { handles, params: new TpmReader(r.raw(paramSize, 'parameters'), `TPM2_${cmd.name} parameters`) }
    }
    return { handles, params: r }
  }

  const startup = () =>
    (started ??= (async () => {
      try {
        await run(command(CC.Startup, 'Startup', [], [], new TpmWriter().u16(0).bytes()))
      } catch (error) {
        // Already started (by an earlier client of the same TPM) is fine.
        if (!(error instanceof TpmResponseError && error.responseCode === RC_INITIALIZE)) throw error
      }
    })())

  const readPublic = async (handle: number): Promise<Uint8Array | undefined> => {
    try {
      const { params } = await run(command(CC.ReadPublic, 'ReadPublic', [handle], [], new Uint8Array(0)))
      const pub = readTpm2bPublic(params, 'outPublic')
      return marshalTpm2bPublic(pub)
    } catch (error) {
      if (error instanceof TpmResponseError) return undefined // handle does not exist (TPM_RC_HANDLE)
      throw error
    }
  }

  const evict = (objectHandle: number, persistentHandle: number) =>
    run(command(CC.EvictControl, 'EvictControl', [RH_OWNER, objectHandle], [PW], new TpmWriter().u32(persistentHandle).bytes()))
  const flush = (handle: number) => run(command(CC.FlushContext, 'FlushContext', [], [], new TpmWriter().u32(handle).bytes()))

  const provision = () =>
    (provisioned ??= (async () => {
      await startup()
      for (const [hierarchy, handle, template] of [
        [RH_ENDORSEMENT, EK_HANDLE, EK_TEMPLATE],
        [RH_OWNER, SRK_HANDLE, SRK_TEMPLATE],
      ] as const) {
        if ((await readPublic(handle)) !== undefined) continue
        const params = new TpmWriter()
          .tpm2b(new TpmWriter().tpm2b(new Uint8Array(0)).tpm2b(new Uint8Array(0)).bytes()) // TPM2B_SENSITIVE_CREATE: no userAuth, no data
          .raw(marshalTpm2bPublic(template))
          .tpm2b(new Uint8Array(0)) // outsideInfo
          .u32(0) // creationPCR: none
          .bytes()
        const { handles } = await run(command(CC.CreatePrimary, 'CreatePrimary', [hierarchy], [PW], params), 1)
        await evict(handles[0]!, handle)
        await flush(handles[0]!)
      }
    })())

  const publicOf = async (handle: number, what: string) => {
    await provision()
    const bytes = await readPublic(handle)
    if (bytes === undefined) throw new DeviceError('TPM', `the TPM has no ${what} at 0x${handle.toString(16)}`)
    return bytes
  }

  const guard = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (error) {
      if (error instanceof DeviceError) throw error
      throw new DeviceError('TPM', `${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
  }

  return {
    endorsementKey: () => guard('reading the EK', () => publicOf(EK_HANDLE, 'EK')),
    storageRootKey: () => guard('reading the SRK', () => publicOf(SRK_HANDLE, 'SRK')),
    activate: (blob) =>
      guard('activating the blob', async () => {
        await provision()
        const parts = parseActivationBlob(blob)
        // Policy session satisfying the EK's authPolicy: PolicySecret(TPM_RH_ENDORSEMENT).
        const nonce = new Uint8Array(32)
        const start = new TpmWriter().tpm2b(nonce).tpm2b(new Uint8Array(0)).u8(0x01).u16(TPM_ALG.NULL).u16(TPM_ALG.SHA256).bytes()
        const { handles } = await run(command(CC.StartAuthSession, 'StartAuthSession', [RH_NULL, RH_NULL], [], start), 1)
        const session = handles[0]!
        let sessionOpen = true
        try {
          const secretParams = new TpmWriter().tpm2b(new Uint8Array(0)).tpm2b(new Uint8Array(0)).tpm2b(new Uint8Array(0)).u32(0).bytes()
          await run(command(CC.PolicySecret, 'PolicySecret', [RH_ENDORSEMENT, session], [PW], secretParams))
          const activateParams = new TpmWriter().tpm2b(parts.credentialBlob).tpm2b(parts.secret).bytes()
          // The policy session ends with this command (continueSession clear).
          const activated = await run(command(CC.ActivateCredential, 'ActivateCredential', [SRK_HANDLE, EK_HANDLE], [PW, { handle: session }], activateParams))
          sessionOpen = false
          const innerKey = activated.params.tpm2b('certInfo', 64)
          const importParams = new TpmWriter()
            .tpm2b(innerKey)
            .raw(marshalTpm2bPublic(parts.idKeyPublic))
            .tpm2b(parts.duplicate)
            .tpm2b(parts.inSymSeed)
            .u16(TPM_ALG.AES)
            .u16(innerKey.length * 8)
            .u16(TPM_ALG.CFB)
            .bytes()
          const imported = await run(command(CC.Import, 'Import', [SRK_HANDLE], [PW], importParams))
          const outPrivate = imported.params.tpm2b('outPrivate', 2048)
          const loadParams = new TpmWriter().tpm2b(outPrivate).raw(marshalTpm2bPublic(parts.idKeyPublic)).bytes()
          const loaded = await run(command(CC.Load, 'Load', [SRK_HANDLE], [PW], loadParams), 1)
          const keyHandle = loaded.handles[0]!
          try {
            if ((await readPublic(ID_KEY_HANDLE)) !== undefined) await evict(ID_KEY_HANDLE, ID_KEY_HANDLE)
            await evict(keyHandle, ID_KEY_HANDLE)
          } finally {
            await flush(keyHandle)
          }
        } finally {
          if (sessionOpen) await flush(session).catch(() => undefined)
        }
      }),
    sign: (data) =>
      guard('signing with the identity key', async () => {
        await provision()
        if (data.length > MAX_HMAC_INPUT) throw new DeviceError('TPM', `HMAC input of ${data.length} bytes is over the ${MAX_HMAC_INPUT}-byte TPM buffer`)
        const { params } = await run(command(CC.HMAC, 'HMAC', [ID_KEY_HANDLE], [PW], new TpmWriter().tpm2b(data).u16(TPM_ALG.NULL).bytes()))
        return params.tpm2b('outHMAC', 64)
      }),
    close: async () => {
      await close?.()
    },
  }
}
