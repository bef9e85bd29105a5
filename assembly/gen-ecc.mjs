// Generates assembly/generated/p256.ts and p384.ts: fully unrolled Montgomery multiplication,
// squaring, addition and subtraction for the NIST P-256 and P-384 base fields and their group
// orders, plus the curve constants (FIPS 186-5 / SP 800-186 §3.2.1.3, §3.2.1.4) in limb form.
//
// Why generated: a loop over 9 or 14 limbs spends as much on indices and branches as on the
// multiplies; unrolled straight-line code keeps every limb in a local. build.mjs runs this before every compile; the output is never
// committed.
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const W = 29 // limb bits: 58-bit products, 28 of them plus a carry still fit a u64 column
const MASK = (1n << BigInt(W)) - 1n
/** Field elements occupy 16 u32 slots (64 bytes) whatever the curve, so one stride serves both. */
const SLOTS = 16

const curves = [
  {
    name: 'p256',
    bits: 256,
    limbs: 9,
    p: 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
    gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
  },
  {
    name: 'p384',
    bits: 384,
    limbs: 14,
    p: 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    gx: 0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7n,
    gy: 0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5fn,
  },
]

const limbsOf = (v, count) => {
  const out = []
  for (let i = 0; i < count; i++) {
    out.push(v & MASK)
    v >>= BigInt(W)
  }
  if (v !== 0n) throw new Error('value does not fit')
  return out
}
const modpow = (b, e, m) => {
  let r = 1n
  b %= m
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m
    b = (b * b) % m
    e >>= 1n
  }
  return r
}
const hexU32 = (v) => '0x' + v.toString(16)
const limbData = (v, L) => {
  const l = limbsOf(v, L).concat(Array(SLOTS - L).fill(0n))
  return `memory.data<u32>([${l.map(hexU32).join(', ')}])`
}
const byteData = (v, len) => {
  const b = []
  for (let i = len - 1; i >= 0; i--) b.push(Number((v >> BigInt(8 * i)) & 0xffn))
  return `memory.data<u8>([${b.join(', ')}])`
}

/**
 * Montgomery product (finely integrated product scanning): columns of a*b and m*mod are summed
 * together; m_i makes column i vanish mod 2^W. For the primes, -p^-1 = 1 mod 2^W (both are
 * -1 mod 2^32), so m_i is just the low limb of the column.
 */
