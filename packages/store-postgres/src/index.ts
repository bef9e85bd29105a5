/**
 * @provisio/store-postgres — PostgreSQL Store for the engine and hub (pg), schema migrations, multi-instance safe
 */
export {}
