import { describe, expect, it } from 'vitest'
import { DEFAULT_HUB_POLICIES, DPS_RIGHTS, HUB_RIGHTS, grants, ipFilterVerdict, parseIpFilterRules, parseRights, rightMissing } from '../src/index.js'

describe('rights of shared access policies', () => {
  it('a write right includes its read right, nothing else is implied', () => {
    expect(grants(['EnrollmentWrite'], 'EnrollmentRead')).toBe(true)
    expect(grants(['EnrollmentRead'], 'EnrollmentWrite')).toBe(false)
    expect(grants(['RegistrationStatusWrite'], 'RegistrationStatusRead')).toBe(true)
    expect(grants(['RegistryWrite'], 'RegistryRead')).toBe(true)
    expect(grants(['RegistryRead'], 'RegistryWrite')).toBe(false)
    expect(grants(['EnrollmentWrite'], 'ServiceConfig')).toBe(false)
    expect(grants(DEFAULT_HUB_POLICIES.service!, 'RegistryRead')).toBe(false)
    expect(grants(DEFAULT_HUB_POLICIES.iothubowner!, 'RegistryRead')).toBe(true)
  })

  it('parses rights in Azure spelling, any case, once each, and refuses unknown ones', () => {
    expect(parseRights('enrollmentread, EnrollmentWrite,enrollmentRead', DPS_RIGHTS)).toEqual(['EnrollmentRead', 'EnrollmentWrite'])
    expect(() => parseRights('RegistryRead', DPS_RIGHTS)).toThrow(/unknown right "RegistryRead"/)
    expect(() => parseRights('', HUB_RIGHTS)).toThrow(/at least one right/)
    expect(rightMissing('hub h', 'registryRead', 'RegistryWrite')).toMatchObject({ code: 'SAS_PERMISSION_DENIED', httpStatus: 401, reason: 'policy registryRead of hub h lacks the right RegistryWrite' })
  })
})

describe('IP filter rules', () => {
  const rules = parseIpFilterRules([
    { filterName: 'lab', action: 'Accept', ipMask: '10.1.2.0/24' },
    { filterName: 'corp', action: 'Reject', ipMask: '10.0.0.0/8' },
    { filterName: 'one', action: 'Reject', ipMask: '192.0.2.7' },
  ])

  it('the first matching rule decides; no match accepts', () => {
    expect(ipFilterVerdict(rules, '10.1.2.9')).toEqual({ action: 'Accept', rule: 'lab' })
    expect(ipFilterVerdict(rules, '10.9.9.9')).toEqual({ action: 'Reject', rule: 'corp' })
    expect(ipFilterVerdict(rules, '::ffff:10.9.9.9')).toEqual({ action: 'Reject', rule: 'corp' })
    expect(ipFilterVerdict(rules, '192.0.2.7')).toEqual({ action: 'Reject', rule: 'one' })
    expect(ipFilterVerdict(rules, '192.0.2.8')).toEqual({ action: 'Accept' })
    expect(ipFilterVerdict(rules, '::1')).toEqual({ action: 'Accept' })
    expect(ipFilterVerdict(parseIpFilterRules([{ filterName: 'all', action: 'Reject', ipMask: '0.0.0.0/0' }]), '127.0.0.1')).toEqual({ action: 'Reject', rule: 'all' })
  })

  it('refuses malformed rules with the reason', () => {
    expect(() => parseIpFilterRules([{ filterName: 'x', action: 'Deny', ipMask: '10.0.0.0/8' }])).toThrow(/action must be Accept or Reject/)
    expect(() => parseIpFilterRules([{ filterName: 'x', action: 'Reject', ipMask: '10.0.0.0/33' }])).toThrow(/ipMask must be an IPv4 address or CIDR range/)
    expect(() => parseIpFilterRules([{ filterName: 'x', action: 'Reject', ipMask: '256.0.0.1' }])).toThrow(/ipMask/)
    expect(() => parseIpFilterRules([{ filterName: 'x', action: 'Reject', ipMask: '10.0.0.1', extra: 1 }])).toThrow(/unknown member "extra"/)
    expect(() => parseIpFilterRules(Array.from({ length: 101 }, (_, i) => ({ filterName: `r${i}`, action: 'Reject', ipMask: '10.0.0.1' })))).toThrow(/at most 100/)
    expect(() => parseIpFilterRules('10.0.0.0/8')).toThrow(/must be a list/)
  })
})
