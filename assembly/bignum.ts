// Multi-precision modular arithmetic for RSA public operations (RFC 8017 §5.2.2 RSAVP1, §5.1.1
// RSAEP): s^e mod n for moduli of 1024..4096 bits and any odd public exponent.
//
// Representation (docs/architecture.md §10): numbers are little-endian arrays of 27- or 28-bit limbs
// (see LB) kept in u32 slots of static memory. WebAssembly has no 64x64->128 multiply, so 32-bit
// limbs would pay a carry per product; with 27/28-bit limbs a product is below 2^56 and a u64
// column accumulator absorbs every product of a column (2L of them) before overflow, so carries
// are propagated once per column.
//
// Multiplication is Montgomery's (R = 2^(LB*L)) in the "finely integrated product scanning" form:
// column i of a*b and of m*n are summed together and m_i is chosen so that column i vanishes
// mod 2^LB. L is chosen with R > 4n, so operands below 2n give a result below 2n and the
// exponentiation never needs a conditional subtraction; one final subtraction brings it below n.
// The SIMD build sums four products per step with i64x2.extmul (exact u32 x u32 -> u64).
//
// Nothing is allocated per call: the key, its constants and the scratch numbers live in static
// memory. The key is loaded once (rsaLoadKey) and its derived state is a contiguous block that JS
// may save and restore (rsaKeyState / rsaKeyStateSize), so a prepared key never recomputes R^2.

/**
 * Limb size for the loaded key: 28 bits up to 3070-bit moduli (2*110 products of 56 bits still
 * fit a u64 column), 27 bits above (2*152 products of 54 bits). Fewer, larger limbs mean fewer
 * products: a 2048-bit modulus takes 74 limbs instead of 76.
 */
let LB: i32 = 27
let MASK: u64 = (1 << 27) - 1
/** 4096-bit moduli need ceil((4096 + 2) / 27) = 152 limbs. */
export const MAX_LIMBS: i32 = 152
/**
 * Every number has 4 spare limbs after its top one, kept zero: the SIMD column sums then run in
 * whole groups of four, and what they read past the end multiplies a zero.
 */
const PAD: i32 = 4
const NUM_BYTES: i32 = (MAX_LIMBS + PAD) * 4

// ---- key state block (contiguous so JS can snapshot it) ----
// layout: [L:u32][n0inv:u32][modBytes:u32][eBytes:u32][limbBits:u32][pad to 32][N][NR][RR][E (512 bytes)]
const KEY_HEADER: i32 = 32
const KEY_E_MAX: i32 = 512
const KEY_SIZE: i32 = KEY_HEADER + 3 * NUM_BYTES + KEY_E_MAX
const KEY: usize = memory.data(KEY_SIZE, 16)
const K_N: usize = KEY + KEY_HEADER
/** The modulus limbs in reverse order (the SIMD column sums read it backwards). */
const K_NR: usize = K_N + NUM_BYTES
const K_RR: usize = K_NR + NUM_BYTES
const K_E: usize = K_RR + NUM_BYTES

// ---- scratch ----
const T_A: usize = memory.data(NUM_BYTES, 16)
const T_B: usize = memory.data(NUM_BYTES, 16)
const T_X: usize = memory.data(NUM_BYTES, 16)
const T_S: usize = memory.data(NUM_BYTES, 16)
const T_M: usize = memory.data(NUM_BYTES, 16)
/** Reversed copy of the right-hand operand (SIMD column sums). */
const T_REV: usize = memory.data(NUM_BYTES, 16)
/** 16-entry window table for long exponents. */
const T_WIN: usize = memory.data(16 * NUM_BYTES, 16)

let L: i32 = 0
let N0INV: u64 = 0

// @ts-ignore: decorator
@inline function limb(p: usize, i: i32): u64 {
  return i64.load32_u(p + (<usize>i << 2)) as u64
}
// @ts-ignore: decorator
@inline function setLimb(p: usize, i: i32, v: u64): void {
  store<u32>(p + (<usize>i << 2), <u32>v)
}

/** Big-endian bytes -> `limbs` little-endian LB-bit limbs (high limbs zero-filled). */
export function bytesToLimbs(src: usize, len: i32, dst: usize, limbs: i32): void {
  let acc: u64 = 0
  let bits: i32 = 0
  let k: i32 = 0
  for (let i = len - 1; i >= 0; i--) {
    acc |= (<u64>load<u8>(src + <usize>i)) << <u64>bits
    bits += 8
    if (bits >= LB) {
      if (k < limbs) setLimb(dst, k, acc & MASK)
      k++
      acc >>= <u64>LB
      bits -= LB
    }
  }
  while (k < limbs) {
    setLimb(dst, k, acc & MASK)
    acc = 0
    k++
  }
  pad(dst, limbs)
}

