// The e2e bench's native load client (bench/native/dps-load.c through bench/lib/native-client.mjs)
// against a real `provisio serve` (the built CLI): it is built with the system C compiler and
// OpenSSL 3 (Debian: gcc libc6-dev libssl-dev; .ci/run installs them when missing), registers
// symmetric-key group devices over MQTT and HTTPS, and the service API must then know every one
// of them as assigned. A wrong group key, a server that never answers and bad input must end in
// a clear error, not a hang.
import { readFileSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildSasToken } from '@provisio/protocol'
import { startNativeClient, type NativeBatch, type NativeClient } from '../../bench/lib/native-client.mjs'
import { startServe, type ServeProcess } from '../lib/cli.js'
import { httpsRequest } from '../lib/https-client.js'

interface Endpoints {
  idScope: string
  serviceConnectionString: string
  caCertificate: string
  ports: { https: number; mqtt: number }
}

const GROUP_KEY = Buffer.alloc(64, 0x4b).toString('base64')
const WRONG_KEY = Buffer.alloc(64, 0x4c).toString('base64')

let serve: ServeProcess<Endpoints>
let ca: string
let client: NativeClient

function serviceToken(): string {
  const cs = Object.fromEntries(serve.endpoints.serviceConnectionString.split(';').map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]))
  return buildSasToken({ resource: cs.HostName!, key: cs.SharedAccessKey!, keyName: cs.SharedAccessKeyName!, expiresAt: Math.floor(Date.now() / 1000) + 3600 })
}

async function service(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const text = body === undefined ? undefined : JSON.stringify(body)
  const answer = await httpsRequest(serve.endpoints.ports.https, ca, method, `${path}?api-version=2021-10-01`, {
    headers: { authorization: serviceToken(), ...(text === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }) },
    ...(text === undefined ? {} : { body: text }),
  })
  return { status: answer.status, body: answer.body === '' ? {} : (JSON.parse(answer.body) as Record<string, unknown>) }
}

