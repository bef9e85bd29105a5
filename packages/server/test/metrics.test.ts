import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import type { DeviceApi } from '@provisio/protocol'
import { Metrics, renderMetrics } from '../src/metrics.js'

describe('Metrics', () => {
  it('counts register outcomes by transport, status and attestation result', async () => {
    const metrics = new Metrics()
    let next: unknown = { status: 202, body: { operationId: 'o', status: 'assigning' } }
    const api: DeviceApi = {
      register: async () => {
        if (next instanceof Error) throw next
        return next as never
      },
      operationStatus: async () => ({ status: 200, body: { operationId: 'o', status: 'assigned' } }),
      registrationStatus: async () => ({ status: 200, body: { registrationId: 'r', status: 'assigned' } }),
    }
    const https = metrics.instrument(api, 'https')
    const request = { idScope: 's', registrationId: 'r', apiVersion: 'v', evidence: { type: 'sas' as const, token: 't' } }
    await https.register(request)
    next = new ProvisioError('SAS_BAD_SIGNATURE', 'test')
    await expect(https.register(request)).rejects.toThrow()
    next = { status: 401, challenge: { authenticationKey: 'k', keyName: 'registration' } }
    await https.register({ ...request, evidence: { type: 'tpm', endorsementKey: 'ek' } })
    await https.operationStatus({ idScope: 's', registrationId: 'r', operationId: 'o' })

    expect(metrics.attempts.get(['https', 'symmetricKey'])).toBe(2)
    expect(metrics.attestation.get(['symmetricKey', 'success'])).toBe(1)
    expect(metrics.attestation.get(['symmetricKey', 'failure'])).toBe(1)
    expect(metrics.attestation.get(['tpm', 'challenge'])).toBe(1)
    const text = metrics.render()
    expect(text).toContain('# TYPE provisio_registration_attempts_total counter')
    expect(text).toContain('provisio_device_responses_total{transport="https",operation="register",status="401"} 2')
    expect(text).toContain('provisio_device_responses_total{transport="https",operation="operationStatus",status="200"} 1')
    // No authenticate on the wrapped API: the wrapper offers none (callers fall back to registrationStatus).
    expect(https.authenticate).toBeUndefined()
  })

  it('counts CONNECT/SASL credential checks under operation "authenticate" when the API has the call', async () => {
    const metrics = new Metrics()
    let refuse = false
    const api: DeviceApi = {
      register: async () => ({ status: 202, body: { operationId: 'o', status: 'assigning' } }),
      operationStatus: async () => ({ status: 200, body: { operationId: 'o', status: 'assigned' } }),
      registrationStatus: async () => ({ status: 200, body: { registrationId: 'r', status: 'assigned' } }),
      authenticate: async () => {
        if (refuse) throw new ProvisioError('SAS_BAD_SIGNATURE', 'test')
      },
    }
    const mqtt = metrics.instrument(api, 'mqtt')
    const check = { idScope: 's', registrationId: 'r', evidence: { type: 'sas' as const, token: 't' } }
    await mqtt.authenticate!(check)
    refuse = true
    await expect(mqtt.authenticate!(check)).rejects.toThrow(/test/)
    expect(metrics.responses.get(['mqtt', 'authenticate', '200'])).toBe(1)
    expect(metrics.responses.get(['mqtt', 'authenticate', '401'])).toBe(1)
    expect(metrics.responses.get(['mqtt', 'registrationStatus', '200'])).toBe(0)
  })
})

describe('open connections gauge', () => {
  it('counts a socket until it closes, by listener, and renders process memory', async () => {
    const { EventEmitter } = await import('node:events')
    const metrics = new Metrics()
    metrics.connections.add(['mqtts'], 0)
    const a = new EventEmitter()
    const b = new EventEmitter()
    metrics.track('https', a)
    metrics.track('https', b)
    expect(metrics.connections.get(['https'])).toBe(2)
    a.emit('close')
    a.emit('close') // counted once
    expect(metrics.connections.get(['https'])).toBe(1)
    const text = metrics.render()
    expect(text).toContain('# TYPE provisio_open_connections gauge')
    expect(text).toContain('provisio_open_connections{listener="https"} 1')
    expect(text).toContain('provisio_open_connections{listener="mqtts"} 0')
    expect(text).toMatch(/^provisio_process_heap_used_bytes [1-9]\d*$/m)
  })
})

describe('metrics of several workers', () => {
  it('renders every worker series once per family, labelled by worker, with the SQLite lock counters', () => {
    const one = new Metrics()
    const two = new Metrics()
    one.attempts.inc(['mqtt', 'symmetricKey'], 3)
    two.attempts.inc(['mqtt', 'symmetricKey'], 5)
    two.attempts.inc(['https', 'tpm'])
    two.watchSqlite(() => ({ commits: 7, lockWaits: 2, lockWaitMs: 1500 }))
    const text = renderMetrics([
      { worker: '2', families: two.families() },
      { worker: '1', families: one.families() },
    ])
    // One HELP/TYPE per family, the family's samples together and sorted by labels, then worker.
    expect(text.match(/^# TYPE provisio_registration_attempts_total counter$/gm)).toHaveLength(1)
    const attempts = text.split('\n').filter((l) => l.startsWith('provisio_registration_attempts_total{'))
    expect(attempts).toEqual([
      'provisio_registration_attempts_total{transport="https",attestation="tpm",worker="2"} 1',
      'provisio_registration_attempts_total{transport="mqtt",attestation="symmetricKey",worker="1"} 3',
      'provisio_registration_attempts_total{transport="mqtt",attestation="symmetricKey",worker="2"} 5',
    ])
    expect(text).toContain('provisio_sqlite_lock_waits_total{worker="2"} 2\n')
    expect(text).toContain('provisio_sqlite_lock_wait_seconds_total{worker="2"} 1.5\n')
    expect(text).not.toContain('provisio_sqlite_commits_total{worker="1"}')
    expect(text).toMatch(/^provisio_process_start_time_seconds\{worker="1"\} [1-9]\d*$/m)
    // Alone, a process renders without the label, as before.
    expect(one.render()).toContain('provisio_registration_attempts_total{transport="mqtt",attestation="symmetricKey"} 3\n')
  })
})
