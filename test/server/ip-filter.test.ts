// IP filter rules of the DPS instance and of a hub, with a client from a denied range: a network
// namespace joined to this host by a veth pair (iproute2), made and removed by this test. Needs
// root; skipped off CI when not root, never when CI=true.
import { execFileSync, spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestServer, type TestServer } from '../lib/server.js'

const root = process.getuid?.() === 0
const run = root || process.env.CI === 'true'
const tag = String(process.pid % 100_000)
const ns = `pvacl${tag}`
const hostVeth = `pvh${tag}`
const nsVeth = `pvn${tag}`
const subnet = `10.213.${process.pid % 250}`
const hostIp = `${subnet}.1`
const nsIp = `${subnet}.2`

let server: TestServer
let netnsMade = false

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe', timeout: 10_000 })
}

/** GET /health over HTTPS from `namespace` (or this one): the status, or the error that ended it. */
function health(from: string | undefined, servername: string): Promise<string> {
  const script = `
    import { request } from 'node:https'
    const req = request({ host: ${JSON.stringify(hostIp)}, port: ${server.port}, path: '/health', servername: ${JSON.stringify(servername)}, ca: process.env.CA, timeout: 5000 }, (res) => { console.log('status ' + res.statusCode); res.resume() })
    req.on('error', (e) => console.log('error ' + (e.code ?? e.message)))
    req.on('timeout', () => { console.log('timeout'); req.destroy() })
    req.end()`
  const argv = ['--input-type=module', '-e', script]
  const child = from === undefined ? spawn(process.execPath, argv, { env: { ...process.env, CA: server.caPem } }) : spawn('ip', ['netns', 'exec', from, process.execPath, ...argv], { env: { ...process.env, CA: server.caPem } })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    child.on('error', reject)
    child.on('close', () => resolve(out.trim()))
  })
}

beforeAll(async () => {
  if (!run) return
  ip('netns', 'add', ns)
  netnsMade = true
  ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nsVeth)
  ip('link', 'set', nsVeth, 'netns', ns)
  ip('addr', 'add', `${hostIp}/24`, 'dev', hostVeth)
  ip('link', 'set', hostVeth, 'up')
  ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${nsIp}/24`, 'dev', nsVeth)
  ip('netns', 'exec', ns, 'ip', 'link', 'set', nsVeth, 'up')
  ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up')
  server = await startTestServer({
    bind: hostIp,
    hubs: [{ hostName: 'open-hub.test' }, { hostName: 'closed-hub.test', ipFilter: [{ filterName: 'nobody', action: 'Reject', ipMask: '0.0.0.0/0' }] }],
    // First match wins: this host's own address is accepted before the /24 is rejected.
    ipFilter: [
      { filterName: 'host', action: 'Accept', ipMask: `${hostIp}/32` },
      { filterName: 'lab', action: 'Reject', ipMask: `${subnet}.0/24` },
    ],
  })
}, 60_000)

afterAll(async () => {
  await server?.stop()
  // Removing the namespace removes its end of the veth pair, and with it this end.
  if (netnsMade) ip('netns', 'del', ns)
})

describe.skipIf(!run)('IP filter rules (network namespace client)', () => {
  it('the DPS instance refuses a client from the rejected range and serves one its first rule accepts', async () => {
    expect(await health(undefined, 'localhost')).toBe('status 200')
    expect(await health(ns, 'localhost')).toMatch(/^error /)
    expect((server as unknown as { logs: string[] }).logs.some((l) => l.includes('connection refused by IP filter') && l.includes(`rule lab rejects ${nsIp}`))).toBe(true)
  })

  it("a hub's rules apply to connections for its host name, not the DPS instance's", async () => {
    expect(await health(ns, 'open-hub.test')).toBe('status 200')
    expect(await health(undefined, 'closed-hub.test')).toMatch(/^error /)
  })
})
