// The SIMD build, requested explicitly (Node >= 16 supports WebAssembly SIMD).
import { configure } from '../src/index.js'
import { sharedSuite } from './shared-suite.js'

configure({ simd: true })
sharedSuite('simd')
