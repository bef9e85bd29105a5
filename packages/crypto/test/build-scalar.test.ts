// The scalar build, forced by configure({ simd: false }) before first use.
import { configure } from '../src/index.js'
import { sharedSuite } from './shared-suite.js'

configure({ simd: false })
sharedSuite('scalar')
