// SAS tokens exactly as Microsoft's Node SDKs emit them (docs/protocol.md §2, §11), verified by
// our code; every rejection with its own code; properties over random ids, keys and garbage.
import { createHmac, randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import common from 'azure-iot-common'
import symmetric from 'azure-iot-security-symmetric-key'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createHmacSha256Key } from '@provisio/crypto'
import {
  DEVICE_SAS_KEY_NAME,
  ProvisioError,
  buildSasToken,
  deviceRegistrationResource,
  hubDeviceResource,
  parseAndVerifySasToken,
  encodeUriComponentStrict as ourStrict,
  isBase64,
  parseSasToken,
  percentDecode,
  sasStringToSign,
  verifySasToken,
  type SasField,
  type SasVerification,
  type VerifySasOptions,
} from '../src/index.js'

// azure-iot-common keeps its signing primitives (hmacHash, stringToSign) in dist/authorization,
// which its index does not re-export; the TPM path of azure-iot-provisioning-device uses them.
const authorization = createRequire(import.meta.url)('azure-iot-common/dist/authorization.js') as {
  hmacHash(keyBase64: string, stringToSign: string): string
  stringToSign(resourceUri: string, expiry: string): string
  encodeUriComponentStrict(text: string): string
}

const { SharedAccessSignature, encodeUriComponentStrict, anHourFromNow } = common
const { SymmetricKeySecurityClient } = symmetric

const ID_SCOPE = '0ne00000A0A'
const REG_ID = 'sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6'
const DEVICE_KEY = 'Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc='
const OTHER_KEY = randomBytes(32).toString('base64')
const HUB = 'myhub.azure-devices.net'
const DPS_HOST = 'mydps.azure-devices-provisioning.net'
const NOW = 1_800_000_000

const nowSeconds = (): number => Math.floor(Date.now() / 1000)

function expectOk(result: SasVerification | ReturnType<typeof parseAndVerifySasToken>, keyIndex = 0): void {
  if (!result.ok) throw new Error(`expected ok, got ${result.error.code}: ${result.error.reason}`)
  expect(result.keyIndex).toBe(keyIndex)
}

function expectCode(result: SasVerification | ReturnType<typeof parseAndVerifySasToken>, code: string): ProvisioError {
  if (result.ok) throw new Error(`expected ${code}, got ok`)
  expect(result.error.code).toBe(code)
  expect(result.error).toBeInstanceOf(ProvisioError)
  expect(result.error.errorCode).toBe(401002)
  return result.error
}

function deviceOptions(overrides: Partial<VerifySasOptions> = {}): VerifySasOptions {
  return {
    keys: DEVICE_KEY,
    expectedResource: deviceRegistrationResource(ID_SCOPE, REG_ID),
    nowSeconds: NOW,
    keyName: DEVICE_SAS_KEY_NAME,
    ...overrides,
  }
}

/** The TPM path of azure-iot-provisioning-device (tpm_registration.ts `_createRegistrationSas`):
 * audience encodeURIComponent'd, signed as sent, fields sr,sig,se,skn. A TPM signs with its
 * identity key; here HMAC with the same key bytes through azure-iot-common's primitive. */
function tpmStyleToken(idScope: string, registrationId: string, keyBase64: string, expiry: number): string {
  const audience = encodeURIComponent(idScope + '/registrations/' + registrationId)
  const signature = encodeURIComponent(authorization.hmacHash(keyBase64, authorization.stringToSign(audience, String(expiry))))
  return 'SharedAccessSignature sr=' + audience + '&sig=' + signature + '&se=' + expiry + '&skn=registration'
}

function fieldsOf(token: string): string[] {
  return token.slice('SharedAccessSignature '.length).split('&')
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [items.slice()]
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]))
}

