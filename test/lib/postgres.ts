/**
 * The PostgreSQL the suites use, shared with @provisio/store-postgres's own tests: POSTGRES_URL
 * (PROVISIO_TEST_POSTGRES_URL, else the CI machine's 127.0.0.1:5432/test), postgresReachable()
 * (false on a machine without it; throws under CI=true), uniqueSchema(), dropSchema().
 */
export { POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from '../../packages/store-postgres/test/postgres-env.js'
