import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import frames from 'rhea/lib/frames.js'
import message from 'rhea/lib/message.js'
import terminus from 'rhea/lib/terminus.js'
import types from 'rhea/lib/types.js'
import { ProvisioError } from '@provisio/protocol'
import { AmqpCodecError, AmqpDeviceSession, parseRegistrationAddress } from '../src/index.js'
import {
  ADDRESS,
  AMQP_HEADER,
  DEVICE,
  GOOD_SAS,
  SASL_HEADER,
  SCOPE,
  amqp,
  attachReceiver,
  attachSender,
  begin,
  decodeMessage,
  fakeDevice,
  grant,
  harness,
  open,
  plainInit,
  pollMessage,
  registerMessage,
  request,
  sasl,
} from './harness.js'

/** The device side of a whole symmetric-key registration, step by step (docs/protocol.md §4). */
function script(): Buffer[] {
  return [
    SASL_HEADER,
    plainInit(ADDRESS, GOOD_SAS),
    AMQP_HEADER,
    open(),
    begin(),
    attachReceiver(),
    attachSender(`amqps://global.azure-devices-provisioning.net/${ADDRESS}`),
    grant(10),
    request(0, registerMessage('corr-1', { registrationId: DEVICE, payload: { modelId: 'dtmi:x;1' } })),
    request(1, pollMessage('corr-2', 'op-1')),
  ]
}

async function runSteps(steps: Buffer[], feed: (h: ReturnType<typeof harness>, bytes: Buffer) => void, overrides: Parameters<typeof fakeDevice>[0] = {}) {
  const { api, calls } = fakeDevice(overrides)
  const h = harness(api)
  for (const step of steps) {
    feed(h, step)
    await h.settle()
  }
  return { h, calls }
}