describe('tokens from the Microsoft Node SDKs verify', () => {
  it('symmetric-key client (azure-iot-security-symmetric-key): raw sr, fields sr,sig,skn,se', async () => {
    const client = new SymmetricKeySecurityClient(REG_ID, DEVICE_KEY)
    // Promise form of the callback API; resolves to (its own copy of) azure-iot-common's
    // SharedAccessSignature, whose toString() is the token text.
    const token = String(await client.createSharedAccessSignature(ID_SCOPE))
    expect(fieldsOf(token).map((f) => f.split('=')[0])).toEqual(['sr', 'sig', 'skn', 'se'])
    expect(token).toContain(`sr=${ID_SCOPE}/registrations/${REG_ID}&`)
    const now = nowSeconds()
    expectOk(parseAndVerifySasToken(token, deviceOptions({ nowSeconds: now })))
    // The same token is for that device only, and only until it expires.
    expectCode(parseAndVerifySasToken(token, deviceOptions({ nowSeconds: now, expectedResource: `${ID_SCOPE}/registrations/other` })), 'SAS_WRONG_RESOURCE')
    expectCode(parseAndVerifySasToken(token, deviceOptions({ nowSeconds: now + 2 * 3600 })), 'SAS_EXPIRED')
  })

  it('TPM path (azure-iot-provisioning-device tpm_registration.ts): %2F-encoded sr, fields sr,sig,se,skn', () => {
    const token = tpmStyleToken(ID_SCOPE, REG_ID, DEVICE_KEY, anHourFromNow())
    expect(token).toContain(`sr=${ID_SCOPE}%2Fregistrations%2F${REG_ID}&`)
    expect(fieldsOf(token).map((f) => f.split('=')[0])).toEqual(['sr', 'sig', 'se', 'skn'])
    const parsed = parseSasToken(token)
    expect(parsed.resourceDecoded).toBe(`${ID_SCOPE}/registrations/${REG_ID}`)
    expectOk(verifySasToken(parsed, deviceOptions({ nowSeconds: nowSeconds() })))
  })

  it('azure-sdk-for-c style lower-case %2f sr, signed as sent', () => {
    const sr = `${ID_SCOPE}%2fregistrations%2f${REG_ID}`
    const se = String(NOW + 2400)
    const sig = encodeUriComponentStrict(authorization.hmacHash(DEVICE_KEY, authorization.stringToSign(sr, se)))
    expectOk(parseAndVerifySasToken(`SharedAccessSignature sr=${sr}&sig=${sig}&se=${se}&skn=registration`, deviceOptions()))
  })

  it('hub device token (azure-iot-device style): sr = encodeUriComponentStrict(hub/devices/id), no skn', () => {
    const deviceId = "dev(1)!*'"
    const sas = SharedAccessSignature.create(encodeUriComponentStrict(HUB + '/devices/' + deviceId), undefined as unknown as string, DEVICE_KEY, anHourFromNow())
    const token = sas.toString()
    expect(token).not.toContain('skn=')
    expect(token).toContain(`sr=${HUB}%2Fdevices%2Fdev%281%29%21%2a%27&`)
    const options: VerifySasOptions = { keys: DEVICE_KEY, expectedResource: hubDeviceResource(HUB, deviceId), nowSeconds: nowSeconds(), keyName: null }
    expectOk(parseAndVerifySasToken(token, options))
    // A hub device resource demands a token without skn when keyName is null.
    expectCode(parseAndVerifySasToken(token, { ...options, keyName: 'iothubowner' }), 'SAS_WRONG_KEY_NAME')
  })

  it('service token (provisioning service client): sr = host, skn = policy, prefix-matched by segment', () => {
    const token = SharedAccessSignature.create(DPS_HOST, 'provisioningserviceowner', DEVICE_KEY, anHourFromNow()).toString()
    const options: VerifySasOptions = {
      keys: DEVICE_KEY,
      expectedResource: DPS_HOST,
      nowSeconds: nowSeconds(),
      keyName: 'provisioningserviceowner',
      resourceMatch: 'segmentPrefix',
    }
    expectOk(parseAndVerifySasToken(token, options))
    expectOk(parseAndVerifySasToken(token, { ...options, expectedResource: `${DPS_HOST}/enrollments/dev1` }))
    // Prefix only at a segment boundary, and never in exact mode.
    expectCode(parseAndVerifySasToken(token, { ...options, expectedResource: `${DPS_HOST}x/enrollments` }), 'SAS_WRONG_RESOURCE')
    expectCode(parseAndVerifySasToken(token, { ...options, expectedResource: `${DPS_HOST}/enrollments`, resourceMatch: 'exact' }), 'SAS_WRONG_RESOURCE')
    expectCode(parseAndVerifySasToken(token, { ...options, keyName: 'enrollmentread' }), 'SAS_WRONG_KEY_NAME')
  })

  it('hub service-policy token covers the hub devices by segment prefix', () => {
    const token = SharedAccessSignature.create(encodeUriComponentStrict(HUB), 'iothubowner', OTHER_KEY, NOW + 60).toString()
    expectOk(
      parseAndVerifySasToken(token, {
        keys: OTHER_KEY,
        expectedResource: hubDeviceResource(HUB, 'd1'),
        nowSeconds: NOW,
        keyName: 'iothubowner',
        resourceMatch: 'segmentPrefix',
      }),
    )
  })
})

