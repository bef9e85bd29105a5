// Test-side AMQP client pieces: frames built with rhea's own codecs (the same library Microsoft's
// Node client runs on), a parser for what the session writes, and a fake DeviceApi.
import frames, { type Performative } from 'rhea/lib/frames.js'
import message from 'rhea/lib/message.js'
import terminus from 'rhea/lib/terminus.js'
import { ProvisioError, type DeviceApi, type Evidence, type RegisterRequest, type OperationStatusRequest } from '@provisio/protocol'
import { AmqpDeviceSession, type AmqpCloseReason, type AmqpSessionOptions } from '../src/index.js'

export const SCOPE = '0ne00000A0A'
export const DEVICE = 'device-1'
export const ADDRESS = `${SCOPE}/registrations/${DEVICE}`
export const GOOD_SAS = `SharedAccessSignature sr=${ADDRESS}&sig=good&se=9999999999&skn=registration`

export const AMQP_HEADER = Buffer.from('AMQP\x00\x01\x00\x00', 'latin1')
export const SASL_HEADER = Buffer.from('AMQP\x03\x01\x00\x00', 'latin1')

export function amqp(performative: Performative, channel = 0, payload?: Uint8Array): Buffer {
  return Buffer.from(frames.write_frame(frames.amqp_frame(channel, performative, payload === undefined ? undefined : Buffer.from(payload))))
}

export function sasl(performative: Performative): Buffer {
  return Buffer.from(frames.write_frame(frames.sasl_frame(performative)))
}

export function plainInit(authcid: string, password: string): Buffer {
  return sasl(frames.sasl_init({ mechanism: 'PLAIN', initial_response: Buffer.from(`\0${authcid}\0${password}`) }))
}

export function open(maxFrameSize = 4096): Buffer {
  return amqp(frames.open({ container_id: 'device', hostname: 'localhost', max_frame_size: maxFrameSize }))
}

export function begin(): Buffer {
  return amqp(frames.begin({ next_outgoing_id: 0, incoming_window: 100, outgoing_window: 100 }))
}

/** The device's receiver link (we send on it). */
export function attachReceiver(address = ADDRESS, handle = 0): Buffer {
  return amqp(
    frames.attach({
      name: 'recv',
      handle,
      role: true,
      source: terminus.source({ address }).described(),
      target: terminus.target({ address: 'local' }).described(),
      properties: { 'com.microsoft:api-version': '2019-03-31' },
    }),
  )
}

/** The device's sender link (requests). */
export function attachSender(address = ADDRESS, handle = 1): Buffer {
  return amqp(
    frames.attach({
      name: 'send',
      handle,
      role: false,
      source: terminus.source({ address: 'remote' }).described(),
      target: terminus.target({ address }).described(),
      initial_delivery_count: 0,
      properties: { 'com.microsoft:api-version': '2019-03-31' },
    }),
  )
}

export function grant(credit: number, handle = 0): Buffer {
  return amqp(frames.flow({ next_incoming_id: 0, incoming_window: 100, next_outgoing_id: 0, outgoing_window: 100, handle, delivery_count: 0, link_credit: credit }))
}

export function request(deliveryId: number, msg: Record<string, unknown>, handle = 1, fields: Record<string, unknown> = {}): Buffer {
  const payload = Buffer.from(message.encode(msg))
  return amqp(frames.transfer({ handle, delivery_id: deliveryId, delivery_tag: Buffer.from([deliveryId]), message_format: 0, settled: false, ...fields }), 0, payload)
}

export function registerMessage(correlationId: string, body: object = { registrationId: DEVICE }): Record<string, unknown> {
  return {
    correlation_id: correlationId,
    application_properties: { 'iotdps-operation-type': 'iotdps-register', 'iotdps-forceRegistration': false },
    body: message.data_section(Buffer.from(JSON.stringify(body))),
  }
}

export function pollMessage(correlationId: string, operationId: string): Record<string, unknown> {
  return {
    correlation_id: correlationId,
    application_properties: { 'iotdps-operation-type': 'iotdps-get-operationstatus', 'iotdps-operation-id': operationId },
    body: '',
  }
}

