/**
 * Bounded JSON body parsing: the one entry point codecs and the engine use before a validator.
 */
import { bodyTooLarge, invalidJson } from './_errors.js'
import { utf8Length } from './_check.js'
import { MAX_MESSAGE_BYTES } from './_rules.js'

/** Options of {@link parseJsonBody}. */
export interface ParseJsonOptions {
  /** Size limit in bytes of UTF-8 (default 96 KB, the DPS max message size, §9). */
  maxBytes?: number
  /**
   * Accept an empty (or all-whitespace) body and return `undefined` for it. .NET devices send no
   * body on MQTT/AMQP (§1.2) and Node polls over HTTP with `{}`, over MQTT with a single space (§11).
   */
  allowEmpty?: boolean
}

const UTF8 = /* @__PURE__ */ new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/**
 * Parses a JSON body from bytes or a string, with a size limit checked before parsing.
 *
 * - Bytes must be UTF-8 (RFC 8259 §8.1); a leading BOM is ignored (RFC 8259 §8.1 allows parsers to).
 * - Failures are `ProvisioError`s: `PAYLOAD_TOO_LARGE` over the limit, else `INVALID_JSON` with
 *   the parser's complaint, its line, column and character position (also in `info.position`).
 *
 * @example
 * ```ts
 * const enrollment = validateIndividualEnrollment(parseJsonBody(bytes))
 * ```
 */
export function parseJsonBody(input: string | Uint8Array, options?: ParseJsonOptions): unknown {
  const maxBytes = options?.maxBytes ?? MAX_MESSAGE_BYTES
  let text: string
  if (typeof input === 'string') {
    // Each UTF-16 unit is at least one UTF-8 byte; count exactly only when it could matter.
    if (input.length > maxBytes) throw bodyTooLarge(utf8Length(input), maxBytes)
    if (input.length * 3 > maxBytes) {
      const n = utf8Length(input)
      if (n > maxBytes) throw bodyTooLarge(n, maxBytes)
    }
    text = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input
  } else {
    if (input.length > maxBytes) throw bodyTooLarge(input.length, maxBytes)
    try {
      text = UTF8.decode(input)
    } catch (error) {
      throw invalidJson('must be UTF-8 (RFC 8259 §8.1)', undefined, error)
    }
  }
  if (text.trim() === '') {
    if (options?.allowEmpty === true) return undefined
    throw invalidJson('must not be empty')
  }
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    // Engines word (and place) syntax errors differently and V8 echoes the whole input in some
    // messages, which may hold keys; so the complaint is recomputed here, engine-independently.
    const found = locateJsonError(text)
    if (found === undefined) throw invalidJson('must be valid JSON', undefined, error)
    const { line, column } = lineAndColumn(text, found.position)
    throw invalidJson(
      `must be valid JSON: ${found.problem} at line ${line}, column ${column} (position ${found.position})`,
      found.position,
      error,
    )
  }
}

/** RFC 8259 §6 number, matched in place (sticky) so long numbers need no slicing. */
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y

function lineAndColumn(text: string, position: number): { line: number; column: number } {
  let line = 1
  let lineStart = 0
  for (let i = 0; i < position; i++) {
    if (text.charCodeAt(i) === 10) {
      line++
      lineStart = i + 1
    }
  }
  return { line, column: position - lineStart + 1 }
}

/** First syntax error of `t` per RFC 8259, or undefined if it is valid JSON. */
export function locateJsonError(t: string): { position: number; problem: string } | undefined {
  const n = t.length
  // Containers currently open: true = object, false = array. Iterative, so nesting cannot
  // overflow the call stack.
  const stack: boolean[] = []
  let i = 0
  let mode: 'value' | 'key' | 'after' = 'value'
  const ws = (): void => {
    while (i < n) {
      const c = t.charCodeAt(i)
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break
      i++
    }
  }
  const fail = (problem: string): { position: number; problem: string } => ({ position: i, problem })
  for (;;) {
    ws()
    if (mode === 'value') {
      if (i >= n) return fail('unexpected end of input, expected a value')
      const c = t[i]
      if (c === '{' || c === '[') {
        stack.push(c === '{')
        i++
        ws()
        if (t[i] === (c === '{' ? '}' : ']')) {
          stack.pop()
          i++
          mode = 'after'
        } else mode = c === '{' ? 'key' : 'value'
        continue
      }
      const problem = c === '"' ? scanString() : scanScalar()
      if (problem !== undefined) return fail(problem)
      mode = 'after'
    } else if (mode === 'key') {
      if (i >= n) return fail('unexpected end of input, expected a property name')
      if (t[i] !== '"') return fail('expected a double-quoted property name')
      const problem = scanString()
      if (problem !== undefined) return fail(problem)
      ws()
      if (t[i] !== ':') return fail(i >= n ? "unexpected end of input, expected ':'" : "expected ':' after a property name")
      i++
      mode = 'value'
    } else {
      if (stack.length === 0) return i < n ? fail('unexpected text after the JSON value') : undefined
      const inObject = stack[stack.length - 1]
      const close = inObject ? '}' : ']'
      if (t[i] === ',') {
        i++
        mode = inObject ? 'key' : 'value'
      } else if (t[i] === close) {
        stack.pop()
        i++
      } else {
        return fail(i >= n ? `unexpected end of input, expected ',' or '${close}'` : `expected ',' or '${close}'`)
      }
    }
  }

  function scanString(): string | undefined {
    i++ // opening quote
    while (i < n) {
      const c = t.charCodeAt(i)
      if (c === 0x22) {
        i++
        return undefined
      }
      if (c < 0x20) return 'control character in a string (must be escaped)'
      if (c === 0x5c) {
        const e = t[i + 1]
        if (e === 'u') {
          if (!/^[0-9A-Fa-f]{4}$/.test(t.slice(i + 2, i + 6))) return 'bad \\u escape (needs 4 hex digits)'
          i += 6
          continue
        }
        if (e === undefined || '"\\/bfnrt'.indexOf(e) < 0) return 'bad escape in a string'
        i += 2
        continue
      }
      i++
    }
    return 'unterminated string'
  }

  function scanScalar(): string | undefined {
    for (const word of ['true', 'false', 'null']) {
      if (t.startsWith(word, i)) {
        i += word.length
        return undefined
      }
    }
    NUMBER.lastIndex = i
    const m = NUMBER.exec(t)
    if (m === null) return 'expected a value'
    i += m[0].length
    return undefined
  }
}
