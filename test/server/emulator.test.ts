// `provisio serve` serving the browser emulator at /emulator/ over real TLS: content types, cache
// headers and ETags, refusal of paths that try to leave the build directory, the public
// config.json (no key in it), and the answer when the emulator is not built.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { httpsRequest } from '../lib/https-client.js'
import { startTestServer, type TestServer } from '../lib/server.js'

const SECRET = 'secret-outside-the-build-directory'
let base: string
let server: TestServer

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'provisio-emulator-site-'))
  const dist = join(base, 'dist')
  mkdirSync(join(dist, 'assets'), { recursive: true })
  writeFileSync(join(dist, 'index.html'), '<!doctype html><title>emulator</title>')
  writeFileSync(join(dist, 'assets', 'main-abc123.js'), 'console.log("emulator")')
  writeFileSync(join(dist, 'assets', 'main-abc123.css'), 'body{}')
  writeFileSync(join(dist, 'assets', 'core-def456.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]))
  writeFileSync(join(dist, 'assets', 'blob.bin'), Buffer.from([1, 2, 3]))
  writeFileSync(join(base, 'secret.txt'), SECRET)
  symlinkSync(join(base, 'secret.txt'), join(dist, 'assets', 'escape.txt'))
  server = await startTestServer({ emulatorDir: dist })
})

afterAll(async () => {
  await server?.stop()
  rmSync(base, { recursive: true, force: true })
})

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => httpsRequest(server.port, server.caPem, method, path, { headers })

describe('the emulator at /emulator/', () => {
  it('redirects /emulator to /emulator/ and serves index.html there, revalidated, with a CSP', async () => {
    const redirect = await get('/emulator')
    expect(redirect.status).toBe(301)
    expect(redirect.headers.location).toBe('/emulator/')
    const page = await get('/emulator/')
    expect(page.status).toBe(200)
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8')
    expect(page.headers['cache-control']).toBe('no-cache')
    expect(page.headers['x-content-type-options']).toBe('nosniff')
    expect(page.headers['content-security-policy']).toContain("default-src 'self'")
    expect(page.body).toContain('<title>emulator</title>')
    const again = await get('/emulator/index.html', { 'if-none-match': String(page.headers.etag) })
    expect(again.status).toBe(304)
    expect(again.body).toBe('')
  })

  it('serves a file again when the build rewrites it (new body, new ETag; the old tag no longer matches)', async () => {
    const file = join(base, 'dist', 'assets', 'rebuilt.js')
    writeFileSync(file, 'console.log(1)')
    const first = await get('/emulator/assets/rebuilt.js')
    expect(first.body).toBe('console.log(1)')
    writeFileSync(file, 'console.log(22)')
    utimesSync(file, new Date(), new Date(Date.now() + 5000))
    const second = await get('/emulator/assets/rebuilt.js', { 'if-none-match': String(first.headers.etag) })
    expect(second.status).toBe(200)
    expect(second.body).toBe('console.log(22)')
    expect(second.headers.etag).not.toBe(first.headers.etag)
  })

  it('serves hashed assets with their content types and a year-long immutable cache', async () => {
    const cases: [string, string][] = [
      ['main-abc123.js', 'text/javascript; charset=utf-8'],
      ['main-abc123.css', 'text/css; charset=utf-8'],
      ['core-def456.wasm', 'application/wasm'],
      ['blob.bin', 'application/octet-stream'],
    ]
    for (const [file, type] of cases) {
      const res = await get(`/emulator/assets/${file}`)
      expect(res.status, file).toBe(200)
      expect(res.headers['content-type'], file).toBe(type)
      expect(res.headers['cache-control'], file).toBe('public, max-age=31536000, immutable')
    }
  })

  it('answers a byte range with 206 and the slice, and an unsatisfiable one with 416', async () => {
    const part = await get('/emulator/assets/main-abc123.js', { range: 'bytes=0-6' })
    expect(part.status).toBe(206)
    expect(part.body).toBe('console')
    expect(part.headers['content-range']).toBe(`bytes 0-6/${'console.log("emulator")'.length}`)
    expect(part.headers['cache-control']).toBe('public, max-age=31536000, immutable')
    expect((await get('/emulator/assets/main-abc123.js', { range: 'bytes=999-' })).status).toBe(416)
  })

  it('answers HEAD without a body and refuses other methods with 405', async () => {
    const head = await get('/emulator/assets/main-abc123.js', {}, 'HEAD')
    expect(head.status).toBe(200)
    expect(head.headers['content-length']).toBe(String('console.log("emulator")'.length))
    expect(head.body).toBe('')
    const post = await get('/emulator/', {}, 'POST')
    expect(post.status).toBe(405)
    expect(post.headers.allow).toBe('GET, HEAD')
  })

  it('never serves a file outside the build directory', async () => {
    const attempts = [
      '/emulator/../secret.txt',
      '/emulator/%2e%2e/secret.txt',
      '/emulator/..%2fsecret.txt',
      '/emulator/assets/..%2F..%2Fsecret.txt',
      '/emulator/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/emulator/..%5csecret.txt',
      '/emulator/assets%00/x',
      '/emulator//etc/passwd',
      '/emulator/assets/escape.txt',
      '/emulator/%E0%A4%A',
    ]
    for (const path of attempts) {
      const res = await get(path)
      expect([400, 404], path).toContain(res.status)
      expect(res.body, path).not.toContain(SECRET)
      expect(res.body.length, path).toBeGreaterThan(0)
    }
    expect((await get('/emulator/assets/escape.txt')).body).toMatch(/leaves the emulator's directory/)
    expect((await get('/emulator/nothing.js')).status).toBe(404)
    expect((await get('/emulator/assets')).status).toBe(404)
  })

  it('publishes the ID scope, host and port in config.json, and no key', async () => {
    const res = await get('/emulator/config.json')
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8')
    expect(res.headers['cache-control']).toBe('no-cache')
    expect(JSON.parse(res.body)).toEqual({ idScope: server.endpoints.idScope, host: 'localhost', port: server.port })
    for (const policy of server.state.servicePolicies) {
      expect(res.body).not.toContain(policy.primaryKey)
      expect(res.body).not.toContain(policy.secondaryKey)
    }
    for (const hub of server.state.hubs) for (const p of hub.policies) expect(res.body).not.toContain(p.primaryKey)
  })
})

describe('a server without the emulator build', () => {
  it('says how to build it', async () => {
    const bare = await startTestServer({ emulatorDir: join(tmpdir(), 'provisio-no-such-emulator-dir') })
    try {
      const res = await httpsRequest(bare.port, bare.caPem, 'GET', '/emulator/')
      expect(res.status).toBe(404)
      expect(res.body).toMatch(/npm run build -w @provisio\/emulator/)
      // config.json does not need the build.
      expect((await httpsRequest(bare.port, bare.caPem, 'GET', '/emulator/config.json')).status).toBe(200)
    } finally {
      await bare.stop()
    }
  })
})