const NAMES: Record<number, string> = {
  0x10: 'open', 0x11: 'begin', 0x12: 'attach', 0x13: 'flow', 0x14: 'transfer', 0x15: 'disposition', 0x16: 'detach', 0x17: 'end', 0x18: 'close',
  0x40: 'sasl-mechanisms', 0x41: 'sasl-init', 0x42: 'sasl-challenge', 0x43: 'sasl-response', 0x44: 'sasl-outcome',
}

export interface Written {
  readonly kind: 'header' | 'frame'
  readonly name: string
  readonly channel: number
  readonly p: Performative
  readonly payload?: Buffer
}

/** Splits what the session wrote into protocol headers and decoded frames. */
export function parseOutput(bytes: Buffer): Written[] {
  const out: Written[] = []
  let pos = 0
  while (pos < bytes.length) {
    if (bytes.toString('latin1', pos, pos + 4) === 'AMQP') {
      out.push({ kind: 'header', name: bytes[pos + 4] === 3 ? 'sasl-header' : 'amqp-header', channel: 0, p: { value: [] } })
      pos += 8
      continue
    }
    const size = bytes.readUInt32BE(pos)
    const frame = frames.read_frame(bytes.subarray(pos, pos + size))!
    const code = (frame.performative!.constructor as unknown as { descriptor: { numeric: number } }).descriptor.numeric
    out.push({ kind: 'frame', name: NAMES[code] ?? `0x${code.toString(16)}`, channel: frame.channel, p: frame.performative!, ...(frame.payload ? { payload: Buffer.from(frame.payload) } : {}) })
    pos += size
  }
  return out
}

export function decodeMessage(payload: Buffer) {
  return message.decode(payload)
}

export interface FakeCalls {
  register: RegisterRequest[]
  poll: OperationStatusRequest[]
  auth: { evidence: Evidence; idScope: string; registrationId: string }[]
}

/** A DeviceApi answering 202 assigning, then 200 assigned; `sig=good` tokens verify. */
export function fakeDevice(overrides: Partial<DeviceApi> = {}): { api: DeviceApi; calls: FakeCalls } {
  const calls: FakeCalls = { register: [], poll: [], auth: [] }
  const api: DeviceApi = {
    async register(r) {
      calls.register.push(r)
      return { status: 202, body: { operationId: 'op-1', status: 'assigning' }, retryAfterSeconds: 2 }
    },
    async operationStatus(r) {
      calls.poll.push(r)
      return {
        status: 200,
        body: { operationId: r.operationId, status: 'assigned', registrationState: { registrationId: r.registrationId, status: 'assigned', assignedHub: 'hub.local', deviceId: r.registrationId } },
      }
    },
    async registrationStatus(r) {
      calls.auth.push({ evidence: r.evidence, idScope: r.idScope, registrationId: r.registrationId })
      if (r.evidence.type === 'sas' && r.evidence.token.includes('sig=good')) return { status: 200, body: { registrationId: r.registrationId, status: 'unassigned' } }
      throw new ProvisioError('SAS_BAD_SIGNATURE', 'signature does not match either key')
    },
    ...overrides,
  }
  return { api, calls }
}

export interface Harness {
  readonly session: AmqpDeviceSession
  readonly written: Buffer[]
  readonly closes: AmqpCloseReason[]
  output(): Written[]
  /** Lets pending DeviceApi promises settle. */
  settle(): Promise<void>
}

export function harness(api: DeviceApi, options: Partial<AmqpSessionOptions> = {}): Harness {
  const written: Buffer[] = []
  const closes: AmqpCloseReason[] = []
  const session = new AmqpDeviceSession({
    device: api,
    clock: { now: () => Date.UTC(2026, 0, 1) },
    trackingId: () => 'tracking-1',
    write: (bytes) => written.push(Buffer.from(bytes)),
    close: (reason) => closes.push(reason),
    ...options,
  })
  return {
    session,
    written,
    closes,
    output: () => parseOutput(Buffer.concat(written)),
    settle: async () => {
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    },
  }
}
