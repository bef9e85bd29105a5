import type { LogLevel } from './config.js'

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }

export interface Logger {
  error(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  debug(message: string, fields?: Record<string, unknown>): void
}

/** One line per record on `write` (stderr by default): time, level, message, then key=value fields. */
export function createLogger(level: LogLevel, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const emit = (l: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (RANK[l] > RANK[level]) return
    let line = `${new Date().toISOString()} ${l.padEnd(5)} ${message}`
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) continue
        const s = typeof v === 'string' ? v : JSON.stringify(v)
        line += ` ${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`
      }
    }
    write(line + '\n')
  }
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
  }
}
