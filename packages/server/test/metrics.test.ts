import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import type { DeviceApi } from '@provisio/protocol'
import { Metrics } from '../src/metrics.js'

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
