// Cloud-to-device queues on PostgreSQL: the conformance suite of @provisio/hub, plus a second
// store on the same schema standing in for another instance and for a restart.
import { describe } from 'vitest'
import type { C2dStore } from '@provisio/hub'
import { createPostgresStore, type PostgresStore } from '../src/index.js'
import { c2dConformance } from '../../hub/test/c2d-conformance.js'
import { POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from './postgres-env.js'

const available = await postgresReachable()
const owners = new Map<C2dStore, { schema: string; stores: PostgresStore[] }>()

describe.skipIf(!available)('PostgreSQL cloud-to-device store', () => {
  c2dConformance('the PostgreSQL store', {
    create: async () => {
      const schema = uniqueSchema('provisio_test_c2d')
      const store = await createPostgresStore(POSTGRES_URL, { schema, maxConnections: 4 })
      owners.set(store.c2dStore, { schema, stores: [store] })
      return store.c2dStore
    },
    reopen: async (c2d) => {
      const owner = owners.get(c2d)!
      const store = await createPostgresStore(POSTGRES_URL, { schema: owner.schema, maxConnections: 4 })
      owner.stores.push(store)
      return store.c2dStore
    },
    close: async (c2d) => {
      const owner = owners.get(c2d)!
      owners.delete(c2d)
      for (const store of owner.stores) await store.close()
      await dropSchema(owner.schema)
    },
  })
})
