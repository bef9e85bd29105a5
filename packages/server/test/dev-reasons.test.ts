// Development reasons: the setting's default follows --bind, and the wrapped device API's
// refusals carry the engine's reason in the device-facing message while code, errorCode and
// status stay (Microsoft's clients over the wire: test/interop/dev-reasons.test.ts).
import { describe, expect, it } from 'vitest'
import { ProvisioError, toErrorBody, withDeveloperReason, type DeviceApi } from '@provisio/protocol'
import { resolveConfig } from '../src/config.js'
import { isLoopbackBind, withDevReasons } from '../src/dev-reasons.js'

const REASON = "no individual enrollment 'dev-1' in ID scope 0ne00000001, and no device key derived from the 1 symmetric-key group(s) (g) verifies the token"

describe('--dev-reasons', () => {
  it('defaults to on when the server listens on loopback only, off when exposed; true/false override', () => {
    expect(resolveConfig({}, {}, '/tmp').devReasons).toBe(true)
    expect(resolveConfig({ bind: '::1' }, {}, '/tmp').devReasons).toBe(true)
    expect(resolveConfig({ bind: '0.0.0.0' }, {}, '/tmp').devReasons).toBe(false)
    expect(resolveConfig({ bind: '10.1.2.3' }, {}, '/tmp').devReasons).toBe(false)
    expect(resolveConfig({ bind: '0.0.0.0', 'dev-reasons': 'true' }, {}, '/tmp').devReasons).toBe(true)
    expect(resolveConfig({}, { PROVISIO_DEV_REASONS: 'false' }, '/tmp').devReasons).toBe(false)
    expect(() => resolveConfig({ 'dev-reasons': 'maybe' }, {}, '/tmp')).toThrow(/devReasons \(--dev-reasons\) must be true or false, got "maybe"/)
    expect([isLoopbackBind('127.0.0.1'), isLoopbackBind('[::1]'), isLoopbackBind('localhost'), isLoopbackBind('::'), isLoopbackBind('192.168.0.1')]).toEqual([true, true, true, false, false])
  })
})

describe('withDevReasons', () => {
  const refusing: DeviceApi = {
    register: () => Promise.reject(new ProvisioError('ENROLLMENT_NOT_FOUND', REASON)),
    operationStatus: () => Promise.reject(new ProvisioError('POLL_THROTTLED', 'polled 6 times in 10 s', { retryAfterSeconds: 2 })),
    registrationStatus: () => Promise.reject(new Error('store down')),
    authenticate: () => Promise.reject(new ProvisioError('SAS_BAD_SIGNATURE', REASON)),
  }
  const request = { idScope: '0ne00000001', registrationId: 'dev-1', evidence: { type: 'sas', token: 'x' } } as never

  it('puts the reason into the device-facing message; code, errorCode, status and retry-after stay', async () => {
    const api = withDevReasons(refusing)
    const error = (await api.register(request).catch((e: unknown) => e)) as ProvisioError
    expect(error).toBeInstanceOf(ProvisioError)
    expect(error).toMatchObject({ code: 'ENROLLMENT_NOT_FOUND', errorCode: 401002, httpStatus: 401, reason: REASON })
    expect(toErrorBody(error, 't-1', '2026-01-01T00:00:00Z')).toEqual({ errorCode: 401002, trackingId: 't-1', message: `Unauthorized (development reason: ${REASON})`, timestampUtc: '2026-01-01T00:00:00Z' })
    const throttled = (await api.operationStatus(request).catch((e: unknown) => e)) as ProvisioError
    expect(throttled).toMatchObject({ code: 'POLL_THROTTLED', retryAfterSeconds: 2, deviceMessage: 'Too many requests. (development reason: polled 6 times in 10 s)' })
    const internal = (await api.registrationStatus(request).catch((e: unknown) => e)) as ProvisioError
    expect(internal).toMatchObject({ code: 'INTERNAL_ERROR', deviceMessage: 'Internal server error. (development reason: unexpected failure: Error: store down)' })
  })

  it('accepts every connection: MQTT CONNECT and AMQP SASL defer the credential check to the request', async () => {
    await expect(withDevReasons(refusing).authenticate!(request)).resolves.toBeUndefined()
  })

  it('without it the device sees the generic message only', () => {
    expect(toErrorBody(new ProvisioError('ENROLLMENT_NOT_FOUND', REASON), 't', 'x').message).toBe('Unauthorized')
  })

  it('bounds the reason, and keeps an explicit device message in front', () => {
    const long = withDeveloperReason(new ProvisioError('VALIDATION_FAILED', 'x'.repeat(5000), { deviceMessage: 'registrationId is too long' }))
    expect(long.deviceMessage).toBe(`registrationId is too long (development reason: ${'x'.repeat(1000)}…)`)
    // A reason the message already says is not repeated.
    const same = withDeveloperReason(new ProvisioError('BAD_REQUEST', 'bad', { deviceMessage: 'bad' }))
    expect(same.deviceMessage).toBe('bad')
  })
})
