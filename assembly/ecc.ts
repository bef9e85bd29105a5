// ECDSA verification on NIST P-256 and P-384 (FIPS 186-5 §6.4.2, SEC 1 §4.1.4) and SEC 1 point
// decoding with public-key validation (SEC 1 §2.3.4, §3.2.2.1).
//
// Design (docs/architecture.md §10):
// - field and order arithmetic: generated straight-line Montgomery code (p256.ts, p384.ts), limbs
//   of 29 bits in u32 slots, values kept lazily in [0, 2m);
// - points in Jacobian coordinates (x = X/Z^2, y = Y/Z^3), the a = -3 doubling of Bernstein-Lange
//   "dbl-2001-b", additions "add-2007-bl" and mixed "madd-2007-bl", with the exceptional cases
//   (P = Q, P = -Q, infinity) handled explicitly: verification inputs are public and adversarial;
// - u1*G with a fixed-base comb: for every 4-bit digit position i a table of 1..8 * 16^i * G in
//   affine form, built once on first use into static memory, and signed digits in [-8, 8], so
//   u1*G costs one mixed addition per digit and no doublings;
// - u2*Q with width-5 NAF over the odd multiples Q, 3Q, .., 15Q;
// - the final check compares X with r*Z^2 (and (r+n)*Z^2 when r+n < p) so no inversion is needed.
//
// Nothing is allocated per call; all scratch lives in static memory. Verification handles public
// data only, so the code is not constant-time.

import {
  P256_LIMBS, P256_BYTES, P256_P, P256_N, P256_RRP, P256_RRN, P256_ONE, P256_B, P256_GX, P256_GY,
  P256_EXP_INV_P, P256_EXP_SQRT, P256_EXP_INV_N, P256_P_MINUS_N,
  p256_fmul, p256_fsqr, p256_fadd, p256_fsub, p256_fsmall, p256_nmul,
} from './generated/p256'
import {
  P384_LIMBS, P384_BYTES, P384_P, P384_N, P384_RRP, P384_RRN, P384_ONE, P384_B, P384_GX, P384_GY,
  P384_EXP_INV_P, P384_EXP_SQRT, P384_EXP_INV_N, P384_P_MINUS_N,
  p384_fmul, p384_fsqr, p384_fadd, p384_fsub, p384_fsmall, p384_nmul,
} from './generated/p384'

const W: i32 = 29
const WMASK: u32 = (1 << 29) - 1
/** Every field element takes 64 bytes (16 u32 slots) whatever the curve. */
const FE: usize = 64
const PT: usize = 3 * FE
const AFF: usize = 2 * FE

// ---- current curve ----
let BIG: bool = false // false: P-256, true: P-384
let L: i32 = 9
let NB: i32 = 32
let MP: usize = 0
let MN: usize = 0
let ONE: usize = 0

function select(bits: i32): void {
  BIG = bits == 384
  if (BIG) {
    L = P384_LIMBS
    NB = P384_BYTES
    MP = P384_P
    MN = P384_N
    ONE = P384_ONE
  } else {
    L = P256_LIMBS
    NB = P256_BYTES
    MP = P256_P
    MN = P256_N
    ONE = P256_ONE
  }
}

// ---- dispatch to the generated arithmetic ----
function fmul(r: usize, a: usize, b: usize): void {
  if (BIG) p384_fmul(r, a, b)
  else p256_fmul(r, a, b)
}
function fsqr(r: usize, a: usize): void {
  if (BIG) p384_fsqr(r, a)
  else p256_fsqr(r, a)
}
function fadd(r: usize, a: usize, b: usize): void {
  if (BIG) p384_fadd(r, a, b)
  else p256_fadd(r, a, b)
}
function fsub(r: usize, a: usize, b: usize): void {
  if (BIG) p384_fsub(r, a, b)
  else p256_fsub(r, a, b)
}
/** r = k a for a small k (at most 8). */
function fsmall(r: usize, a: usize, k: i64): void {
  if (BIG) p384_fsmall(r, a, k)
  else p256_fsmall(r, a, k)
}
function nmul(r: usize, a: usize, b: usize): void {
  if (BIG) p384_nmul(r, a, b)
  else p256_nmul(r, a, b)
}

