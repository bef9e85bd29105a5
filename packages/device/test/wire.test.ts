// The strings and mappings of the device SDK's wire dialects, checked one by one: DPS MQTT
// username and response topics, AMQP rejections, MQTT CONNACK refusals, hub twin and telemetry
// topics, SAS tokens, and the security providers' argument checks.
import { describe, expect, it } from 'vitest'
import { parseSasToken, verifySasToken } from '@provisio/protocol'
import { dpsMqttUsername, parseDpsResponseTopic, mqttConnectError } from '../src/mqtt.js'
import { rejectionError } from '../src/amqp.js'
import { parseTwinResponseTopic, telemetryTopic } from '../src/hub.js'
import { symmetricKey, symmetricKeySasToken, tpmSasToken, softwareTpm } from '../src/security.js'
import { errorFromReply, DeviceError } from '../src/errors.js'
import { parseRetryAfter } from '../src/transport.js'
import { deadlineSignal } from '../src/retry.js'

describe('DPS MQTT', () => {
  it('builds the CONNECT username with the api-version and an encoded ClientVersion', () => {
    expect(dpsMqttUsername('0ne00000A0A', 'dev-1', '2019-03-31', 'provisio-device/0.1.0')).toBe('0ne00000A0A/registrations/dev-1/api-version=2019-03-31&ClientVersion=provisio-device%2F0.1.0')
  })

  it('parses response topics with $rid first and an optional retry-after', () => {
    expect(parseDpsResponseTopic('$dps/registrations/res/202/?$rid=abc&retry-after=3')).toEqual({ status: 202, rid: 'abc', retryAfterMs: 3000 })
    expect(parseDpsResponseTopic('$dps/registrations/res/200/?$rid=7')).toEqual({ status: 200, rid: '7', retryAfterMs: undefined })
    expect(parseDpsResponseTopic('$dps/registrations/res/429/?retry-after=1&$rid=x')).toEqual({ status: 429, rid: 'x', retryAfterMs: 1000 })
    for (const bad of ['$dps/registrations/res/20/?$rid=1', '$dps/registrations/res/abc/?$rid=1', '$dps/registrations/res/200/$rid=1', '$dps/registrations/res/200/?rid=1', '$iothub/twin/res/200/?$rid=1']) {
      expect(parseDpsResponseTopic(bad), bad).toBeUndefined()
    }
  })

  it('maps CONNACK refusals: 4 and 5 to REFUSED/401, 3 to a transient TRANSPORT/503, socket errors to transient TRANSPORT', () => {
    expect(mqttConnectError(Object.assign(new Error('Not authorized'), { code: 5 }), 'h:1')).toMatchObject({ code: 'REFUSED', status: 401, transient: false })
    expect(mqttConnectError(Object.assign(new Error('Bad username or password'), { code: 4 }), 'h:1')).toMatchObject({ code: 'REFUSED', status: 401 })
    expect(mqttConnectError(Object.assign(new Error('Server unavailable'), { code: 3 }), 'h:1')).toMatchObject({ code: 'TRANSPORT', status: 503, transient: true })
    expect(mqttConnectError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'h:1')).toMatchObject({ code: 'TRANSPORT', transient: true })
  })
})

describe('DPS AMQP rejections', () => {
  it('reads errorCode, message, trackingId from the JSON description and retry-after from info', () => {
    const e = rejectionError(
      { condition: 'com.microsoft:device-container-throttled', description: JSON.stringify({ errorCode: 429001, trackingId: 't1', message: 'Too many requests.' }), info: { 'retry-after': 2, 'Retry-After': 2 } },
      'register',
    )
    expect(e).toMatchObject({ code: 'RETRIES_EXHAUSTED', status: 429, errorCode: 429001, trackingId: 't1', serverMessage: 'Too many requests.', retryAfterMs: 2000, transient: true })
    expect(rejectionError({ condition: 'amqp:unauthorized-access', description: '{"errorCode":401002,"message":"Unauthorized"}' }, 'register')).toMatchObject({ code: 'REFUSED', status: 401, errorCode: 401002, transient: false })
  })

  it('falls back on the condition when the description is not a DPS error body', () => {
    expect(rejectionError({ condition: 'amqp:internal-error', description: 'boom' }, 'x')).toMatchObject({ status: 500, transient: true, serverMessage: 'boom' })
    expect(rejectionError({ condition: 'amqp:not-found' }, 'x')).toMatchObject({ code: 'REFUSED', status: 404 })
    expect(rejectionError(undefined, 'x')).toMatchObject({ code: 'REFUSED', status: 400 })
  })
})

describe('service answers', () => {
  it('classifies >= 429 as transient and 300-428 as refusals', () => {
    expect(errorFromReply(429, undefined, 1000, 'r')).toMatchObject({ code: 'RETRIES_EXHAUSTED', transient: true, retryAfterMs: 1000 })
    expect(errorFromReply(503, {}, undefined, 'r')).toMatchObject({ transient: true })
    expect(errorFromReply(428, {}, undefined, 'r')).toMatchObject({ code: 'REFUSED', transient: false })
    expect(errorFromReply(404, { errorCode: 404201, info: { a: 1 } }, undefined, 'r')).toMatchObject({ errorCode: 404201, info: { a: '1' } })
  })

  it('reads retry-after as integer seconds only, capped at an hour', () => {
    expect(parseRetryAfter('3')).toBe(3000)
    expect(parseRetryAfter(2)).toBe(2000)
    expect(parseRetryAfter('999999')).toBe(3_600_000)
    for (const bad of ['', 'soon', '-1', '1.5', 'Wed, 21 Oct 2015 07:28:00 GMT', -3, Number.NaN, undefined, null]) expect(parseRetryAfter(bad), String(bad)).toBeUndefined()
  })
})