describe('fixture: a symmetric-key registration over SASL PLAIN', () => {
  it('answers every step as the Node and C clients expect (encode side)', async () => {
    const { h, calls } = await runSteps(script(), (h, b) => h.session.push(b))
    const out = h.output()
    expect(out.map((w) => w.name)).toEqual([
      'sasl-header', 'sasl-mechanisms', 'sasl-outcome',
      'amqp-header', 'open', 'begin', 'attach', 'attach', 'flow',
      'disposition', 'transfer', 'disposition', 'transfer',
    ])
    expect(out[1]!.p['sasl_server_mechanisms']).toEqual(['PLAIN', 'TPM', 'EXTERNAL', 'ANONYMOUS'])
    expect(out[2]!.p['code']).toBe(0)
    expect(out[4]!.p['max_frame_size']).toBe(64 * 1024)
    expect(out[5]!.p['remote_channel']).toBe(0)
    // Our sender link for the device's receiver, then our receiver link for its sender, with credit.
    expect(out[6]!.p['role']).toBe(false)
    expect(out[6]!.p['name']).toBe('recv')
    expect(terminus.unwrap(out[6]!.p['source'])!.address).toBe(ADDRESS)
    expect(out[7]!.p['role']).toBe(true)
    expect(out[8]!.p['link_credit']).toBe(32)
    expect(out[8]!.p['handle']).toBe(out[7]!.p['handle'])

    // SAS verified at SASL with the authcid's scope and registration.
    expect(calls.auth).toEqual([{ evidence: { type: 'sas', token: GOOD_SAS }, idScope: SCOPE, registrationId: DEVICE }])
    expect(calls.register).toHaveLength(1)
    expect(calls.register[0]).toMatchObject({ idScope: SCOPE, registrationId: DEVICE, apiVersion: '2019-03-31', payload: { modelId: 'dtmi:x;1' }, evidence: { type: 'sas', token: GOOD_SAS } })
    expect(calls.register[0]!.forceRegistration).toBeUndefined()
    expect(calls.poll[0]).toMatchObject({ operationId: 'op-1', registrationId: DEVICE })

    // Request deliveries settled as accepted.
    expect(out[9]!.p['first']).toBe(0)
    expect(out[9]!.p['settled']).toBe(true)
    expect((out[9]!.p['state'] as { descriptor: { value: number } }).descriptor.value).toBe(0x24)

    const answer = decodeMessage(out[10]!.payload!)
    expect(answer.correlation_id).toBe('corr-1')
    expect(answer.application_properties).toEqual({ 'retry-after': 2, 'Retry-After': 2 })
    const body = answer.body as { typecode: number; content: Buffer }
    expect(body.typecode).toBe(0x75)
    expect(JSON.parse(body.content.toString())).toEqual({ operationId: 'op-1', status: 'assigning' })
    expect(out[10]!.p['settled']).toBe(true)
    expect(out[10]!.p['handle']).toBe(out[6]!.p['handle'])

    const final = decodeMessage(out[12]!.payload!)
    expect(final.correlation_id).toBe('corr-2')
    expect(JSON.parse((final.body as { content: Buffer }).content.toString())).toMatchObject({ status: 'assigned', registrationState: { assignedHub: 'hub.local' } })
    expect(h.closes).toEqual([])
  })

  it("checks the SASL credentials with the device API's authenticate when it has one (no registration read)", async () => {
    const checked: { idScope: string; registrationId: string }[] = []
    const { h, calls } = await runSteps(script(), (h, b) => h.session.push(b), {
      authenticate: async (r) => void checked.push({ idScope: r.idScope, registrationId: r.registrationId }),
    })
    expect(checked).toEqual([{ idScope: SCOPE, registrationId: DEVICE }])
    expect(calls.auth).toEqual([])
    expect(h.output()[2]!.p['code']).toBe(0)
    expect(calls.register).toHaveLength(1)
  })

  it('decodes the same conversation fed whole, byte by byte, and in random splits', async () => {
    const whole = Buffer.concat(script())
    const reference = await runSteps(script(), (h, b) => h.session.push(b))
    const expected = Buffer.concat(reference.h.written)

    const atOnce = await runSteps([whole], (h, b) => h.session.push(b))
    expect(Buffer.concat(atOnce.h.written)).toEqual(expected)

    const byteByByte = await runSteps([whole], (h, b) => {
      for (const byte of b) h.session.push(Uint8Array.of(byte))
    })
    expect(Buffer.concat(byteByByte.h.written)).toEqual(expected)

    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: whole.length - 1 }), { maxLength: 30 }), async (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b)
        const split = await runSteps([whole], (h, b) => {
          let last = 0
          for (const p of [...points, b.length]) {
            h.session.push(b.subarray(last, p))
            last = p
          }
        })
        expect(Buffer.concat(split.h.written)).toEqual(expected)
        expect(split.calls.register).toHaveLength(1)
      }),
      { numRuns: 60 },
    )
  })

  it('splits an answer larger than the peer max-frame-size into transfers with `more`', async () => {
    const big = 'x'.repeat(3000)
    const { api } = fakeDevice({
      async register() {
        return { status: 202, body: { operationId: big, status: 'assigning' }, retryAfterSeconds: 1 }
      },
    })
    const h = harness(api)
    for (const step of [SASL_HEADER, plainInit(ADDRESS, GOOD_SAS), AMQP_HEADER, open(512), begin(), attachReceiver(), attachSender(), grant(5), request(0, registerMessage('c'))]) {
      h.session.push(step)
      await h.settle()
    }
    const transfers = h.output().filter((w) => w.name === 'transfer')
    expect(transfers.length).toBeGreaterThan(5)
    for (const t of transfers.slice(0, -1)) expect(t.p['more']).toBe(true)
    expect(transfers.at(-1)!.p['more']).toBe(false)
    const bytes = Buffer.concat(h.written.map((b) => b))
    // No frame above the 512 bytes the device announced.
    let pos = 0
    while (pos < bytes.length) {
      if (bytes.toString('latin1', pos, pos + 4) === 'AMQP') {
        pos += 8
        continue
      }
      const size = bytes.readUInt32BE(pos)
      expect(size).toBeLessThanOrEqual(512)
      pos += size
    }
    const payload = Buffer.concat(transfers.map((t) => t.payload!))
    expect(JSON.parse((decodeMessage(payload).body as { content: Buffer }).content.toString()).operationId).toBe(big)
  })
})