// ---- scratch ----
const SCRATCH: usize = memory.data(56 * 64, 16)
// @ts-ignore: decorator
@inline function S(i: i32): usize {
  return SCRATCH + <usize>i * FE
}
/** Odd multiples Q, 3Q, .., 15Q (Jacobian). */
const QTAB: usize = memory.data(8 * 192, 16)
/** Exponentiation window table. */
const WTAB: usize = memory.data(16 * 64, 16)
/** wNAF digits of u2 (one per bit, plus one). */
const NAF: usize = memory.data(400, 16)
/** Scalar words (u32, little-endian) used while recoding. */
const WORDS: usize = memory.data(64, 16)
const ACC: usize = memory.data(<i32>PT, 16)
const ACC2: usize = memory.data(<i32>PT, 16)
const TMP_PT: usize = memory.data(<i32>PT, 16)
const TMP_AFF: usize = memory.data(<i32>AFF, 16)
const ZERO_FE: usize = memory.data(<i32>FE, 16)

// Comb tables: rows = bits/4 + 1 (signed digits carry one past the top), 8 affine points each.
const ROWS_256: i32 = 65
const ROWS_384: i32 = 97
const COMB_256: usize = memory.data(ROWS_256 * 8 * <i32>AFF, 16)
const COMB_384: usize = memory.data(ROWS_384 * 8 * <i32>AFF, 16)
let combReady256: bool = false
let combReady384: bool = false
/** Jacobian staging for one comb row while it is converted to affine. */
const ROW_JAC: usize = memory.data(8 * <i32>PT, 16)
const ROW_PREFIX: usize = memory.data(8 * <i32>FE, 16)

// ---- limb helpers (generic loops: not on the hot path) ----
// @ts-ignore: decorator
@inline function limb(p: usize, i: i32): u32 {
  return load<u32>(p + (<usize>i << 2))
}
// @ts-ignore: decorator
@inline function setLimb(p: usize, i: i32, v: u32): void {
  store<u32>(p + (<usize>i << 2), v)
}

function fcopy(r: usize, a: usize): void {
  memory.copy(r, a, <usize>L << 2)
}

/** Compares plain limb numbers. */
function cmpLimbs(a: usize, b: usize): i32 {
  for (let i = L - 1; i >= 0; i--) {
    const x = limb(a, i)
    const y = limb(b, i)
    if (x != y) return x < y ? -1 : 1
  }
  return 0
}

/** r = a - b for a >= b (plain limbs). */
function subLimbs(r: usize, a: usize, b: usize): void {
  let c: i64 = 0
  for (let i = 0; i < L; i++) {
    c += <i64>limb(a, i) - <i64>limb(b, i)
    setLimb(r, i, <u32>c & WMASK)
    c >>= W
  }
}

/** r = a + b (plain limbs, no reduction; caller guarantees the sum fits). */
function addLimbs(r: usize, a: usize, b: usize): void {
  let c: u64 = 0
  for (let i = 0; i < L; i++) {
    c += <u64>limb(a, i) + <u64>limb(b, i)
    setLimb(r, i, <u32>c & WMASK)
    c >>= W
  }
}

/** Reduces a value in [0, 2m) to [0, m). */
function canon(r: usize, a: usize, m: usize): void {
  if (cmpLimbs(a, m) >= 0) subLimbs(r, a, m)
  else if (r != a) fcopy(r, a)
}

/** True when a (in [0, 2p)) is 0 mod p. */
function fIsZero(a: usize): bool {
  let any: u32 = 0
  for (let i = 0; i < L; i++) any |= limb(a, i)
  if (any == 0) return true
  return cmpLimbs(a, MP) == 0
}

/** True when a == b mod p (both in [0, 2p)). */
function fEq(a: usize, b: usize): bool {
  const x = S(38)
  const y = S(39)
  canon(x, a, MP)
  canon(y, b, MP)
  return cmpLimbs(x, y) == 0
}

