import { MemoryC2dStore } from '../src/index.js'
import { c2dConformance } from './c2d-conformance.js'

c2dConformance('the memory store', { create: () => Promise.resolve(new MemoryC2dStore()) })