describe('SASL', () => {
  it('refuses a SAS that does not verify with sasl-outcome auth and ends the connection', async () => {
    const { api } = fakeDevice()
    const h = harness(api)
    h.session.push(Buffer.concat([SASL_HEADER, plainInit(ADDRESS, 'SharedAccessSignature sr=x&sig=bad&se=1&skn=registration')]))
    await h.settle()
    const out = h.output()
    expect(out.at(-1)!.name).toBe('sasl-outcome')
    expect(out.at(-1)!.p['code']).toBe(1)
    expect(h.closes).toHaveLength(1)
    expect(h.closes[0]!.code).toBe('sasl-refused')
    expect(h.closes[0]!.reason).toContain('SAS_BAD_SIGNATURE')
    h.session.push(AMQP_HEADER)
    expect(h.output()).toHaveLength(out.length)
  })

  it('refuses a PLAIN authcid that is not {idScope}/registrations/{id}', async () => {
    const { api, calls } = fakeDevice()
    const h = harness(api)
    h.session.push(Buffer.concat([SASL_HEADER, plainInit('someone', GOOD_SAS)]))
    await h.settle()
    expect(h.output().at(-1)!.p['code']).toBe(1)
    expect(h.closes[0]!.reason).toContain('is not {idScope}/registrations/{registrationId}')
    expect(calls.auth).toEqual([])
  })

  it('runs the TPM mechanism: EK, 0x00 challenge, SRK, chunked activation blob, SAS (§5.3)', async () => {
    const blob = Buffer.alloc(900)
    for (let i = 0; i < blob.length; i++) blob[i] = (i * 7) & 0xff
    const ek = Buffer.from('ek-public-area')
    const srk = Buffer.from('srk-public-area')
    const seen: unknown[] = []
    const { api } = fakeDevice({
      async register(r) {
        seen.push(r.evidence)
        if (r.evidence.type === 'tpm' && r.evidence.token === undefined) return { status: 401, challenge: { authenticationKey: blob.toString('base64'), keyName: 'registration' } }
        return { status: 202, body: { operationId: 'op-tpm', status: 'assigning' }, retryAfterSeconds: 1 }
      },
    })
    const verified: unknown[] = []
    const h = harness(api, {
      authenticate: async (evidence, idScope, registrationId) => {
        verified.push({ evidence, idScope, registrationId })
        if (evidence.type !== 'tpm' || evidence.token !== 'tpm-sas') throw new ProvisioError('SAS_BAD_SIGNATURE', 'no')
      },
    })
    const init = Buffer.concat([Buffer.from([0]), Buffer.from(SCOPE), Buffer.from([0]), Buffer.from(DEVICE), Buffer.from([0]), ek])
    h.session.push(Buffer.concat([SASL_HEADER, sasl(frames.sasl_init({ mechanism: 'TPM', initial_response: init, hostname: ADDRESS }))]))
    await h.settle()
    let out = h.output()
    expect(out.at(-1)!.name).toBe('sasl-challenge')
    expect([...(out.at(-1)!.p['challenge'] as Buffer)]).toEqual([0])

    h.session.push(sasl(frames.sasl_response({ response: Buffer.concat([Buffer.from([0]), srk]) })))
    await h.settle()
    expect(seen).toEqual([{ type: 'tpm', endorsementKey: ek.toString('base64'), storageRootKey: srk.toString('base64') }])
    const received: Buffer[] = []
    const controls: number[] = []
    for (;;) {
      out = h.output()
      const challenge = out.at(-1)!.p['challenge'] as Buffer
      controls.push(challenge[0]!)
      received.push(challenge.subarray(1))
      if ((challenge[0]! & 0xc0) === 0xc0) break
      h.session.push(sasl(frames.sasl_response({ response: Buffer.from([0]) })))
      await h.settle()
    }
    expect(controls).toEqual([0x80, 0x81, 0xc2])
    expect(Buffer.concat(received)).toEqual(blob)
    for (const chunk of received) expect(chunk.length).toBeLessThanOrEqual(400)

    h.session.push(sasl(frames.sasl_response({ response: Buffer.concat([Buffer.from([0]), Buffer.from('tpm-sas')]) })))
    await h.settle()
    expect(h.output().at(-1)!.name).toBe('sasl-outcome')
    expect(h.output().at(-1)!.p['code']).toBe(0)
    expect(verified).toEqual([
      { evidence: { type: 'tpm', endorsementKey: ek.toString('base64'), storageRootKey: srk.toString('base64'), token: 'tpm-sas' }, idScope: SCOPE, registrationId: DEVICE },
    ])
    // The register on the links then carries the TPM evidence with its token.
    const after = [AMQP_HEADER, open(), begin(), attachReceiver(), attachSender(), grant(2), request(0, registerMessage('c-tpm', { registrationId: DEVICE, tpm: { endorsementKey: ek.toString('base64'), storageRootKey: srk.toString('base64') } }))]
    for (const b of after) h.session.push(b)
    await h.settle()
    expect(h.closes).toEqual([])
    expect(seen.at(-1)).toEqual({ type: 'tpm', endorsementKey: ek.toString('base64'), storageRootKey: srk.toString('base64'), token: 'tpm-sas' })
    expect(JSON.parse((decodeMessage(h.output().at(-1)!.payload!).body as { content: Buffer }).content.toString()).operationId).toBe('op-tpm')
  })

  it('refuses TPM when the device API gives no challenge', async () => {
    const { api } = fakeDevice({
      async register() {
        throw new ProvisioError('ENROLLMENT_NOT_FOUND', 'no enrollment with this EK')
      },
    })
    const h = harness(api)
    const init = Buffer.concat([Buffer.from([0]), Buffer.from(SCOPE), Buffer.from([0]), Buffer.from(DEVICE), Buffer.from([0]), Buffer.from('ek')])
    h.session.push(Buffer.concat([SASL_HEADER, sasl(frames.sasl_init({ mechanism: 'TPM', initial_response: init })), sasl(frames.sasl_response({ response: Buffer.from([0, 1, 2]) }))]))
    await h.settle()
    expect(h.output().at(-1)!.p['code']).toBe(1)
    expect(h.closes[0]!.reason).toContain('ENROLLMENT_NOT_FOUND')
  })
})