describe('buildSasToken emits what the SDKs emit', () => {
  it('byte-for-byte equal to azure-iot-common for the symmetric-key shape', () => {
    const resource = deviceRegistrationResource(ID_SCOPE, REG_ID)
    const theirs = SharedAccessSignature.create(resource, 'registration', DEVICE_KEY, NOW).toString()
    const ours = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW, keyName: 'registration', encodeResource: 'raw', fieldOrder: ['sr', 'sig', 'skn', 'se'] })
    expect(ours).toBe(theirs)
  })

  it('byte-for-byte equal to the TPM path shape', () => {
    const ours = buildSasToken({ resource: deviceRegistrationResource(ID_SCOPE, REG_ID), key: DEVICE_KEY, expiresAt: NOW, keyName: 'registration' })
    expect(ours).toBe(tpmStyleToken(ID_SCOPE, REG_ID, DEVICE_KEY, NOW))
  })

  it('byte-for-byte equal to azure-iot-device for hub tokens (ids without !\'()*)', () => {
    const theirs = SharedAccessSignature.create(encodeUriComponentStrict(HUB + '/devices/dev-1'), undefined as unknown as string, DEVICE_KEY, NOW).toString()
    const ours = buildSasToken({ resource: hubDeviceResource(HUB, 'dev-1'), key: DEVICE_KEY, expiresAt: NOW, encodeResource: 'encodeUriComponentStrict' })
    expect(ours).toBe(theirs)
  })

  it('accepts base64, bytes and prepared keys alike', () => {
    const resource = deviceRegistrationResource(ID_SCOPE, REG_ID)
    const bytes = Buffer.from(DEVICE_KEY, 'base64')
    const a = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW })
    expect(buildSasToken({ resource, key: new Uint8Array(bytes), expiresAt: NOW })).toBe(a)
    expect(buildSasToken({ resource, key: createHmacSha256Key(new Uint8Array(bytes)), expiresAt: NOW })).toBe(a)
  })

  it('refuses caller bugs loudly', () => {
    const resource = 'r'
    expect(() => buildSasToken({ resource, key: 'not base64!', expiresAt: NOW })).toThrow(TypeError)
    expect(() => buildSasToken({ resource, key: DEVICE_KEY, expiresAt: 1.5 })).toThrow(RangeError)
    expect(() => buildSasToken({ resource, key: DEVICE_KEY, expiresAt: -1 })).toThrow(RangeError)
    expect(() => buildSasToken({ resource: '', key: DEVICE_KEY, expiresAt: NOW })).toThrow(TypeError)
    expect(() => buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW, fieldOrder: ['sr', 'sig'] })).toThrow(/lacks se/)
    expect(() => buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW, keyName: 'k', fieldOrder: ['sr', 'sig', 'se'] })).toThrow(/lacks skn/)
    expect(() => buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW, fieldOrder: ['sr', 'sr', 'sig', 'se'] })).toThrow(/repeated/)
    expect(() => buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW, fieldOrder: ['sr', 'sig', 'se', 'toString' as SasField] })).toThrow(/unknown/)
  })

  it('sasStringToSign matches azure-iot-common', () => {
    expect(sasStringToSign('a%2Fb', 17)).toBe(authorization.stringToSign('a%2Fb', '17'))
  })
})

