// Cross-check against a real TPM 2.0 implementation: Debian's swtpm (libtpms)
// driven by tpm2-tools. Our software-built activation blob (docs/protocol.md §5.4/§5.6) must be
// accepted by tpm2_activatecredential (EK under a PolicySecret(endorsement) session, bound to
// the SRK's Name), tpm2_import (inner AES-128-CFB wrapper with the recovered key), tpm2_load and
// tpm2_hmac, whose result must equal HMAC-SHA256(K, data); and our software TPM must activate a
// credential that tpm2_makecredential made. Skipped only when swtpm is absent outside CI
// (.ci/run installs swtpm and tpm2-tools).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hmacSha256 } from '@provisio/crypto'
import {
  SoftwareTpm,
  SRK_HANDLE,
  EK_HANDLE,
  TpmDevice,
  TpmReader,
  TpmWriter,
  buildActivationBlob,
  checkEndorsementKey,
  checkStorageRootKey,
  marshalTpmtPublic,
  objectName,
  parseActivationBlob,
  parseTpm2bPublic,
  TPM_LIMITS,
} from '../src/index.js'

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const available = has('swtpm') && has('tpm2_activatecredential')
const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n))

/** tpm2-tools credential file: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
function credentialFile(idObject: Uint8Array, secret: Uint8Array): Uint8Array {
  return new TpmWriter().u32(0xbadcc0de).u32(1).tpm2b(idObject).tpm2b(secret).bytes()
}

function freePortPair(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => {
        const t = createServer()
        t.once('error', () => resolve(freePortPair()))
        t.listen(port + 1, '127.0.0.1', () => t.close(() => resolve(port)))
      })
    })
    s.on('error', reject)
  })
}

describe.skipIf(!available && !process.env.CI)('swtpm + tpm2-tools', () => {
  let dir: string
  let swtpm: ChildProcess
  let tcti: string

  function tools(cmd: string, ...args: string[]): string {
    return execFileSync(cmd, args, { cwd: dir, env: { ...process.env, TPM2TOOLS_TCTI: tcti }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  }

  /** The stderr of a tool run that must fail. */
  function failure(cmd: string, ...args: string[]): string {
    try {
      tools(cmd, ...args)
    } catch (error) {
      return String((error as { stderr?: unknown }).stderr ?? error)
    }
    throw new Error(`${cmd} succeeded but was expected to fail`)
  }

  function file(name: string, bytes?: Uint8Array): string {
    const path = join(dir, name)
    if (bytes) writeFileSync(path, bytes)
    return path
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'provisio-swtpm-'))
    const port = await freePortPair()
    swtpm = spawn('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, '--flags', 'not-need-init,startup-clear'], { stdio: 'ignore' })
    tcti = `swtpm:host=127.0.0.1,port=${port}`
    // Wait until the TPM answers (tpm2_getrandom fails while swtpm is still starting).
    let lastError: unknown
    for (let i = 0; i < 50; i++) {
      try {
        tools('tpm2_getrandom', '--hex', '4')
        lastError = undefined
        break
      } catch (error) {
        lastError = error
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    if (lastError) throw lastError
    // No resource manager: every tool leaves its transient objects loaded, so flush them.
    tools('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub')
    tools('tpm2_flushcontext', '-t')
    tools('tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'rsa2048:null:aes128cfb', '-a', 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda', '-c', 'srk.ctx')
    tools('tpm2_flushcontext', '-t')
    tools('tpm2_readpublic', '-c', 'srk.ctx', '-o', 'srk.pub')
    tools('tpm2_flushcontext', '-t')
  })

  afterAll(() => {
    swtpm?.kill()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('activates, imports, loads and HMACs with our activation blob', () => {
    const ek = checkEndorsementKey(parseTpm2bPublic(new Uint8Array(readFileSync(file('ek.pub')))))
    const srk = checkStorageRootKey(parseTpm2bPublic(new Uint8Array(readFileSync(file('srk.pub')))))
    const key = random(32)
    const parts = parseActivationBlob(buildActivationBlob({ endorsementKey: ek, storageRootKey: srk, key, random }))

    file('cred.in', credentialFile(parts.credentialBlob, parts.secret))
    tools('tpm2_startauthsession', '--policy-session', '-S', 'session.ctx')
    tools('tpm2_policysecret', '-S', 'session.ctx', '-c', 'e')
    tools('tpm2_activatecredential', '-c', 'srk.ctx', '-C', 'ek.ctx', '-i', 'cred.in', '-o', 'inner.key', '-P', 'session:session.ctx')
    tools('tpm2_flushcontext', 'session.ctx')
    tools('tpm2_flushcontext', '-t')
    const innerKey = readFileSync(file('inner.key'))
    expect(innerKey.length).toBe(16)

    file('id.pub', new TpmWriter().tpm2b(marshalTpmtPublic(parts.idKeyPublic)).bytes())
    file('id.dup', new TpmWriter().tpm2b(parts.duplicate).bytes())
    file('id.seed', new TpmWriter().tpm2b(parts.inSymSeed).bytes())
    tools('tpm2_import', '-C', 'srk.ctx', '-u', 'id.pub', '-i', 'id.dup', '-s', 'id.seed', '-k', 'inner.key', '-r', 'id.priv')
    tools('tpm2_flushcontext', '-t')
    tools('tpm2_load', '-C', 'srk.ctx', '-u', 'id.pub', '-r', 'id.priv', '-c', 'id.ctx')
    tools('tpm2_flushcontext', '-t')
    const data = new TextEncoder().encode('0ne00000001%2Fregistrations%2Fswtpm-device\n1800000000')
    file('data.bin', data)
    const hmacHex = tools('tpm2_hmac', '-c', 'id.ctx', '--hex', 'data.bin').trim()
    tools('tpm2_flushcontext', '-t')
    expect(hmacHex).toBe(Buffer.from(hmacSha256(key, data)).toString('hex'))
  })

  it('fails activation when the blob is bound to another SRK Name', () => {
    const ek = checkEndorsementKey(parseTpm2bPublic(new Uint8Array(readFileSync(file('ek.pub')))))
    const otherSrk = checkStorageRootKey(parseTpm2bPublic(new TpmDevice(new SoftwareTpm({ seed: new Uint8Array(32).fill(5) })).storageRootKey()))
    const parts = parseActivationBlob(buildActivationBlob({ endorsementKey: ek, storageRootKey: otherSrk, key: random(32), random }))
    file('cred-bad.in', credentialFile(parts.credentialBlob, parts.secret))
    tools('tpm2_startauthsession', '--policy-session', '-S', 'session2.ctx')
    tools('tpm2_policysecret', '-S', 'session2.ctx', '-c', 'e')
    const stderr = failure('tpm2_activatecredential', '-c', 'srk.ctx', '-C', 'ek.ctx', '-i', 'cred-bad.in', '-o', 'inner-bad.key', '-P', 'session:session2.ctx')
    tools('tpm2_flushcontext', '-t')
    tools('tpm2_flushcontext', '-s')
    // TPM_RC_INTEGRITY | TPM_RC_P | TPM_RC_1 = 0x1DF: the credential blob's HMAC covers the SRK Name.
    expect(stderr).toMatch(/0x0*1df|parameter\(1\):integrity check failed/i)
  })

  it('our software TPM activates a credential that tpm2_makecredential made', () => {
    const device = new TpmDevice(new SoftwareTpm({ seed: new Uint8Array(32).fill(6) }))
    file('soft-ek.pub', device.endorsementKey())
    const srkName = Buffer.from(objectName(device.tpm.readPublic(SRK_HANDLE).public)).toString('hex')
    const secret = random(32)
    file('secret.bin', secret)
    tools('tpm2_makecredential', '-T', 'none', '-u', 'soft-ek.pub', '-s', 'secret.bin', '-n', srkName, '-o', 'soft-cred.out')
    const r = new TpmReader(new Uint8Array(readFileSync(file('soft-cred.out'))), 'credential file')
    expect(r.u32('magic')).toBe(0xbadcc0de)
    expect(r.u32('version')).toBe(1)
    const idObject = r.tpm2b('TPM2B_ID_OBJECT', TPM_LIMITS.idObject)
    const encSecret = r.tpm2b('TPM2B_ENCRYPTED_SECRET', TPM_LIMITS.encryptedSecret)
    r.end()
    const recovered = device.tpm.activateCredential(SRK_HANDLE, EK_HANDLE, idObject, encSecret)
    expect(Buffer.from(recovered).equals(Buffer.from(secret))).toBe(true)
  })
})
