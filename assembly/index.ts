// Entry point of Provisio's WebAssembly crypto core. Compiled twice by build.mjs (scalar and
// SIMD, same exports); `ASC_FEATURE_SIMD` tells the sources which build they are in.
//
// Boundary rules (docs/architecture.md §10): no managed objects cross the boundary and nothing is
// allocated per call. The module owns a static I/O window; JS writes inputs into it through a
// typed-array view it builds once, calls an export with offsets and lengths, and reads results
// back from the window. Every export returns plain numbers (i32 status codes or lengths).

export { IO_SIZE, ioPtr, HAS_SIMD } from './io'
export { sha256, sha256Init, sha256Update, sha256Final, CTX256_SIZE } from './sha256'
export { sha512, sha512Init, sha512Update, sha512Final, CTX512_SIZE } from './sha512'
export {
  hmacKeyInit, hmacKeyInitB64, hmacSlots, hmacSha256, hmacMac, hmacMacB64, hmacSha256B64,
  hmacVerifyB64, hmacSha256VerifyB64, hmacVerify, HMAC_STATE_SIZE, HMAC_SLOT_COUNT,
} from './hmac'
export { deriveKeys } from './derive'
export { base64Encode, base64Decode } from './base64'
export { timingSafeEqual } from './ct'
export { hashScratch } from './scratch'
export { ecLoadPoint, ecdsaVerify } from './ecc'
export { rsaLoadKey, rsaPublic, rsaKeyState, rsaKeyStateSize, rsaKeyRestore } from './bignum'
export { aesCfb } from './aes'