function genMul(fname, L, mod, sqr) {
  // -mod^-1 mod 2^W by Newton iteration (each step doubles the number of correct bits)
  let inv = 1n
  for (let i = 0; i < 6; i++) inv = (inv * (2n - mod * inv)) & MASK
  const n0inv = (-inv) & MASK
  const pl = limbsOf(mod, L)
  const lines = []
  const sig = sqr ? `(r: usize, a: usize): void` : `(r: usize, a: usize, b: usize): void`
  lines.push(`export function ${fname}${sig} {`)
  for (let i = 0; i < L; i++) lines.push(`  const a${i} = <u64>i64.load32_u(a, ${i * 4})`)
  if (!sqr) for (let i = 0; i < L; i++) lines.push(`  const b${i} = <u64>i64.load32_u(b, ${i * 4})`)
  lines.push(`  let t: u64 = 0`)
  const B = (k) => (sqr ? `a${k}` : `b${k}`)
  const prodTerms = (i) => {
    const lo = Math.max(0, i - L + 1)
    const hi = Math.min(i, L - 1)
    if (!sqr) {
      const terms = []
      for (let j = lo; j <= hi; j++) terms.push(`a${j} * ${B(i - j)}`)
      return terms.length ? `t += ${terms.join(' + ')}` : ''
    }
    const pairs = []
    for (let j = lo; j <= hi && j < i - j; j++) pairs.push(`a${j} * a${i - j}`)
    const parts = []
    if (pairs.length) parts.push(`((${pairs.join(' + ')}) << 1)`)
    if (i % 2 === 0 && i / 2 <= hi && i / 2 >= lo) parts.push(`a${i / 2} * a${i / 2}`)
    return parts.length ? `t += ${parts.join(' + ')}` : ''
  }
  const redTerms = (i, lo, hi) => {
    const terms = []
    for (let j = lo; j <= hi; j++) {
      const c = pl[i - j]
      if (c === 0n) continue
      if (c === 1n) terms.push(`m${j}`)
      else terms.push(`m${j} * ${hexU32(c)}`)
    }
    return terms.length ? `t += ${terms.join(' + ')}` : ''
  }
  for (let i = 0; i < L; i++) {
    const p = prodTerms(i)
    if (p) lines.push(`  ${p}`)
    const rd = redTerms(i, Math.max(0, i - L + 1), i - 1)
    if (rd) lines.push(`  ${rd}`)
    if (n0inv === 1n) lines.push(`  const m${i} = t & ${hexU32(MASK)}`)
    else lines.push(`  const m${i} = ((t & ${hexU32(MASK)}) * ${hexU32(n0inv)}) & ${hexU32(MASK)}`)
    if (pl[0] === MASK) {
      // m*(2^W - 1) added to a column whose low W bits equal m: the shifted sum is t>>W + m
      lines.push(`  t = (t >> ${W}) + m${i}`)
    } else {
      lines.push(`  t = (t + m${i} * ${hexU32(pl[0])}) >> ${W}`)
    }
  }
  for (let i = L; i < 2 * L - 1; i++) {
    const p = prodTerms(i)
    if (p) lines.push(`  ${p}`)
    const rd = redTerms(i, i - L + 1, L - 1)
    if (rd) lines.push(`  ${rd}`)
    lines.push(`  store<u32>(r, <u32>(t & ${hexU32(MASK)}), ${(i - L) * 4})`)
    lines.push(`  t >>= ${W}`)
  }
  lines.push(`  store<u32>(r, <u32>t, ${(L - 1) * 4})`)
  lines.push(`}`)
  return lines.join('\n')
}

/**
 * Linear operations mod p with a cheap fold instead of a compare-and-subtract: form
 *   add: t = a + b,   sub: t = a + 2p - b,   small: t = k * a (k <= 8),
 * all below 16p < 2^(bits+5) for inputs below 2p; then, with q = floor(t / 2^bits) and
 * c = 2^bits - p (small and sparse for NIST primes), t = (t mod 2^bits) + q c. That is congruent
 * and below 2^bits + 16 c < 2p, so the lazy invariant [0, 2p) holds without a comparison.
 */
function genLinear(fname, L, mod, bits, kind) {
  const p2 = limbsOf(2n * mod, L)
  const cl = limbsOf((1n << BigInt(bits)) - mod, L)
  const topLimb = Math.floor(bits / W)
  const topBit = bits % W
  if (topLimb !== L - 1) throw new Error('the 2^bits boundary must fall in the top limb')
  const sig = kind === 'small' ? `(r: usize, a: usize, k: i64): void` : `(r: usize, a: usize, b: usize): void`
  const lines = [`export function ${fname}${sig} {`]
  const raw = (i) => kind === 'sub'
    ? `i64.load32_u(a, ${i * 4}) + ${hexU32(p2[i])} - i64.load32_u(b, ${i * 4})`
    : kind === 'add'
      ? `i64.load32_u(a, ${i * 4}) + i64.load32_u(b, ${i * 4})`
      : `i64.load32_u(a, ${i * 4}) * k`
  // q from the top limb alone (no carry-in yet): q <= floor(t / 2^bits), so t - q p >= 0, and
  // the single carry chain below both normalises the limbs and adds q c = q (2^bits - p).
  lines.push(`  const top = ${raw(L - 1)}`)
  lines.push(`  const q = top >> ${topBit}`)
  lines.push(`  let c: i64 = 0`)
  for (let i = 0; i < L - 1; i++) {
    const term = cl[i] === 0n ? '' : cl[i] === 1n ? ' + q' : ` + q * ${hexU32(cl[i])}`
    lines.push(`  c += ${raw(i)}${term}`)
    lines.push(`  store<u32>(r, <u32>(c & ${hexU32(MASK)}), ${i * 4})`)
    lines.push(`  c >>= ${W}`)
  }
  const topTerm = cl[L - 1] === 0n ? '' : ` + q * ${hexU32(cl[L - 1])}`
  lines.push(`  store<u32>(r, <u32>(c + (top & ${hexU32((1n << BigInt(topBit)) - 1n)})${topTerm}), ${(L - 1) * 4})`)
  lines.push(`}`)
  return lines.join('\n')
}

