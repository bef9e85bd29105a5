import common from 'azure-iot-common'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  formatConnectionString,
  formatDeviceConnectionString,
  formatSharedAccessKeyConnectionString,
  parseConnectionString,
  parseDeviceConnectionString,
  parseDpsServiceConnectionString,
  parseHubConnectionString,
  type ProvisioError,
} from '../src/index.js'

const KEY = 'Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc='

function errorOf(fn: () => unknown): ProvisioError {
  try {
    fn()
  } catch (e) {
    return e as ProvisioError
  }
  throw new Error('expected a throw')
}

describe('parseConnectionString', () => {
  it('keeps order, original key spelling and "=" inside values', () => {
    expect(parseConnectionString('HostName=h.example;SharedAccessKey=YWJjZA==;Custom=a=b')).toEqual([
      ['HostName', 'h.example'],
      ['SharedAccessKey', 'YWJjZA=='],
      ['Custom', 'a=b'],
    ])
  })

  it('ignores empty segments and surrounding whitespace', () => {
    expect(parseConnectionString('  A=1;;B=2;\n')).toEqual([
      ['A', '1'],
      ['B', '2'],
    ])
  })

  it.each([
    ['', 'empty'],
    ['   ', 'empty'],
    ['A=1;B', "segment 2 at offset 4 has no '='"],
    ['=1', 'empty key'],
    ['Bad Key=1', 'contains whitespace'],
  ])('rejects %p as malformed', (text, fragment) => {
    const err = errorOf(() => parseConnectionString(text))
    expect(err.code).toBe('CONNECTION_STRING_MALFORMED')
    expect(err.reason).toContain(fragment)
  })

  it('rejects a duplicate key in any spelling, naming it', () => {
    const err = errorOf(() => parseConnectionString('HostName=a;hostname=b'))
    expect(err.code).toBe('CONNECTION_STRING_DUPLICATE_KEY')
    expect(err.reason).toContain('hostname')
  })

  it('enforces the size limits', () => {
    expect(errorOf(() => parseConnectionString('A=' + 'x'.repeat(5000))).reason).toContain('limit is 4096')
    expect(errorOf(() => parseConnectionString('A=1;B=2;C=3', { maxFields: 2 })).reason).toContain('more than 2 fields')
    expect(errorOf(() => parseConnectionString('A=12345', { maxLength: 5 })).code).toBe('CONNECTION_STRING_MALFORMED')
  })

  it('round-trips random fields through format and parse', () => {
    const key = fc.stringMatching(/^[A-Za-z][A-Za-z0-9]{0,15}$/)
    const value = fc.string({ maxLength: 30 }).filter((v) => !v.includes(';') && v.trim() === v)
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k.toLowerCase(), minLength: 1, maxLength: 8 }), (fields) => {
        expect(parseConnectionString(formatConnectionString(fields))).toEqual(fields)
      }),
    )
  })

  it('format refuses what could not be read back', () => {
    expect(errorOf(() => formatConnectionString([['A', 'x;y']])).reason).toContain("contains ';'")
    expect(errorOf(() => formatConnectionString([['A=B', 'x']])).code).toBe('CONNECTION_STRING_MALFORMED')
    expect(errorOf(() => formatConnectionString([['', 'x']])).code).toBe('CONNECTION_STRING_MALFORMED')
  })
})

