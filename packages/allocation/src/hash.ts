/**
 * Deterministic hashing for the hashed policy: weighted rendezvous (highest-random-weight)
 * hashing over a pure-JS 32-bit hash.
 *
 * Why rendezvous hashing: every (device, hub) pair gets an independent pseudo-random score and
 * the device goes to the hub with the highest score. Adding a hub moves only the devices whose
 * score for the *new* hub beats their old best (about w_new / Σw of them), and those move to the
 * new hub only; removing a hub moves only its own devices. A hash of the id into cumulative
 * weight ranges would instead shift the boundaries of every range after the insertion point and
 * move devices between hubs that did not change.
 *
 * Weighting (Schindelhauer & Schomaker, "Weighted distributed hash tables", SPAA 2005): with
 * u uniform in (0,1), the score w / -ln(u) makes P(hub i wins) = w_i / Σw exactly, because
 * -ln(u)/w is exponentially distributed with rate w and the minimum of independent exponentials
 * falls on i with probability w_i / Σw.
 *
 * Determinism across runs, machines and engines: the hash uses only 32-bit integer arithmetic
 * (`Math.imul`, shifts), and `ln` is computed here from +, -, *, / only, which IEEE 754 requires
 * to be correctly rounded, instead of `Math.log`, whose last bit may differ between engines.
 *
 * @module
 */

const C1 = 0xcc9e2d51
const C2 = 0x1b873593
/** Two seeds give two independent 32-bit hashes, combined into a 53-bit uniform value. */
const SEED_A = 0x2f6b1d05
const SEED_B = 0x9e3779b9

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r))
}

/**
 * One round of a MurmurHash3-style block mix over one 16-bit code unit. Processing one code
 * unit per block (instead of packing bytes) lets a hash state be resumed after a shared prefix.
 */
function step(h: number, c: number): number {
  let k = Math.imul(c, C1)
  k = rotl(k, 15)
  k = Math.imul(k, C2)
  h ^= k
  h = rotl(h, 13)
  return (Math.imul(h, 5) + 0xe6546b64) | 0
}

/** MurmurHash3's 32-bit finaliser: full avalanche of the state. */
function fmix(h: number, length: number): number {
  h ^= length
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Hash state after a prefix, for both seeds. */
export interface PrefixState {
  a: number
  b: number
  length: number
}

/**
 * Hashes the case-folded registrationId plus a separator once per device; hubs resume from it.
 * Registration ids are case-insensitive (docs/protocol.md §0), so `Dev-1` and `dev-1` must land
 * on the same hub: ASCII letters are folded (the id grammar is ASCII).
 */
export function prefixState(registrationId: string): PrefixState {
  let a = SEED_A
  let b = SEED_B
  for (let i = 0; i < registrationId.length; i++) {
    const c = foldAscii(registrationId.charCodeAt(i))
    a = step(a, c)
    b = step(b, c)
  }
  // U+0000 cannot occur in a registrationId: it separates id and host unambiguously.
  a = step(a, 0)
  b = step(b, 0)
  return { a, b, length: registrationId.length + 1 }
}

function foldAscii(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c
}

/**
 * Uniform value in (0, 1) for (device prefix, hub host name): 53 bits from the two seeded
 * hashes, offset by half a step so that 0 (and thus ln 0) never occurs.
 */
export function uniform(prefix: PrefixState, hostName: string): number {
  let a = prefix.a
  let b = prefix.b
  for (let i = 0; i < hostName.length; i++) {
    const c = foldAscii(hostName.charCodeAt(i))
    a = step(a, c)
    b = step(b, c)
  }
  const n = prefix.length + hostName.length
  const hi = fmix(a, n) // 32 bits
  const lo = fmix(b, n) >>> 11 // 21 bits
  return (hi * 2097152 + lo + 0.5) / 9007199254740992 // (53-bit integer + 0.5) / 2^53
}

const LN2 = 0.6931471805599453
const SQRT1_2 = 0.7071067811865476

/**
 * Natural logarithm of x in (0, 1], from IEEE basic operations only (see module note).
 * x = m · 2^-e with m in [1/√2, √2); ln m = 2·atanh(s), s = (m-1)/(m+1), |s| ≤ 0.172, whose odd
 * series converges below double precision within 12 terms (0.172^25 / 25 < 1e-20).
 */
export function ln(x: number): number {
  let m = x
  let e = 0
  // Doubling is exact in binary floating point; x ≥ 2^-54 here, so at most 54 rounds.
  while (m < SQRT1_2) {
    m *= 2
    e++
  }
  const s = (m - 1) / (m + 1)
  const s2 = s * s
  let term = s
  let sum = 0
  for (let k = 1; k <= 25; k += 2) {
    sum += term / k
    term *= s2
  }
  return 2 * sum - e * LN2
}

/**
 * Weighted rendezvous score of a hub for a device: `weight / -ln(u)`. Higher wins.
 * @param weight allocationWeight, 1..1000
 */
export function rendezvousScore(prefix: PrefixState, hostName: string, weight: number): number {
  return weight / -ln(uniform(prefix, hostName))
}