describe('rejections, each with its own code', () => {
  const resource = deviceRegistrationResource(ID_SCOPE, REG_ID)
  const good = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW + 3600, keyName: 'registration' })

  it('a valid token passes', () => {
    expectOk(parseAndVerifySasToken(good, deviceOptions()))
  })

  it('expired: SAS_EXPIRED, with the clock skew honoured at the edge', () => {
    const token = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW - 100, keyName: 'registration' })
    expectOk(parseAndVerifySasToken(token, deviceOptions()))
    expectOk(parseAndVerifySasToken(token, deviceOptions({ clockSkewSeconds: 101 })))
    expectCode(parseAndVerifySasToken(token, deviceOptions({ clockSkewSeconds: 100 })), 'SAS_EXPIRED')
    expectCode(parseAndVerifySasToken(token, deviceOptions({ clockSkewSeconds: 0 })), 'SAS_EXPIRED')
    const err = expectCode(parseAndVerifySasToken(token, deviceOptions({ nowSeconds: NOW + 1000 })), 'SAS_EXPIRED')
    expect(err.reason).toContain(`expired at ${NOW - 100}`)
  })

  it('wrong key: SAS_BAD_SIGNATURE', () => {
    const err = expectCode(parseAndVerifySasToken(good, deviceOptions({ keys: [OTHER_KEY] })), 'SAS_BAD_SIGNATURE')
    expect(err.reason).toContain('none of 1 candidate key')
    // The device sees only the generic message.
    expect(err.entry.defaultMessage).toBe('Unauthorized')
  })

  it('tampered sr or se: SAS_BAD_SIGNATURE', () => {
    expectCode(parseAndVerifySasToken(good.replace(REG_ID, 'sn-007-888-abc-mac-a1-b2-c3-d4-e5-f7'), deviceOptions()), 'SAS_BAD_SIGNATURE')
    expectCode(parseAndVerifySasToken(good.replace(`se=${NOW + 3600}`, `se=${NOW + 7200}`), deviceOptions()), 'SAS_BAD_SIGNATURE')
    // Leading zeros change the signed text even though the number is the same.
    expectCode(parseAndVerifySasToken(good.replace(`se=${NOW + 3600}`, `se=0${NOW + 3600}`), deviceOptions()), 'SAS_BAD_SIGNATURE')
  })

  it('wrong resource: SAS_WRONG_RESOURCE (signature fine, another device)', () => {
    const err = expectCode(parseAndVerifySasToken(good, deviceOptions({ expectedResource: `${ID_SCOPE}/registrations/dev2` })), 'SAS_WRONG_RESOURCE')
    expect(err.reason).toContain(`${ID_SCOPE}/registrations/dev2`)
    expectCode(parseAndVerifySasToken(good, deviceOptions({ expectedResource: `0ne00000A0B/registrations/${REG_ID}` })), 'SAS_WRONG_RESOURCE')
    // A device resource never matches by prefix.
    expectCode(parseAndVerifySasToken(good, deviceOptions({ expectedResource: `${resource}/x` })), 'SAS_WRONG_RESOURCE')
  })

  it('resource comparison ignores ASCII case (registrationIds are case-insensitive)', () => {
    const upper = buildSasToken({ resource: deviceRegistrationResource('0NE00000A0A', REG_ID.toUpperCase()), key: DEVICE_KEY, expiresAt: NOW + 10, keyName: 'registration' })
    expectOk(parseAndVerifySasToken(upper, deviceOptions()))
  })

  it('wrong, missing or unexpected skn: SAS_WRONG_KEY_NAME', () => {
    const noSkn = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW + 10 })
    const wrong = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW + 10, keyName: 'Registration' })
    expect(expectCode(parseAndVerifySasToken(noSkn, deviceOptions()), 'SAS_WRONG_KEY_NAME').reason).toContain('no skn')
    expect(expectCode(parseAndVerifySasToken(wrong, deviceOptions()), 'SAS_WRONG_KEY_NAME').reason).toContain('"Registration"')
    expectCode(parseAndVerifySasToken(good, deviceOptions({ keyName: null })), 'SAS_WRONG_KEY_NAME')
    expectOk(parseAndVerifySasToken(wrong, deviceOptions({ keyName: undefined })))
  })

  it('keyNameOptional: a missing skn passes, a present one must still be the expected name', () => {
    const noSkn = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW + 10 })
    const wrong = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW + 10, keyName: 'Registration' })
    const policy = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW + 10, keyName: 'iothubowner' })
    expectOk(parseAndVerifySasToken(noSkn, deviceOptions({ keyNameOptional: true })))
    expectOk(parseAndVerifySasToken(good, deviceOptions({ keyNameOptional: true })))
    expect(expectCode(parseAndVerifySasToken(wrong, deviceOptions({ keyNameOptional: true })), 'SAS_WRONG_KEY_NAME').reason).toContain('"Registration"')
    expect(expectCode(parseAndVerifySasToken(policy, deviceOptions({ keyNameOptional: true })), 'SAS_WRONG_KEY_NAME').reason).toContain('"iothubowner"')
    // A missing skn does not skip the signature: a forged token without skn is still refused.
    const forged = buildSasToken({ resource, key: OTHER_KEY, expiresAt: NOW + 10 })
    expectCode(parseAndVerifySasToken(forged, deviceOptions({ keyNameOptional: true })), 'SAS_BAD_SIGNATURE')
  })

  it('malformed: SAS_MALFORMED', () => {
    expectCode(parseAndVerifySasToken('sr=x&sig=y&se=1', deviceOptions()), 'SAS_MALFORMED')
    // 44 characters but not base64: malformed, not merely a wrong signature.
    const notBase64 = good.replace(/sig=[^&]+/, `sig=${'*'.repeat(43)}=`)
    expect(expectCode(parseAndVerifySasToken(notBase64, deviceOptions()), 'SAS_MALFORMED').reason).toContain('outside the base64 alphabet')
    expect(() => parseSasToken(notBase64)).toThrow(/outside the base64 alphabet/)
  })

  it('the five failures carry five distinct codes', () => {
    const codes = new Set<string>()
    const expired = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW - 1000, keyName: 'registration' })
    for (const r of [
      parseAndVerifySasToken(expired, deviceOptions()),
      parseAndVerifySasToken(good, deviceOptions({ keys: OTHER_KEY })),
      parseAndVerifySasToken(good, deviceOptions({ expectedResource: 'x/registrations/y' })),
      parseAndVerifySasToken(good, deviceOptions({ keyName: 'other' })),
      parseAndVerifySasToken(good.replace('se=', 'se=x'), deviceOptions()),
    ]) {
      if (r.ok) throw new Error('expected a failure')
      codes.add(r.error.code)
    }
    expect([...codes].sort()).toEqual(['SAS_BAD_SIGNATURE', 'SAS_EXPIRED', 'SAS_MALFORMED', 'SAS_WRONG_KEY_NAME', 'SAS_WRONG_RESOURCE'])
  })
})

