/**
 * @provisio/store-postgres — the engine's Store and the embedded hub's registry on PostgreSQL
 * (node-postgres), with schema migrations, safe for several `provisio serve` instances sharing
 * one database (docs/architecture.md §8).
 */
export { PostgresStore } from './store.js'
export { createPostgresStore, describePostgresUrl, type PostgresStoreOptions } from './connect.js'
export { MAX_NOTICE_BYTES, openNoticeChannel, type NoticeChannel, type NoticeChannelOptions } from './channel.js'
export { MIGRATIONS, type Migration } from './schema.js'
export { PostgresStoreError, type PostgresStoreErrorCode } from './errors.js'
