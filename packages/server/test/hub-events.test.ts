// The hub event relay between instances, with an in-memory channel standing for PostgreSQL:
// local events reach local listeners at once and go out on the channel; the other instance's
// listeners hear them; an instance skips its own echo; malformed messages are reported and dropped.
import { describe, expect, it } from 'vitest'
import { EmbeddedHub, MemoryHubStore, type DesiredChange, type IdentityRevoked, type MethodRelayMessage } from '@provisio/hub'
import { HubEventRelay, MAX_HUB_EVENT_BYTES, type HubEventChannel } from '../src/hub-events.js'

const HUB = 'hub.example'
const clock = { now: () => 1_700_000_000_000 }
const random = { bytes: (n: number) => new Uint8Array(n).fill(7) }

/** Every message published goes to every relay on the bus (their own too, as NOTIFY does). */
function bus() {
  const relays: HubEventRelay[] = []
  const sent: string[] = []
  const channel: HubEventChannel = {
    async publish(message) {
      sent.push(message)
      for (const r of relays) r.receive(message)
    },
  }
  return { relays, sent, channel }
}

function instance(origin: string, store: MemoryHubStore, b: ReturnType<typeof bus>) {
  const hub = new EmbeddedHub(HUB, { store, clock, random })
  const errors: string[] = []
  const relay = new HubEventRelay({ origin, hubs: [hub], onError: (m) => errors.push(m) })
  relay.connect(b.channel)
  b.relays.push(relay)
  const desired: DesiredChange[] = []
  const revoked: IdentityRevoked[] = []
  relay.onDesiredChange((c) => desired.push(c))
  relay.onIdentityRevoked((e) => revoked.push(e))
  return { hub, relay, errors, desired, revoked }
}

const key = Buffer.alloc(32, 1).toString('base64')
const auth = { type: 'sas', symmetricKey: { primaryKey: key, secondaryKey: key } } as const

describe('HubEventRelay', () => {
  it('carries desired changes and revocations to the other instance, each heard once per instance', async () => {
    const store = new MemoryHubStore()
    const b = bus()
    const one = instance('one', store, b)
    const two = instance('two', store, b)
    await one.hub.createOrUpdateDevice({ deviceId: 'd1', status: 'enabled', authentication: auth } as never)
    await one.hub.updateTwin('d1', { properties: { desired: { interval: 5 } } })
    // Heard once locally (not again from its own echo) and once by the other instance.
    expect(one.desired).toHaveLength(1)
    expect(two.desired).toEqual(one.desired)
    expect(two.desired[0]).toMatchObject({ hostName: HUB, deviceId: 'd1', patch: { interval: 5 } })

    await two.hub.deleteDevice('d1')
    expect(one.revoked).toEqual([{ hostName: HUB, deviceId: 'd1', why: 'deleted' }])
    expect(two.revoked).toEqual(one.revoked)
    expect(b.sent).toHaveLength(2)
    expect([...one.errors, ...two.errors]).toEqual([])
  })

  it('reports and drops malformed messages, and ignores hubs it does not serve', () => {
    const b = bus()
    const one = instance('one', new MemoryHubStore(), b)
    const cases: [string, RegExp][] = [
      ['not json', /not JSON/],
      [JSON.stringify({ v: 2, origin: 'x' }), /not a version 1/],
      [JSON.stringify({ v: 1, kind: 'desired' }), /origin missing/],
      [JSON.stringify({ v: 1, origin: 'x', kind: 'desired', change: { hostName: HUB, deviceId: 'd', version: 1.5, patch: {} } }), /integer version/],
      [JSON.stringify({ v: 1, origin: 'x', kind: 'revoked', event: { hostName: HUB, deviceId: 'd', why: 'bored' } }), /disabled or deleted/],
      [JSON.stringify({ v: 1, origin: 'x', kind: 'reboot' }), /unknown kind "reboot"/],
      ['x'.repeat(MAX_HUB_EVENT_BYTES + 1), /exceeds/],
    ]
    for (const [message] of cases) one.relay.receive(message)
    expect(one.errors).toHaveLength(cases.length)
    cases.forEach(([, reason], i) => expect(one.errors[i]).toMatch(reason))
    one.relay.receive(JSON.stringify({ v: 1, origin: 'x', kind: 'revoked', event: { hostName: 'other-hub.example', deviceId: 'd', why: 'deleted' } }))
    one.relay.receive(JSON.stringify({ v: 1, origin: 'x', kind: 'revoked', event: { hostName: 'HUB.example', deviceId: 'd', why: 'disabled' } }))
    expect(one.revoked).toEqual([{ hostName: 'HUB.example', deviceId: 'd', why: 'disabled' }])
  })

  it('carries direct method messages to the other instance, checked field by field', () => {
    const store = new MemoryHubStore()
    const b = bus()
    const one = instance('one', store, b)
    const two = instance('two', store, b)
    const heard: MethodRelayMessage[] = []
    two.relay.onMethodMessage((m) => heard.push(m))
    one.relay.onMethodMessage((m) => heard.push(m))
    const request: MethodRelayMessage = { kind: 'request', origin: 'one', rid: 'r1', hostName: HUB, deviceId: 'd1', methodName: 'reboot', payload: '{"a":1}', connectTimeoutMs: 0, responseTimeoutMs: 30_000 }
    one.relay.publishMethod(request)
    two.relay.publishMethod({ kind: 'response', to: 'one', rid: 'r1', status: 200, payload: 'null' })
    expect(heard).toEqual([request, { kind: 'response', to: 'one', rid: 'r1', status: 200, payload: 'null' }])
    for (const method of [{ kind: 'request', rid: 'r2', origin: 'one' }, { kind: 'response', rid: 'r3', to: 'one', status: 'ok', payload: '' }, { kind: 'dispatched', rid: 'r4' }, { kind: 'shout', rid: 'r5' }, {}]) {
      two.relay.receive(JSON.stringify({ v: 1, origin: 'one', kind: 'method', method }))
    }
    expect(heard).toHaveLength(2)
    expect(two.errors).toHaveLength(5)
    expect(two.errors[4]).toContain('direct method message without rid')
  })

  it('reports a channel that fails to send, and still dispatches locally', async () => {
    const hub = new EmbeddedHub(HUB, { store: new MemoryHubStore(), clock, random })
    const errors: string[] = []
    const relay = new HubEventRelay({ origin: 'one', hubs: [hub], onError: (m) => errors.push(m) })
    relay.connect({ publish: () => Promise.reject(new Error('database gone')) })
    const revoked: IdentityRevoked[] = []
    relay.onIdentityRevoked((e) => revoked.push(e))
    await hub.createOrUpdateDevice({ deviceId: 'd2', status: 'disabled', authentication: auth } as never)
    await new Promise((resolve) => setImmediate(resolve))
    expect(revoked).toEqual([{ hostName: HUB, deviceId: 'd2', why: 'disabled' }])
    expect(errors).toEqual([`hub event for ${HUB}/d2 (disabled) not sent to other instances: database gone`])
  })
})