describe('X.509: no SASL layer', () => {
  it('takes the plain AMQP header and registers with the TLS client chain as evidence', async () => {
    const { api, calls } = fakeDevice()
    const leaf = Uint8Array.of(0x30, 0x82, 1, 2)
    const h = harness(api, { clientCertificates: [leaf] })
    for (const b of [AMQP_HEADER, open(), begin(), attachReceiver(), attachSender(), grant(2), request(0, registerMessage('c-x509'))]) {
      h.session.push(b)
      await h.settle()
    }
    expect(h.output()[0]!.name).toBe('amqp-header')
    expect(calls.register[0]!.evidence).toEqual({ type: 'x509', chain: [leaf] })
    expect(decodeMessage(h.output().at(-1)!.payload!).correlation_id).toBe('c-x509')
  })

  it('rejects a register without SASL and without a certificate (CREDENTIALS_MISSING)', async () => {
    const { api, calls } = fakeDevice()
    const h = harness(api)
    for (const b of [AMQP_HEADER, open(), begin(), attachReceiver(), attachSender(), grant(2), request(0, registerMessage('c'))]) {
      h.session.push(b)
      await h.settle()
    }
    expect(calls.register).toEqual([])
    const disposition = h.output().at(-1)!
    expect(disposition.name).toBe('disposition')
    const state = disposition.p['state'] as { descriptor: { value: number }; value: unknown[] }
    expect(state.descriptor.value).toBe(0x25)
  })
})

