// Direct methods invoked from the page: the form's input checked as the hub checks it, the
// POST /twins/{id}/methods call signed with the typed hub connection string, the device's answer,
// and IoT Hub's refusals (404103, 504101) read into their code and message. A recorded fetch stands
// in for the server here; test/browser/emulator.test.ts drives the real page, SDK and server.
import { describe, expect, it } from 'vitest'
import { ready } from '@provisio/crypto'
import { parseSasToken, verifySasToken } from '@provisio/protocol'
import { MethodCallError, answerStatus, hubErrorOf, invokeMethod, methodCallBody, type MethodInvocation } from '../src/direct-method.js'
import type { FetchForHub } from '../src/hub-service.js'

const HUB_KEY = Buffer.alloc(32, 9).toString('base64')
const call: MethodInvocation = {
  connectionString: `HostName=myhub.local;SharedAccessKeyName=iothubowner;SharedAccessKey=${HUB_KEY}`,
  deviceId: 'dev 1',
  methodName: 'blink',
  payloadText: '{"times": 3}',
  responseTimeoutText: '10',
  connectTimeoutText: '',
  host: 'localhost',
  port: 8443,
  nowSeconds: 1_800_000_000,
}

/** IoT Hub's error body as the server sends it: the inner error as a JSON string in Message. */
const hubError = (errorCode: number, message: string) => JSON.stringify({ Message: JSON.stringify({ errorCode, trackingId: 't-1', message, timestampUtc: '2026-12-08T00:00:00Z' }), ExceptionMessage: '' })

describe('direct method from the page', () => {
  it('posts the call signed with the typed hub connection string and resolves with the device answer', async () => {
    await ready()
    const calls: { url: string; init: Parameters<FetchForHub>[1] }[] = []
    const fetchImpl: FetchForHub = async (url, init) => {
      calls.push({ url, init })
      return { ok: true, status: 200, text: async () => JSON.stringify({ status: 201, payload: { times: 3 } }) }
    }
    expect(await invokeMethod(fetchImpl, call)).toEqual({ status: 201, payload: { times: 3 } })
    expect(calls).toHaveLength(1)
    expect(calls[0]!.url).toBe('https://localhost:8443/twins/dev%201/methods?api-version=2021-04-12')
    expect(calls[0]!.init.method).toBe('POST')
    expect(JSON.parse(calls[0]!.init.body)).toEqual({ methodName: 'blink', payload: { times: 3 }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 0 })
    const token = parseSasToken(calls[0]!.init.headers.authorization!)
    expect(verifySasToken(token, { keys: HUB_KEY, expectedResource: 'myhub.local', nowSeconds: 1_800_000_000, keyName: 'iothubowner' })).toMatchObject({ ok: true })
  })

  it('names the input at fault before sending: name, payload, timeouts, connection string', async () => {
    const never: FetchForHub = async () => {
      throw new Error('not called')
    }
    const fieldOf = (patch: Partial<MethodInvocation>) => invokeMethod(never, { ...call, ...patch }).catch((e: unknown) => e as MethodCallError)
    expect(await fieldOf({ methodName: 'a/b' })).toMatchObject({ field: 'methodName', message: expect.stringMatching(/holds "\/"/) as unknown })
    expect(await fieldOf({ methodName: ' ' })).toMatchObject({ field: 'methodName' })
    expect(await fieldOf({ payloadText: '{' })).toMatchObject({ field: 'payload', message: expect.stringMatching(/not JSON/) as unknown })
    expect(await fieldOf({ payloadText: JSON.stringify('x'.repeat(140_000)) })).toMatchObject({ field: 'payload', message: expect.stringMatching(/over IoT Hub's limit/) as unknown })
    expect(await fieldOf({ responseTimeoutText: '2' })).toMatchObject({ field: 'responseTimeout' })
    expect(await fieldOf({ connectTimeoutText: '1.5' })).toMatchObject({ field: 'connectTimeout', message: expect.stringMatching(/whole number/) as unknown })
    expect(await fieldOf({ connectionString: 'HostName=h' })).toMatchObject({ field: 'connectionString' })
    expect(methodCallBody({ methodName: 'm', payloadText: '', responseTimeoutText: '', connectTimeoutText: '' })).toEqual({ methodName: 'm', payload: null, responseTimeoutInSeconds: 30, connectTimeoutInSeconds: 0 })
  })

  it('reads 404103 and 504101 out of the hub error body into code and message', async () => {
    await ready()
    const answering = (status: number, text: string): FetchForHub => async () => ({ ok: false, status, text: async () => text })
    const offline = (await invokeMethod(answering(404, hubError(404103, 'Timed out waiting for device to connect.')), call).catch((e: unknown) => e)) as MethodCallError
    expect(offline).toBeInstanceOf(MethodCallError)
    expect(offline).toMatchObject({ field: 'hub', status: 404, errorCode: 404103, message: 'the hub answered 404: 404103 Timed out waiting for device to connect.' })
    const late = (await invokeMethod(answering(504, hubError(504101, 'Timed out waiting for the response from device.')), call).catch((e: unknown) => e)) as MethodCallError
    expect(late).toMatchObject({ status: 504, errorCode: 504101, message: 'the hub answered 504: 504101 Timed out waiting for the response from device.' })
    const plain = (await invokeMethod(answering(401, 'Unauthorized'), call).catch((e: unknown) => e)) as MethodCallError
    expect(plain).toMatchObject({ status: 401, message: 'the hub answered 401: Unauthorized' })
    expect(plain.errorCode).toBeUndefined()
    expect(hubErrorOf('{"errorCode":404001,"message":"no such device"}')).toEqual({ errorCode: 404001, message: 'no such device' })
  })

  it('takes the answer status from the page, 200 when it is not a whole number', () => {
    expect(answerStatus('503')).toBe(503)
    expect(answerStatus(' ')).toBe(200)
    expect(answerStatus('2.5')).toBe(200)
  })
})