describe('candidate keys', () => {
  const resource = deviceRegistrationResource(ID_SCOPE, REG_ID)
  const token = buildSasToken({ resource, key: DEVICE_KEY, expiresAt: NOW + 10, keyName: 'registration' })

  it('reports which candidate verified (primary, secondary)', () => {
    expectOk(parseAndVerifySasToken(token, deviceOptions({ keys: [DEVICE_KEY, OTHER_KEY] })), 0)
    expectOk(parseAndVerifySasToken(token, deviceOptions({ keys: [OTHER_KEY, DEVICE_KEY] })), 1)
  })

  it('takes base64, bytes and prepared keys', () => {
    const bytes = new Uint8Array(Buffer.from(DEVICE_KEY, 'base64'))
    expectOk(parseAndVerifySasToken(token, deviceOptions({ keys: bytes })))
    expectOk(parseAndVerifySasToken(token, deviceOptions({ keys: [createHmacSha256Key(new Uint8Array(32)), createHmacSha256Key(bytes)] })), 1)
  })

  it('an unusable candidate key is a configuration fault, reported not thrown', () => {
    const r = parseAndVerifySasToken(token, deviceOptions({ keys: ['%%%'] }))
    if (r.ok) throw new Error('expected failure')
    expect(r.error.code).toBe('INTERNAL_ERROR')
    expect(r.error.reason).toContain('candidate key 0')
  })

  it('an empty key never verifies anything (everyone could sign with it)', () => {
    const forged = `SharedAccessSignature sr=${ID_SCOPE}/registrations/${REG_ID}&sig=${encodeURIComponent(createHmac('sha256', Buffer.alloc(0)).update(`${ID_SCOPE}/registrations/${REG_ID}\n${NOW + 10}`).digest('base64'))}&se=${NOW + 10}&skn=registration`
    for (const keys of ['', new Uint8Array(0), [OTHER_KEY, '']]) {
      const r = parseAndVerifySasToken(forged, deviceOptions({ keys }))
      if (r.ok) throw new Error('an empty key must not verify')
      expect(r.error.code === 'INTERNAL_ERROR' || r.error.code === 'SAS_BAD_SIGNATURE').toBe(true)
    }
    expect(() => buildSasToken({ resource: 'r', key: '', expiresAt: NOW })).toThrow(/empty/)
    expect(() => buildSasToken({ resource: 'r', key: new Uint8Array(0), expiresAt: NOW })).toThrow(/empty/)
  })

  it('no keys at all or a bad clock are caller bugs', () => {
    expect(() => parseAndVerifySasToken(token, deviceOptions({ keys: [] }))).toThrow(TypeError)
    expect(() => parseAndVerifySasToken(token, deviceOptions({ nowSeconds: Number.NaN }))).toThrow(TypeError)
  })
})

