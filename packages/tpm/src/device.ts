/**
 * What a DPS device does with its TPM (docs/protocol.md §5.1, §5.5), over the software TPM's typed
 * operations: EK and SRK from the SDK templates at their persistent handles, activation of a
 * blob (ActivateCredential → Import → Load → persist), and SAS signing with TPM2_HMAC.
 */
import { TpmError } from './errors.js'
import { EK_AUTH_POLICY_SHA256 } from './ek.js'
import { parseActivationBlob } from './blob.js'
import { bytesEqual } from './marshal.js'
import type { SoftwareTpm } from './software-tpm.js'
import { TPM_RH } from './tpm-codes.js'
import { TPMA_OBJECT, TPM_ALG, marshalTpm2bPublic } from './structures.js'
import type { RsaPublic } from './structures.js'

/** EK persistent handle used by the SDKs (§5.1). */
export const EK_HANDLE = 0x81010001
/** SRK persistent handle (§5.1). */
export const SRK_HANDLE = 0x81000001
/** Where the SDKs persist the imported identity key (§5.5). */
export const ID_KEY_HANDLE = 0x81000100

const AES128_CFB = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }

/** The SDK EK template (§5.1; azure-iot-security-tpm, C hsm_client_tpm): attrs 0x000300B2. */
export const EK_TEMPLATE: RsaPublic = {
  type: 'rsa',
  nameAlg: TPM_ALG.SHA256,
  objectAttributes:
    TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.adminWithPolicy | TPMA_OBJECT.sensitiveDataOrigin,
  authPolicy: EK_AUTH_POLICY_SHA256,
  parameters: { symmetric: AES128_CFB, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
  unique: new Uint8Array(0),
}

/** The SDK SRK template (§5.1): a storage key with noDA and userWithAuth. */
export const SRK_TEMPLATE: RsaPublic = {
  type: 'rsa',
  nameAlg: TPM_ALG.SHA256,
  objectAttributes:
    TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.noDA | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.sensitiveDataOrigin,
  authPolicy: new Uint8Array(0),
  parameters: { symmetric: AES128_CFB, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
  unique: new Uint8Array(0),
}

/** A DPS device's view of a software TPM. */
export class TpmDevice {
  constructor(readonly tpm: SoftwareTpm) {}

  /** Creates EK and SRK at their persistent handles unless present (what the SDKs do on connect). */
  provision(): void {
    for (const [hierarchy, handle, template] of [
      [TPM_RH.ENDORSEMENT, EK_HANDLE, EK_TEMPLATE],
      [TPM_RH.OWNER, SRK_HANDLE, SRK_TEMPLATE],
    ] as const) {
      try {
        this.tpm.readPublic(handle)
        continue
      } catch {
        // not yet created
      }
      const transient = this.tpm.createPrimary(hierarchy, template)
      this.tpm.evictControl(TPM_RH.OWNER, transient, handle)
      this.tpm.flushContext(transient)
    }
  }

  /** TPM2B_PUBLIC of the EK, the bytes DPS receives base64-encoded (§1.2). */
  endorsementKey(): Uint8Array {
    this.provision()
    return marshalTpm2bPublic(this.tpm.readPublic(EK_HANDLE).public)
  }

  /** TPM2B_PUBLIC of the SRK. */
  storageRootKey(): Uint8Array {
    this.provision()
    return marshalTpm2bPublic(this.tpm.readPublic(SRK_HANDLE).public)
  }

  /**
   * Activates an activation blob (§5.5): PolicySecret(endorsement) session for the EK,
   * ActivateCredential(SRK, EK), Import under the SRK with the recovered inner key, Load, and
   * persist at ID_KEY_HANDLE (replacing an earlier identity key).
   */
  activate(blob: Uint8Array): void {
    this.provision()
    const parts = parseActivationBlob(blob)
    const session = this.tpm.startPolicySession()
    try {
      this.tpm.policySecret(TPM_RH.ENDORSEMENT, session.handle)
      const ek = this.tpm.readPublic(EK_HANDLE).public
      if (!bytesEqual(this.tpm.policyDigest(session.handle), ek.authPolicy)) {
        throw new TpmError('TPM_INVALID', 'the policy session does not satisfy the EK authPolicy')
      }
      const innerKey = this.tpm.activateCredential(SRK_HANDLE, EK_HANDLE, parts.credentialBlob, parts.secret)
      const symmetric = { algorithm: TPM_ALG.AES, keyBits: innerKey.length * 8, mode: TPM_ALG.CFB }
      const priv = this.tpm.importObject(SRK_HANDLE, innerKey, parts.idKeyPublic, parts.duplicate, parts.inSymSeed, symmetric)
      const loaded = this.tpm.load(SRK_HANDLE, priv, parts.idKeyPublic)
      try {
        this.tpm.evictControl(TPM_RH.OWNER, ID_KEY_HANDLE, ID_KEY_HANDLE)
      } catch {
        // no earlier identity key
      }
      this.tpm.evictControl(TPM_RH.OWNER, loaded.handle, ID_KEY_HANDLE)
      this.tpm.flushContext(loaded.handle)
    } finally {
      this.tpm.flushContext(session.handle)
    }
  }

  /** HMAC-SHA256 with the imported identity key (the SAS signature, §5.5). */
  sign(data: Uint8Array): Uint8Array {
    return this.tpm.hmac(ID_KEY_HANDLE, data)
  }
}