/** Limbs -> `len` big-endian bytes (the value must fit). */
export function limbsToBytes(src: usize, limbs: i32, dst: usize, len: i32): void {
  let acc: u64 = 0
  let bits: i32 = 0
  let k: i32 = 0
  for (let i = len - 1; i >= 0; i--) {
    if (bits < 8) {
      if (k < limbs) acc |= limb(src, k) << <u64>bits
      k++
      bits += LB
    }
    store<u8>(dst + <usize>i, <u8>acc)
    acc >>= 8
    bits -= 8
  }
}

/** Compares two L-limb numbers: -1, 0, 1. */
function cmp(a: usize, b: usize, n: i32): i32 {
  for (let i = n - 1; i >= 0; i--) {
    const x = limb(a, i)
    const y = limb(b, i)
    if (x != y) return x < y ? -1 : 1
  }
  return 0
}

/** a -= b (requires a >= b). */
function subInPlace(a: usize, b: usize, n: i32): void {
  let borrow: i64 = 0
  for (let i = 0; i < n; i++) {
    let d = <i64>limb(a, i) - <i64>limb(b, i) - borrow
    borrow = (d >> 63) & 1
    setLimb(a, i, <u64>d & MASK)
  }
}

/** a = 2a mod n for a < n (used only while computing R^2). */
function dblMod(a: usize, n: usize, l: i32): void {
  let carry: u64 = 0
  for (let i = 0; i < l; i++) {
    const v = (limb(a, i) << 1) | carry
    setLimb(a, i, v & MASK)
    carry = v >> <u64>LB
  }
  if (carry != 0 || cmp(a, n, l) >= 0) subInPlace(a, n, l)
}

/** Copies n limbs and the zero padding after them. */
function copy(dst: usize, src: usize, n: i32): void {
  memory.copy(dst, src, <usize>(n + PAD) << 2)
}

/** Zeroes the padding limbs [n, n + PAD). */
function pad(p: usize, n: i32): void {
  memory.fill(p + (<usize>n << 2), 0, <usize>PAD << 2)
}

function reverseInto(dst: usize, src: usize, n: i32): void {
  for (let i = 0; i < n; i++) store<u32>(dst + (<usize>(n - 1 - i) << 2), load<u32>(src + (<usize>i << 2)))
  pad(dst, n)
}

// ---------------------------------------------------------------------------------------------
// Montgomery multiplication r = a*b/R mod n (result < 2n for a, b < 2n). r may alias a or b:
// limb r[i-L] is written after column i, when a[i-L] and b[i-L] are no longer read.

/** Sum over j in [lo, hi] of x[j] * yr[base + j], where yr is a reversed operand (scalar). */
// @ts-ignore: decorator
@inline function dot(x: usize, yr: usize, lo: i32, hi: i32, base: i32): u64 {
  let s: u64 = 0
  for (let j = lo; j <= hi; j++) s += limb(x, j) * limb(yr, base + j)
  return s
}

/**
 * SIMD: sum over j in [lo, hi] of x[j] * yr[base + j] + m[j] * nr[base + j], four j per step;
 * i64x2.extmul widens u32 lanes to exact u64 products. The range is rounded up to a multiple of
 * four: the extra terms read zero padding (or not yet computed m limbs, which are zero).
 */
// @ts-ignore: decorator
@inline function dot2(x: usize, yr: usize, m: usize, nr: usize, lo: i32, hi: i32, base: i32): u64 {
  let v = i64x2.splat(0)
  let w = i64x2.splat(0)
  for (let j = lo; j <= hi; j += 4) {
    const off = <usize>j << 2
    const boff = <usize>(base + j) << 2
    const xa = v128.load(x + off)
    const ya = v128.load(yr + boff)
    const ma = v128.load(m + off)
    const na = v128.load(nr + boff)
    v = i64x2.add(v, i64x2.extmul_low_i32x4_u(xa, ya))
    w = i64x2.add(w, i64x2.extmul_low_i32x4_u(ma, na))
    v = i64x2.add(v, i64x2.extmul_high_i32x4_u(xa, ya))
    w = i64x2.add(w, i64x2.extmul_high_i32x4_u(ma, na))
  }
  v = i64x2.add(v, w)
  return <u64>(i64x2.extract_lane(v, 0) + i64x2.extract_lane(v, 1))
}

