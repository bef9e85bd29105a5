/**
 * @provisio/crypto — the WebAssembly crypto core of Provisio.
 *
 * Synchronous in Node right after import. In a browser main thread, `await ready()` first.
 */
export { ready, configure, usingSimd } from './wasm.js'
export { CryptoError, type CryptoErrorCode } from './errors.js'
