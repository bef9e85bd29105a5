// Writes assembly/generated/sha2-core.ts: the fully unrolled SHA-256 / SHA-512 compression functions
// (scalar, plus a 4-lane SHA-256 for the SIMD build). Unrolling by hand would be 300 lines of
// near-identical rounds where one typo is a silent wrong hash, so this script emits them from one
// description of a round. build.mjs runs this before every compile; the output is never committed.
//
// Constants are not typed in: they are computed here exactly as FIPS 180-4 defines them
// (sections 4.2.2, 4.2.3, 5.3.3, 5.3.4, 5.3.5), with BigInt integer roots so no float rounding.
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

function primes(n) {
  const out = []
  for (let p = 2; out.length < n; p++) {
    if (out.every((q) => p % q !== 0)) out.push(p)
  }
  return out
}

/** floor(x^(1/k)) for a BigInt x, by Newton iteration. */
function iroot(x, k) {
  const K = BigInt(k)
  let r = 1n << BigInt(Math.ceil(x.toString(2).length / k) + 1)
  for (;;) {
    const next = ((K - 1n) * r + x / r ** (K - 1n)) / K
    if (next >= r) break
    r = next
  }
  while ((r + 1n) ** K <= x) r++
  while (r ** K > x) r--
  return r
}

/** First `bits` bits of the fractional part of p^(1/k). */
function frac(p, k, bits) {
  const scaled = iroot(BigInt(p) << BigInt(bits * k), k)
  return scaled & ((1n << BigInt(bits)) - 1n)
}

const P = primes(80)
const K256 = P.slice(0, 64).map((p) => frac(p, 3, 32))
const H256 = P.slice(0, 8).map((p) => frac(p, 2, 32))
const K512 = P.slice(0, 80).map((p) => frac(p, 3, 64))
const H512 = P.slice(0, 8).map((p) => frac(p, 2, 64))
const H384 = P.slice(8, 16).map((p) => frac(p, 2, 64))
// SHA-224 IV (FIPS 180-4 5.3.2) is the low 32 bits of the 9th..16th square-root fractions.
const H224 = H384.map((v) => v & 0xffffffffn)

const hex32 = (v) => '0x' + v.toString(16).padStart(8, '0')

const V = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']
/** Variable playing role r (0 = a … 7 = h) in round t: roles rotate instead of values moving. */
const role = (t, r) => V[(r - t + 64 * 8) % 8]

// Σ and σ can be written flat, rotr(x,p) ^ rotr(x,q) ^ rotr(x,r), or nested,
// rotr(rotr(rotr(x, r-q) ^ x, q-p) ^ x, p): the same number of operations, but the nested form
// works on one temporary, so on two-operand x86 the engine needs no register copies of x. Measured
// on V8 x64: about 20% faster single-stream SHA-256 (the trick x86 assembly SHA-2 uses).
function rounds(count, { rot, add, xor, and, or, shr, K, big, nest }) {
  const NEST = nest
  const [S0a, S0b, S0c, S1a, S1b, S1c, s0a, s0b, s0c, s1a, s1b, s1c] = big
    ? [28, 34, 39, 14, 18, 41, 1, 8, 7, 19, 61, 6]
    : [2, 13, 22, 6, 11, 25, 7, 18, 3, 17, 19, 10]
  const lines = []
  for (let t = 0; t < count; t++) {
    const [A, B, C, D, E, F, G, H] = V.map((_, r) => role(t, r))
    const w = `w${t % 16}`
    if (t >= 16) {
      const w2 = `w${(t - 2) % 16}`
      const w7 = `w${(t - 7) % 16}`
      const w15 = `w${(t - 15) % 16}`
      const s1 = NEST ? xor(rot(xor(rot(w2, s1b - s1a), w2), s1a), shr(w2, s1c)) : xor(xor(rot(w2, s1a), rot(w2, s1b)), shr(w2, s1c))
      const s0 = NEST ? xor(rot(xor(rot(w15, s0b - s0a), w15), s0a), shr(w15, s0c)) : xor(xor(rot(w15, s0a), rot(w15, s0b)), shr(w15, s0c))
      lines.push(`    ${w} = ${add(add(s1, w7), add(s0, w))}`)
    }
    // T1 = h + Σ1(e) + Ch(e,f,g) + K + W; T2 = Σ0(a) + Maj(a,b,c)  (FIPS 180-4 6.2.2 / 6.4.2).
    // Ch(e,f,g) = g ^ (e & (f ^ g)). Maj(a,b,c) = ((a ^ b) & (b ^ c)) ^ b, and this round's b ^ c
    // is the previous round's a ^ b, kept in x0/x1: one operation fewer per round.
    // T1 is summed so that Σ1(e) comes last: h + W + K + Ch does not wait for Σ1, which shortens
    // the e → e' dependency chain that bounds the speed of one SHA-2 stream.
    const nest3 = (x, p, q, r) => rot(xor(rot(xor(rot(x, r - q), x), q - p), x), p)
    const S1 = NEST ? nest3(E, S1a, S1b, S1c) : xor(xor(rot(E, S1a), rot(E, S1b)), rot(E, S1c))
    const ch = xor(G, and(E, xor(F, G)))
    const S0 = NEST ? nest3(A, S0a, S0b, S0c) : xor(xor(rot(A, S0a), rot(A, S0b)), rot(A, S0c))
    const cur = `x${t % 2}`
    const prev = `x${(t + 1) % 2}`
    lines.push(`    ${cur} = ${xor(A, B)}`)
    const maj = xor(and(cur, prev), B)
    lines.push(`    t1 = ${add(S1, add(add(H, add(w, K(t))), ch))}`)
    lines.push(`    ${D} = ${add(D, 't1')}`)
    lines.push(`    ${H} = ${add('t1', add(S0, maj))}`)
  }
  return lines.join('\n')
}