/**
 * SIMD square column: 2 * (sum over j in [lo, half] of a[j] a[i-j]) + sum over j in [lo, hi] of
 * m[j] n[i-j] (hi rounded up over zero padding). Both sums start at lo, so one loop runs the two
 * while the cross products last, then the reduction sum continues alone.
 */
// @ts-ignore: decorator
@inline function sqrColumn(a: usize, ar: usize, m: usize, nr: usize, lo: i32, half: i32, hi: i32, base: i32): u64 {
  let v = i64x2.splat(0)
  let w = i64x2.splat(0)
  let j = lo
  for (; j + 3 <= half; j += 4) {
    const off = <usize>j << 2
    const boff = <usize>(base + j) << 2
    const xa = v128.load(a + off)
    const ya = v128.load(ar + boff)
    const ma = v128.load(m + off)
    const na = v128.load(nr + boff)
    v = i64x2.add(v, i64x2.extmul_low_i32x4_u(xa, ya))
    w = i64x2.add(w, i64x2.extmul_low_i32x4_u(ma, na))
    v = i64x2.add(v, i64x2.extmul_high_i32x4_u(xa, ya))
    w = i64x2.add(w, i64x2.extmul_high_i32x4_u(ma, na))
  }
  let pairs: u64 = 0
  for (let k = j; k <= half; k++) pairs += limb(a, k) * limb(ar, base + k)
  for (; j <= hi; j += 4) {
    const ma = v128.load(m + (<usize>j << 2))
    const na = v128.load(nr + (<usize>(base + j) << 2))
    w = i64x2.add(w, i64x2.extmul_low_i32x4_u(ma, na))
    w = i64x2.add(w, i64x2.extmul_high_i32x4_u(ma, na))
  }
  v = i64x2.add(i64x2.shl(v, 1), w)
  return <u64>(i64x2.extract_lane(v, 0) + i64x2.extract_lane(v, 1)) + (pairs << 1)
}

/** SIMD Montgomery square: cross products once (doubled) plus the diagonal. */
function montSqrSimd(r: usize, a: usize, ar: usize): void {
  const l = L
  const m = T_M
  const nr = K_NR
  const n0 = N0INV
  memory.fill(m, 0, <usize>(l + PAD) << 2)
  let acc: u64 = 0
  for (let i = 0; i < l; i++) {
    // m_i is still zero, so the reduction sum may run to j = i
    acc += sqrColumn(a, ar, m, nr, 0, (i - 1) >> 1, i, l - 1 - i)
    if ((i & 1) == 0) {
      const d = limb(a, i >> 1)
      acc += d * d
    }
    const mi = ((acc & MASK) * n0) & MASK
    setLimb(m, i, mi)
    acc += mi * limb(nr, l - 1)
    acc >>= <u64>LB
  }
  for (let i = l; i < 2 * l - 1; i++) {
    acc += sqrColumn(a, ar, m, nr, i - l + 1, (i - 1) >> 1, l - 1, l - 1 - i)
    if ((i & 1) == 0) {
      const d = limb(a, i >> 1)
      acc += d * d
    }
    setLimb(r, i - l, acc & MASK)
    acc >>= <u64>LB
  }
  setLimb(r, l - 1, acc & MASK)
  pad(r, l)
}

/** SIMD Montgomery product: both column sums of a column in one fused loop. */
function montMulSimd(r: usize, a: usize, br: usize): void {
  const l = L
  const m = T_M
  const nr = K_NR
  const n0 = N0INV
  memory.fill(m, 0, <usize>(l + PAD) << 2)
  let acc: u64 = 0
  for (let i = 0; i < l; i++) {
    // m_i is still zero here, so the reduction sum may include j = i
    acc += dot2(a, br, m, nr, 0, i, l - 1 - i)
    const mi = ((acc & MASK) * n0) & MASK
    setLimb(m, i, mi)
    acc += mi * limb(nr, l - 1)
    acc >>= <u64>LB
  }
  for (let i = l; i < 2 * l - 1; i++) {
    acc += dot2(a, br, m, nr, i - l + 1, l - 1, l - 1 - i)
    setLimb(r, i - l, acc & MASK)
    acc >>= <u64>LB
  }
  setLimb(r, l - 1, acc & MASK)
  pad(r, l)
}

