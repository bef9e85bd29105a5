/** UTF-8 conversions (WHATWG Encoding: TextEncoder / TextDecoder, available in every runtime). */
import { assertBytes, assertString, CryptoError } from './errors.js'

const encoder = new TextEncoder()
// fatal: malformed UTF-8 is an error, not silently replaced; ignoreBOM: a leading U+FEFF is data.
const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** UTF-8 bytes of `text` (lone surrogates become U+FFFD, as in every platform encoder). */
export function utf8Encode(text: string): Uint8Array {
  assertString(text, 'text')
  return encoder.encode(text)
}

/** Decodes UTF-8; throws CRYPTO_INVALID_ARGUMENT if `bytes` is not well-formed UTF-8. */
export function utf8Decode(bytes: Uint8Array): string {
  assertBytes(bytes, 'bytes')
  try {
    return strict.decode(bytes)
  } catch (cause) {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'bytes are not well-formed UTF-8 (WHATWG Encoding, fatal mode)', { cause })
  }
}