describe('field order and encodings', () => {
  it('accepts the four fields in every order', () => {
    const theirs = SharedAccessSignature.create(deviceRegistrationResource(ID_SCOPE, REG_ID), 'registration', DEVICE_KEY, NOW + 60).toString()
    const fields = fieldsOf(theirs)
    const orders = permutations(fields)
    expect(orders).toHaveLength(24)
    for (const order of orders) expectOk(parseAndVerifySasToken('SharedAccessSignature ' + order.join('&'), deviceOptions()))
  })

  it('Embedded C SDK shape (az_iot_provisioning_client_sas): lower-case %2f sr, fields sr,sig,se, no skn, in every order', () => {
    const sr = `${ID_SCOPE}%2fregistrations%2f${REG_ID}`
    const se = String(NOW + 3600)
    const sig = encodeUriComponentStrict(authorization.hmacHash(DEVICE_KEY, authorization.stringToSign(sr, se)))
    const orders = permutations([`sr=${sr}`, `sig=${sig}`, `se=${se}`])
    expect(orders).toHaveLength(6)
    for (const order of orders) {
      expectOk(parseAndVerifySasToken('SharedAccessSignature ' + order.join('&'), deviceOptions({ keyNameOptional: true })))
    }
  })

  it('hub device tokens without skn verify in every field order', () => {
    const deviceId = 'dev-1'
    const theirs = SharedAccessSignature.create(encodeUriComponentStrict(HUB + '/devices/' + deviceId), undefined as unknown as string, DEVICE_KEY, NOW + 60).toString()
    const orders = permutations(fieldsOf(theirs))
    expect(orders).toHaveLength(6)
    for (const order of orders) {
      expectOk(parseAndVerifySasToken('SharedAccessSignature ' + order.join('&'), { keys: DEVICE_KEY, expectedResource: hubDeviceResource(HUB, deviceId), nowSeconds: NOW, keyName: null }))
    }
  })

  it('tolerates surrounding whitespace, scheme case and unknown fields', () => {
    const t = buildSasToken({ resource: deviceRegistrationResource(ID_SCOPE, REG_ID), key: DEVICE_KEY, expiresAt: NOW + 60, keyName: 'registration' })
    expectOk(parseAndVerifySasToken(`  ${t}\t`, deviceOptions()))
    expectOk(parseAndVerifySasToken(t.replace('SharedAccessSignature ', 'sharedaccesssignature  '), deviceOptions()))
    expectOk(parseAndVerifySasToken(`${t}&foo=bar`, deviceOptions()))
  })

  it('lenientSrEncoding accepts a signature made over another spelling of sr (docs/protocol.md §2.1)', () => {
    // Signed over the raw resource, but sent %2F-encoded: only the lenient mode accepts it.
    const raw = buildSasToken({ resource: deviceRegistrationResource(ID_SCOPE, REG_ID), key: DEVICE_KEY, expiresAt: NOW + 60, keyName: 'registration', encodeResource: 'raw' })
    const mismatched = raw.replace(`sr=${ID_SCOPE}/registrations/`, `sr=${ID_SCOPE}%2Fregistrations%2F`)
    expectCode(parseAndVerifySasToken(mismatched, deviceOptions()), 'SAS_BAD_SIGNATURE')
    expectOk(parseAndVerifySasToken(mismatched, deviceOptions({ lenientSrEncoding: true })))
    // Signed over lower-case %2f, sent upper-case.
    const sr = `${ID_SCOPE}%2fregistrations%2f${REG_ID}`
    const sig = encodeURIComponent(authorization.hmacHash(DEVICE_KEY, `${sr}\n${NOW + 60}`))
    const upperSent = `SharedAccessSignature sr=${sr.replaceAll('%2f', '%2F')}&sig=${sig}&se=${NOW + 60}&skn=registration`
    expectCode(parseAndVerifySasToken(upperSent, deviceOptions()), 'SAS_BAD_SIGNATURE')
    expectOk(parseAndVerifySasToken(upperSent, deviceOptions({ lenientSrEncoding: true })))
    // A raw sr that cannot be re-encoded (lone surrogate) is simply not retried, never a crash.
    const odd = `SharedAccessSignature sr=a\uD800b&sig=${sig}&se=${NOW + 60}&skn=registration`
    expectCode(parseAndVerifySasToken(odd, deviceOptions({ lenientSrEncoding: true })), 'SAS_BAD_SIGNATURE')
    // Leniency never rescues a wrong key.
    expectCode(parseAndVerifySasToken(mismatched, deviceOptions({ lenientSrEncoding: true, keys: OTHER_KEY })), 'SAS_BAD_SIGNATURE')
  })
})