/** Big-endian bytes (NB of them) -> limbs. */
function fromBytes(dst: usize, src: usize): void {
  let acc: u64 = 0
  let bits: i32 = 0
  let k: i32 = 0
  for (let i = NB - 1; i >= 0; i--) {
    acc |= (<u64>load<u8>(src + <usize>i)) << <u64>bits
    bits += 8
    if (bits >= W) {
      setLimb(dst, k++, <u32>acc & WMASK)
      acc >>= <u64>W
      bits -= W
    }
  }
  while (k < L) {
    setLimb(dst, k++, <u32>acc & WMASK)
    acc = 0
  }
}

/** Limbs (a value < 2^(8 NB)) -> NB big-endian bytes. */
function toBytes(dst: usize, src: usize): void {
  let acc: u64 = 0
  let bits: i32 = 0
  let k: i32 = 0
  for (let i = NB - 1; i >= 0; i--) {
    if (bits < 8) {
      if (k < L) acc |= (<u64>limb(src, k)) << <u64>bits
      k++
      bits += W
    }
    store<u8>(dst + <usize>i, <u8>acc)
    acc >>= 8
    bits -= 8
  }
}

/** Limbs -> little-endian u32 words (WORDS), for scalar recoding. */
function toWords(src: usize): void {
  memory.fill(WORDS, 0, 64)
  for (let i = 0; i < L; i++) {
    const v = <u64>limb(src, i)
    const bit = i * W
    const w = bit >> 5
    const sh = bit & 31
    const lo = v << <u64>sh
    store<u32>(WORDS + (<usize>w << 2), load<u32>(WORDS + (<usize>w << 2)) | <u32>lo)
    if (w + 1 < 16) store<u32>(WORDS + (<usize>(w + 1) << 2), load<u32>(WORDS + (<usize>(w + 1) << 2)) | <u32>(lo >> 32))
  }
}

/** Plain -> Montgomery (mod p). */
function toMont(r: usize, a: usize): void {
  fmul(r, a, BIG ? P384_RRP : P256_RRP)
}

/** Montgomery -> canonical plain (mod p). */
function fromMont(r: usize, a: usize): void {
  const one = S(37)
  memory.fill(one, 0, FE)
  setLimb(one, 0, 1)
  fmul(r, a, one)
  canon(r, r, MP)
}

/**
 * r = a^e with e big-endian NB bytes at exp (top bit set), 4-bit fixed windows.
 * `order` selects arithmetic mod n instead of mod p.
 */
function pow(r: usize, a: usize, exp: usize, order: bool): void {
  const t = WTAB
  fcopy(t + FE, a)
  for (let d = 2; d < 16; d++) {
    if (order) nmul(t + FE * <usize>d, t + FE * <usize>(d - 1), a)
    else fmul(t + FE * <usize>d, t + FE * <usize>(d - 1), a)
  }
  let first = true
  for (let i = 0; i < NB * 2; i++) {
    const byte = <i32>load<u8>(exp + <usize>(i >> 1))
    const d = (i & 1) == 0 ? byte >> 4 : byte & 15
    if (first) {
      if (d == 0) continue
      fcopy(r, t + FE * <usize>d)
      first = false
      continue
    }
    for (let k = 0; k < 4; k++) {
      if (order) nmul(r, r, r)
      else fsqr(r, r)
    }
    if (d != 0) {
      if (order) nmul(r, r, t + FE * <usize>d)
      else fmul(r, r, t + FE * <usize>d)
    }
  }
}

// ---- points ----

function setInfinity(p: usize): void {
  fcopy(p, ONE)
  fcopy(p + FE, ONE)
  memory.fill(p + 2 * FE, 0, FE)
}

function isInfinity(p: usize): bool {
  return fIsZero(p + 2 * FE)
}

function pcopy(r: usize, p: usize): void {
  memory.copy(r, p, PT)
}

