// Multi-precision modular arithmetic for RSA public operations (RFC 8017 §5.2.2 RSAVP1, §5.1.1
// RSAEP): s^e mod n for moduli of 1024..4096 bits and any odd public exponent.
//
// Representation (DESIGN.md "Crypto core"): numbers are little-endian arrays of 27-bit limbs kept in
// u32 slots of static memory. WebAssembly has no 64x64->128 multiply, so 32-bit limbs would pay a
// carry per product; with 27-bit limbs a product is < 2^54 and a u64 column accumulator absorbs
// 2*152 products (the most a 4096-bit column holds) before overflow (304 * 2^54 < 2^63), so the
// carries are propagated once per column.
//
// Multiplication is Montgomery's (R = 2^(27L)) in the "finely integrated product scanning" form:
// column i of a*b and of m*n are summed together and m_i is chosen so that column i vanishes
// mod 2^27. L is chosen with 2^(27L) > 4n, so operands below 2n give a result below 2n and the
// exponentiation never needs a conditional subtraction; one final subtraction brings it below n.
//
// Nothing is allocated per call: the key, its constants and the scratch numbers live in static
// memory. The key is loaded once (rsaLoadKey) and its derived state is a contiguous block that JS
// may save and restore (rsaKeyState / rsaKeyStateSize), so a prepared key never recomputes R^2.

export const LIMB_BITS: i32 = 27
const MASK: u64 = (1 << 27) - 1
/** 4096-bit moduli need ceil((4096 + 2) / 27) = 152 limbs. */
export const MAX_LIMBS: i32 = 152
const NUM_BYTES: i32 = MAX_LIMBS * 4

// ---- key state block (contiguous so JS can snapshot it) ----
// layout: [L:u32][n0inv:u32][modBytes:u32][eBytes:u32][N][NR][RR][E (512 bytes)]
const KEY_HEADER: i32 = 16
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

/** Big-endian bytes -> `limbs` little-endian 27-bit limbs (high limbs zero-filled). */
export function bytesToLimbs(src: usize, len: i32, dst: usize, limbs: i32): void {
  let acc: u64 = 0
  let bits: i32 = 0
  let k: i32 = 0
  for (let i = len - 1; i >= 0; i--) {
    acc |= (<u64>load<u8>(src + <usize>i)) << <u64>bits
    bits += 8
    if (bits >= LIMB_BITS) {
      if (k < limbs) setLimb(dst, k, acc & MASK)
      k++
      acc >>= <u64>LIMB_BITS
      bits -= LIMB_BITS
    }
  }
  while (k < limbs) {
    setLimb(dst, k, acc & MASK)
    acc = 0
    k++
  }
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
      bits += LIMB_BITS
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
    carry = v >> <u64>LIMB_BITS
  }
  if (carry != 0 || cmp(a, n, l) >= 0) subInPlace(a, n, l)
}

function copy(dst: usize, src: usize, n: i32): void {
  memory.copy(dst, src, <usize>n << 2)
}

function reverseInto(dst: usize, src: usize, n: i32): void {
  for (let i = 0; i < n; i++) store<u32>(dst + (<usize>(n - 1 - i) << 2), load<u32>(src + (<usize>i << 2)))
}

// ---------------------------------------------------------------------------------------------
// Montgomery multiplication r = a*b/R mod n (result < 2n for a, b < 2n). r may alias a or b:
// limb r[i-L] is written after column i, when a[i-L] and b[i-L] are no longer read.

/** Sum over j in [lo, hi] of x[j] * yr[base + j], where yr is a reversed operand. */
// @ts-ignore: decorator
@inline function dot(x: usize, yr: usize, lo: i32, hi: i32, base: i32): u64 {
  let s: u64 = 0
  let j = lo
  if (ASC_FEATURE_SIMD) {
    // Four 27-bit x 27-bit products per step: extmul widens u32 lanes to u64 products exactly.
    let v = i64x2.splat(0)
    for (; j + 3 <= hi; j += 4) {
      const xa = v128.load(x + (<usize>j << 2))
      const ya = v128.load(yr + (<usize>(base + j) << 2))
      v = i64x2.add(v, i64x2.extmul_low_i32x4_u(xa, ya))
      v = i64x2.add(v, i64x2.extmul_high_i32x4_u(xa, ya))
    }
    s = <u64>(i64x2.extract_lane(v, 0) + i64x2.extract_lane(v, 1))
  }
  for (; j <= hi; j++) s += limb(x, j) * limb(yr, base + j)
  return s
}

function montMulCore(r: usize, a: usize, br: usize, squaring: bool): void {
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
    acc >>= <u64>LIMB_BITS
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
    acc >>= <u64>LIMB_BITS
  }
  setLimb(r, l - 1, acc & MASK)
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
}

/**
 * Loads the modulus (nLen big-endian bytes at nOff) and public exponent (eLen bytes at eOff) from
 * the I/O window, derives -n^-1 mod 2^27 and R^2 mod n. Returns 1, or a negative argument error:
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
  const l = (nBits + 2 + LIMB_BITS - 1) / LIMB_BITS
  L = l
  store<u32>(KEY, l)
  store<u32>(KEY + 8, nLen)
  store<u32>(KEY + 12, eLen)
  memory.copy(K_E, eOff, eLen)
  bytesToLimbs(nOff, nLen, K_N, l)
  reverseInto(K_NR, K_N, l)
  // -n^-1 mod 2^27 by Newton iteration (each step doubles the correct low bits).
  const n0 = <u32>limb(K_N, 0)
  let x: u32 = n0 // correct to 3 bits for odd n0
  for (let i = 0; i < 5; i++) x = x * (2 - n0 * x)
  N0INV = <u64>(0 - x) & MASK
  store<u32>(KEY + 4, <u32>N0INV)
  // R^2 mod n: T = 2R mod n by doubling 2^(nBits-1) (< n); then T is the Montgomery form of 2 and
  // T^(27L) computed with montgomery squarings/multiplications is the Montgomery form of
  // 2^(27L) = R, i.e. R * R mod n.
  const t = T_X
  memory.fill(t, 0, <usize>l << 2)
  setLimb(t, (nBits - 1) / LIMB_BITS, (<u64>1) << <u64>((nBits - 1) % LIMB_BITS))
  const doublings = LIMB_BITS * l + 1 - (nBits - 1)
  for (let i = 0; i < doublings; i++) dblMod(t, K_N, l)
  const exp = LIMB_BITS * l
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
    memory.fill(x, 0, <usize>l << 2)
    setLimb(x, 0, 1)
    montMul(a, a, x)
  }
  if (cmp(a, K_N, l) >= 0) subInPlace(a, K_N, l)
  limbsToBytes(a, l, outOff, nLen)
  return 1
}
