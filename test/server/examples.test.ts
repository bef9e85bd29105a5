// The Microsoft SDK samples of examples/ run as a user runs them: each a child process against
// `provisio serve` (its own process, ephemeral ports), told where the server is only through
// PROVISIO_DATA_DIR and NODE_EXTRA_CA_CERTS, as examples/README.md says. The service sample makes
// an enrollment group, the device sample provisions with a key derived from it over MQTT and
// connects to its hub (its telemetry read back with `provisio telemetry`), the X.509 sample
// provisions over HTTPS with certificates made by `provisio pki`.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, startServe, type ServeProcess } from '../lib/cli.js'

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples')
const run = promisify(execFile)

let serve: ServeProcess<{ idScope: string; caCertificate: string; ports: { https: number; mqtt: number }; hubs: { hostName: string }[] }>
let work: string

/** Runs an example (cwd: a scratch directory) with the environment the README tells users to set. */
function example(file: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return run(process.execPath, [join(EXAMPLES, file), ...args], {
    cwd: work,
    timeout: 60_000,
    encoding: 'utf8',
    env: { ...process.env, PROVISIO_DATA_DIR: serve.dataDir, NODE_EXTRA_CA_CERTS: serve.endpoints.caCertificate, ...env },
  })
}

beforeAll(async () => {
  serve = await startServe({ dataDirPrefix: 'provisio-examples-' })
  work = mkdtempSync(join(tmpdir(), 'provisio-examples-work-'))
})

afterAll(() => {
  serve?.stop()
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

describe('examples/ against provisio serve', () => {
  let groupKey: string

  it('service-enrollments.mjs creates an enrollment group and an individual enrollment with azure-iot-provisioning-service', async () => {
    const { stdout } = await example('service-enrollments.mjs')
    expect(stdout).toMatch(/^enrollment group example-group: etag \S+$/m)
    expect(stdout).toMatch(/^individual enrollment example-device: etag \S+$/m)
    expect(stdout).toMatch(/^individual enrollments: example-device$/m)
    groupKey = /^GROUP_KEY=(\S+)$/m.exec(stdout)![1]!
    expect(Buffer.from(groupKey, 'base64')).toHaveLength(64)
  })

  it('device-mqtt-group-key.mjs provisions over MQTT on host:port, connects to its hub through GatewayHostName and sends telemetry', async () => {
    const { stdout } = await example('device-mqtt-group-key.mjs', ['example-sensor-1'], { GROUP_KEY: groupKey })
    const hub = serve.endpoints.hubs[0]!.hostName
    expect(stdout).toContain(`provisioned example-sensor-1: hub ${hub}, device example-sensor-1`)
    expect(stdout).toContain(`connected to ${hub} over MQTT`)
    expect(stdout).toContain('sent telemetry')
    // The group's initial twin reached the device; its reported property was accepted.
    expect(stdout).toMatch(/reported firmware 1\.0\.0; desired properties: \{.*"telemetryInterval":30/)
    const telemetry = await run(process.execPath, [CLI, 'telemetry', '--device', 'example-sensor-1', '--data-dir', serve.dataDir], { encoding: 'utf8', timeout: 30_000 })
    const messages = telemetry.stdout.trim().split('\n').map((l) => JSON.parse(l) as { body: string })
    expect(messages.map((m) => JSON.parse(m.body) as unknown)).toEqual([{ temperature: 21.5 }])
  })

  it('device-mqtt-group-key.mjs says what is missing without a group key', async () => {
    const failure = await example('device-mqtt-group-key.mjs').then(() => undefined, (error: { code: number; stderr: string }) => error)
    expect(failure?.code).toBe(1)
    expect(failure?.stderr).toContain('GROUP_KEY=<base64 key of a symmetric-key enrollment group> is required')
  })

  it('x509-device-http.mjs provisions an X.509 device over HTTPS with certificates from provisio pki', async () => {
    const { stdout } = await example('x509-device-http.mjs', ['example-x509-1'], { PKI_DIR: join(work, 'pki') })
    expect(stdout).toContain('enrollment group example-x509-group')
    expect(stdout).toContain(`provisioned example-x509-1: hub ${serve.endpoints.hubs[0]!.hostName}, device example-x509-1, X.509 group example-x509-group`)
  })

  it('every example tells how to trust the CA when NODE_EXTRA_CA_CERTS is not set', async () => {
    const failure = await example('service-enrollments.mjs', [], { NODE_EXTRA_CA_CERTS: '' }).then(() => undefined, (error: { code: number; stderr: string }) => error)
    expect(failure?.code).toBe(1)
    expect(failure?.stderr).toContain(`export NODE_EXTRA_CA_CERTS=${serve.endpoints.caCertificate}`)
  })
})
