/**
 * @provisio/tpm — TPM 2.0 for DPS: structures, object Names, EK/SRK checks, the activation blob in
 * software, a software TPM (docs/protocol.md §5).
 */
export { TpmError, isTpmError, type TpmErrorCode } from './errors.js'
export { TpmReader, TpmWriter, concat, sized, bytesEqual } from './marshal.js'
export {
  TPM_ALG,
  TPMA_OBJECT,
  TPM_LIMITS,
  readTpmtPublic,
  writeTpmtPublic,
  marshalTpmtPublic,
  marshalTpm2bPublic,
  parseTpmtPublic,
  parseTpm2bPublic,
  readTpm2bPublic,
  objectName,
  marshalTpmtSensitive,
  parseTpmtSensitive,
  rsaExponent,
  type SymDef,
  type RsaParms,
  type KeyedHashParms,
  type RsaPublic,
  type KeyedHashPublic,
  type TpmtPublic,
  type TpmtSensitive,
} from './structures.js'
export {
  EK_AUTH_POLICY_SHA256,
  decodeTpm2bPublicBase64,
  checkEndorsementKey,
  checkStorageRootKey,
  sameEndorsementKey,
  base32Lower,
  defaultRegistrationId,
} from './ek.js'
export {
  DUPLICATE_POLICY_SHA256,
  ACTIVATION_BLOB_MAX_BYTES,
  protectWithSeed,
  unprotectWithSeed,
  makeCredential,
  identityKey,
  duplicate,
  marshalActivationBlob,
  parseActivationBlob,
  buildActivationBlob,
  type RandomBytes,
  type Credential,
  type IdentityKey,
  type Duplicate,
  type ActivationBlobParts,
  type ActivationBlobInput,
} from './blob.js'
export { SoftwareTpm, type SoftwareTpmOptions } from './software-tpm.js'
export { TpmCommandError, TPM_CC, TPM_RC, TPM_RH, TPM_ST, MAX_COMMAND_SIZE } from './tpm-codes.js'
export { EK_TEMPLATE, SRK_TEMPLATE, EK_HANDLE, SRK_HANDLE, ID_KEY_HANDLE, TpmDevice } from './device.js'
export { generateRsaKey, rsaOaepDecrypt, type RsaPrivateKey } from './rsa-private.js'
export { TPM_SIMULATOR, TPM_SIMULATOR_VERSION, uint32s, encodeSendCommand, encodeSendCommandAnswer } from './simulator-protocol.js'