describe('parseSasToken', () => {
  const sig = encodeURIComponent(Buffer.alloc(32, 7).toString('base64'))
  const base = `SharedAccessSignature sr=a%2Fb&sig=${sig}&se=1700000000&skn=registration`

  it('returns the fields: sr as sent, the rest decoded', () => {
    expect(parseSasToken(base)).toEqual({
      sr: 'a%2Fb',
      resourceDecoded: 'a/b',
      sig: Buffer.alloc(32, 7).toString('base64'),
      se: 1700000000,
      seText: '1700000000',
      skn: 'registration',
    })
  })

  it('keeps "=" inside a value and a literal "+" in sig (no form decoding)', () => {
    const raw = Buffer.alloc(32, 0xfb).toString('base64')
    expect(raw).toContain('+')
    expect(parseSasToken(`SharedAccessSignature sr=x&sig=${raw}&se=1`).sig).toBe(raw)
  })

  const cases: Array<[string, string]> = [
    ['', 'empty'],
    ['   ', 'empty'],
    ['Bearer abc', "must start with 'SharedAccessSignature '"],
    ['SharedAccessSignature', 'must be followed by a space'],
    ['SharedAccessSignaturesr=a', 'must be followed by a space'],
    ['SharedAccessSignature   ', 'must be followed by a space and the fields'],
    ['SharedAccessSignature \t x', "has no '='"],
    [`SharedAccessSignature sig=${sig}&se=1`, 'field sr is missing'],
    ['SharedAccessSignature sr=a&se=1', 'field sig is missing'],
    [`SharedAccessSignature sr=a&sig=${sig}`, 'field se is missing'],
    [`SharedAccessSignature sr=a&sr=b&sig=${sig}&se=1`, 'field sr appears more than once'],
    [`SharedAccessSignature sr=a&sig=${sig}&sig=${sig}&se=1`, 'field sig appears more than once'],
    [`SharedAccessSignature sr=a&sig=${sig}&se=1&se=1`, 'field se appears more than once'],
    [`SharedAccessSignature sr=a&sig=${sig}&se=1&skn=x&skn=x`, 'field skn appears more than once'],
    [`SharedAccessSignature sr=&sig=${sig}&se=1`, 'field sr is empty'],
    [`SharedAccessSignature sr=a&sig=${sig}&se=12a`, 'character 2 is not a digit'],
    [`SharedAccessSignature sr=a&sig=${sig}&se=-1`, 'not a digit'],
    [`SharedAccessSignature sr=a&sig=${sig}&se=1.5`, 'not a digit'],
    [`SharedAccessSignature sr=a&sig=${sig}&se=${'9'.repeat(16)}`, 'at most 15'],
    [`SharedAccessSignature sr=a%2&sig=${sig}&se=1`, 'sr has an invalid percent-encoding'],
    [`SharedAccessSignature sr=a%zz&sig=${sig}&se=1`, 'sr has an invalid percent-encoding'],
    [`SharedAccessSignature sr=a%C3&sig=${sig}&se=1`, 'not UTF-8'],
    [`SharedAccessSignature sr=a&sig=abc%&se=1`, 'sig has an invalid percent-encoding'],
    ['SharedAccessSignature sr=a&sig=abc&se=1', 'got 3 characters'],
    [`SharedAccessSignature sr=a&sig=${'*'.repeat(43)}=&se=1`, '44-character base64'],
    [`SharedAccessSignature sr=a&sig=${sig}&se=1&skn=%G1`, 'skn has an invalid percent-encoding'],
    [`SharedAccessSignature sr=a&&sig=${sig}&se=1`, 'empty field at offset'],
    [`SharedAccessSignature sr=a&sig=${sig}&se=1&`, 'empty field at offset'],
    [`SharedAccessSignature sr=a&sig=${sig}&se=1&bogus`, "has no '='"],
    [`SharedAccessSignature sr=a&=x&sig=${sig}&se=1`, 'empty name'],
  ]
  it.each(cases)('%j → SAS_MALFORMED (%s)', (text, fragment) => {
    let thrown: unknown
    try {
      parseSasToken(text)
    } catch (e) {
      thrown = e
    }
    expect(thrown).toBeInstanceOf(ProvisioError)
    expect((thrown as ProvisioError).code).toBe('SAS_MALFORMED')
    expect((thrown as ProvisioError).reason).toContain(fragment)
  })

  it('enforces the size limits', () => {
    const long = `SharedAccessSignature sr=${'a'.repeat(5000)}&sig=${sig}&se=1`
    expect(() => parseSasToken(long)).toThrow(/limit is 4096/)
    expect(() => parseSasToken(`SharedAccessSignature sr=${'a'.repeat(3000)}&sig=${sig}&se=1`)).toThrow(/field sr is 3000 characters long; the limit is 2048/)
    expect(() => parseSasToken(`${base}&x=${'y'.repeat(3000)}`)).toThrow(/longer than 2048/)
    expect(() => parseSasToken(`${base}&a=1&b=2&c=3&d=4&e=5`)).toThrow(/more than 8 fields/)
    expect(() => parseSasToken(base, { maxLength: 20 })).toThrow(/limit is 20/)
    expect(() => parseSasToken(base, { maxFields: 3 })).toThrow(/more than 3 fields/)
    expect(() => parseSasToken(base, { maxFieldLength: 4 })).toThrow(/field sr is 5 characters long; the limit is 4/)
  })
})

