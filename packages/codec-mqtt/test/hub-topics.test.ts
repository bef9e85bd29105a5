// The IoT Hub device dialect's strings. The fixtures are what azure-iot-device-mqtt 1.16 sends
// (username, telemetry topic with system and application properties, twin topics).
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { formatDesiredTopic, formatTwinResponseTopic, hubSubscriptionKinds, mqttDialectOf, parseHubRequestTopic, parseHubUsername, topicFilterError, topicMatches } from '../src/index.js'

const NODE_USERNAME = 'hub-a.example/dev-1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4%20(node%20v20.19.0%3B%20Debian%3B%20x64)'
const NODE_TELEMETRY = 'devices/dev-1/messages/events/%24.mid=m-1&%24.ct=application%2Fjson&%24.ce=utf-8&unit=%C2%B0C&site=lab%201'

describe('parseHubUsername', () => {
  it('reads the Node SDK username', () => {
    expect(parseHubUsername(NODE_USERNAME)).toEqual({
      hostName: 'hub-a.example',
      deviceId: 'dev-1',
      apiVersion: '2021-04-12',
      clientType: 'azure-iot-device/1.18.4 (node v20.19.0; Debian; x64)',
    })
  })

  it('reads the form without "?", with model-id, and a module identity', () => {
    expect(parseHubUsername('h/d/api-version=2020-09-30&model-id=dtmi:x;1')).toEqual({ hostName: 'h', deviceId: 'd', apiVersion: '2020-09-30' })
    expect(parseHubUsername('h/d/m/?api-version=1')).toEqual({ hostName: 'h', deviceId: 'd', moduleId: 'm', apiVersion: '1' })
    expect(parseHubUsername('h/d')).toEqual({ hostName: 'h', deviceId: 'd' })
  })

  it('names the broken rule', () => {
    expect(parseHubUsername('justhost')).toEqual({ error: expect.stringMatching(/hubHostName/) })
    expect(parseHubUsername('/d/?api-version=1')).toEqual({ error: expect.stringMatching(/hubHostName/) })
    expect(parseHubUsername('h//?api-version=1')).toEqual({ error: expect.stringMatching(/hubHostName/) })
    expect(parseHubUsername('h/d/?DeviceClientType=%zz')).toEqual({ error: expect.stringMatching(/percent-encoding/) })
    expect(parseHubUsername('h/' + 'd'.repeat(2000))).toEqual({ error: expect.stringMatching(/over the limit/) })
  })
})

describe('parseHubRequestTopic', () => {
  it('reads telemetry with system and application properties', () => {
    expect(parseHubRequestTopic(NODE_TELEMETRY)).toEqual({
      kind: 'telemetry',
      deviceId: 'dev-1',
      systemProperties: { '$.mid': 'm-1', '$.ct': 'application/json', '$.ce': 'utf-8' },
      properties: { unit: '°C', site: 'lab 1' },
    })
    expect(parseHubRequestTopic('devices/dev-1/messages/events/')).toEqual({ kind: 'telemetry', deviceId: 'dev-1', properties: {}, systemProperties: {} })
    expect(parseHubRequestTopic('devices/dev-1/messages/events')).toMatchObject({ kind: 'telemetry' })
  })

  it('reads twin GET, reported PATCH (with and without $version) and method responses', () => {
    expect(parseHubRequestTopic('$iothub/twin/GET/?$rid=0b7e3e0c-8a44-4b0d-9c57-2f3d1c2a9e11')).toEqual({ kind: 'twinGet', rid: '0b7e3e0c-8a44-4b0d-9c57-2f3d1c2a9e11' })
    expect(parseHubRequestTopic('$iothub/twin/PATCH/properties/reported/?$rid=7')).toEqual({ kind: 'reportedPatch', rid: '7' })
    expect(parseHubRequestTopic('$iothub/twin/PATCH/properties/reported/?$rid=7&$version=3')).toEqual({ kind: 'reportedPatch', rid: '7', version: 3 })
    expect(parseHubRequestTopic('$iothub/methods/res/200/?$rid=9')).toEqual({ kind: 'methodResponse', rid: '9', status: 200 })
  })

  it('refuses what a device may not publish, answering on the twin topic when a $rid can be read', () => {
    expect(parseHubRequestTopic('devices/dev-1/modules/m/messages/events/')).toEqual({ error: expect.stringMatching(/not served/) })
    expect(parseHubRequestTopic('$iothub/twin/GET/')).toEqual({ error: expect.stringMatching(/no "\?"/) })
    expect(parseHubRequestTopic('$iothub/twin/GET/?x=1')).toEqual({ error: expect.stringMatching(/no \$rid/) })
    expect(parseHubRequestTopic('$iothub/twin/GET/?$rid=a#b')).toEqual({ error: expect.stringMatching(/printable/) })
    expect(parseHubRequestTopic('$iothub/twin/PATCH/properties/reported/?$rid=1&$version=x')).toEqual({ error: expect.stringMatching(/\$version/), rid: '1' })
    expect(parseHubRequestTopic('$dps/registrations/PUT/iotdps-register/?$rid=1')).toEqual({ error: expect.stringMatching(/not one a device may publish/) })
    expect(parseHubRequestTopic('devices/d/messages/events/' + Array.from({ length: 70 }, (_, i) => `p${i}=1`).join('&'))).toEqual({ error: expect.stringMatching(/more than 64/) })
    expect(parseHubRequestTopic('devices/d/messages/events/a=%zz')).toEqual({ error: expect.stringMatching(/percent-encoding/) })
  })

  it('never throws, whatever the topic (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.constantFrom('', 'devices/d/messages/events/', '$iothub/twin/GET/?', '$iothub/twin/PATCH/properties/reported/?$rid=', '$iothub/methods/res/'), (tail, head) => {
        const r = parseHubRequestTopic(head + tail)
        expect(typeof r).toBe('object')
      }),
    )
  })
})

