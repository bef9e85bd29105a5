/**
 * AES-128 / AES-256 in CFB-128 mode (NIST SP 800-38A §6.3), the symmetric mode TPM 2.0 uses for
 * parameter encryption and credential/duplication blobs (TPM 2.0 Part 1 §11.4.11, §24.5). The
 * key length picks the variant. A final partial block is encrypted with the leading bytes of the
 * keystream, so the output always has the input's length.
 */
import { CryptoError, assertBytes } from './errors.js'
import { fn, ioCapacity, ioOffset, memory } from './wasm.js'

type AesCfbFn = (key: number, keyLen: number, iv: number, data: number, len: number, decrypt: number) => number

function cfb(key: Uint8Array, iv: Uint8Array, data: Uint8Array, decrypt: number): Uint8Array {
  assertBytes(key, 'key')
  if (key.length !== 16 && key.length !== 32) {
    throw new CryptoError('CRYPTO_INVALID_LENGTH', `key must be 16 bytes (AES-128) or 32 bytes (AES-256), got ${key.length}`)
  }
  assertBytes(iv, 'iv', 16)
  assertBytes(data, 'data')
  const run = fn<AesCfbFn>('aesCfb')
  const io = ioOffset()
  const keyAt = io
  const ivAt = io + 32
  const dataAt = io + 64
  // whole blocks per slice: the WASM side leaves the chaining block in the IV slot
  const slice = (ioCapacity() - 64) & ~15
  const out = new Uint8Array(data.length)
  let mem = memory()
  mem.set(key, keyAt)
  mem.set(iv, ivAt)
  for (let off = 0; off < data.length || off === 0; off += slice) {
    const n = Math.min(slice, data.length - off)
    mem = memory()
    mem.set(data.subarray(off, off + n), dataAt)
    run(keyAt, key.length, ivAt, dataAt, n, decrypt)
    mem = memory()
    out.set(mem.subarray(dataAt, dataAt + n), off)
    if (n === 0) break
  }
  // scrub the key from the shared window
  memory().fill(0, keyAt, keyAt + 32)
  return out
}

/**
 * AES-CFB-128 encryption.
 * @param key 16 (AES-128) or 32 (AES-256) bytes
 * @param iv 16 bytes
 * @param data plaintext of any length
 * @returns ciphertext of the same length
 */
export function aesCfbEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  return cfb(key, iv, data, 0)
}

/** AES-CFB-128 decryption; same parameters as aesCfbEncrypt. */
export function aesCfbDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  return cfb(key, iv, data, 1)
}
