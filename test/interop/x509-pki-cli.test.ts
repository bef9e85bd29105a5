// `provisio pki` (the built CLI) makes a root, an intermediate and a device certificate; Microsoft's
// X.509 client registers with the files it wrote, through a group on the root. (The verification
// certificate kind is covered in packages/server/test/pki-tools.test.ts.)
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { X509Security } from 'azure-iot-security-x509'
import { startTestServer, type TestServer } from '../lib/server.js'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'packages', 'server', 'dist', 'cli.js')
const dir = mkdtempSync(join(tmpdir(), 'provisio-pki-cli-'))
let server: TestServer

function pki(...args: string[]): string {
  return execFileSync(process.execPath, [CLI, 'pki', ...args, '--dir', dir], { encoding: 'utf8' })
}
const read = (file: string) => readFileSync(join(dir, file), 'utf8')

beforeAll(async () => {
  server = await startTestServer()
  server.useAsDefaultHttpsAgent()
}, 60_000)

afterAll(async () => {
  await server?.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('provisio pki', () => {
  it('makes a chain the X.509 client registers with through a group on the root', async () => {
    pki('root', '--cn', 'CLI Root', '--name', 'root', '--key', 'rsa')
    pki('intermediate', '--cn', 'CLI Intermediate', '--name', 'int', '--issuer', 'root', '--path-len', '0')
    const written = pki('device', '--cn', 'cli-device-1', '--issuer', 'int')
    expect(written.trim().split('\n').map((p) => p.slice(dir.length + 1))).toEqual(['cli-device-1.pem', 'cli-device-1-key.pem', 'cli-device-1-chain.pem'])
    await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
      enrollmentGroupId: 'cli-root',
      attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: read('root.pem') } } } },
    })
    const client = ProvisioningDeviceClient.create('localhost', server.endpoints.idScope, new Http(),
      new X509Security('cli-device-1', { cert: read('cli-device-1-chain.pem'), key: read('cli-device-1-key.pem') }) as never)
    const result = await new Promise<{ assignedHub: string }>((resolve, reject) =>
      client.register((err?: Error, r?: unknown) => (err ? reject(err) : resolve(r as { assignedHub: string }))))
    expect(result.assignedHub).toBe('localhost')
  })

  it('explains usage errors with exit code 2', () => {
    let status = 0
    let stderr = ''
    try {
      pki('device', '--cn', 'x', '--issuer', 'missing')
    } catch (e) {
      status = (e as { status: number }).status
      stderr = String((e as { stderr: Buffer | string }).stderr)
    }
    expect(status).toBe(2)
    expect(stderr).toMatch(/provisio pki: issuer 'missing'.*does not exist/)
  })
})