describe('requests and refusals', () => {
  async function connected(api: ReturnType<typeof fakeDevice>['api']) {
    const h = harness(api)
    for (const b of [SASL_HEADER, plainInit(ADDRESS, GOOD_SAS), AMQP_HEADER, open(), begin(), attachReceiver(), attachSender(), grant(5)]) {
      h.session.push(b)
      await h.settle()
    }
    return h
  }

  function rejection(h: ReturnType<typeof harness>) {
    const d = h.output().at(-1)!
    expect(d.name).toBe('disposition')
    expect(d.p['settled']).toBe(true)
    const state = frames.disposition({ role: true, first: 0, state: d.p['state'] }).value[4] as { descriptor: { value: number }; value: { value: unknown }[] }
    expect(state.descriptor.value).toBe(0x25)
    const error = (state.value[0] as unknown as { value: { value: unknown }[] }).value
    return { condition: error[0]!.value, description: error[1]!.value as string, info: error[2] }
  }

  it('rejects a throttled register with the throttling condition, a JSON description and retry-after', async () => {
    const { api } = fakeDevice({
      async register() {
        throw new ProvisioError('THROTTLED', 'scope over 1000 registrations/min', { retryAfterSeconds: 7 })
      },
    })
    const h = await connected(api)
    h.session.push(request(0, registerMessage('c-throttle')))
    await h.settle()
    const { condition, description, info } = rejection(h)
    expect(condition).toBe('com.microsoft:device-container-throttled')
    expect(types.unwrap(info)).toEqual({ 'retry-after': 7, 'Retry-After': 7 })
    const body = JSON.parse(description) as { errorCode: number; trackingId: string }
    expect(body.errorCode).toBe(429001)
    expect(body.trackingId).toBe('tracking-1')
    // No response message travels for a refusal (Node would parse it as a status, §11).
    expect(h.output().filter((w) => w.name === 'transfer')).toEqual([])
  })

  it('rejects an unknown operation type with an argument error', async () => {
    const { api, calls } = fakeDevice()
    const h = await connected(api)
    h.session.push(request(0, { correlation_id: 'x', application_properties: { 'iotdps-operation-type': 'iotdps-get-registration' }, body: '' }))
    await h.settle()
    const { description } = rejection(h)
    expect(JSON.parse(description).errorCode).toBe(400001)
    expect(calls.register).toEqual([])
  })

  it('rejects a body registrationId that differs from the link address', async () => {
    const { api, calls } = fakeDevice()
    const h = await connected(api)
    h.session.push(request(0, registerMessage('c', { registrationId: 'other-device' })))
    await h.settle()
    expect(JSON.parse(rejection(h).description).errorCode).toBe(400003)
    expect(calls.register).toEqual([])
  })

  it('passes iotdps-forceRegistration through', async () => {
    const { api, calls } = fakeDevice()
    const h = await connected(api)
    const msg = registerMessage('c')
    ;(msg['application_properties'] as Record<string, unknown>)['iotdps-forceRegistration'] = true
    h.session.push(request(0, msg))
    await h.settle()
    expect(calls.register[0]!.forceRegistration).toBe(true)
  })

  it('holds answers until the device grants credit on its receiver link', async () => {
    const { api } = fakeDevice()
    const h = harness(api)
    for (const b of [SASL_HEADER, plainInit(ADDRESS, GOOD_SAS), AMQP_HEADER, open(), begin(), attachReceiver(), attachSender(), request(0, registerMessage('late'))]) {
      h.session.push(b)
      await h.settle()
    }
    expect(h.output().filter((w) => w.name === 'transfer')).toEqual([])
    h.session.push(grant(1))
    await h.settle()
    expect(decodeMessage(h.output().at(-1)!.payload!).correlation_id).toBe('late')
  })

  it('stops granting request credit while answers wait for receiver credit, and resumes after', async () => {
    const { api } = fakeDevice()
    const h = harness(api, { limits: { linkCredit: 4, maxInFlight: 4 } })
    for (const b of [SASL_HEADER, plainInit(ADDRESS, GOOD_SAS), AMQP_HEADER, open(), begin(), attachReceiver(), attachSender()]) {
      h.session.push(b)
      await h.settle()
    }
    const inHandle = h.output().find((w) => w.name === 'attach' && w.p['role'] === true)!.p['handle']
    const creditLimit = () => {
      const flows = h.output().filter((w) => w.name === 'flow' && w.p['handle'] === inHandle)
      const last = flows.at(-1)!
      return (last.p['delivery_count'] as number) + (last.p['link_credit'] as number)
    }
    let sent = 0
    while (sent < creditLimit() && sent < 50) {
      h.session.push(request(sent, registerMessage(`c${sent}`)))
      await h.settle()
      sent++
    }
    // Credit stopped at the backlog limit: 4 answers queued, at most one more top-up granted.
    expect(sent).toBeLessThanOrEqual(8)
    expect(h.output().filter((w) => w.name === 'transfer')).toEqual([])
    expect(h.closes).toEqual([])
    h.session.push(grant(100))
    await h.settle()
    expect(h.output().filter((w) => w.name === 'transfer')).toHaveLength(sent)
    expect(creditLimit()).toBeGreaterThan(sent)
  })

  it('re-opens the session incoming-window while a message arrives in many small frames', async () => {
    const { api, calls } = fakeDevice()
    const h = await connected(api)
    const payload = Buffer.from(message.encode(registerMessage('many', { registrationId: DEVICE, payload: { pad: 'p'.repeat(60_000) } })))
    const pieces = Math.ceil(payload.length / 50)
    expect(pieces).toBeGreaterThan(1024)
    const sessionFlowsBefore = h.output().filter((w) => w.name === 'flow' && w.p['handle'] === undefined).length
    for (let i = 0; i < pieces; i++) {
      const fields = i === 0 ? { handle: 1, delivery_id: 0, delivery_tag: Buffer.from([0]), message_format: 0, more: pieces > 1 } : { handle: 1, more: i < pieces - 1 }
      h.session.push(amqp(frames.transfer(fields), 0, payload.subarray(i * 50, (i + 1) * 50)))
    }
    await h.settle()
    expect(h.closes.map((c) => c.reason)).toEqual([])
    expect(h.output().filter((w) => w.name === 'flow' && w.p['handle'] === undefined).length).toBeGreaterThan(sessionFlowsBefore)
    expect(calls.register).toHaveLength(1)
  })

  it('detaches a link whose address names another registration', async () => {
    const { api } = fakeDevice()
    const h = harness(api)
    for (const b of [SASL_HEADER, plainInit(ADDRESS, GOOD_SAS), AMQP_HEADER, open(), begin(), attachReceiver(`${SCOPE}/registrations/someone-else`)]) {
      h.session.push(b)
      await h.settle()
    }
    const out = h.output()
    expect(out.at(-1)!.name).toBe('detach')
    expect(out.at(-1)!.p['closed']).toBe(true)
    expect((out.at(-1)!.p['error'] as { condition: string }).condition).toBe('amqp:unauthorized-access')
    // Credit sent before the device saw our detach, then its own detach: the connection stays up
    // and the right address still attaches.
    h.session.push(grant(10, 0))
    h.session.push(amqp(frames.detach({ handle: 0, closed: true })))
    h.session.push(attachReceiver(ADDRESS, 1))
    expect(h.closes).toEqual([])
    expect(h.output().at(-1)!.name).toBe('attach')
    expect(h.output().filter((w) => w.name === 'detach')).toHaveLength(1)
  })

  it('reports the peer idle-time-out and writes empty frames as heartbeats once open', async () => {
    const announced: number[] = []
    const h = harness(fakeDevice().api, { onPeerIdleTimeout: (ms) => announced.push(ms) })
    h.session.push(AMQP_HEADER)
    h.session.heartbeat()
    const before = Buffer.concat(h.written).length
    expect(before).toBe(8)
    h.session.push(amqp(frames.open({ container_id: 'device', idle_time_out: 120_000 })))
    expect(announced).toEqual([120_000])
    const afterOpen = Buffer.concat(h.written).length
    h.session.heartbeat()
    expect(Buffer.concat(h.written).subarray(afterOpen)).toEqual(Buffer.from([0, 0, 0, 8, 2, 0, 0, 0]))
    // The device's own empty frames are accepted silently.
    h.session.push(Buffer.from([0, 0, 0, 8, 2, 0, 0, 0]))
    expect(h.closes).toEqual([])
  })

  it('answers close with close and reports peer-closed', async () => {
    const { api } = fakeDevice()
    const h = await connected(api)
    h.session.push(amqp(frames.close({})))
    expect(h.output().at(-1)!.name).toBe('close')
    expect(h.closes).toEqual([{ code: 'peer-closed', reason: 'peer closed the connection' }])
  })
})

