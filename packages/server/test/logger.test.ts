// The JSON log lines: level names, ISO time, base fields, the level threshold, and an Error among
// the fields written whole (stack and cause chain). Flushing at exit is tested on the built
// package in a child process (test/server/logger.test.ts).
import { describe, expect, it } from 'vitest'
import { createLogger } from '../src/logger.js'

describe('createLogger', () => {
  it('writes one JSON object per line with level, time, base fields, fields and msg, above the threshold only', () => {
    const lines: string[] = []
    const log = createLogger('info', (line) => void lines.push(line), { worker: 3 })
    log.debug('not written')
    log.info('device assigned', { registrationId: 'dev-1' })
    log.warn('slow', { ms: 12 })
    expect(lines).toHaveLength(2)
    expect(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true)
    const first = JSON.parse(lines[0]!) as Record<string, unknown>
    expect(first).toEqual({ level: 'info', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), worker: 3, registrationId: 'dev-1', msg: 'device assigned' })
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 'warn', ms: 12, msg: 'slow' })
  })

  it('keeps the stack, the cause chain and the own properties of an Error in the fields', () => {
    const lines: string[] = []
    const log = createLogger('debug', (line) => void lines.push(line))
    const inner = Object.assign(new Error('disk full'), { code: 'ENOSPC' })
    log.error('commit failed', { error: new Error('the group commit failed', { cause: inner }), attempt: 2 })
    const line = JSON.parse(lines[0]!) as { error: { type: string; message: string; stack: string; cause: { message: string; code: string; stack: string } }; attempt: number }
    expect(line.attempt).toBe(2)
    expect(line.error).toMatchObject({ type: 'Error', message: 'the group commit failed', cause: { message: 'disk full', code: 'ENOSPC' } })
    expect(line.error.stack).toMatch(/^Error: the group commit failed\n\s+at /)
    expect(line.error.cause.stack).toMatch(/^Error: disk full\n\s+at /)
  })
})
