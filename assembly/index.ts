// Entry point of Provisio's WebAssembly crypto core. Compiled twice by build.mjs (scalar and
// SIMD, same exports); `ASC_FEATURE_SIMD` tells the sources which build they are in.
//
// Boundary rules (DESIGN.md "Crypto core"): no managed objects cross the boundary and nothing is
// allocated per call. The module owns a static I/O window; JS writes inputs into it through a
// typed-array view it builds once, calls an export with offsets and lengths, and reads results
// back from the window. Every export returns plain numbers (i32 status codes or lengths).

export { IO_SIZE, ioPtr, HAS_SIMD } from './io'
