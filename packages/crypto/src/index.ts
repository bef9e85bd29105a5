/**
 * @provisio/crypto — the WebAssembly crypto core of Provisio.
 *
 * Synchronous in Node right after import. In a browser main thread, `await ready()` first.
 */
export { ready, configure, usingSimd } from './wasm.js'
export { CryptoError, type CryptoErrorCode } from './errors.js'
export {
  sha256, sha384, sha512, sha256Into, sha384Into, sha512Into, createSha256, createSha384, createSha512,
  type Hasher,
} from './hash.js'
export {
  hmacSha256, hmacSha256Into, hmacSha256Base64, verifyHmacSha256Base64, createHmacSha256Key, type HmacSha256Key,
} from './hmac.js'
export { deriveDeviceKey, deriveDeviceKeys, deriveDeviceKeysInto } from './derive.js'
export { base64Encode, base64Decode, base64UrlEncode, base64UrlDecode } from './base64.js'
export { utf8Encode, utf8Decode } from './utf8.js'
export { timingSafeEqual } from './compare.js'
export {
  verifyRsaPkcs1v15, verifyRsaPss, rsaOaepEncrypt, type RsaKeyInput, type OaepOptions, type RandomSource,
} from './rsa.js'
export { verifyEcdsa, type EcdsaSignatureFormat, type EcKeyInput } from './ecdsa.js'
export {
  RsaPublicKey, EcPublicKey, rsaPublicKey, ecPublicKey, type CurveName, type RsaPssKeyParams,
} from './pk-keys.js'
export { publicKeyFromSpki, rsaPublicKeyFromSpki, ecPublicKeyFromSpki, type PublicKey } from './spki.js'
export { aesCfbEncrypt, aesCfbDecrypt } from './aes.js'
export { kdfa } from './kdfa.js'
export type { HashName } from './pk-hash.js'
