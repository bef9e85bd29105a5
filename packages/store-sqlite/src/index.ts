/**
 * @provisio/store-sqlite — SQLite Store for the engine (better-sqlite3, WAL, migrations)
 */
export {}
