// A context-sized scratch region outside the I/O window: JS streaming hashers load their saved
// context here, feed slices of input through the window, and save the context back.

const SCRATCH: usize = memory.data(256, 16)

/** Export: address of the 256-byte hash-context scratch (fits a SHA-256 or SHA-512 context). */
export function hashScratch(): usize {
  return SCRATCH
}