describe('malformed input', () => {
  async function openConnection() {
    const { api } = fakeDevice()
    const h = harness(api)
    for (const b of [SASL_HEADER, plainInit(ADDRESS, GOOD_SAS), AMQP_HEADER, open()]) {
      h.session.push(b)
      await h.settle()
    }
    return h
  }

  it('closes with amqp:decode-error when a frame body is not valid AMQP encoding', async () => {
    const h = await openConnection()
    // A described list claiming 200 elements in 3 bytes.
    h.session.push(Buffer.from([0, 0, 0, 0x10, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0xc0, 0x03, 0xc8, 0x40, 0x40]))
    const last = h.output().at(-1)!
    expect(last.name).toBe('close')
    expect((last.p['error'] as { condition: string }).condition).toBe('amqp:decode-error')
    expect(h.closes[0]!.code).toBe('DECODE_ERROR')
    expect(h.closes[0]!.reason).toContain('claims 200 elements')
  })

  it('refuses an array of zero-width elements claiming billions of items without looping', () => {
    const h = harness(fakeDevice().api)
    h.session.push(AMQP_HEADER)
    // open whose container-id is an array32 of nulls with count 0xFFFFFFFF.
    const body = Buffer.from([0x00, 0x53, 0x10, 0xc0, 0x0b, 0x01, 0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x40])
    const header = Buffer.from([0, 0, 0, 8 + body.length, 2, 0, 0, 0])
    h.session.push(Buffer.concat([header, body]))
    expect(h.closes[0]!.code).toBe('DECODE_ERROR')
  })

  it('refuses a frame above max-frame-size from its header alone, with a framing error', async () => {
    const h = await openConnection()
    h.session.push(Buffer.from([0, 1, 0, 1, 2, 0, 0, 0]))
    expect(h.closes[0]!.code).toBe('FRAME_TOO_LARGE')
    expect((h.output().at(-1)!.p['error'] as { condition: string }).condition).toBe('amqp:connection:framing-error')
  })

  it('answers a foreign protocol header with its own header and closes', () => {
    const h = harness(fakeDevice().api)
    h.session.push(Buffer.from('GET / HTTP/1.1\r\n'))
    expect(Buffer.concat(h.written).subarray(0, 8)).toEqual(SASL_HEADER)
    expect(h.closes[0]!.code).toBe('BAD_PROTOCOL_HEADER')
  })

  it('refuses a message larger than maxMessageBytes', async () => {
    const { api } = fakeDevice()
    const h = harness(api, { limits: { maxMessageBytes: 1000 } })
    for (const b of [SASL_HEADER, plainInit(ADDRESS, GOOD_SAS), AMQP_HEADER, open(), begin(), attachReceiver(), attachSender(), grant(5)]) {
      h.session.push(b)
      await h.settle()
    }
    h.session.push(request(0, registerMessage('big', { registrationId: DEVICE, payload: { blob: 'y'.repeat(2000) } })))
    expect(h.closes[0]!.code).toBe('RESOURCE_LIMIT')
  })

  it('random bytes end in a typed close or a waiting session, never a throw', async () => {
    const codes = new Set(['BAD_PROTOCOL_HEADER', 'FRAMING_ERROR', 'FRAME_TOO_LARGE', 'DECODE_ERROR', 'PROTOCOL_ERROR', 'RESOURCE_LIMIT', 'sasl-refused', 'peer-closed'])
    const prefixes = [Buffer.alloc(0), AMQP_HEADER, Buffer.concat([AMQP_HEADER, open()]), Buffer.concat([SASL_HEADER])]
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...prefixes), fc.uint8Array({ maxLength: 400 }), async (prefix, noise) => {
        const h = harness(fakeDevice().api)
        h.session.push(prefix)
        h.session.push(noise)
        await h.settle()
        for (const c of h.closes) expect(codes.has(c.code)).toBe(true)
        expect(h.closes.length).toBeLessThanOrEqual(1)
      }),
      { numRuns: 400 },
    )
  })

  it('mutated valid conversations end in a typed close or normal progress, never a throw', async () => {
    const valid = Buffer.concat(script())
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), async (edits) => {
        const bytes = Buffer.from(valid)
        for (const [at, value] of edits) bytes[at] = value
        const h = harness(fakeDevice().api)
        h.session.push(bytes)
        await h.settle()
        for (const c of h.closes) expect(typeof c.reason).toBe('string')
        expect(h.closes.length).toBeLessThanOrEqual(1)
      }),
      { numRuns: 300 },
    )
  })
})