/** r = 2p (dbl-2001-b, a = -3: 3M + 5S). r may alias p. Infinity stays infinity (Z3 = 2YZ). */
function pdbl(r: usize, p: usize): void {
  const X = p
  const Y = p + FE
  const Z = p + 2 * FE
  const delta = S(0)
  const gamma = S(1)
  const beta = S(2)
  const alpha = S(3)
  const t = S(4)
  const u = S(5)
  fsqr(delta, Z)
  fsqr(gamma, Y)
  fmul(beta, X, gamma)
  fsub(t, X, delta)
  fadd(u, X, delta)
  fmul(t, t, u)
  fsmall(alpha, t, 3) // alpha = 3 (X - delta)(X + delta)
  // Z3 = (Y + Z)^2 - gamma - delta
  fadd(t, Y, Z)
  fsqr(t, t)
  fsub(t, t, gamma)
  fsub(r + 2 * FE, t, delta)
  // X3 = alpha^2 - 8 beta
  fsmall(u, beta, 8)
  fsmall(beta, beta, 4)
  fsqr(t, alpha)
  fsub(r, t, u)
  // Y3 = alpha (4 beta - X3) - 8 gamma^2
  fsub(t, beta, r)
  fmul(t, alpha, t)
  fsqr(gamma, gamma)
  fsmall(gamma, gamma, 8)
  fsub(r + FE, t, gamma)
}

/** r = p + q, Jacobian + Jacobian (add-2007-bl: 11M + 5S), every special case handled. */
function padd(r: usize, p: usize, q: usize): void {
  if (isInfinity(p)) {
    if (r != q) pcopy(r, q)
    return
  }
  if (isInfinity(q)) {
    if (r != p) pcopy(r, p)
    return
  }
  const X1 = p, Y1 = p + FE, Z1 = p + 2 * FE
  const X2 = q, Y2 = q + FE, Z2 = q + 2 * FE
  const z1z1 = S(6), z2z2 = S(7), u1 = S(8), u2 = S(9), s1 = S(10), s2 = S(11)
  const h = S(12), rr = S(13), i = S(14), j = S(15), v = S(16), t = S(17)
  fsqr(z1z1, Z1)
  fsqr(z2z2, Z2)
  fmul(u1, X1, z2z2)
  fmul(u2, X2, z1z1)
  fmul(s1, Y1, Z2)
  fmul(s1, s1, z2z2)
  fmul(s2, Y2, Z1)
  fmul(s2, s2, z1z1)
  fsub(h, u2, u1)
  fsub(rr, s2, s1)
  if (fIsZero(h)) {
    if (fIsZero(rr)) pdbl(r, p)
    else setInfinity(r)
    return
  }
  fadd(i, h, h)
  fsqr(i, i) // I = (2H)^2
  fmul(j, h, i) // J = H I
  fadd(rr, rr, rr) // r = 2 (S2 - S1)
  fmul(v, u1, i) // V = U1 I
  // Z3 = ((Z1 + Z2)^2 - Z1Z1 - Z2Z2) H  (computed first: r may alias p or q)
  fadd(t, Z1, Z2)
  fsqr(t, t)
  fsub(t, t, z1z1)
  fsub(t, t, z2z2)
  fmul(S(18), t, h)
  // X3 = r^2 - J - 2V
  fsqr(t, rr)
  fsub(t, t, j)
  fsub(t, t, v)
  fsub(S(19), t, v)
  // Y3 = r (V - X3) - 2 S1 J
  fsub(t, v, S(19))
  fmul(t, rr, t)
  fmul(s1, s1, j)
  fadd(s1, s1, s1)
  fsub(r + FE, t, s1)
  fcopy(r, S(19))
  fcopy(r + 2 * FE, S(18))
}

/** r = p + (x2, y2) with the second point affine (madd-2007-bl: 7M + 4S). r may alias p. */
function pmadd(r: usize, p: usize, a: usize): void {
  const x2 = a, y2 = a + FE
  if (isInfinity(p)) {
    fcopy(r, x2)
    fcopy(r + FE, y2)
    fcopy(r + 2 * FE, ONE)
    return
  }
  const X1 = p, Y1 = p + FE, Z1 = p + 2 * FE
  const z1z1 = S(20), u2 = S(21), s2 = S(22), h = S(23), hh = S(24), i = S(25), j = S(26)
  const rr = S(27), v = S(28), t = S(29)
  fsqr(z1z1, Z1)
  fmul(u2, x2, z1z1)
  fmul(s2, y2, Z1)
  fmul(s2, s2, z1z1)
  fsub(h, u2, X1)
  fsub(rr, s2, Y1)
  if (fIsZero(h)) {
    if (fIsZero(rr)) pdbl(r, p)
    else setInfinity(r)
    return
  }
  fsqr(hh, h)
  fsmall(i, hh, 4) // I = 4 HH
  fmul(j, h, i)
  fadd(rr, rr, rr)
  fmul(v, X1, i)
  // Z3 = (Z1 + H)^2 - Z1Z1 - HH
  fadd(t, Z1, h)
  fsqr(t, t)
  fsub(t, t, z1z1)
  fsub(r + 2 * FE, t, hh)
  const y1j = S(30)
  fmul(y1j, Y1, j) // Y1 J, read before Y1 may be overwritten
  // X3 = r^2 - J - 2V
  fsqr(t, rr)
  fsub(t, t, j)
  fsub(t, t, v)
  fsub(S(31), t, v)
  // Y3 = r (V - X3) - 2 Y1 J
  fsub(t, v, S(31))
  fmul(t, rr, t)
  fadd(y1j, y1j, y1j)
  fsub(r + FE, t, y1j)
  fcopy(r, S(31))
}

