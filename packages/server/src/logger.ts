import type { LogLevel } from './config.js'

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }

export interface Logger {
  error(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  debug(message: string, fields?: Record<string, unknown>): void
}

/**
 * Structured logs: one JSON object per line (`time`, `level`, `msg`, then the fields) on `write`,
 * stderr by default, so log shippers need no parsing rules. `base` fields go on every line (a
 * worker of `provisio serve --workers` adds `worker`).
 */
export function createLogger(level: LogLevel, write: (line: string) => void = (l) => void process.stderr.write(l), base: Record<string, unknown> = {}): Logger {
  const emit = (l: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[l] > RANK[level]) return
    write(JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...base, ...fields }, errorsAsText) + '\n')
  }
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
  }
}

function errorsAsText(_key: string, value: unknown): unknown {
  return value instanceof Error ? `${value.name}: ${value.message}` : value
}