describe('parseRegistrationAddress', () => {
  it('accepts relative and absolute forms and nothing else', () => {
    expect(parseRegistrationAddress(ADDRESS)).toEqual({ idScope: SCOPE, registrationId: DEVICE })
    expect(parseRegistrationAddress(`/${ADDRESS}`)).toEqual({ idScope: SCOPE, registrationId: DEVICE })
    expect(parseRegistrationAddress(`amqps://host.example/${ADDRESS}`)).toEqual({ idScope: SCOPE, registrationId: DEVICE })
    expect(parseRegistrationAddress(`${SCOPE}/devices/${DEVICE}`)).toBeUndefined()
    expect(parseRegistrationAddress(`${ADDRESS}/extra`)).toBeUndefined()
    expect(parseRegistrationAddress(42)).toBeUndefined()
  })
})

it('AmqpCodecError carries a stable code and its AMQP condition', () => {
  const e = new AmqpCodecError('FRAME_TOO_LARGE', 'why')
  expect([e.code, e.condition, e.message]).toEqual(['FRAME_TOO_LARGE', 'amqp:connection:framing-error', 'why'])
  expect(new AmqpDeviceSession({ device: fakeDevice().api, clock: { now: () => 0 }, trackingId: () => 't', write: () => {}, close: () => {} }).closed).toBe(false)
})

