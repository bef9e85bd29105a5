import { createHash, createPublicKey, publicEncrypt, constants, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { hmacSha256 } from '@provisio/crypto'
import {
  DUPLICATE_POLICY_SHA256,
  EK_AUTH_POLICY_SHA256,
  EK_HANDLE,
  EK_TEMPLATE,
  SRK_HANDLE,
  SoftwareTpm,
  TPM_RH,
  TpmDevice,
  TpmError,
  base32Lower,
  buildActivationBlob,
  checkEndorsementKey,
  checkStorageRootKey,
  decodeTpm2bPublicBase64,
  defaultRegistrationId,
  marshalTpm2bPublic,
  objectName,
  parseActivationBlob,
  parseTpm2bPublic,
  rsaOaepDecrypt,
  sameEndorsementKey,
  generateRsaKey,
  marshalActivationBlob,
} from '../src/index.js'
import type { RsaPublic } from '../src/index.js'

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n))

function device(seedByte: number): TpmDevice {
  const d = new TpmDevice(new SoftwareTpm({ seed: new Uint8Array(32).fill(seedByte) }))
  d.provision()
  return d
}

const alice = device(1)
const bob = device(2)

function publics(d: TpmDevice): { ek: RsaPublic; srk: RsaPublic; ekBytes: Uint8Array } {
  const ekBytes = d.endorsementKey()
  return { ek: checkEndorsementKey(parseTpm2bPublic(ekBytes)), srk: checkStorageRootKey(parseTpm2bPublic(d.storageRootKey())), ekBytes }
}

function code(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (error) {
    return error instanceof TpmError ? error.code : `not a TpmError: ${String(error)}`
  }
}

describe('structures', () => {
  it('marshals the SDK EK as the familiar TPM2B_PUBLIC (size 0x013A, RSA, SHA-256, attrs 0x300B2)', () => {
    const { ekBytes } = publics(alice)
    expect(Buffer.from(ekBytes).toString('base64').startsWith('AToAAQALAAMAsgAg')).toBe(true)
    expect(ekBytes.length).toBe(0x13a + 2)
    const again = marshalTpm2bPublic(parseTpm2bPublic(ekBytes))
    expect(Buffer.from(again).equals(Buffer.from(ekBytes))).toBe(true)
  })

  it('computes Names as nameAlg ‖ SHA-256(TPMT_PUBLIC)', () => {
    const { ekBytes, ek } = publics(alice)
    const expected = Buffer.concat([Buffer.from([0, 0x0b]), createHash('sha256').update(ekBytes.subarray(2)).digest()])
    expect(Buffer.from(objectName(ek)).equals(expected)).toBe(true)
  })

  it('refuses truncated, oversized and trailing input with typed codes', () => {
    const { ekBytes } = publics(alice)
    expect(code(() => parseTpm2bPublic(ekBytes.subarray(0, 100)))).toBe('TPM_TRUNCATED')
    expect(code(() => parseTpm2bPublic(new Uint8Array([...ekBytes, 0])))).toBe('TPM_TRAILING_BYTES')
    expect(code(() => parseTpm2bPublic(new Uint8Array(5000)))).toBe('TPM_TOO_LARGE')
    const badAlg = ekBytes.slice()
    badAlg[5] = 0x04 // nameAlg SHA-1
    expect(code(() => parseTpm2bPublic(badAlg))).toBe('TPM_UNSUPPORTED')
    expect(code(() => decodeTpm2bPublicBase64('not base64 !!', 'EK'))).toBe('TPM_BAD_BASE64')
  })

  it('rejects keys that are not EKs (signing key, no symmetric, keyed hash)', () => {
    const { ek } = publics(alice)
    expect(code(() => checkEndorsementKey({ ...ek, objectAttributes: ek.objectAttributes | 0x40000 }))).toBe('TPM_EK_TEMPLATE')
    expect(code(() => checkEndorsementKey({ ...ek, parameters: { ...ek.parameters, symmetric: null } }))).toBe('TPM_EK_TEMPLATE')
    expect(code(() => checkEndorsementKey({ ...ek, objectAttributes: ek.objectAttributes & ~0x10000 }))).toBe('TPM_EK_TEMPLATE')
  })

  it('matches EKs by modulus and tells different TPMs apart', () => {
    const a = publics(alice).ek
    expect(sameEndorsementKey(a, { ...a, authPolicy: new Uint8Array(0) })).toBe(true)
    expect(sameEndorsementKey(a, publics(bob).ek)).toBe(false)
  })

  it('derives primary keys deterministically from the seed', () => {
    expect(Buffer.from(device(1).endorsementKey()).equals(Buffer.from(alice.endorsementKey()))).toBe(true)
    expect(Buffer.from(bob.endorsementKey()).equals(Buffer.from(alice.endorsementKey()))).toBe(false)
  })
})

describe('registration id', () => {
  it('is lowercase unpadded RFC 4648 base32', () => {
    // RFC 4648 §10 test vectors.
    const vectors: [string, string][] = [['', ''], ['f', 'my'], ['fo', 'mzxq'], ['foo', 'mzxw6'], ['foob', 'mzxw6yq'], ['fooba', 'mzxw6ytb'], ['foobar', 'mzxw6ytboi']]
    for (const [input, out] of vectors) expect(base32Lower(new TextEncoder().encode(input))).toBe(out)
  })

  it('is base32 of SHA-256 over the EK TPM2B_PUBLIC (as azure-iot-security-tpm computes it)', () => {
    const { ekBytes } = publics(alice)
    // Independent reference: the digest as a bit string cut into 5-bit groups (RFC 4648 §6).
    const bits = [...createHash('sha256').update(ekBytes).digest()].map((b) => b.toString(2).padStart(8, '0')).join('')
    const groups = bits.padEnd(Math.ceil(bits.length / 5) * 5, '0').match(/.{5}/g)!
    const expected = groups.map((g) => 'abcdefghijklmnopqrstuvwxyz234567'[parseInt(g, 2)]).join('')
    expect(defaultRegistrationId(ekBytes)).toBe(expected)
    expect(defaultRegistrationId(ekBytes)).toMatch(/^[a-z2-7]{52}$/)
  })
})

