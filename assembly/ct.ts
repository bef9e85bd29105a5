// Constant-time comparison: the running time depends only on the length, never on where (or
// whether) the inputs differ, so a MAC check leaks nothing about how many leading bytes matched.

/** 1 if the len bytes at a and b are equal, else 0; time independent of the contents. */
export function ctEqualRaw(a: usize, b: usize, len: i32): i32 {
  let acc: u32 = 0
  let i = 0
  for (; i + 8 <= len; i += 8) {
    const x = load<u64>(a + i) ^ load<u64>(b + i)
    acc |= <u32>x | <u32>(x >>> 32)
  }
  for (; i < len; i++) acc |= <u32>(load<u8>(a + i) ^ load<u8>(b + i))
  // acc == 0 exactly when every byte matched; fold it to 1/0 without a data-dependent branch.
  return <i32>(((acc | (0 - acc)) >>> 31) ^ 1)
}

/** Export: constant-time equality of two len-byte regions (1 equal, 0 different). */
export function timingSafeEqual(a: usize, b: usize, len: i32): i32 {
  return ctEqualRaw(a, b, len)
}