describe('subscriptions, response topics and dialect', () => {
  it('serves the four filters the SDK subscribes to, C2D only for the device itself', () => {
    expect(hubSubscriptionKinds('$iothub/twin/res/#', 'd')).toEqual(['twinResponse'])
    expect(hubSubscriptionKinds('$iothub/twin/PATCH/properties/desired/#', 'd')).toEqual(['twinDesired'])
    expect(hubSubscriptionKinds('$iothub/methods/POST/#', 'd')).toEqual(['methods'])
    expect(hubSubscriptionKinds('devices/d/messages/devicebound/#', 'd')).toEqual(['cloudToDevice'])
    expect(hubSubscriptionKinds('devices/other/messages/devicebound/#', 'd')).toEqual([])
    expect(hubSubscriptionKinds('#', 'd')).toEqual([])
    expect(hubSubscriptionKinds('$dps/registrations/res/#', 'd')).toEqual([])
  })

  it('matches other filter forms as MQTT does: the Embedded C SDK\'s wildcard C2D filter, "+" levels, "#" covering its parent', () => {
    expect(hubSubscriptionKinds('devices/+/messages/devicebound/#', 'd')).toEqual(['cloudToDevice'])
    expect(hubSubscriptionKinds('devices/d/messages/devicebound/+', 'd')).toEqual(['cloudToDevice'])
    expect(hubSubscriptionKinds('$iothub/#', 'd')).toEqual(['twinResponse', 'twinDesired', 'methods'])
    expect(hubSubscriptionKinds('$iothub/twin/+/#', 'd')).toEqual(['twinResponse', 'twinDesired'])
    expect(hubSubscriptionKinds('$iothub/twin/res/+/+', 'd')).toEqual(['twinResponse'])
    expect(hubSubscriptionKinds('$iothub/twin/res/+', 'd')).toEqual([])
    // Invalid filters and leading wildcards (which MQTT never matches against "$" topics) are refused.
    for (const bad of ['$iothub/twin/res#', '$iothub/#/res', 'devices/d+/messages/devicebound/#', '', '+/d/messages/devicebound/#']) {
      expect(hubSubscriptionKinds(bad, 'd'), bad).toEqual([])
    }
  })

  it('topicMatches and topicFilterError follow MQTT 3.1.1 §4.7', () => {
    expect(topicMatches('sport/tennis/#', 'sport/tennis')).toBe(true)
    expect(topicMatches('sport/tennis/#', 'sport/tennis/player1/ranking')).toBe(true)
    expect(topicMatches('sport/+', 'sport/')).toBe(true)
    expect(topicMatches('sport/+', 'sport')).toBe(false)
    expect(topicMatches('+/+', '/finance')).toBe(true)
    expect(topicMatches('#', '$SYS/x')).toBe(false)
    expect(topicMatches('+/monitor', '$SYS/monitor')).toBe(false)
    expect(topicMatches('$SYS/#', '$SYS/monitor')).toBe(true)
    expect(topicMatches('$iothub/twin/res/#', '$iothub/twin/res/200/?$rid=1')).toBe(true)
    expect(topicFilterError('a/#/b')).toMatch(/MQTT-4.7.1-2/)
    expect(topicFilterError('a/b+')).toMatch(/MQTT-4.7.1-3/)
    expect(topicFilterError('a/+/#')).toBeUndefined()
  })

  it('formats twin responses ($rid first) and desired pushes', () => {
    expect(formatTwinResponseTopic(200, 'r1')).toBe('$iothub/twin/res/200/?$rid=r1')
    expect(formatTwinResponseTopic(204, 'r1', 5)).toBe('$iothub/twin/res/204/?$rid=r1&$version=5')
    expect(formatDesiredTopic(7)).toBe('$iothub/twin/PATCH/properties/desired/?$version=7')
  })

  it('tells DPS and hub CONNECTs apart by the username, embedded hub names first', () => {
    const hubs = (h: string) => h === 'hub-a.example'
    expect(mqttDialectOf(NODE_USERNAME, hubs)).toBe('hub')
    expect(mqttDialectOf('0ne00000A0A/registrations/dev-1/api-version=2019-03-31', hubs)).toBe('dps')
    // A device named "registrations" on an embedded hub is still the hub's.
    expect(mqttDialectOf('hub-a.example/registrations/?api-version=1', hubs)).toBe('hub')
    expect(mqttDialectOf('unknown.example/dev/?api-version=1', hubs)).toBe('hub')
    expect(mqttDialectOf(undefined, hubs)).toBe('dps')
  })
})