const scalar32 = {
  rot: (x, n) => `rotr<u32>(${x}, ${n})`,
  add: (x, y) => `(${x} + ${y})`,
  xor: (x, y) => `(${x} ^ ${y})`,
  and: (x, y) => `(${x} & ${y})`,
  or: (x, y) => `(${x} | ${y})`,
  shr: (x, n) => `(${x} >>> ${n})`,
  K: (t) => `<u32>${hex32(K256[t])}`,
  big: false,
  nest: true,
}
const scalar64 = {
  rot: (x, n) => `rotr<u64>(${x}, ${n})`,
  add: (x, y) => `(${x} + ${y})`,
  xor: (x, y) => `(${x} ^ ${y})`,
  and: (x, y) => `(${x} & ${y})`,
  or: (x, y) => `(${x} | ${y})`,
  shr: (x, n) => `(${x} >>> ${n})`,
  // u64 literals above 2^63 are written as two halves so no literal parser can sign-mangle them.
  K: (t) => `((<u64>${hex32(K512[t] >> 32n)} << 32) | <u64>${hex32(K512[t] & 0xffffffffn)})`,
  big: true,
  nest: true,
}
const simd32 = {
  rot: (x, n) => `v128.or(i32x4.shr_u(${x}, ${n}), i32x4.shl(${x}, ${32 - n}))`,
  add: (x, y) => `i32x4.add(${x}, ${y})`,
  xor: (x, y) => `v128.xor(${x}, ${y})`,
  and: (x, y) => `v128.and(${x}, ${y})`,
  or: (x, y) => `v128.or(${x}, ${y})`,
  shr: (x, n) => `i32x4.shr_u(${x}, ${n})`,
  K: (t) => `i32x4.splat(${hex32(K256[t])})`,
  big: false,
  // Nesting saves register copies, not operations; with rotates emulated by shifts it only
  // lengthens the chain (measured: no gain), so the 4-lane form keeps the flat Σ.
  nest: false,
}

const majInit = (type, ops) => `  let x0: ${type}\n  let x1: ${type} = ${ops.xor('b', 'c')}\n`

// SIMD build: byte-swap four words per shuffle, then take the lanes out.
const loads32simd = `  let w0: u32, w1: u32, w2: u32, w3: u32, w4: u32, w5: u32, w6: u32, w7: u32
  let w8: u32, w9: u32, w10: u32, w11: u32, w12: u32, w13: u32, w14: u32, w15: u32
  if (ASC_FEATURE_SIMD) {
${[0, 1, 2, 3].map((q) => `    const q${q} = i8x16.shuffle(v128.load(blk, ${q * 16}), v128.load(blk, ${q * 16}), 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12)
${[0, 1, 2, 3].map((l) => `    w${q * 4 + l} = i32x4.extract_lane(q${q}, ${l})`).join('\n')}`).join('\n')}
  } else {
${Array.from({ length: 16 }, (_, i) => `    w${i} = bswap<u32>(load<u32>(blk, ${i * 4}))`).join('\n')}
  }`

