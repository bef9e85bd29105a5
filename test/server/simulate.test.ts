// `provisio simulate` as a user runs it: the built CLI against `provisio serve` in a child process.
// Small runs on several transports and attestations; the JSON and human summaries, the progress
// lines on a non-TTY stderr, failures counted by error code, and usage errors.
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { PassThrough } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { simulateCommand, percentile } from '@provisio/server'
import { CLI as cli, startServe, type ServeProcess } from '../lib/cli.js'

let serve: ServeProcess<{ idScope: string; caCertificate: string; ports: { https: number } }>
let dataDir: string
let endpoints: (typeof serve)['endpoints']

interface Summary {
  transport: string
  attestation: string
  devices: number
  concurrency: number
  succeeded: number
  failed: number
  durationSeconds: number
  ratePerSecond: number
  latencyMs: { p50: number; p95: number; p99: number; max: number }
  failures: Record<string, number>
  retries: number
  hubs: Record<string, number>
}

function simulate(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'simulate', '--data-dir', dataDir, ...args], { encoding: 'utf8', timeout: 240_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function registrationStatus(registrationId: string): string {
  const token = execFileSync(process.execPath, [cli, 'sas', '--service', '--data-dir', dataDir], { encoding: 'utf8' }).trim()
  const out = execFileSync('curl', ['-sS', '--cacert', endpoints.caCertificate, '-H', `Authorization: ${token}`, `https://localhost:${endpoints.ports.https}/registrations/${registrationId}?api-version=2021-10-01`], { encoding: 'utf8' })
  return (JSON.parse(out) as { status: string }).status
}

beforeAll(async () => {
  serve = await startServe({ dataDirPrefix: 'provisio-simulate-', args: ['--retry-after', '1'] })
  dataDir = serve.dataDir
  endpoints = serve.endpoints
})

afterAll(() => serve?.stop())

describe('provisio simulate', () => {
  it('registers N symmetric-key devices of a group it creates, C at a time, and prints a JSON summary', () => {
    const r = simulate(['--devices', '6', '--concurrency', '3', '--transport', 'http', '--create-group', '--prefix', 'simjson-', '--json'])
    expect(r.status, r.stderr).toBe(0)
    const s = JSON.parse(r.stdout) as Summary
    expect(s).toMatchObject({ transport: 'http', attestation: 'symmetric', devices: 6, concurrency: 3, succeeded: 6, failed: 0, failures: {}, hubs: { localhost: 6 } })
    expect(s.latencyMs.p50).toBeGreaterThan(0)
    expect(s.latencyMs.p50).toBeLessThanOrEqual(s.latencyMs.p95)
    expect(s.latencyMs.p95).toBeLessThanOrEqual(s.latencyMs.p99)
    expect(s.latencyMs.p99).toBeLessThanOrEqual(s.latencyMs.max)
    expect(s.ratePerSecond).toBeGreaterThan(0)
    // The service really has them.
    expect(registrationStatus('simjson-1')).toBe('assigned')
    expect(registrationStatus('simjson-6')).toBe('assigned')
    // Progress on a non-TTY stderr: plain lines, the last one complete.
    expect(r.stderr).toMatch(/created symmetric-key enrollment group simjson-group/)
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^simulate: 6\/6 done, 6 assigned, 0 failed, [\d.]+\/s$/)
  })

  it.each([
    ['tpm', 'amqp'],
    ['tpm', 'http'],
    ['x509', 'mqtt-ws'],
    ['x509', 'amqp'],
    ['symmetric', 'mqtt'],
  ])('registers %s devices over %s', (attestation, transport) => {
    const r = simulate(['--devices', '2', '--concurrency', '2', '--transport', transport, '--attestation', attestation, ...(attestation === 'symmetric' ? ['--create-group'] : []), '--json'])
    expect(r.status, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ transport, attestation, devices: 2, succeeded: 2, failed: 0 })
  })

  it('--issue-certificates: every device sends a P-256 CSR and gets a certificate chain', () => {
    const r = simulate(['--devices', '3', '--concurrency', '3', '--transport', 'mqtt', '--create-group', '--prefix', 'simcert-', '--issue-certificates', '--json'])
    expect(r.status, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ transport: 'mqtt', devices: 3, succeeded: 3, failed: 0, certificatesIssued: 3 })
  })

  it('counts refusals by error code in the human summary and exits 1', () => {
    // A group key no enrollment group has: every device is refused (HTTP carries errorCode 401002).
    const r = simulate(['--devices', '3', '--concurrency', '3', '--transport', 'http', '--group-key', randomBytes(64).toString('base64'), '--prefix', 'stranger-'])
    expect(r.status).toBe(1)
    expect(r.stdout).toContain('Simulated 3 devices (symmetric over http, concurrency 3)')
    expect(r.stdout).toMatch(/assigned\s+0\n/)
    expect(r.stdout).toMatch(/failed\s+3\n/)
    expect(r.stdout).toMatch(/failures by code:\n\s+REFUSED\/401002\s+3\n/)
    expect(r.stdout).toMatch(/e\.g\. stranger-\d: register: the service answered 401/)
  })

  it('draws a progress bar on a terminal (in-process, stderr marked as a TTY)', async () => {
    const out = new PassThrough()
    const err = new PassThrough()
    let stdoutText = ''
    let stderrText = ''
    out.on('data', (c: Buffer) => (stdoutText += c.toString()))
    err.on('data', (c: Buffer) => (stderrText += c.toString()))
    const code = await simulateCommand(['--data-dir', dataDir, '--devices', '4', '--concurrency', '2', '--transport', 'amqp-ws', '--create-group', '--prefix', 'tty-'], { stdout: out, stderr: err, stderrIsTty: true })
    expect(code).toBe(0)
    // One redrawn line per device, ending with the full bar and a newline.
    const frames = stderrText.split('\r').filter((f) => f.startsWith('['))
    expect(frames.length).toBe(4)
    expect(frames.at(-1)).toMatch(/^\[#{30}\] 4\/4 ok 4 failed 0 [\d.]+\/s\n$/)
    expect(stdoutText).toMatch(/^Simulated 4 devices \(symmetric over amqp-ws, concurrency 2\)\n\s+assigned\s+4\n/)
  })

  it('computes nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1)
    expect([percentile(values, 50), percentile(values, 95), percentile(values, 99), percentile(values, 100)]).toEqual([50, 95, 99, 100])
    expect(percentile([7], 99)).toBe(7)
    expect(percentile([], 50)).toBe(0)
  })

  it('refuses bad usage with exit code 2 and the reason', () => {
    const bad = simulate(['--transport', 'carrier-pigeon', '--create-group'])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/--transport must be one of http, mqtt, mqtt-ws, amqp, amqp-ws/)
    const both = simulate(['--create-group', '--group-key', 'AAAA'])
    expect(both.status).toBe(2)
    expect(both.stderr).toMatch(/exactly one of --group-key/)
    const tpmMqtt = simulate(['--attestation', 'tpm', '--transport', 'mqtt'])
    expect(tpmMqtt.status).toBe(2)
    expect(tpmMqtt.stderr).toMatch(/not offered over MQTT/)
    const unknown = simulate(['--bogus'])
    expect(unknown.status).toBe(2)
    const help = execFileSync(process.execPath, [cli, 'help', 'simulate'], { encoding: 'utf8' })
    expect(help).toContain('Usage: provisio simulate')
  })
})
