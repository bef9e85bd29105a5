// The static I/O window shared by every export. Calls are synchronous and single-threaded, so
// one window serves all of them: a call owns it from entry to return.

/** Size of the I/O window in bytes (256 KiB). Batch APIs process their input in slices of this. */
export const IO_SIZE: i32 = 1 << 18

const IO: usize = memory.data(IO_SIZE, 64)

/** Address of the I/O window inside linear memory. */
export function ioPtr(): usize {
  return IO
}

/** 1 in the SIMD build, 0 in the scalar build. */
export const HAS_SIMD: i32 = ASC_FEATURE_SIMD ? 1 : 0
