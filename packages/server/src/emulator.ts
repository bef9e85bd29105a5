/**
 * The browser device emulator (@provisio/emulator) served at `/emulator/` on the HTTPS port:
 * the files of its Vite build, and `/emulator/config.json` with the public settings the page
 * pre-fills (ID scope, device endpoint host, HTTPS port — never a key).
 *
 * Files: GET and HEAD only; the path is decoded once, and a segment that is empty, `.` or `..`,
 * or a character that could step outside (backslash, NUL) is refused before the file system is
 * touched; the resolved real path must still lie inside the build directory (no symlink escape).
 * The file itself is sent by `send` (the file server under Express's serve-static): asynchronous
 * stat and streamed read per request, weak ETag from size and mtime (a rebuilt file gets a new
 * one), conditional GET, HEAD and ranges. Vite's hashed `assets/` are cached for a year
 * (immutable); index.html and config.json are revalidated each time (ETag).
 */
import { createRequire } from 'node:module'
import { existsSync, realpathSync } from 'node:fs'
import { realpath, stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { dirname, extname, join, relative, sep } from 'node:path'
import etag from 'etag'
import fresh from 'fresh'
import send from 'send'

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

/** An answer the site gives itself (redirect, refusal, config.json). */
interface Answer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
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
  /** Whether `path` (the request path, without query) is the emulator's to answer. */
  owns(path: string): boolean
  /** Answers a request for one of its paths on `res`. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<void>
}

export function createEmulatorSite(dir: string | undefined, publicConfig: () => EmulatorPublicConfig): EmulatorSite {
  const root = dir === undefined ? undefined : safeRealpath(dir)
  return {
    owns: (path) => path === '/emulator' || path.startsWith(EMULATOR_PATH),
    async serve(req, res, path) {
      const method = req.method ?? 'GET'
      if (method !== 'GET' && method !== 'HEAD') {
        return write(req, res, text(405, `${method} is not served here (GET or HEAD)`, { allow: 'GET, HEAD' }))
      }
      if (path === '/emulator') return write(req, res, { status: 301, headers: { location: EMULATOR_PATH }, body: '' })
      const rest = path.slice(EMULATOR_PATH.length)
      if (rest === 'config.json') {
        const body = JSON.stringify(publicConfig())
        const headers = { 'content-type': CONTENT_TYPES['.json']!, 'cache-control': 'no-cache', etag: etag(body, { weak: true }) }
        const status = fresh(req.headers, headers) ? 304 : 200
        return write(req, res, { status, headers, body: status === 304 ? '' : body })
      }
      if (root === undefined) {
        return write(req, res, text(404, 'The browser emulator is not built on this server: run `npm run build -w @provisio/emulator`, or pass --emulator-dir <its dist directory>.'))
      }
      const file = await resolveFile(root, rest === '' ? 'index.html' : rest)
      if (typeof file !== 'string') return write(req, res, text(file.status, file.reason))
      return sendFile(req, res, root, file, rest.startsWith('assets/'))
    },
  }
}

/** Streams `file` (a real path inside `root`) with the emulator's headers; send adds ETag, Content-Length, 304 and ranges. */
function sendFile(req: IncomingMessage, res: ServerResponse, root: string, file: string, hashed: boolean): Promise<void> {
  const type = CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream'
  const urlPath = '/' + relative(root, file).split(sep).map(encodeURIComponent).join('/')
  return new Promise((resolve) => {
    send(req, urlPath, { root, index: false, dotfiles: 'allow', cacheControl: false, lastModified: false, etag: true })
      .on('headers', (response: ServerResponse) => {
        response.setHeader('content-type', type)
        response.setHeader('cache-control', hashed ? 'public, max-age=31536000, immutable' : 'no-cache')
        response.setHeader('x-content-type-options', 'nosniff')
        if (type.startsWith('text/html')) {
          response.setHeader('content-security-policy', CONTENT_SECURITY_POLICY)
          response.setHeader('referrer-policy', 'no-referrer')
        }
      })
      .on('error', (error: { status?: number; message: string }) => {
        // The file went away (or became unreadable) between the check and the read.
        if (res.headersSent) res.destroy()
        else write(req, res, text(error.status ?? 500, `the emulator's file could not be sent: ${error.message}`))
        resolve()
      })
      .on('end', resolve)
      .pipe(res)
    res.once('close', resolve)
  })
}

/**
 * The file for `relative` inside `root`, or why not (400 for a path that tries to leave, 404 for one
 * that is not there). Checked here, before send sees the path: send refuses `..` but would follow a
 * symlink inside the build directory to a file outside it.
 */
export async function resolveFile(root: string, relative: string): Promise<string | { status: number; reason: string }> {
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
  let real: string
  try {
    real = await realpath(join(root, ...segments))
  } catch {
    return { status: 404, reason: `no file ${decoded} in the emulator` }
  }
  if (!real.startsWith(root + sep)) return { status: 400, reason: `the path ${JSON.stringify(relative)} leaves the emulator's directory` }
  const info = await stat(real)
  if (!info.isFile()) return { status: 404, reason: `no file ${decoded} in the emulator` }
  if (info.size > MAX_FILE_BYTES) return { status: 404, reason: `${decoded} is too large to be served` }
  return real
}

function safeRealpath(dir: string): string | undefined {
  try {
    return realpathSync(dir)
  } catch {
    return undefined
  }
}

function text(status: number, message: string, extra: Record<string, string> = {}): Answer {
  return { status, headers: { 'content-type': CONTENT_TYPES['.txt']!, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra }, body: message + '\n' }
}

function write(req: IncomingMessage, res: ServerResponse, answer: Answer): void {
  const body = Buffer.from(answer.body, 'utf8')
  res.writeHead(answer.status, { ...answer.headers, 'content-length': String(body.length) })
  res.end(req.method === 'HEAD' ? undefined : body)
}
