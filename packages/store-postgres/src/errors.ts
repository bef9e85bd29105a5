/** Error codes of the PostgreSQL store (stable strings). */
export type PostgresStoreErrorCode =
  /** The database could not be reached or refused the login. */
  | 'POSTGRES_UNREACHABLE'
  /** The database holds a schema written by a newer version of this package. */
  | 'POSTGRES_SCHEMA_TOO_NEW'
  /** A connection URL or option is malformed. */
  | 'POSTGRES_CONFIG_INVALID'
  /** A message for a notice channel is larger than MAX_NOTICE_BYTES. */
  | 'POSTGRES_NOTICE_TOO_LARGE'
  /** A notification on a notice channel could not be read (unknown form, or its stored row is gone). */
  | 'POSTGRES_NOTICE_INVALID'
  /** A notice channel's listening connection broke; it reconnects by itself. */
  | 'POSTGRES_NOTICE_LISTENER_LOST'

/** An error of the PostgreSQL store; `code` is stable, the message says why. */
export class PostgresStoreError extends Error {
  override readonly name = 'PostgresStoreError'
  readonly code: PostgresStoreErrorCode
  constructor(code: PostgresStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}
