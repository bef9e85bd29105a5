// Direct method calls as IoT Hub takes them: defaults, the name rules, the 128 KB payload limit and
// the timeout ranges, each refusal naming the field and the rule.
import { describe, expect, it } from 'vitest'
import type { ProvisioError} from '../src/index.js';
import { MAX_METHOD_PAYLOAD_BYTES, formatMethodRequestTopic, formatMethodResponseTopic, methodNameError, parseHubRequestTopic, parseMethodRequestTopic, validateDirectMethodCall } from '../src/index.js'

function refusal(body: unknown): ProvisioError {
  try {
    validateDirectMethodCall(body)
  } catch (error) {
    return error as ProvisioError
  }
  throw new Error('accepted; a refusal was expected')
}

describe('validateDirectMethodCall', () => {
  it('fills IoT Hub defaults: payload null, response timeout 30 s, connect timeout 0', () => {
    expect(validateDirectMethodCall({ methodName: 'reboot' })).toEqual({ methodName: 'reboot', payload: null, responseTimeoutInSeconds: 30, connectTimeoutInSeconds: 0 })
    expect(validateDirectMethodCall({ methodName: 'set-Speed_2', payload: [1], responseTimeoutInSeconds: 300, connectTimeoutInSeconds: 300 })).toMatchObject({ payload: [1], responseTimeoutInSeconds: 300 })
  })

  it('refuses names outside US-ASCII printable or holding IoT Hub excluded characters or MQTT wildcards', () => {
    for (const name of ['', 'a b', 'a/b', 'a$b', 'a=b', 'a+b', 'a#b', 'é', 'a\tb', 'x'.repeat(129), 42]) {
      expect(methodNameError(name), JSON.stringify(name)).toBeDefined()
      expect(refusal({ methodName: name })).toMatchObject({ code: 'VALIDATION_FAILED', info: { field: 'methodName' } })
    }
    expect(methodNameError('~ok!')).toBeUndefined()
  })

  it('refuses payloads over 128 KB of JSON and timeouts out of range, naming the rule', () => {
    expect(validateDirectMethodCall({ methodName: 'm', payload: 'x'.repeat(MAX_METHOD_PAYLOAD_BYTES - 2) }).payload).toHaveLength(MAX_METHOD_PAYLOAD_BYTES - 2)
    const big = refusal({ methodName: 'm', payload: 'x'.repeat(MAX_METHOD_PAYLOAD_BYTES - 1) })
    expect(big).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', httpStatus: 413 })
    expect(big.deviceMessage).toContain(`over IoT Hub's limit of ${MAX_METHOD_PAYLOAD_BYTES} bytes`)
    expect(refusal({ methodName: 'm', responseTimeoutInSeconds: 4 }).deviceMessage).toBe('responseTimeoutInSeconds must be an integer from 5 to 300 (seconds)')
    expect(refusal({ methodName: 'm', connectTimeoutInSeconds: 1.5 }).info).toEqual({ field: 'connectTimeoutInSeconds' })
    expect(refusal({ methodName: 'm', connectTimeoutInSeconds: '3' }).code).toBe('VALIDATION_FAILED')
    expect(refusal([{ methodName: 'm' }]).info).toEqual({ field: '(body)' })
  })

  it('formats the request topic the device SDKs parse', () => {
    expect(formatMethodRequestTopic('reboot', 'ab12')).toBe('$iothub/methods/POST/reboot/?$rid=ab12')
  })

  it('reads the request topic back on the device side and formats the answer the hub parses', () => {
    expect(parseMethodRequestTopic(formatMethodRequestTopic('reboot', 'ab12'))).toEqual({ methodName: 'reboot', rid: 'ab12' })
    expect(parseMethodRequestTopic('$iothub/methods/POST/reboot/?$rid=1&extra=x')).toEqual({ methodName: 'reboot', rid: '1' })
    expect(parseMethodRequestTopic('$iothub/methods/POST/reboot/')).toBeUndefined()
    expect(parseMethodRequestTopic('$iothub/methods/POST//?$rid=1')).toBeUndefined()
    expect(parseMethodRequestTopic('$iothub/twin/res/200/?$rid=1')).toBeUndefined()
    expect(formatMethodResponseTopic(404, 'ab12')).toBe('$iothub/methods/res/404/?$rid=ab12')
    expect(parseHubRequestTopic(formatMethodResponseTopic(201, 'ab12'))).toEqual({ kind: 'methodResponse', rid: 'ab12', status: 201 })
  })
})
