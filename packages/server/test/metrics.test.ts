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

    expect(await metrics.attempts.get(['https', 'symmetricKey'])).toBe(2)
    expect(await metrics.attestation.get(['symmetricKey', 'success'])).toBe(1)
    expect(await metrics.attestation.get(['symmetricKey', 'failure'])).toBe(1)
    expect(await metrics.attestation.get(['tpm', 'challenge'])).toBe(1)
    const text = await metrics.render()
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
    expect(await metrics.responses.get(['mqtt', 'authenticate', '200'])).toBe(1)
    expect(await metrics.responses.get(['mqtt', 'authenticate', '401'])).toBe(1)
    expect(await metrics.responses.get(['mqtt', 'registrationStatus', '200'])).toBe(0)
  })
})

describe('open connections gauge', () => {
  it('counts a socket until it closes, by listener, and renders process memory', async () => {
    const { EventEmitter } = await import('node:events')
    const metrics = new Metrics()
    metrics.connections.inc(['mqtts'], 0)
    const a = new EventEmitter()
    const b = new EventEmitter()
    metrics.track('https', a)
    metrics.track('https', b)
    expect(await metrics.connections.get(['https'])).toBe(2)
    a.emit('close')
    a.emit('close') // counted once
    expect(await metrics.connections.get(['https'])).toBe(1)
    const text = await metrics.render()
    expect(text).toContain('# TYPE provisio_open_connections gauge')
    expect(text).toContain('provisio_open_connections{listener="https"} 1')
    expect(text).toContain('provisio_open_connections{listener="mqtts"} 0')
    expect(text).toMatch(/^provisio_process_heap_used_bytes [1-9]\d*$/m)
  })
})

describe('metrics of several workers', () => {
  it('renders every worker series once per family, labelled by worker, with the SQLite lock counters', async () => {
    const one = new Metrics()
    const two = new Metrics()
    one.attempts.inc(['mqtt', 'symmetricKey'], 3)
    two.attempts.inc(['mqtt', 'symmetricKey'], 5)
    two.attempts.inc(['https', 'tpm'])
    two.watchSqlite(() => ({ commits: 7, lockWaits: 2, lockWaitMs: 1500 }))
    const text = await renderMetrics([
      { worker: '2', families: await two.families() },
      { worker: '1', families: await one.families() },
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
    expect(await one.render()).toContain('provisio_registration_attempts_total{transport="mqtt",attestation="symmetricKey"} 3\n')
  })
})

describe('registration latency', () => {
  /** A device API whose register answers 202 and whose polls answer what `poll` holds. */
  function assigning() {
    let poll: { status: 200 | 202; body: { operationId: string; status: 'assigning' | 'assigned' | 'failed' } } = { status: 202, body: { operationId: 'op-1', status: 'assigning' } }
    const api: DeviceApi = {
      register: async () => ({ status: 202, body: { operationId: 'op-1', status: 'assigning' }, retryAfterSeconds: 1 }),
      operationStatus: async () => poll,
      registrationStatus: async () => ({ status: 200, body: { registrationId: 'r', status: 'assigned' } }),
    }
    return { api, final: (status: 'assigned' | 'failed') => (poll = { status: 200, body: { operationId: 'op-1', status } }) }
  }
  const request = { idScope: 's', registrationId: 'r', apiVersion: 'v', evidence: { type: 'sas' as const, token: 't' } }
  const countOf = (text: string, labels: string) => Number(text.match(new RegExp(`^provisio_registration_duration_seconds_count\\{${labels}\\} (\\d+)$`, 'm'))?.[1] ?? 0)

  it('observes the time from the accepted register to the final poll, once, by transport and attestation', async () => {
    const metrics = new Metrics()
    const { api, final } = assigning()
    const mqtt = metrics.instrument(api, 'mqtt')
    await mqtt.register(request)
    await mqtt.operationStatus({ idScope: 's', registrationId: 'r', operationId: 'op-1' })
    expect(countOf(await metrics.render(), 'transport="mqtt",attestation="symmetricKey"')).toBe(0)
    final('assigned')
    await mqtt.operationStatus({ idScope: 's', registrationId: 'r', operationId: 'op-1' })
    // Polled again after the end: not observed twice.
    await mqtt.operationStatus({ idScope: 's', registrationId: 'r', operationId: 'op-1' })
    const text = await metrics.render()
    expect(text).toContain('# TYPE provisio_registration_duration_seconds histogram')
    expect(countOf(text, 'transport="mqtt",attestation="symmetricKey"')).toBe(1)
    expect(text).toMatch(/^provisio_registration_duration_seconds_bucket\{le="\+Inf",transport="mqtt",attestation="symmetricKey"\} 1$/m)
  })

  it('observes a registration final in the register answer itself, and a failed one', async () => {
    const metrics = new Metrics()
    const api: DeviceApi = {
      register: async () => ({ status: 200, body: { operationId: 'op-2', status: 'assigned' } }),
      operationStatus: async () => ({ status: 200, body: { operationId: 'op-2', status: 'assigned' } }),
      registrationStatus: async () => ({ status: 200, body: { registrationId: 'r', status: 'assigned' } }),
    }
    await metrics.instrument(api, 'https').register({ ...request, evidence: { type: 'x509', chain: [] } })
    const { api: later, final } = assigning()
    const amqp = metrics.instrument(later, 'amqp')
    await amqp.register(request)
    final('failed')
    await amqp.operationStatus({ idScope: 's', registrationId: 'r', operationId: 'op-1' })
    const text = await metrics.render()
    expect(countOf(text, 'transport="https",attestation="x509"')).toBe(1)
    expect(countOf(text, 'transport="amqp",attestation="symmetricKey"')).toBe(1)
  })
})

describe('hub and process metrics', () => {
  it('counts devices connected to the embedded hubs until their connection closes', async () => {
    const metrics = new Metrics()
    let close!: () => void
    const closed = new Promise<void>((resolve) => (close = resolve))
    metrics.trackHubDevice('mqtts', closed)
    metrics.trackHubDevice('mqtt-ws', new Promise(() => {}))
    expect(await metrics.hubConnected.get(['mqtts'])).toBe(1)
    close()
    await closed
    expect(await metrics.hubConnected.get(['mqtts'])).toBe(0)
    expect(await metrics.render()).toContain('provisio_hub_connected_devices{transport="mqtt-ws"} 1\n')
  })

  it("renders Node's process metrics beside the server's own", async () => {
    const text = await new Metrics().render()
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m)
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m)
    expect(text).toMatch(/^provisio_process_resident_memory_bytes [1-9]\d*$/m)
  })

  it('keeps each worker’s histogram series apart, buckets in order', async () => {
    const one = new Metrics()
    const two = new Metrics()
    one.registrationSeconds.labels('mqtt', 'tpm').observe(0.2)
    two.registrationSeconds.labels('mqtt', 'tpm').observe(4)
    const text = await renderMetrics([
      { worker: '1', families: await one.families() },
      { worker: '2', families: await two.families() },
    ])
    const buckets = (worker: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith('provisio_registration_duration_seconds_bucket{') && l.includes(`worker="${worker}"`))
        .map((l) => Number(l.split(' ')[1]))
    // Cumulative counts: worker 1's observation is in every bucket from 0.25 s, worker 2's from 5 s.
    expect(buckets('1')).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    expect(buckets('2')).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    expect(text).toMatch(/^provisio_registration_duration_seconds_sum\{transport="mqtt",attestation="tpm",worker="2"\} 4$/m)
  })
})