describe('properties', () => {
  const registrationId = fc.stringMatching(/^[A-Za-z0-9\-._:]{0,40}[A-Za-z0-9-]$/)
  const key = fc.uint8Array({ minLength: 16, maxLength: 64 })
  const encodeResource = fc.constantFrom('raw' as const, 'encodeURIComponent' as const, 'encodeUriComponentStrict' as const)
  const order = fc.shuffledSubarray(['sr', 'sig', 'se', 'skn'] as SasField[], { minLength: 4, maxLength: 4 })

  it('build → parse → verify round-trips, and the signature is node:crypto HMAC over sr as sent', () => {
    fc.assert(
      fc.property(registrationId, key, fc.integer({ min: 1, max: 4_000_000_000 }), encodeResource, order, (id, keyBytes, se, enc, fieldOrder) => {
        const keyB64 = Buffer.from(keyBytes).toString('base64')
        const resource = deviceRegistrationResource(ID_SCOPE, id)
        const token = buildSasToken({ resource, key: keyB64, expiresAt: se, keyName: 'registration', encodeResource: enc, fieldOrder })
        const parsed = parseSasToken(token)
        expect(parsed.resourceDecoded).toBe(resource)
        expect(parsed.se).toBe(se)
        expect(parsed.sig).toBe(createHmac('sha256', keyBytes).update(`${parsed.sr}\n${se}`).digest('base64'))
        expectOk(verifySasToken(parsed, { keys: keyB64, expectedResource: resource.toLowerCase(), nowSeconds: se - 1, keyName: 'registration' }))
        expectCode(verifySasToken(parsed, { keys: keyB64, expectedResource: resource, nowSeconds: se + 300, keyName: 'registration' }), 'SAS_EXPIRED')
        // Any other key fails.
        const other = new Uint8Array(keyBytes)
        other[0] ^= 1
        expectCode(verifySasToken(parsed, { keys: other, expectedResource: resource, nowSeconds: se - 1 }), 'SAS_BAD_SIGNATURE')
      }),
      { numRuns: 300 },
    )
  })

  it('random garbage only ever yields SAS_MALFORMED, never a crash', () => {
    const garbage = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.string({ maxLength: 200 }).map((s) => 'SharedAccessSignature ' + s),
      fc
        .array(fc.tuple(fc.constantFrom('sr', 'sig', 'se', 'skn', 'x', ''), fc.string({ maxLength: 50 })), { maxLength: 10 })
        .map((pairs) => 'SharedAccessSignature ' + pairs.map(([k, v]) => `${k}=${v}`).join('&')),
    )
    fc.assert(
      fc.property(garbage, (text) => {
        try {
          parseSasToken(text)
        } catch (e) {
          expect(e).toBeInstanceOf(ProvisioError)
          expect((e as ProvisioError).code).toBe('SAS_MALFORMED')
        }
        const r = parseAndVerifySasToken(text, deviceOptions())
        expect(r.ok).toBe(false)
      }),
      { numRuns: 3000 },
    )
  })

  it('mutations of a valid token are rejected with a typed error, never thrown', () => {
    const good = buildSasToken({ resource: deviceRegistrationResource(ID_SCOPE, REG_ID), key: DEVICE_KEY, expiresAt: NOW + 60, keyName: 'registration' })
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }), fc.nat(3), (at, insert, drop) => {
        const mutated = good.slice(0, at) + insert + good.slice(at + drop)
        const r = parseAndVerifySasToken(mutated, deviceOptions())
        if (!r.ok) expect(r.error.code).toMatch(/^SAS_/)
      }),
      { numRuns: 3000 },
    )
  })
})

describe('percent and base64 helpers', () => {
  it('percentDecode agrees with decodeURIComponent, and says undefined where it throws', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 20 }).map((t) => encodeURIComponent(t)),
      fc.array(fc.constantFrom('a', '%', '2', 'F', 'f', 'C3', 'A9', '%C3%A9', '%E2%82', '%zz', '/', '+'), { maxLength: 12 }).map((a) => a.join('')),
    )
    fc.assert(
      fc.property(text, (t) => {
        let want: string | undefined
        try {
          want = decodeURIComponent(t)
        } catch {
          want = undefined
        }
        expect(percentDecode(t)).toBe(want)
      }),
      { numRuns: 3000 },
    )
    expect(percentDecode('a+b')).toBe('a+b')
    expect(percentDecode('%2f%2F')).toBe('//')
  })

  it('encodeUriComponentStrict escapes what azure-iot-common escapes (hex case aside)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }).filter((t) => !/[\uD800-\uDFFF]/.test(t)), (t) => {
        expect(ourStrict(t).toLowerCase()).toBe(encodeUriComponentStrict(t).toLowerCase())
        expect(decodeURIComponent(ourStrict(t))).toBe(t)
      }),
    )
    expect(ourStrict("a(b)!*'")).toBe('a%28b%29%21%2A%27')
  })

  it('isBase64 accepts exactly Node-canonical padded base64 syntax', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 70 }), (bytes) => {
        expect(isBase64(Buffer.from(bytes).toString('base64'))).toBe(true)
      }),
    )
    for (const bad of ['', 'abc', 'ab=c', 'a===', '====', 'ab c', 'YWJj-A==', 'YWJj_A==']) expect(isBase64(bad)).toBe(false)
  })
})
