// The DPS dialect's strings (docs/protocol.md §3) as each SDK writes them.
import { describe, expect, it } from 'vitest'
import { formatDpsResponseTopic, parseDpsRequestTopic, parseDpsUsername } from '../src/index.js'

describe('parseDpsUsername', () => {
  it('reads the Node SDK username (api-version, percent-encoded ClientVersion)', () => {
    expect(parseDpsUsername('0ne0000A0A2/registrations/dev-1/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1')).toEqual({
      idScope: '0ne0000A0A2',
      registrationId: 'dev-1',
      apiVersion: '2019-03-31',
      clientVersion: 'azure-iot-provisioning-device/1.9.1',
    })
  })

  it('reads the minimal documented form and a "?" before the parameters', () => {
    expect(parseDpsUsername('0ne00000001/registrations/d/api-version=2021-06-01')).toEqual({ idScope: '0ne00000001', registrationId: 'd', apiVersion: '2021-06-01' })
    expect(parseDpsUsername('0ne00000001/registrations/d/?api-version=2021-06-01')).toMatchObject({ apiVersion: '2021-06-01' })
    expect(parseDpsUsername('0ne00000001/registrations/d')).toEqual({ idScope: '0ne00000001', registrationId: 'd' })
  })

  it('names the broken rule', () => {
    expect(parseDpsUsername('0ne00000001/devices/d/api-version=1')).toEqual({ error: expect.stringMatching(/registrations/) })
    expect(parseDpsUsername('no-slashes')).toEqual({ error: expect.stringMatching(/must start with/) })
    expect(parseDpsUsername('0ne00000001/registrations//api-version=1')).toEqual({ error: expect.stringMatching(/no registrationId/) })
    expect(parseDpsUsername('s/registrations/d/ClientVersion=%zz')).toEqual({ error: expect.stringMatching(/percent-encoding/) })
    expect(parseDpsUsername('s/registrations/' + 'd'.repeat(2000))).toEqual({ error: expect.stringMatching(/over the limit/) })
  })
})

describe('parseDpsRequestTopic', () => {
  it('reads register and poll topics, keeping $rid verbatim', () => {
    expect(parseDpsRequestTopic('$dps/registrations/PUT/iotdps-register/?$rid=4f1c0c5e-0a4e-4a8e-9f0e-5f8d7f3c2b1a')).toEqual({
      kind: 'register',
      rid: '4f1c0c5e-0a4e-4a8e-9f0e-5f8d7f3c2b1a',
    })
    expect(parseDpsRequestTopic('$dps/registrations/GET/iotdps-get-operationstatus/?$rid=12&operationId=4.0123456789abcdef.00000000-0000-0000-0000-000000000000')).toEqual({
      kind: 'operationStatus',
      rid: '12',
      operationId: '4.0123456789abcdef.00000000-0000-0000-0000-000000000000',
    })
  })

  it('refuses other topics without a $rid to answer, and answers broken ones that have one', () => {
    expect(parseDpsRequestTopic('devices/d/messages/events/')).toEqual({ error: expect.stringMatching(/neither the register nor/) })
    expect(parseDpsRequestTopic('$dps/registrations/PUT/iotdps-register/')).toEqual({ error: expect.stringMatching(/no "\?"/) })
    expect(parseDpsRequestTopic('$dps/registrations/PUT/iotdps-register/?x=1')).toEqual({ error: expect.stringMatching(/no \$rid/) })
    expect(parseDpsRequestTopic('$dps/registrations/GET/iotdps-get-operationstatus/?$rid=3')).toEqual({ error: expect.stringMatching(/no operationId/), rid: '3' })
    expect(parseDpsRequestTopic('$dps/registrations/PUT/iotdps-register/?$rid=a#b')).toEqual({ error: expect.stringMatching(/printable/) })
    expect(parseDpsRequestTopic('$dps/registrations/PUT/iotdps-register/?$rid=' + '1'.repeat(200))).toEqual({ error: expect.stringMatching(/1-128/) })
  })
})

describe('formatDpsResponseTopic', () => {
  it('puts $rid first and retry-after in whole seconds, at least 1', () => {
    expect(formatDpsResponseTopic(202, 'r1', 3)).toBe('$dps/registrations/res/202/?$rid=r1&retry-after=3')
    expect(formatDpsResponseTopic(429, 'r1', 0.2)).toBe('$dps/registrations/res/429/?$rid=r1&retry-after=1')
    expect(formatDpsResponseTopic(200, 'r1')).toBe('$dps/registrations/res/200/?$rid=r1')
  })
})