/** Jacobian -> affine (Montgomery form), for a point known not to be infinity. */
function toAffineWithInverse(dst: usize, p: usize, zinv: usize): void {
  const z2 = S(32)
  fsqr(z2, zinv)
  fmul(dst, p, z2)
  fmul(z2, z2, zinv)
  fmul(dst + FE, p + FE, z2)
}

function finv(r: usize, a: usize): void {
  pow(r, a, BIG ? P384_EXP_INV_P : P256_EXP_INV_P, false)
}

/** Builds the comb table of the current curve: row i holds k * 16^i * G for k = 1..8. */
function buildComb(table: usize, rows: i32): void {
  const base = TMP_PT
  fcopy(base, BIG ? P384_GX : P256_GX)
  fcopy(base + FE, BIG ? P384_GY : P256_GY)
  fcopy(base + 2 * FE, ONE)
  for (let row = 0; row < rows; row++) {
    pcopy(ROW_JAC, base)
    for (let k = 1; k < 8; k++) padd(ROW_JAC + PT * <usize>k, ROW_JAC + PT * <usize>(k - 1), base)
    // Montgomery's simultaneous inversion of the 8 Z coordinates
    fcopy(ROW_PREFIX, ROW_JAC + 2 * FE)
    for (let k = 1; k < 8; k++) fmul(ROW_PREFIX + FE * <usize>k, ROW_PREFIX + FE * <usize>(k - 1), ROW_JAC + PT * <usize>k + 2 * FE)
    const inv = S(33)
    const zi = S(34)
    finv(inv, ROW_PREFIX + 7 * FE)
    for (let k = 7; k >= 0; k--) {
      if (k > 0) {
        fmul(zi, inv, ROW_PREFIX + FE * <usize>(k - 1))
        fmul(inv, inv, ROW_JAC + PT * <usize>k + 2 * FE)
      } else {
        fcopy(zi, inv)
      }
      toAffineWithInverse(table + AFF * <usize>(row * 8 + k), ROW_JAC + PT * <usize>k, zi)
    }
    for (let d = 0; d < 4; d++) pdbl(base, base)
  }
}

function comb(): usize {
  if (BIG) {
    if (!combReady384) {
      buildComb(COMB_384, ROWS_384)
      combReady384 = true
    }
    return COMB_384
  }
  if (!combReady256) {
    buildComb(COMB_256, ROWS_256)
    combReady256 = true
  }
  return COMB_256
}

/** acc = k * G with k given as WORDS (little-endian u32), signed 4-bit digits over the comb. */
function mulBase(acc: usize): void {
  const table = comb()
  setInfinity(acc)
  const rows = NB * 2 + 1
  let carry: i32 = 0
  for (let row = 0; row < rows; row++) {
    const bit = row * 4
    let v: i32 = carry
    if (bit < NB * 8) v += <i32>((load<u32>(WORDS + (<usize>(bit >> 5) << 2)) >> <u32>(bit & 31)) & 15)
    if (v >= 8) {
      v -= 16
      carry = 1
    } else {
      carry = 0
    }
    if (v == 0) continue
    const entry = table + AFF * <usize>(row * 8 + (v > 0 ? v : -v) - 1)
    if (v > 0) {
      pmadd(acc, acc, entry)
    } else {
      fcopy(TMP_AFF, entry)
      fsub(TMP_AFF + FE, ZERO_FE, entry + FE)
      pmadd(acc, acc, TMP_AFF)
    }
  }
}

