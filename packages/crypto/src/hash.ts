/**
 * SHA-256, SHA-384 and SHA-512 (FIPS 180-4) on the WASM core: one-shot, `…Into(out)` and
 * incremental hashers. Inputs up to the I/O window go through one call; larger ones stream
 * through it in window-sized slices.
 */
import { assertBytes, CryptoError } from './errors.js'
import { copyIn, copyOut, core, memory } from './core.js'

/** An incremental hash. `update` may be called any number of times, then `digest` once. */
export interface Hasher {
  /** Absorbs `data`; returns the same hasher for chaining. */
  update(data: Uint8Array): this
  /** Finishes and returns the digest; the hasher cannot be used afterwards. */
  digest(): Uint8Array
}

// kind codes of the WASM exports: family 256 → 0 = SHA-256; family 512 → 0 = SHA-512, 1 = SHA-384.
type Alg = 0 | 1 | 2
const Alg = { Sha256: 0, Sha384: 1, Sha512: 2 } as const
const SIZE = [32, 48, 64] as const
const CTX_SIZE = [128, 256, 256] as const
const NAME = ['SHA-256', 'SHA-384', 'SHA-512'] as const

function digestInto(alg: Alg, data: Uint8Array, out: Uint8Array): void {
  const c = core()
  const m = memory()
  const n = data.length
  const o = c.io + c.cap - 64
  if (n <= c.cap - 64) {
    copyIn(m, data, c.io)
    if (alg === Alg.Sha256) c.sha256(c.io, n, o)
    else c.sha512(c.io, n, o, alg === Alg.Sha384 ? 1 : 0)
  } else {
    const ctx = c.scratch
    init(alg, ctx)
    feed(alg, ctx, data)
    final(alg, ctx, o)
  }
  copyOut(m, o, out, SIZE[alg])
}

function init(alg: Alg, ctx: number): void {
  const c = core()
  if (alg === Alg.Sha256) c.sha256Init(ctx, 0)
  else c.sha512Init(ctx, alg === Alg.Sha384 ? 1 : 0)
}

/** Feeds data through the I/O window into the context at ctx. */
function feed(alg: Alg, ctx: number, data: Uint8Array): void {
  const c = core()
  const m = memory()
  const update = alg === Alg.Sha256 ? c.sha256Update : c.sha512Update
  for (let i = 0; i < data.length; i += c.cap) {
    const part = data.length - i < c.cap ? data.length - i : c.cap
    if (i === 0 && part === data.length) copyIn(m, data, c.io)
    else m.set(data.subarray(i, i + part), c.io)
    update(ctx, c.io, part)
  }
}

function final(alg: Alg, ctx: number, out: number): void {
  const c = core()
  if (alg === Alg.Sha256) c.sha256Final(ctx, out, 0)
  else c.sha512Final(ctx, out, alg === Alg.Sha384 ? 1 : 0)
}

function oneShot(alg: Alg, data: Uint8Array): Uint8Array {
  assertBytes(data, 'data')
  const out = new Uint8Array(SIZE[alg])
  digestInto(alg, data, out)
  return out
}

function into(alg: Alg, data: Uint8Array, out: Uint8Array): Uint8Array {
  assertBytes(data, 'data')
  assertBytes(out, 'out', SIZE[alg])
  digestInto(alg, data, out)
  return out
}

/** SHA-256 digest (32 bytes) of `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  return oneShot(Alg.Sha256, data)
}

/** SHA-384 digest (48 bytes) of `data`. */
export function sha384(data: Uint8Array): Uint8Array {
  return oneShot(Alg.Sha384, data)
}

/** SHA-512 digest (64 bytes) of `data`. */
export function sha512(data: Uint8Array): Uint8Array {
  return oneShot(Alg.Sha512, data)
}

/** SHA-256 of `data` written into `out` (exactly 32 bytes); returns `out`. Allocation-free. */
export function sha256Into(data: Uint8Array, out: Uint8Array): Uint8Array {
  return into(Alg.Sha256, data, out)
}

/** SHA-384 of `data` written into `out` (exactly 48 bytes); returns `out`. */
export function sha384Into(data: Uint8Array, out: Uint8Array): Uint8Array {
  return into(Alg.Sha384, data, out)
}

/** SHA-512 of `data` written into `out` (exactly 64 bytes); returns `out`. */
export function sha512Into(data: Uint8Array, out: Uint8Array): Uint8Array {
  return into(Alg.Sha512, data, out)
}

/**
 * Incremental hasher. Its context (chaining state, length, partial block) is a JS-side copy,
 * so any number of hashers can be open at once; each update loads it into the core's scratch
 * context, streams the data through the I/O window, and saves it back.
 */
class Sha2Hasher implements Hasher {
  readonly #alg: Alg
  readonly #ctx: Uint8Array
  #done = false

  constructor(alg: Alg) {
    this.#alg = alg
    this.#ctx = new Uint8Array(CTX_SIZE[alg])
    const c = core()
    init(alg, c.scratch)
    this.#save()
  }

  update(data: Uint8Array): this {
    assertBytes(data, 'data')
    this.#check()
    const c = core()
    memory().set(this.#ctx, c.scratch)
    feed(this.#alg, c.scratch, data)
    this.#save()
    return this
  }

  digest(): Uint8Array {
    this.#check()
    this.#done = true
    const c = core()
    const m = memory()
    m.set(this.#ctx, c.scratch)
    const o = c.io + c.cap - 64
    final(this.#alg, c.scratch, o)
    this.#ctx.fill(0)
    return m.slice(o, o + SIZE[this.#alg])
  }

  #save(): void {
    const c = core()
    copyOut(memory(), c.scratch, this.#ctx, this.#ctx.length)
  }

  #check(): void {
    if (this.#done) {
      throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `this ${NAME[this.#alg]} hasher is finished: digest() was already called`)
    }
  }
}

/** A new incremental SHA-256 hasher. */
export function createSha256(): Hasher {
  return new Sha2Hasher(Alg.Sha256)
}

/** A new incremental SHA-384 hasher. */
export function createSha384(): Hasher {
  return new Sha2Hasher(Alg.Sha384)
}

/** A new incremental SHA-512 hasher. */
export function createSha512(): Hasher {
  return new Sha2Hasher(Alg.Sha512)
}