const loads64 = Array.from({ length: 16 }, (_, i) => `  let w${i}: u64 = bswap<u64>(load<u64>(blk, ${i * 8}))`).join('\n')
const loadsX4 = Array.from({ length: 16 }, (_, i) => `  let w${i}: v128 = v128.load(blk, ${i * 16})`).join('\n')

const state = (type, size, loadFn) =>
  V.map((v, i) => `  let ${v}: ${type} = ${loadFn(`st`, i * size)}`).join('\n')
const addBack = (size, storeFn) => V.map((v, i) => `  ${storeFn('st', v, i * size)}`).join('\n')

const src = `// GENERATED by assembly/gen-sha2.mjs — edit that script, then run \`node assembly/gen-sha2.mjs\`.
// Fully unrolled SHA-2 compression functions (FIPS 180-4 sections 6.2.2 and 6.4.2). The eight
// working variables and the sixteen-word message schedule window live in locals; the roles a..h
// rotate between rounds instead of values being moved. Constants are computed by the generator
// from the prime roots FIPS 180-4 section 4.2 specifies.

// ---- initial hash values (FIPS 180-4 5.3.2 - 5.3.5) ----

/** Writes the SHA-256 initial hash value (8 native-endian u32) at st. */
@inline export function iv256(st: usize): void {
${H256.map((v, i) => `  store<u32>(st, ${hex32(v)}, ${i * 4})`).join('\n')}
}

/** Writes the SHA-224 initial hash value at st. */
@inline export function iv224(st: usize): void {
${H224.map((v, i) => `  store<u32>(st, ${hex32(v)}, ${i * 4})`).join('\n')}
}

/** Writes the SHA-512 initial hash value (8 native-endian u64) at st. */
@inline export function iv512(st: usize): void {
${H512.map((v, i) => `  store<u64>(st, (<u64>${hex32(v >> 32n)} << 32) | <u64>${hex32(v & 0xffffffffn)}, ${i * 8})`).join('\n')}
}

/** Writes the SHA-384 initial hash value at st. */
@inline export function iv384(st: usize): void {
${H384.map((v, i) => `  store<u64>(st, (<u64>${hex32(v >> 32n)} << 32) | <u64>${hex32(v & 0xffffffffn)}, ${i * 8})`).join('\n')}
}

// ---- SHA-256 ----

/** One SHA-256 compression: state (8 native u32 at st) absorbs the 64-byte block at blk. */
export function compress256(st: usize, blk: usize): void {
${state('u32', 4, (p, o) => `load<u32>(${p}, ${o})`)}
${loads32simd}
  let t1: u32
${majInit('u32', scalar32)}${rounds(64, scalar32)}
${addBack(4, (p, v, o) => `store<u32>(${p}, load<u32>(${p}, ${o}) + ${v}, ${o})`)}
}

/**
 * Four independent SHA-256 compressions at once (SIMD build only). st holds eight v128, lane j
 * of vector i being word i of state j; blk holds sixteen v128, lane j of vector t being message
 * word t (already big-endian-decoded) of block j.
 */
export function compress256x4(st: usize, blk: usize): void {
${state('v128', 16, (p, o) => `v128.load(${p}, ${o})`)}
${loadsX4}
  let t1: v128
${majInit('v128', simd32)}${rounds(64, simd32)}
${addBack(16, (p, v, o) => `v128.store(${p}, i32x4.add(v128.load(${p}, ${o}), ${v}), ${o})`)}
}

// ---- SHA-512 / SHA-384 ----

/** One SHA-512 compression: state (8 native u64 at st) absorbs the 128-byte block at blk. */
export function compress512(st: usize, blk: usize): void {
${state('u64', 8, (p, o) => `load<u64>(${p}, ${o})`)}
${loads64}
  let t1: u64
${majInit('u64', scalar64)}${rounds(80, scalar64)}
${addBack(8, (p, v, o) => `store<u64>(${p}, load<u64>(${p}, ${o}) + ${v}, ${o})`)}
}
`

mkdirSync(join(here, 'generated'), { recursive: true })
writeFileSync(join(here, 'generated', 'sha2-core.ts'), src)
console.log('wrote assembly/sha2-core.ts')
