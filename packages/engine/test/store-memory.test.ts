import { MemoryStore } from '../src/index.js'
import { runStoreConformance } from './store-conformance.js'

runStoreConformance('MemoryStore', async () => ({ store: new MemoryStore() }))