describe('policies', () => {
  it('PolicySecret(endorsement) yields the EK authPolicy of the TCG template', () => {
    const tpm = alice.tpm
    const s = tpm.startPolicySession()
    tpm.policySecret(TPM_RH.ENDORSEMENT, s.handle)
    expect(Buffer.from(tpm.policyDigest(s.handle)).toString('hex')).toBe(Buffer.from(EK_AUTH_POLICY_SHA256).toString('hex'))
    tpm.flushContext(s.handle)
  })

  it('the identity key policy is PolicyCommandCode(Duplicate)', () => {
    expect(Buffer.from(DUPLICATE_POLICY_SHA256).toString('hex')).toBe('bef56b8c1cc84e11edd717528d2cd99356bd2bbf8f015209c3f84aeeaba8e8a2')
  })
})

describe('RSA private operations', () => {
  it('OAEP-decrypts what node:crypto encrypted with SHA-256 and a label', () => {
    const key = generateRsaKey(new Uint8Array(32).fill(9), 'oaep test', 1024)
    const jwk = { kty: 'RSA', n: Buffer.from(key.n.toString(16).padStart(key.k * 2, '0'), 'hex').toString('base64url'), e: 'AQAB' }
    const pub = createPublicKey({ key: jwk, format: 'jwk' })
    const msg = random(32)
    const ct = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0') }, msg)
    const out = rsaOaepDecrypt(key, new Uint8Array(ct), new TextEncoder().encode('IDENTITY\0'))
    expect(out && Buffer.from(out).equals(msg)).toBe(true)
    expect(rsaOaepDecrypt(key, new Uint8Array(ct), new TextEncoder().encode('DUPLICATE\0'))).toBeUndefined()
    const tampered = new Uint8Array(ct)
    tampered[10]! ^= 1
    expect(rsaOaepDecrypt(key, tampered, new TextEncoder().encode('IDENTITY\0'))).toBeUndefined()
  })
})

describe('activation blob', () => {
  it('is activated by the device it was made for, and the imported key signs with K', () => {
    const { ek, srk } = publics(alice)
    const key = random(32)
    const blob = buildActivationBlob({ endorsementKey: ek, storageRootKey: srk, key, random })
    const parts = parseActivationBlob(blob)
    expect(parts.encryptedUriData.length).toBe(0)
    expect(Buffer.from(marshalActivationBlob(parts)).equals(Buffer.from(blob))).toBe(true)
    alice.activate(blob)
    const data = new TextEncoder().encode('0ne00000001%2Fregistrations%2Fdev\n1700000000')
    expect(Buffer.from(alice.sign(data)).equals(Buffer.from(hmacSha256(key, data)))).toBe(true)
  })

  it('replaces an earlier identity key on a second activation', () => {
    const { ek, srk } = publics(alice)
    const k2 = random(32)
    alice.activate(buildActivationBlob({ endorsementKey: ek, storageRootKey: srk, key: k2, random }))
    const data = new TextEncoder().encode('x')
    expect(Buffer.from(alice.sign(data)).equals(Buffer.from(hmacSha256(k2, data)))).toBe(true)
  })

  it('fails on another TPM (wrong EK) and when bound to another SRK', () => {
    const a = publics(alice)
    const b = publics(bob)
    const forBob = buildActivationBlob({ endorsementKey: b.ek, storageRootKey: b.srk, key: random(32), random })
    expect(() => alice.activate(forBob)).toThrow(/OAEP "IDENTITY"/)
    // Alice's EK but Bob's SRK Name: the credential HMAC covers the SRK Name (§5.5).
    const wrongSrk = buildActivationBlob({ endorsementKey: a.ek, storageRootKey: b.srk, key: random(32), random })
    expect(() => alice.activate(wrongSrk)).toThrow(/integrity HMAC does not match/)
  })

  it('detects a tampered duplicate', () => {
    const { ek, srk } = publics(alice)
    const parts = parseActivationBlob(buildActivationBlob({ endorsementKey: ek, storageRootKey: srk, key: random(32), random }))
    const dup = parts.duplicate.slice()
    dup[dup.length - 1]! ^= 0x80
    expect(() => alice.activate(marshalActivationBlob({ ...parts, duplicate: dup }))).toThrow(/integrity HMAC/)
  })

  it('refuses a blob without the trailing TPM2B_DATA', () => {
    const { ek, srk } = publics(alice)
    const blob = buildActivationBlob({ endorsementKey: ek, storageRootKey: srk, key: random(32), random })
    expect(code(() => parseActivationBlob(blob.subarray(0, blob.length - 2)))).toBe('TPM_TRUNCATED')
    expect(code(() => parseActivationBlob(new Uint8Array(10000)))).toBe('TPM_TOO_LARGE')
  })

  it('keeps the SDK EK template fields', () => {
    const ek = alice.tpm.readPublic(EK_HANDLE).public
    expect(ek.objectAttributes).toBe(EK_TEMPLATE.objectAttributes)
    expect(alice.tpm.readPublic(SRK_HANDLE).public.objectAttributes).toBe(0x00030472)
  })
})