for (const c of curves) {
  const L = c.limbs
  const R = 1n << BigInt(W * L)
  const bytes = c.bits / 8
  if (R <= 4n * c.p || R <= 4n * c.n) throw new Error('R must exceed 4 * modulus for lazy reduction')
  const N = c.name
  const U = N.toUpperCase()
  const out = []
  out.push(`// GENERATED by assembly/gen-ecc.mjs: do not edit, change the generator and rerun it.`)
  out.push(`// ${c.name === 'p256' ? 'P-256' : 'P-384'} field and group-order arithmetic in ${L} limbs of ${W} bits (Montgomery, R = 2^${W * L}).`)
  out.push(`// Values are kept in [0, 2m) (lazy reduction; R > 4m keeps products in range).`)
  out.push('')
  out.push(`export const ${U}_LIMBS: i32 = ${L}`)
  out.push(`export const ${U}_BYTES: i32 = ${bytes}`)
  out.push(`/** the prime p */`)
  out.push(`export const ${U}_P: usize = ${limbData(c.p, L)}`)
  out.push(`/** the group order n */`)
  out.push(`export const ${U}_N: usize = ${limbData(c.n, L)}`)
  out.push(`/** R^2 mod p and R^2 mod n (to enter the Montgomery domain) */`)
  out.push(`export const ${U}_RRP: usize = ${limbData((R * R) % c.p, L)}`)
  out.push(`export const ${U}_RRN: usize = ${limbData((R * R) % c.n, L)}`)
  out.push(`/** 1 and b in the Montgomery domain mod p */`)
  out.push(`export const ${U}_ONE: usize = ${limbData(R % c.p, L)}`)
  out.push(`export const ${U}_B: usize = ${limbData((c.b * R) % c.p, L)}`)
  out.push(`/** base point G in the Montgomery domain */`)
  out.push(`export const ${U}_GX: usize = ${limbData((c.gx * R) % c.p, L)}`)
  out.push(`export const ${U}_GY: usize = ${limbData((c.gy * R) % c.p, L)}`)
  out.push(`/** exponents, big-endian: p - 2 (inversion), (p + 1) / 4 (square root, p = 3 mod 4), n - 2 */`)
  out.push(`export const ${U}_EXP_INV_P: usize = ${byteData(c.p - 2n, bytes)}`)
  out.push(`export const ${U}_EXP_SQRT: usize = ${byteData((c.p + 1n) / 4n, bytes)}`)
  out.push(`export const ${U}_EXP_INV_N: usize = ${byteData(c.n - 2n, bytes)}`)
  out.push(`/** p - n in limbs (x mod n = r may also mean x = r + n when r + n < p) */`)
  out.push(`export const ${U}_P_MINUS_N: usize = ${limbData(c.p - c.n, L)}`)
  out.push('')
  out.push(genMul(`${N}_fmul`, L, c.p, false))
  out.push('')
  out.push(genMul(`${N}_fsqr`, L, c.p, true))
  out.push('')
  out.push(genLinear(`${N}_fadd`, L, c.p, c.bits, 'add'))
  out.push('')
  out.push(genLinear(`${N}_fsub`, L, c.p, c.bits, 'sub'))
  out.push('')
  out.push(genLinear(`${N}_fsmall`, L, c.p, c.bits, 'small'))
  out.push('')
  out.push(genMul(`${N}_nmul`, L, c.n, false))
  out.push('')
  mkdirSync(join(here, 'generated'), { recursive: true })
  writeFileSync(join(here, 'generated', `${N}.ts`), out.join('\n'))
  console.log(`wrote assembly/${N}.ts`)
}