/** Scalar Montgomery product; squaring sums each cross product once and doubles it. */
function montMulCore(r: usize, a: usize, br: usize, squaring: bool): void {
  if (ASC_FEATURE_SIMD) {
    if (squaring) montSqrSimd(r, a, br)
    else montMulSimd(r, a, br)
    return
  }
  const l = L
  const m = T_M
  const nr = K_NR
  const n0 = N0INV
  let acc: u64 = 0
  // In reversed arrays index t holds limb l-1-t, so limb i-j sits at index l-1-i+j.
  for (let i = 0; i < l; i++) {
    const base = l - 1 - i
    if (squaring) {
      // pairs j < i-j counted twice, plus the diagonal square
      const half = (i - 1) >> 1
      if (half >= 0) acc += dot(a, br, 0, half, base) << 1
      if ((i & 1) == 0) {
        const d = limb(a, i >> 1)
        acc += d * d
      }
    } else {
      acc += dot(a, br, 0, i, base)
    }
    if (i > 0) acc += dot(m, nr, 0, i - 1, base)
    const mi = ((acc & MASK) * n0) & MASK
    setLimb(m, i, mi)
    acc += mi * limb(nr, l - 1)
    acc >>= <u64>LB
  }
  for (let i = l; i < 2 * l - 1; i++) {
    const base = l - 1 - i
    const lo = i - l + 1
    if (squaring) {
      const half = (i - 1) >> 1
      if (half >= lo) acc += dot(a, br, lo, half, base) << 1
      if ((i & 1) == 0) {
        const d = limb(a, i >> 1)
        acc += d * d
      }
    } else {
      acc += dot(a, br, lo, l - 1, base)
    }
    acc += dot(m, nr, lo, l - 1, base)
    setLimb(r, i - l, acc & MASK)
    acc >>= <u64>LB
  }
  setLimb(r, l - 1, acc & MASK)
  pad(r, l)
}

/** r = a*b/R mod n (< 2n). */
export function montMul(r: usize, a: usize, b: usize): void {
  reverseInto(T_REV, b, L)
  montMulCore(r, a, T_REV, false)
}

/** r = a^2/R mod n (< 2n). */
export function montSqr(r: usize, a: usize): void {
  reverseInto(T_REV, a, L)
  montMulCore(r, a, T_REV, true)
}

// ---------------------------------------------------------------------------------------------
// Key loading

/** Size in bytes of the key state block (for JS snapshots). */
export function rsaKeyStateSize(): i32 {
  return KEY_SIZE
}
/** Address of the key state block. */
export function rsaKeyState(): usize {
  return KEY
}
/** Restores the globals from a key state block that JS wrote back into rsaKeyState(). */
export function rsaKeyRestore(): void {
  L = load<u32>(KEY)
  N0INV = <u64>load<u32>(KEY + 4)
  LB = load<u32>(KEY + 16)
  MASK = ((<u64>1) << <u64>LB) - 1
}

/**
 * Loads the modulus (nLen big-endian bytes at nOff) and public exponent (eLen bytes at eOff) from
 * the I/O window, derives -n^-1 mod 2^LB and R^2 mod n. Returns 1, or a negative argument error:
 * -1 modulus size outside 1024..4096 bits or leading zero byte, -2 even modulus,
 * -3 exponent empty, even, 1, longer than the modulus or above 512 bytes.
 */