/** Width-5 NAF of WORDS into NAF (i8 digits); returns the number of digits. WORDS is consumed. */
function wnaf(): i32 {
  const words = (NB >> 2) + 1
  let n = 0
  for (;;) {
    let any: u32 = 0
    for (let i = 0; i < words; i++) any |= load<u32>(WORDS + (<usize>i << 2))
    if (any == 0) break
    let d: i32 = 0
    const w0 = load<u32>(WORDS)
    if ((w0 & 1) != 0) {
      d = <i32>(w0 & 31)
      if (d >= 16) d -= 32
      // k -= d: for d > 0 this clears the low bits; for d < 0 it adds |d| with carry
      if (d > 0) {
        store<u32>(WORDS, w0 - <u32>d)
      } else {
        let c: u64 = <u64>(-d)
        for (let i = 0; i < words && c != 0; i++) {
          const s = <u64>load<u32>(WORDS + (<usize>i << 2)) + c
          store<u32>(WORDS + (<usize>i << 2), <u32>s)
          c = s >> 32
        }
      }
    }
    store<i8>(NAF + <usize>n, <i8>d)
    n++
    // k >>= 1
    for (let i = 0; i < words; i++) {
      const cur = load<u32>(WORDS + (<usize>i << 2))
      const next = i + 1 < words ? load<u32>(WORDS + (<usize>(i + 1) << 2)) : 0
      store<u32>(WORDS + (<usize>i << 2), (cur >> 1) | (next << 31))
    }
  }
  return n
}

/** acc = k * Q (k in WORDS, Q Jacobian at q) with wNAF over the odd multiples. */
function mulPoint(acc: usize, q: usize): void {
  pcopy(QTAB, q)
  const q2 = TMP_PT
  pdbl(q2, q)
  for (let k = 1; k < 8; k++) padd(QTAB + PT * <usize>k, QTAB + PT * <usize>(k - 1), q2)
  const n = wnaf()
  setInfinity(acc)
  for (let i = n - 1; i >= 0; i--) {
    pdbl(acc, acc)
    const d = <i32>load<i8>(NAF + <usize>i)
    if (d == 0) continue
    const entry = QTAB + PT * <usize>(((d > 0 ? d : -d) - 1) >> 1)
    if (d > 0) {
      padd(acc, acc, entry)
    } else {
      pcopy(TMP_PT, entry)
      fsub(TMP_PT + FE, ZERO_FE, entry + FE)
      padd(acc, acc, TMP_PT)
    }
  }
}

/** rhs = x^3 - 3x + b (Montgomery form). */
function curveRhs(rhs: usize, x: usize): void {
  const t = S(35)
  fsqr(t, x)
  fmul(t, t, x)
  fsub(t, t, x)
  fsub(t, t, x)
  fsub(t, t, x)
  fadd(rhs, t, BIG ? P384_B : P256_B)
}

/**
 * Decodes a SEC 1 point (§2.3.4) for the curve of `bits` (256 or 384): 04 ‖ x ‖ y or 02/03 ‖ x.
 * Checks coordinates below p and the curve equation (public-key validation, SEC 1 §3.2.2.1; the
 * cofactor is 1, so an on-curve point other than infinity has order n). Writes x ‖ y (big-endian,
 * canonical) at out. Returns 1, -1 bad length or prefix, -2 coordinate >= p, -3 not on the curve,
 * -4 unsupported curve.
 */