describe('openTimedOut (the adapter connect timeout)', () => {
  it('during SASL: sasl-outcome sys-temp, then the connection ends naming the phase', async () => {
    const h = harness(fakeDevice().api)
    h.session.push(SASL_HEADER)
    expect(h.session.opening).toBe(true)
    h.session.openTimedOut(1000)
    expect(h.output().map((w) => w.name)).toEqual(['sasl-header', 'sasl-mechanisms', 'sasl-outcome'])
    expect((h.output()[2]!.p as unknown as { code: number }).code).toBe(4)
    expect(h.closes).toEqual([{ code: 'OPEN_TIMEOUT', reason: 'the connection did not open within 1000 ms (stuck at sasl)', condition: 'amqp:resource-limit-exceeded' }])
  })

  it('after the AMQP header: open and close with amqp:resource-limit-exceeded', async () => {
    const h = harness(fakeDevice().api)
    h.session.push(AMQP_HEADER)
    h.session.openTimedOut(250)
    const out = h.output()
    expect(out.map((w) => w.name)).toEqual(['amqp-header', 'open', 'close'])
    expect((out[2]!.p as unknown as { error: { condition: string; description: string } }).error).toMatchObject({ condition: 'amqp:resource-limit-exceeded', description: expect.stringContaining('stuck at open-wait') })
    expect(h.closes[0]!.code).toBe('OPEN_TIMEOUT')
  })

  it('before any header: just ends; once open it is a no-op', async () => {
    const silent = harness(fakeDevice().api)
    silent.session.openTimedOut(100)
    expect(silent.written).toEqual([])
    expect(silent.closes[0]!.code).toBe('OPEN_TIMEOUT')

    const opened = harness(fakeDevice().api)
    opened.session.push(AMQP_HEADER)
    opened.session.push(open())
    expect(opened.session.opening).toBe(false)
    opened.session.openTimedOut(100)
    expect(opened.closes).toEqual([])
  })
})

describe('tick, idle and inFlight (the TransportSession contract)', () => {
  const EMPTY = Buffer.from([0, 0, 0, 8, 2, 0, 0, 0])
  function clocked(options: Parameters<typeof harness>[1] = {}) {
    let now = 1_000_000
    const h = harness(fakeDevice().api, { clock: { now: () => now }, ...options })
    return { ...h, advance: (ms: number) => void (now += ms) }
  }

  it('refuses a connection not open within openTimeoutMs at the first tick past it', () => {
    const h = clocked({ openTimeoutMs: 5000 })
    h.session.push(AMQP_HEADER)
    h.advance(4999)
    h.session.tick()
    expect(h.closes).toEqual([])
    h.advance(1)
    h.session.tick()
    expect(h.output().map((w) => w.name)).toEqual(['amqp-header', 'open', 'close'])
    expect(h.closes[0]!.code).toBe('OPEN_TIMEOUT')
    expect(h.closes[0]!.reason).toContain('5000 ms')
  })

  it('writes an empty frame when nothing was written for half the peer idle-time-out, and only then', () => {
    const h = clocked({ openTimeoutMs: 5000 })
    h.session.push(AMQP_HEADER)
    h.session.push(amqp(frames.open({ container_id: 'device', idle_time_out: 10_000 })))
    const afterOpen = Buffer.concat(h.written).length
    h.advance(4999)
    h.session.tick()
    expect(Buffer.concat(h.written).length).toBe(afterOpen)
    h.advance(1)
    h.session.tick()
    expect(Buffer.concat(h.written).subarray(afterOpen)).toEqual(EMPTY)
    // The heartbeat counts as a write: the next one waits another half.
    h.session.tick()
    expect(Buffer.concat(h.written).length).toBe(afterOpen + 8)
    // Long past the open timeout, an open connection is not refused.
    h.advance(60_000)
    h.session.tick()
    expect(h.closes).toEqual([])
  })

  it('counts requests in flight and resolves idle() once they are answered', async () => {
    let answer!: () => void
    const { api } = fakeDevice({
      register: () => new Promise((resolve) => (answer = () => resolve({ status: 202, body: { operationId: 'op-1', status: 'assigning' }, retryAfterSeconds: 2 }))),
    })
    const h = harness(api)
    for (const b of [SASL_HEADER, plainInit(ADDRESS, GOOD_SAS), AMQP_HEADER, open(), begin(), attachReceiver(), attachSender(), grant(5)]) {
      h.session.push(b)
      await h.settle()
    }
    await h.session.idle()
    h.session.push(request(0, registerMessage('c-idle')))
    await h.settle()
    expect(h.session.inFlight).toBe(1)
    let idle = false
    const waited = h.session.idle().then(() => {
      idle = true
      return h.output().filter((w) => w.name === 'transfer').length
    })
    await h.settle()
    expect(idle).toBe(false)
    answer()
    expect(await waited).toBe(1)
    expect(h.session.inFlight).toBe(0)
  })
})