export function rsaLoadKey(nOff: usize, nLen: i32, eOff: usize, eLen: i32): i32 {
  if (nLen < 128 || nLen > 512 || load<u8>(nOff) == 0) return -1
  if ((load<u8>(nOff + <usize>(nLen - 1)) & 1) == 0) return -2
  // strip leading zero bytes of e
  while (eLen > 0 && load<u8>(eOff) == 0) {
    eOff++
    eLen--
  }
  if (eLen == 0 || eLen > KEY_E_MAX || eLen > nLen) return -3
  if ((load<u8>(eOff + <usize>(eLen - 1)) & 1) == 0) return -3
  if (eLen == 1 && load<u8>(eOff) == 1) return -3
  const top = load<u8>(nOff)
  const nBits = nLen * 8 - (clz<u32>(<u32>top) - 24)
  LB = nBits <= 3070 ? 28 : 27
  MASK = ((<u64>1) << <u64>LB) - 1
  store<u32>(KEY + 16, LB)
  const l = (nBits + 2 + LB - 1) / LB
  L = l
  store<u32>(KEY, l)
  store<u32>(KEY + 8, nLen)
  store<u32>(KEY + 12, eLen)
  memory.copy(K_E, eOff, eLen)
  bytesToLimbs(nOff, nLen, K_N, l)
  reverseInto(K_NR, K_N, l)
  // -n^-1 mod 2^LB by Newton iteration (each step doubles the correct low bits).
  const n0 = <u32>limb(K_N, 0)
  let x: u32 = n0 // correct to 3 bits for odd n0
  for (let i = 0; i < 5; i++) x = x * (2 - n0 * x)
  N0INV = <u64>(0 - x) & MASK
  store<u32>(KEY + 4, <u32>N0INV)
  // R^2 mod n: T = 2R mod n by doubling 2^(nBits-1) (< n); then T is the Montgomery form of 2 and
  // T^(27L) computed with montgomery squarings/multiplications is the Montgomery form of
  // 2^(27L) = R, i.e. R * R mod n.
  const t = T_X
  memory.fill(t, 0, <usize>(l + PAD) << 2)
  setLimb(t, (nBits - 1) / LB, (<u64>1) << <u64>((nBits - 1) % LB))
  const doublings = LB * l + 1 - (nBits - 1)
  for (let i = 0; i < doublings; i++) dblMod(t, K_N, l)
  const exp = LB * l
  const acc = T_A
  copy(acc, t, l)
  const topBit = 31 - clz<i32>(exp)
  for (let b = topBit - 1; b >= 0; b--) {
    montSqr(acc, acc)
    if (((exp >> b) & 1) != 0) montMul(acc, acc, t)
  }
  // acc < 2n; reduce fully so RR is canonical
  if (cmp(acc, K_N, l) >= 0) subInPlace(acc, K_N, l)
  copy(K_RR, acc, l)
  return 1
}

function eBit(i: i32, eLen: i32): i32 {
  // bit i counted from the least significant bit of the big-endian exponent
  if (i >= eLen * 8) return 0
  const byte = <i32>load<u8>(K_E + <usize>(eLen - 1 - (i >> 3)))
  return (byte >> (i & 7)) & 1
}

/**
 * RSAEP/RSAVP1 with the loaded key: reads a modulus-length big-endian integer at inOff, writes
 * in^e mod n (same length, big-endian) at outOff. Returns 1, or 0 when the input is not below n
 * (RFC 8017 §5.2.2 step 1: "signature representative out of range").
 */
export function rsaPublic(inOff: usize, outOff: usize): i32 {
  const l = L
  const nLen = <i32>load<u32>(KEY + 8)
  const eLen = <i32>load<u32>(KEY + 12)
  const s = T_S
  bytesToLimbs(inOff, nLen, s, l)
  if (cmp(s, K_N, l) >= 0) return 0
  const x = T_X
  const a = T_A
  montMul(x, s, K_RR) // x = sR
  const eBits = eLen * 8 - (clz<u32>(<u32>load<u8>(K_E)) - 24)
  if (eBits <= 64) {
    // left-to-right binary; the last (always set) bit multiplies by the plain s, which leaves
    // the Montgomery domain for free: (s^(e-1) R) * s / R = s^e.
    copy(a, x, l)
    for (let i = eBits - 2; i >= 1; i--) {
      montSqr(a, a)
      if (eBit(i, eLen) != 0) montMul(a, a, x)
    }
    montSqr(a, a)
    montMul(a, a, s)
  } else {
    // fixed 4-bit windows: table[d] = s^d R
    const w = T_WIN
    const stride = <usize>NUM_BYTES
    copy(w + stride, x, l)
    for (let d = 2; d < 16; d++) montMul(w + stride * <usize>d, w + stride * <usize>(d - 1), x)
    let top = (eBits - 1) & ~3
    let first = true
    for (let i = top; i >= 0; i -= 4) {
      const d = eBit(i, eLen) | (eBit(i + 1, eLen) << 1) | (eBit(i + 2, eLen) << 2) | (eBit(i + 3, eLen) << 3)
      if (first) {
        copy(a, w + stride * <usize>d, l) // d != 0: the top window holds the top bit
        first = false
      } else {
        montSqr(a, a)
        montSqr(a, a)
        montSqr(a, a)
        montSqr(a, a)
        if (d != 0) montMul(a, a, w + stride * <usize>d)
      }
    }
    // leave the Montgomery domain: a * 1 / R
    memory.fill(x, 0, <usize>(l + PAD) << 2)
    setLimb(x, 0, 1)
    montMul(a, a, x)
  }
  if (cmp(a, K_N, l) >= 0) subInPlace(a, K_N, l)
  limbsToBytes(a, l, outOff, nLen)
  return 1
}