export function ecLoadPoint(bits: i32, ptr: usize, len: i32, out: usize): i32 {
  if (bits != 256 && bits != 384) return -4
  select(bits)
  const tag = <i32>load<u8>(ptr)
  const x = S(40), y = S(41), rhs = S(42), t = S(43)
  const xm = S(44)
  if (tag == 4 && len == 1 + 2 * NB) {
    fromBytes(x, ptr + 1)
    fromBytes(y, ptr + 1 + <usize>NB)
    if (cmpLimbs(x, MP) >= 0 || cmpLimbs(y, MP) >= 0) return -2
    toMont(xm, x)
    curveRhs(rhs, xm)
    toMont(t, y)
    fsqr(t, t)
    if (!fEq(t, rhs)) return -3
    toBytes(out, x)
    toBytes(out + <usize>NB, y)
    return 1
  }
  if ((tag == 2 || tag == 3) && len == 1 + NB) {
    fromBytes(x, ptr + 1)
    if (cmpLimbs(x, MP) >= 0) return -2
    toMont(xm, x)
    curveRhs(rhs, xm)
    // p = 3 mod 4 for both curves, so a square root of a square v is v^((p+1)/4)
    pow(t, rhs, BIG ? P384_EXP_SQRT : P256_EXP_SQRT, false)
    const sq = S(35)
    fsqr(sq, t)
    if (!fEq(sq, rhs)) return -3
    fromMont(y, t)
    if (<i32>(limb(y, 0) & 1) != (tag & 1)) {
      let zero: u32 = 0
      for (let i = 0; i < L; i++) zero |= limb(y, i)
      if (zero == 0) return -3 // y = 0 has no odd twin
      subLimbs(y, MP, y)
    }
    toBytes(out, x)
    toBytes(out + <usize>NB, y)
    return 1
  }
  return -1
}

/**
 * ECDSA verification (FIPS 186-5 §6.4.2). Inputs in the I/O window: key = x ‖ y (a point already
 * validated by ecLoadPoint), e = the digest already truncated or left-padded to the curve size in
 * bytes (§6.4.2 step 3 takes the leftmost bits), sig = r ‖ s (curve size bytes each).
 * Returns 1 valid, 0 invalid, -4 unsupported curve.
 */
export function ecdsaVerify(bits: i32, key: usize, e: usize, sig: usize): i32 {
  if (bits != 256 && bits != 384) return -4
  select(bits)
  const r = S(40), s = S(41), z = S(42), inv = S(43), u1 = S(44), u2 = S(45), sm = S(46)
  fromBytes(r, sig)
  fromBytes(s, sig + <usize>NB)
  // step 1: r and s in [1, n-1]
  if (cmpLimbs(r, MN) >= 0 || cmpLimbs(s, MN) >= 0) return 0
  let rz: u32 = 0
  let sz: u32 = 0
  for (let i = 0; i < L; i++) {
    rz |= limb(r, i)
    sz |= limb(s, i)
  }
  if (rz == 0 || sz == 0) return 0
  // e < 2^(8 NB) < 2n, so one subtraction reduces it mod n
  fromBytes(z, e)
  if (cmpLimbs(z, MN) >= 0) subLimbs(z, z, MN)
  // w = s^-1 mod n in the Montgomery domain (Fermat: s^(n-2)); u1 = e w, u2 = r w leave it
  nmul(sm, s, BIG ? P384_RRN : P256_RRN)
  pow(inv, sm, BIG ? P384_EXP_INV_N : P256_EXP_INV_N, true)
  nmul(u1, z, inv)
  canon(u1, u1, MN)
  nmul(u2, r, inv)
  canon(u2, u2, MN)
  // Q in Montgomery Jacobian form
  const q = ACC2
  const tmp = S(47)
  fromBytes(tmp, key)
  toMont(q, tmp)
  fromBytes(tmp, key + <usize>NB)
  toMont(q + FE, tmp)
  fcopy(q + 2 * FE, ONE)
  // R = u2 Q + u1 G
  toWords(u2)
  mulPoint(ACC, q) // ACC2 (q) is free afterwards
  toWords(u1)
  mulBase(ACC2)
  padd(ACC, ACC, ACC2)
  if (isInfinity(ACC)) return 0
  // x(R) = X / Z^2; accept when X == r Z^2 or, if r + n < p, X == (r + n) Z^2 (x mod n == r)
  const z2 = S(48), t = S(49), rm = S(50)
  fsqr(z2, ACC + 2 * FE)
  toMont(rm, r)
  fmul(t, rm, z2)
  if (fEq(t, ACC)) return 1
  if (cmpLimbs(r, BIG ? P384_P_MINUS_N : P256_P_MINUS_N) < 0) {
    addLimbs(tmp, r, MN)
    toMont(rm, tmp)
    fmul(t, rm, z2)
    if (fEq(t, ACC)) return 1
  }
  return 0
}
