/**
 * Loader of the WebAssembly core. The module bytes are embedded (src/generated/wasm.ts, made
 * from assembly/ at build time), so loading needs no filesystem and no fetch.
 *
 * - Node and workers: the first call instantiates synchronously; nothing to await.
 * - Browser main threads refuse synchronous compilation of modules over 4 KB: call
 *   `await ready()` once before the first use.
 *
 * The SIMD build is chosen when `WebAssembly.validate` accepts it, unless `configure({ simd })`
 * said otherwise before first use.
 */
import { WASM_SCALAR, WASM_SIMD } from './generated/wasm.js'
import { CryptoError } from './errors.js'

/** Exports shared by both builds. Feature modules widen this with their own functions. */
export interface CoreExports {
  readonly memory: WebAssembly.Memory
  readonly IO_SIZE: WebAssembly.Global
  readonly HAS_SIMD: WebAssembly.Global
  ioPtr(): number
  // Feature exports are looked up by name through `fn()`.
  readonly [name: string]: unknown
}

let core: CoreExports | undefined
let simdPreference: boolean | undefined
let pending: Promise<void> | undefined

/** Live views over the module's memory; rebuilt whenever memory.grow detaches the old buffer. */
let u8 = new Uint8Array(0)
let ioBase = 0
let ioSize = 0

/** Choose the build before first use. `simd: false` forces the scalar build. */
export function configure(options: { simd?: boolean }): void {
  if (core) throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'configure() must be called before the WASM core is first used')
  simdPreference = options.simd
}

/** Resolves once the WASM core is instantiated. Required before first use on a browser main thread. */
export function ready(): Promise<void> {
  if (core) return Promise.resolve()
  pending ??= (async () => {
    const module = await WebAssembly.compile(moduleBytes())
    install(new WebAssembly.Instance(module, imports()))
  })()
  return pending
}

/** The instantiated core, instantiating synchronously on first use. */
export function wasm(): CoreExports {
  return core ?? instantiateSync()
}

/** Whether the running core is the SIMD build. */
export function usingSimd(): boolean {
  return (wasm().HAS_SIMD.value as number) === 1
}

/** Uint8Array over the whole linear memory (rebuilt if memory grew). */
export function memory(): Uint8Array {
  // Growing a non-shared WebAssembly.Memory detaches the old buffer, which drops every view
  // over it to length 0: a cheaper test on hot paths than comparing buffers.
  if (u8.length === 0) u8 = new Uint8Array(wasm().memory.buffer)
  return u8
}

/** Byte offset of the static I/O window inside memory(). */
export function ioOffset(): number {
  if (!core) wasm()
  return ioBase
}

/** Size of the static I/O window in bytes. */
export function ioCapacity(): number {
  wasm()
  return ioSize
}

/** Look up a feature export by name; throws if the build lacks it. */
export function fn<F extends (...args: never[]) => unknown>(name: string): F {
  const f = wasm()[name]
  if (typeof f !== 'function') throw new CryptoError('CRYPTO_WASM_FAILURE', `the WASM core has no export "${name}"`)
  return f as F
}

function instantiateSync(): CoreExports {
  let module: WebAssembly.Module
  try {
    module = new WebAssembly.Module(moduleBytes())
  } catch (cause) {
    throw new CryptoError(
      'CRYPTO_NOT_READY',
      'the WASM core could not be compiled synchronously here (browser main thread?): call `await ready()` from @provisio/crypto first',
      { cause },
    )
  }
  return install(new WebAssembly.Instance(module, imports()))
}

function install(instance: WebAssembly.Instance): CoreExports {
  const c = instance.exports as unknown as CoreExports
  core = c
  ioBase = c.ioPtr()
  ioSize = c.IO_SIZE.value as number
  u8 = new Uint8Array(c.memory.buffer)
  return c
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  if (simdPreference !== false) {
    const simd = decodeEmbedded(WASM_SIMD)
    if (WebAssembly.validate(simd)) return simd
    if (simdPreference === true) throw new CryptoError('CRYPTO_UNSUPPORTED', 'the SIMD build was requested but this runtime does not support WebAssembly SIMD')
  }
  return decodeEmbedded(WASM_SCALAR)
}

function imports(): WebAssembly.Imports {
  return {
    env: {
      abort(): never {
        throw new CryptoError('CRYPTO_WASM_FAILURE', 'the WASM core aborted')
      },
    },
  }
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/** Minimal base64 decoder for the embedded module (trusted input, no validation needed). */
function decodeEmbedded(text: string): Uint8Array<ArrayBuffer> {
  const lookup = new Uint8Array(128)
  for (let i = 0; i < 64; i++) lookup[B64.charCodeAt(i)] = i
  let len = text.length
  while (len > 0 && text.charCodeAt(len - 1) === 61) len--
  const out = new Uint8Array(Math.floor((len * 3) / 4))
  let acc = 0
  let bits = 0
  let o = 0
  for (let i = 0; i < len; i++) {
    acc = (acc << 6) | lookup[text.charCodeAt(i)]!
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >>> bits) & 0xff
    }
  }
  return out
}