describe('shared access key connection strings (hub, DPS)', () => {
  const text = `HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`

  it('parses in any order and agrees with azure-iot-common', () => {
    const parts = text.split(';')
    for (const order of [parts, [parts[2], parts[0], parts[1]], [parts[1], parts[2], parts[0]]]) {
      const cs = parseHubConnectionString(order.join(';'))
      expect(cs).toEqual({
        hostName: 'myhub.azure-devices.net',
        sharedAccessKeyName: 'iothubowner',
        sharedAccessKey: KEY,
        extra: [],
      })
      const theirs = common.ConnectionString.parse(order.join(';'), ['HostName', 'SharedAccessKeyName', 'SharedAccessKey'])
      expect(theirs.HostName).toBe(cs.hostName)
      expect(theirs.SharedAccessKey).toBe(cs.sharedAccessKey)
    }
  })

  it('round-trips with unknown keys preserved', () => {
    const withExtra = `${text};Foo=bar`
    const cs = parseDpsServiceConnectionString(withExtra)
    expect(cs.extra).toEqual([['Foo', 'bar']])
    expect(formatSharedAccessKeyConnectionString(cs)).toBe(withExtra)
    expect(parseDpsServiceConnectionString(formatSharedAccessKeyConnectionString(cs))).toEqual(cs)
  })

  it.each([
    ['SharedAccessKeyName=p;SharedAccessKey=' + KEY, 'CONNECTION_STRING_MISSING_KEY', 'has no HostName'],
    ['HostName=h;SharedAccessKey=' + KEY, 'CONNECTION_STRING_MISSING_KEY', 'has no SharedAccessKeyName'],
    ['HostName=h;SharedAccessKeyName=p', 'CONNECTION_STRING_MISSING_KEY', 'has no SharedAccessKey'],
    ['HostName=h;SharedAccessKeyName=;SharedAccessKey=' + KEY, 'CONNECTION_STRING_MISSING_KEY', 'empty SharedAccessKeyName'],
    ['HostName=h;SharedAccessKeyName=p;SharedAccessKey=not base64!', 'CONNECTION_STRING_MALFORMED', 'SharedAccessKey is not standard padded base64'],
    ['HostName=h h;SharedAccessKeyName=p;SharedAccessKey=' + KEY, 'CONNECTION_STRING_MALFORMED', 'HostName contains'],
    [text + ';SharedAccessKey=' + KEY, 'CONNECTION_STRING_DUPLICATE_KEY', 'SharedAccessKey'],
  ])('%s → %s', (input, code, fragment) => {
    const err = errorOf(() => parseDpsServiceConnectionString(input))
    expect(err.code).toBe(code)
    expect(err.reason).toContain(fragment)
    expect(err.reason).toContain('DPS service')
    expect(err.reason).not.toContain(KEY)
  })
})

describe('device connection strings', () => {
  it('parses a symmetric-key device string in any order', () => {
    const cs = parseDeviceConnectionString(`SharedAccessKey=${KEY};DeviceId=dev1;HostName=h.azure-devices.net`)
    expect(cs).toEqual({
      hostName: 'h.azure-devices.net',
      deviceId: 'dev1',
      credential: { kind: 'sharedAccessKey', sharedAccessKey: KEY },
      extra: [],
    })
    expect(formatDeviceConnectionString(cs)).toBe(`HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=${KEY}`)
  })

  it('parses x509, module and gateway strings', () => {
    const cs = parseDeviceConnectionString('HostName=h;DeviceId=d;ModuleId=m;x509=TRUE;GatewayHostName=localhost:8883')
    expect(cs.credential).toEqual({ kind: 'x509' })
    expect(cs.moduleId).toBe('m')
    expect(cs.gatewayHostName).toBe('localhost:8883')
    expect(parseDeviceConnectionString(formatDeviceConnectionString(cs))).toEqual({ ...cs, credential: { kind: 'x509' } })
  })

  it('parses a shared access signature credential (its "=" and "&" kept)', () => {
    const sas = 'SharedAccessSignature sr=h%2Fdevices%2Fd&sig=abc%3D&se=1'
    const cs = parseDeviceConnectionString(`HostName=h;DeviceId=d;SharedAccessSignature=${sas}`)
    expect(cs.credential).toEqual({ kind: 'sharedAccessSignature', sharedAccessSignature: sas })
  })

  it.each([
    ['HostName=h;SharedAccessKey=' + KEY, 'CONNECTION_STRING_MISSING_KEY', 'has no DeviceId'],
    ['HostName=h;DeviceId=d', 'CONNECTION_STRING_MISSING_KEY', 'no credential'],
    ['HostName=h;DeviceId=d;x509=false', 'CONNECTION_STRING_MISSING_KEY', 'no credential'],
    ['HostName=h;DeviceId=d;x509=maybe', 'CONNECTION_STRING_MALFORMED', 'x509 must be true or false'],
    ['HostName=h;DeviceId=d;x509=true;SharedAccessKey=' + KEY, 'CONNECTION_STRING_MALFORMED', 'more than one credential'],
    ['HostName=h;DeviceId=d;ModuleId=;x509=true', 'CONNECTION_STRING_MISSING_KEY', 'empty ModuleId'],
    ['HostName=h;DeviceId=d;SharedAccessKey=abc', 'CONNECTION_STRING_MALFORMED', 'not standard padded base64'],
  ])('%s → %s', (input, code, fragment) => {
    const err = errorOf(() => parseDeviceConnectionString(input))
    expect(err.code).toBe(code)
    expect(err.reason).toContain(fragment)
  })

  it('never throws anything but a typed error on random input', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parseDeviceConnectionString(text)
        } catch (e) {
          expect((e as ProvisioError).code).toMatch(/^CONNECTION_STRING_/)
        }
      }),
      { numRuns: 2000 },
    )
  })
})