describe('hub MQTT', () => {
  it('builds telemetry topics with system properties first, everything percent-encoded', () => {
    expect(telemetryTopic('dev-1', {})).toBe('devices/dev-1/messages/events/')
    expect(telemetryTopic('dev-1', { '$.mid': 'm 1', '$.ct': 'application/json', '$.cid': undefined }, { 'a&b': 'x=y', unit: '°C' })).toBe(
      'devices/dev-1/messages/events/%24.mid=m%201&%24.ct=application%2Fjson&a%26b=x%3Dy&unit=%C2%B0C',
    )
  })

  it('parses twin response topics with $rid and $version', () => {
    expect(parseTwinResponseTopic('$iothub/twin/res/204/?$rid=r1&$version=7')).toEqual({ status: 204, rid: 'r1', version: 7 })
    expect(parseTwinResponseTopic('$iothub/twin/res/200/?$rid=r2')).toEqual({ status: 200, rid: 'r2', version: undefined })
    expect(parseTwinResponseTopic('$iothub/twin/res/200/?$version=3')).toBeUndefined()
    expect(parseTwinResponseTopic('$dps/registrations/res/200/?$rid=1')).toBeUndefined()
  })
})

describe('SAS tokens and security providers', () => {
  const key = Buffer.alloc(32, 9).toString('base64')

  it('signs the device token over sr as written (%2F-encoded), skn=registration, one hour', () => {
    const now = 1_700_000_000_000
    const token = symmetricKeySasToken('0ne00000A0A', 'dev-1', key, now)
    expect(token).toMatch(/^SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fdev-1&sig=[^&]+&se=1700003600&skn=registration$/)
    const parsed = parseSasToken(token)
    expect(verifySasToken(parsed, { keys: key, expectedResource: '0ne00000A0A/registrations/dev-1', nowSeconds: 1_700_000_000, keyName: 'registration' })).toMatchObject({ ok: true })
  })

  it('signs TPM tokens with the TPM', async () => {
    const calls: string[] = []
    const fake = { sign: (d: Uint8Array) => (calls.push(new TextDecoder().decode(d)), Promise.resolve(new Uint8Array(32).fill(1))) }
    const token = await tpmSasToken('0ne00000A0A/registrations/dev-1', fake as never, 1_700_000_000_000, 'registration')
    expect(calls).toEqual(['0ne00000A0A%2Fregistrations%2Fdev-1\n1700003600'])
    expect(token).toBe(`SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fdev-1&sig=${encodeURIComponent(Buffer.alloc(32, 1).toString('base64'))}&se=1700003600&skn=registration`)
  })

  it('derives a group member key (the documented test vector) and checks arguments', () => {
    const s = symmetricKey({ registrationId: 'sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6', groupKey: '8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==' })
    expect(s.key).toBe('Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=')
    expect(() => symmetricKey({ registrationId: '', key })).toThrow(DeviceError)
    expect(() => symmetricKey({ registrationId: 'x'.repeat(129), key })).toThrow(/1-128/)
    expect(() => symmetricKey({ registrationId: 'd', key: 'not base64!' })).toThrow(/not standard base64/)
    expect(() => symmetricKey({ registrationId: 'd', groupKey: '' })).toThrow(/not standard base64/)
  })

  it('a software TPM gives the SDK-shaped EK and the same keys for the same seed', async () => {
    const a = softwareTpm(new Uint8Array(32).fill(3))
    const b = softwareTpm(new Uint8Array(32).fill(3))
    const ek = await a.endorsementKey()
    expect(Buffer.from(ek.subarray(0, 12)).toString('base64')).toBe('AToAAQALAAMAsgAg')
    expect(Buffer.from(await b.endorsementKey()).equals(Buffer.from(ek))).toBe(true)
  }, 60_000)
})

describe('deadlineSignal', () => {
  it('does not fire at once for a deadline beyond the 2^31-1 ms timer range (or an infinite one)', async () => {
    for (const at of [Date.now() + 2 ** 32, Number.POSITIVE_INFINITY]) {
      const d = deadlineSignal(undefined, at, 'x')
      await new Promise((r) => setTimeout(r, 20))
      expect(d.signal.aborted).toBe(false)
      d.dispose()
    }
  })

  it('fires with DEADLINE_EXCEEDED once the deadline has passed, and follows its parent', async () => {
    const d = deadlineSignal(undefined, Date.now() - 1, 'register')
    expect(d.signal.aborted).toBe(true)
    expect(d.signal.reason).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    const parent = new AbortController()
    const e = deadlineSignal(parent.signal, Date.now() + 60_000, 'register')
    parent.abort(new Error('stop'))
    expect(e.signal.aborted).toBe(true)
    expect((e.signal.reason as Error).message).toBe('stop')
    e.dispose()
  })
})
