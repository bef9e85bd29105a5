/**
 * The browser device emulator (@provisio/emulator) served at `/emulator/` on the HTTPS port:
 * the files of its Vite build, and `/emulator/config.json` with the public settings the page
 * pre-fills (ID scope, device endpoint host, HTTPS port — never a key).
 *
 * Files: GET and HEAD only; the path is decoded once, and a segment that is empty, `.` or `..`,
 * or a character that could step outside (backslash, NUL) is refused before the file system is
 * touched; the resolved real path must still lie inside the build directory (no symlink escape).
 * Vite's hashed `assets/` are cached for a year (immutable); index.html and config.json are
 * revalidated each time (ETag).
 */
import { createRequire } from 'node:module'
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { dirname, extname, join, sep } from 'node:path'

/** Where the page lives on the HTTPS port. */
export const EMULATOR_PATH = '/emulator/'

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
}

/** The page loads its scripts, styles and WebAssembly from itself and connects to device endpoints. */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self' https: wss:; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

/** Largest file served (the build is a few hundred KB; anything bigger is not ours). */
const MAX_FILE_BYTES = 32 * 1024 * 1024

export interface EmulatorAnswer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: Uint8Array | string
}

/** What the page may know about this server. */
export interface EmulatorPublicConfig {
  readonly idScope: string
  readonly host: string
  readonly port: number
}

/**
 * The build directory of @provisio/emulator when it is installed beside the server (the
 * workspace, or an install that added it), else undefined. The server does not depend on the
 * emulator package (it is a higher layer); it only serves its files when they are there.
 */
export function findEmulatorDist(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('@provisio/emulator/package.json')
    const dist = join(dirname(pkg), 'dist')
    return existsSync(join(dist, 'index.html')) ? dist : undefined
  } catch {
    return undefined
  }
}

export interface EmulatorSite {
  /** Answers a request under /emulator, or undefined when `path` is not ours. */
  answer(method: string, path: string, headers: Readonly<Record<string, string | string[] | undefined>>): EmulatorAnswer | undefined
}

export function createEmulatorSite(dir: string | undefined, publicConfig: () => EmulatorPublicConfig): EmulatorSite {
  const root = dir === undefined ? undefined : safeRealpath(dir)
  // The build is a few files; each is kept once read (bounded by the directory's contents).
  const files = new Map<string, { size: number; mtimeMs: number; answer: EmulatorAnswer }>()
  return {
    answer(method, path, headers) {
      if (path !== '/emulator' && !path.startsWith(EMULATOR_PATH)) return undefined
      if (method !== 'GET' && method !== 'HEAD') {
        return text(405, `${method} is not served here (GET or HEAD)`, { allow: 'GET, HEAD' })
      }
      if (path === '/emulator') return { status: 301, headers: { location: EMULATOR_PATH, 'content-length': '0' }, body: '' }
      const rest = path.slice(EMULATOR_PATH.length)
      if (rest === 'config.json') {
        const body = JSON.stringify(publicConfig())
        return withEtag(headers, { status: 200, headers: { 'content-type': CONTENT_TYPES['.json']!, 'cache-control': 'no-cache' }, body })
      }
      if (root === undefined) {
        return text(404, 'The browser emulator is not built on this server: run `npm run build -w @provisio/emulator`, or pass --emulator-dir <its dist directory>.')
      }
      const file = resolveFile(root, rest === '' ? 'index.html' : rest)
      if (typeof file !== 'string') return text(file.status, file.reason)
      return withEtag(headers, filed(file, rest.startsWith('assets/')))
    },
  }

  /** A file's answer, read and tagged once per version of the file (same size and mtime). */
  function filed(file: string, hashed: boolean): EmulatorAnswer {
    const { size, mtimeMs } = statSync(file)
    const held = files.get(file)
    if (held !== undefined && held.size === size && held.mtimeMs === mtimeMs) return held.answer
    const type = CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream'
    const body = readFileSync(file)
    const answer: EmulatorAnswer = {
      status: 200,
      headers: {
        'content-type': type,
        'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
        'x-content-type-options': 'nosniff',
        ...(type.startsWith('text/html') ? { 'content-security-policy': CONTENT_SECURITY_POLICY, 'referrer-policy': 'no-referrer' } : {}),
        etag: etagOf(body),
      },
      body,
    }
    files.set(file, { size, mtimeMs, answer })
    return answer
  }
}

/** The file for `relative` inside `root`, or why not (400 for a path that tries to leave, 404 for one that is not there). */
export function resolveFile(root: string, relative: string): string | { status: number; reason: string } {
  let decoded: string
  try {
    decoded = decodeURIComponent(relative)
  } catch {
    return { status: 400, reason: 'the path is not valid percent-encoding' }
  }
  const segments = decoded.split('/')
  if (segments.some((s) => s === '' || s === '.' || s === '..') || /[\\\0]/.test(decoded) || decoded.length > 512) {
    return { status: 400, reason: `the path ${JSON.stringify(relative)} is not a file of the emulator` }
  }
  const candidate = join(root, ...segments)
  let real: string
  try {
    real = realpathSync(candidate)
  } catch {
    return { status: 404, reason: `no file ${decoded} in the emulator` }
  }
  if (!real.startsWith(root + sep)) return { status: 400, reason: `the path ${JSON.stringify(relative)} leaves the emulator's directory` }
  const stat = statSync(real)
  if (!stat.isFile()) return { status: 404, reason: `no file ${decoded} in the emulator` }
  if (stat.size > MAX_FILE_BYTES) return { status: 404, reason: `${decoded} is too large to be served` }
  return real
}

function safeRealpath(dir: string): string | undefined {
  try {
    return realpathSync(dir)
  } catch {
    return undefined
  }
}

function text(status: number, message: string, extra: Record<string, string> = {}): EmulatorAnswer {
  return { status, headers: { 'content-type': CONTENT_TYPES['.txt']!, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra }, body: message + '\n' }
}

/** A weak ETag over a body. */
function etagOf(body: Uint8Array | string): string {
  return `W/"${fnv1a(body)}"`
}

/** The answer with its ETag (computed here unless it carries one); 304 when the client already holds it. */
function withEtag(headers: Readonly<Record<string, string | string[] | undefined>>, answer: EmulatorAnswer): EmulatorAnswer {
  const etag = answer.headers.etag ?? etagOf(answer.body)
  const held = headers['if-none-match']
  if (typeof held === 'string' && held.split(',').some((t) => t.trim() === etag)) {
    return { status: 304, headers: { etag, 'cache-control': answer.headers['cache-control']! }, body: '' }
  }
  return answer.headers.etag === undefined ? { ...answer, headers: { ...answer.headers, etag } } : answer
}

/** FNV-1a (32-bit) of the body plus its length: enough to tell versions of a file apart. */
function fnv1a(body: Uint8Array | string): string {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body
  let h = 0x811c9dc5
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return `${bytes.length.toString(16)}-${h.toString(16)}`
}
