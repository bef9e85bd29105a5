import { describe, expect, it } from 'vitest'
import {
  ERROR_CATALOG,
  ProvisioError,
  isProvisioError,
  isProvisioErrorCode,
  isTransientHttpStatus,
  toErrorBody,
  wrapUnknown,
  type ProvisioErrorCode,
} from '../src/index.js'

const codes = Object.keys(ERROR_CATALOG) as ProvisioErrorCode[]

describe('ERROR_CATALOG', () => {
  it.each(codes)('%s: errorCode is 6 digits whose first three are the HTTP status', (code) => {
    const e = ERROR_CATALOG[code]
    expect(e.errorCode).toBeGreaterThanOrEqual(100000)
    expect(e.errorCode).toBeLessThan(600000)
    expect(Math.floor(e.errorCode / 1000)).toBe(e.httpStatus)
    expect(e.transient).toBe(e.httpStatus === 429 || e.httpStatus >= 500)
    expect(e.defaultMessage.length).toBeGreaterThan(0)
    expect(e.amqpCondition).toMatch(/^(amqp|com\.microsoft):/)
  })

  it('is frozen, rows included', () => {
    expect(Object.isFrozen(ERROR_CATALOG)).toBe(true)
    for (const code of codes) expect(Object.isFrozen(ERROR_CATALOG[code])).toBe(true)
  })

  it('gives every authentication failure the same device errorCode 401002 and condition', () => {
    const auth: ProvisioErrorCode[] = [
      'CREDENTIALS_MISSING',
      'SAS_MALFORMED',
      'SAS_EXPIRED',
      'SAS_BAD_SIGNATURE',
      'SAS_WRONG_RESOURCE',
      'SAS_WRONG_KEY_NAME',
      'SAS_PERMISSION_DENIED',
      'ENROLLMENT_NOT_FOUND',
      'ENROLLMENT_DISABLED',
    ]
    for (const code of auth) {
      expect(ERROR_CATALOG[code].errorCode).toBe(401002)
      expect(ERROR_CATALOG[code].amqpCondition).toBe('amqp:unauthorized-access')
      expect(ERROR_CATALOG[code].defaultMessage).toBe('Unauthorized')
    }
  })

  it('carries the codes observed from real DPS (docs/protocol.md §1.5)', () => {
    expect(ERROR_CATALOG.CUSTOM_ALLOCATION_FAILED.errorCode).toBe(400207)
    expect(ERROR_CATALOG.NO_HUB_ASSIGNABLE.errorCode).toBe(400208)
    expect(ERROR_CATALOG.HUB_UNAUTHORIZED.errorCode).toBe(400209)
    expect(ERROR_CATALOG.CONCURRENT_REGISTRATION.errorCode).toBe(409203)
    expect(ERROR_CATALOG.REGISTRATION_NOT_FOUND.errorCode).toBe(404201)
    expect(ERROR_CATALOG.THROTTLED.amqpCondition).toBe('com.microsoft:device-container-throttled')
    expect(ERROR_CATALOG.INTERNAL_ERROR.amqpCondition).toBe('amqp:internal-error')
    expect(ERROR_CATALOG.PRECONDITION_FAILED.httpStatus).toBe(412)
  })
})

describe('ProvisioError', () => {
  it('takes errorCode and status from the catalog and keeps the reason', () => {
    const err = new ProvisioError('SAS_EXPIRED', 'token expired at 100, now 500', { retryAfterSeconds: 3 })
    expect(err.code).toBe('SAS_EXPIRED')
    expect(err.errorCode).toBe(401002)
    expect(err.httpStatus).toBe(401)
    expect(err.reason).toBe('token expired at 100, now 500')
    expect(err.message).toBe('token expired at 100, now 500')
    expect(err.retryAfterSeconds).toBe(3)
    expect(err.amqpCondition).toBe('amqp:unauthorized-access')
    expect(err.mqttStatus).toBe(401)
    expect(err.transient).toBe(false)
    expect(err.entry).toBe(ERROR_CATALOG.SAS_EXPIRED)
    expect(err.name).toBe('ProvisioError')
    expect(err).toBeInstanceOf(Error)
  })

  it('rejects a code that is not in the catalog', () => {
    expect(() => new ProvisioError('NOPE' as ProvisioErrorCode, 'x')).toThrow(TypeError)
  })

  it('brand check matches a look-alike from another copy of the package, not plain errors', () => {
    const foreign = { [Symbol.for('provisio.protocol.error')]: true, code: 'SAS_EXPIRED' }
    expect(foreign instanceof ProvisioError).toBe(true)
    expect(isProvisioError(foreign)).toBe(true)
    expect(isProvisioError(new Error('x'))).toBe(false)
    expect(isProvisioError(null)).toBe(false)
    expect(isProvisioError('SAS_EXPIRED')).toBe(false)
  })

  it('keeps the cause', () => {
    const cause = new Error('db down')
    expect(new ProvisioError('INTERNAL_ERROR', 'store failed', { cause }).cause).toBe(cause)
  })
})

describe('wrapUnknown', () => {
  it('passes our errors through unchanged', () => {
    const err = new ProvisioError('THROTTLED', 'rate 1000/min exceeded')
    expect(wrapUnknown(err)).toBe(err)
  })

  it.each([new RangeError('boom'), 'a string', 42, null, undefined, { weird: true }])(
    'turns %p into INTERNAL_ERROR keeping the cause',
    (thrown) => {
      const err = wrapUnknown(thrown)
      expect(err.code).toBe('INTERNAL_ERROR')
      expect(err.cause).toBe(thrown)
      expect(err.transient).toBe(true)
      expect(err.reason.length).toBeGreaterThan(0)
    },
  )
})

describe('toErrorBody', () => {
  it('shows the generic device message and hides the reason', () => {
    const secret = 'SharedAccessSignature sr=x&sig=SECRETSIG&se=1'
    const err = new ProvisioError('SAS_BAD_SIGNATURE', `signature of ${secret} matches no key`)
    const body = toErrorBody(err, 'track-1', '2026-01-01T00:00:00.000Z')
    expect(body).toEqual({
      errorCode: 401002,
      trackingId: 'track-1',
      message: 'Unauthorized',
      timestampUtc: '2026-01-01T00:00:00.000Z',
    })
    expect(JSON.stringify(body)).not.toContain('SECRETSIG')
  })

  it('uses an explicit device message and copies info', () => {
    const info = { field: 'registrationId', rule: 'too long' }
    const err = new ProvisioError('VALIDATION_FAILED', 'registrationId: too long', { info, deviceMessage: 'registrationId: too long' })
    const body = toErrorBody(err, 't', 'ts')
    expect(body.message).toBe('registrationId: too long')
    expect(body.info).toEqual(info)
    expect(body.info).not.toBe(info)
  })

  it('turns foreign throws into a 500 body without their message', () => {
    const body = toErrorBody(new Error('password=hunter2'), 't', 'ts')
    expect(body.errorCode).toBe(500001)
    expect(body.message).toBe('Internal server error.')
  })
})

it('isProvisioErrorCode and isTransientHttpStatus', () => {
  expect(isProvisioErrorCode('SAS_EXPIRED')).toBe(true)
  expect(isProvisioErrorCode('toString')).toBe(false)
  expect(isProvisioErrorCode(1)).toBe(false)
  expect(isTransientHttpStatus(429)).toBe(true)
  expect(isTransientHttpStatus(503)).toBe(true)
  expect(isTransientHttpStatus(428)).toBe(false)
  expect(isTransientHttpStatus(200)).toBe(false)
})
