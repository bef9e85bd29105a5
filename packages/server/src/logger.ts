/**
 * Structured logs on pino: one JSON object per line (`level`, `time`, the fields, `msg`), on
 * stderr by default, so log shippers need no parsing rules. `base` fields go on every line (a
 * worker of `provisio serve --workers` adds `worker`). An Error among the fields is written with
 * its type, message, stack and cause chain.
 *
 * stderr is written asynchronously (pino's sonic-boom destination: the event loop never waits on
 * a slow pipe) and flushed synchronously when the process exits, whether by a graceful stop, a
 * `process.exit`, or an uncaught exception, so the last lines before an exit are not lost.
 */
import pino, { type DestinationStream } from 'pino'
import type { LogLevel } from './config.js'

export interface Logger {
  error(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  debug(message: string, fields?: Record<string, unknown>): void
}

/** stderr for every logger of the process: one asynchronous writer, flushed at exit by pino. */
let stderr: DestinationStream | undefined

export function createLogger(level: LogLevel, write?: (line: string) => void, base: Record<string, unknown> = {}): Logger {
  const destination: DestinationStream = write === undefined ? (stderr ??= pino.destination({ dest: 2, sync: false })) : { write }
  const log = pino(
    {
      level,
      base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: errorsKept },
    },
    destination,
  )
  return {
    error: (m, f) => log.error(f ?? {}, m),
    warn: (m, f) => log.warn(f ?? {}, m),
    info: (m, f) => log.info(f ?? {}, m),
    debug: (m, f) => log.debug(f ?? {}, m),
  }
}

/** The fields with every Error value serialized whole (type, message, stack, cause, own properties). */
function errorsKept(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined
  for (const [key, value] of Object.entries(fields)) {
    if (!(value instanceof Error)) continue
    out ??= { ...fields }
    out[key] = pino.stdSerializers.errWithCause(value)
  }
  return out ?? fields
}