function batch(transport: 'https' | 'mqtt', prefix: string, extra: Partial<NativeBatch> = {}): NativeBatch {
  return {
    cmd: 'batch',
    transport,
    targets: [{ port: serve.endpoints.ports[transport], ca }],
    idScope: serve.endpoints.idScope,
    prefix,
    count: 5,
    concurrency: 2,
    credential: 'sas',
    groupKey: GROUP_KEY,
    resume: true,
    ...extra,
  }
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(8, '0')}`)

beforeAll(async () => {
  // Built (or found in its cache) before anything else: a missing compiler or OpenSSL fails here, clearly.
  client = startNativeClient()
  serve = await startServe<Endpoints>({
    dataDirPrefix: 'provisio-native-load-',
    // Production refusals (CONNACK 5 for a wrong key), not the development reasons a loopback server gives.
    args: ['--assignment-budget-ms', '5000', '--registrations-per-minute', '0', '--retry-after', '1', '--dev-reasons', 'false'],
  })
  ca = readFileSync(serve.endpoints.caCertificate, 'utf8')
  const group = await service('PUT', '/enrollmentGroups/native-load', {
    enrollmentGroupId: 'native-load',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: GROUP_KEY } },
  })
  expect(group.status).toBe(200)
}, 120_000)

afterAll(async () => {
  await client?.stop()
  serve?.stop()
})

describe('native load client (bench/native/dps-load.c)', () => {
  for (const transport of ['mqtt', 'https'] as const) {
    it(`registers brand-new symmetric-key group devices over ${transport}, with and without TLS session resumption`, async () => {
      const resumed = await client.ask(batch(transport, `native-${transport}-r-`))
      expect(resumed.samples).toHaveLength(5)
      for (const ms of resumed.samples) expect(ms).toBeGreaterThan(0)
      // Two devices at a time: once the first connection brought a ticket, later ones offer it.
      expect(resumed.resumed).toBeGreaterThan(0)
      expect(resumed.resumed).toBeLessThan(5)
      const full = await client.ask(batch(transport, `native-${transport}-f-`, { resume: false, count: 3 }))
      expect(full.samples).toHaveLength(3)
      expect(full.resumed).toBe(0)

      // The service knows each device as registered and assigned, and no device beyond the count.
      for (const id of [...ids(`native-${transport}-r-`, 5), ...ids(`native-${transport}-f-`, 3)]) {
        const state = await service('GET', `/registrations/${id}`)
        expect(state.status, id).toBe(200)
        expect(state.body).toMatchObject({ registrationId: id, status: 'assigned' })
      }
      expect((await service('GET', `/registrations/native-${transport}-r-00000006`)).status).toBe(404)

      // The sequence goes on per prefix, as the Node client's: a second batch makes new devices.
      await client.ask(batch(transport, `native-${transport}-r-`, { count: 1 }))
      expect((await service('GET', `/registrations/native-${transport}-r-00000006`)).body).toMatchObject({ status: 'assigned' })
      expect(client.cpuMs()).toBeGreaterThan(0)
    })
  }

  it('spreads devices over several targets (device i on target i mod n)', async () => {
    const answer = await client.ask(batch('mqtt', 'native-two-', { targets: [{ port: serve.endpoints.ports.mqtt, ca }, { port: serve.endpoints.ports.mqtt, caFile: serve.endpoints.caCertificate }], count: 4 }))
    expect(answer.samples).toHaveLength(4)
    for (const id of ids('native-two-', 4)) expect((await service('GET', `/registrations/${id}`)).body).toMatchObject({ status: 'assigned' })
  })

  it('fails a batch with the device, the status and the body when the group key is wrong, and carries on afterwards', async () => {
    await expect(client.ask(batch('mqtt', 'native-bad-mqtt-', { groupKey: WRONG_KEY }))).rejects.toThrow(/mqtt native-bad-mqtt-0000000\d .*CONNACK return code 5/)
    await expect(client.ask(batch('https', 'native-bad-https-', { groupKey: WRONG_KEY }))).rejects.toThrow(/https native-bad-https-0000000\d .*status 401, body \{"errorCode":401/)
    expect((await service('GET', '/registrations/native-bad-https-00000001')).status).toBe(404)
    const after = await client.ask(batch('https', 'native-after-', { count: 1 }))
    expect(after.samples).toHaveLength(1)
  })

  it('fails on a server certificate its CA does not vouch for', async () => {
    // A CA file holding a certificate that is not a trust anchor for the server: its own leaf.
    const leaf = readFileSync(`${serve.dataDir}/server.pem`, 'utf8')
    const onlyLeaf = leaf.slice(0, leaf.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----'.length) + '\n'
    await expect(client.ask(batch('https', 'native-untrusted-', { targets: [{ port: serve.endpoints.ports.https, ca: onlyLeaf }], count: 1 }))).rejects.toThrow(
      /TLS handshake: .*certificate verify failed/,
    )
  })

  it('gives up on a server that accepts and never answers, after the step timeout', async () => {
    const sockets = new Set<Socket>()
    const silent: Server = createServer((s) => {
      sockets.add(s)
      s.on('error', () => {})
    })
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const port = (silent.address() as { port: number }).port
    try {
      await expect(client.ask(batch('mqtt', 'native-silent-', { targets: [{ port, ca }], count: 1, timeoutMs: 300 }))).rejects.toThrow(
        /mqtt native-silent-00000001 \(127\.0\.0\.1:\d+\): no progress within 300 ms \(waiting for TCP \+ TLS connect\)/,
      )
    } finally {
      for (const s of sockets) s.destroy()
      silent.close()
    }
  })

  it('refuses what it cannot do with a clear error', async () => {
    await expect(client.ask({ ...batch('mqtt', 'x-'), transport: 'amqp' } as unknown as NativeBatch)).rejects.toThrow(/transport must be 'https' or 'mqtt'/)
    await expect(client.ask({ ...batch('mqtt', 'x-'), credential: 'x509' } as unknown as NativeBatch)).rejects.toThrow(/only symmetric-key devices/)
    await expect(client.ask(batch('mqtt', 'bad/prefix-'))).rejects.toThrow(/prefix must be/)
    await expect(client.ask(batch('mqtt', 'x-', { groupKey: 'not base64!' }))).rejects.toThrow(/groupKey must be non-empty base64/)
    await expect(client.ask(batch('mqtt', 'x-', { count: 0 }))).rejects.toThrow(/count must be an integer/)
  })
})
