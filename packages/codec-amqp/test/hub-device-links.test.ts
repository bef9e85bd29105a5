// What a device's twin and method links carry (docs/protocol.md §12.6, §12.7), read and written
// without a session: addresses, twin requests and their refusals, answers, desired pushes, method
// requests and the device's answers with their refusals.
import message from 'rhea/lib/message.js'
import { describe, expect, it } from 'vitest'
import { decodeMessage, encodeDesiredPush, encodeMethodRequest, encodeTwinResponse, parseHubAddress, readMethodResponse, readTwinRequest } from '../src/hub-messages.js'

const encoded = (msg: Record<string, unknown>) => decodeMessage(message.encode(msg))
const data = (text: string) => message.data_section(Buffer.from(text))
const text = (body: unknown) => Buffer.from((body as { content: Uint8Array }).content).toString()

describe('twin and method link addresses', () => {
  it('names the device of /devices/{id}/twin and /devices/{id}/methods/devicebound, URL-decoded, case-insensitive', () => {
    expect(parseHubAddress('/devices/dev%201/twin')).toEqual({ kind: 'deviceTwin', deviceId: 'dev 1' })
    expect(parseHubAddress('amqps://hub.example/devices/d/METHODS/devicebound')).toEqual({ kind: 'deviceMethods', deviceId: 'd' })
    expect(parseHubAddress('/devices/d/modules/m/twin')).toMatchObject({ kind: 'unknown' })
  })
})

describe('twin requests', () => {
  it('reads the four operations and keeps the correlation id as sent', () => {
    const id = 'b1c2d3e4-0000-4000-8000-000000000001'
    expect(readTwinRequest(encoded({ correlation_id: id, message_annotations: { operation: 'GET' }, body: data(' ') }))).toMatchObject({ ok: true, operation: 'get', correlationId: id })
    const patch = readTwinRequest(encoded({ correlation_id: id, message_annotations: { operation: 'PATCH', resource: '/properties/reported' }, body: data('{"a":1}') }))
    expect(patch).toMatchObject({ ok: true, operation: 'patchReported' })
    expect(Buffer.from((patch as { body: Uint8Array }).body).toString()).toBe('{"a":1}')
    expect(readTwinRequest(encoded({ correlation_id: id, message_annotations: { operation: 'PUT', resource: '/notifications/twin/properties/desired' } }))).toMatchObject({ ok: true, operation: 'subscribeDesired' })
    expect(readTwinRequest(encoded({ correlation_id: id, message_annotations: { operation: 'DELETE', resource: '/notifications/twin/properties/desired' } }))).toMatchObject({ ok: true, operation: 'unsubscribeDesired' })
  })

  it('refuses other operations with the reason, and a request without correlation id', () => {
    expect(readTwinRequest(encoded({ correlation_id: 'x', message_annotations: { operation: 'PATCH', resource: '/properties/desired' } }))).toEqual({
      ok: false,
      correlationId: 'x',
      reason: expect.stringMatching(/"PATCH \/properties\/desired" is not GET/),
    })
    expect(readTwinRequest(encoded({ message_annotations: { operation: 'GET' } }))).toEqual({ ok: false, correlationId: undefined, reason: 'twin request without a correlation-id' })
  })

  it('answers with the correlation id, status and version annotations and a JSON data section; pushes carry no correlation id', () => {
    const answer = decodeMessage(encodeTwinResponse('c-1', 204, '', 7))
    expect(answer).toMatchObject({ correlation_id: 'c-1', message_annotations: { status: 204, version: 7 } })
    const push = decodeMessage(encodeDesiredPush({ interval: 30, $version: 4 }))
    expect(push.correlation_id).toBeUndefined()
    expect(JSON.parse(text(push.body))).toEqual({ interval: 30, $version: 4 })
  })
})

describe('method requests and responses', () => {
  it('writes the method name, the request id and the payload', () => {
    const request = decodeMessage(encodeMethodRequest('reboot', 'abc123', '{"delay":5}'))
    expect(request).toMatchObject({ correlation_id: 'abc123', application_properties: { 'IoThub-methodname': 'reboot' } })
    expect(text(request.body)).toBe('{"delay":5}')
  })

  it('reads a response by string or uuid id and refuses one without id, without an integer status, or over the limit', () => {
    const ok = readMethodResponse(encoded({ correlation_id: 'abc123', application_properties: { 'IoThub-status': 201 }, body: data('{"ok":true}') }), 1024)
    expect(ok).toMatchObject({ ok: true, rid: 'abc123', status: 201 })
    // 16 bytes read as a uuid in its text form.
    const uuid = Buffer.from('0123456789abcdef0123456789abcdef', 'hex')
    expect(readMethodResponse(encoded({ correlation_id: uuid, application_properties: { 'IoThub-status': 200 } }), 1024)).toMatchObject({ ok: true, rid: '01234567-89ab-cdef-0123-456789abcdef' })
    expect(readMethodResponse(encoded({ application_properties: { 'IoThub-status': 200 } }), 1024)).toMatchObject({ ok: false, condition: 'amqp:invalid-field', description: expect.stringMatching(/correlation-id/) })
    expect(readMethodResponse(encoded({ correlation_id: 'r', application_properties: { 'IoThub-status': 'fine' } }), 1024)).toMatchObject({ ok: false, condition: 'amqp:invalid-field', description: expect.stringMatching(/IoThub-status/) })
    expect(readMethodResponse(encoded({ correlation_id: 'r', application_properties: { 'IoThub-status': 200 }, body: data('x'.repeat(2000)) }), 1024)).toMatchObject({ ok: false, condition: 'amqp:link:message-size-exceeded' })
  })
})
