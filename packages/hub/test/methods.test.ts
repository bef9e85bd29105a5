import { describe, expect, it } from 'vitest'
import { ProvisioError, validateDirectMethodCall, type DirectMethodCall } from '@provisio/protocol'
import { DirectMethods, type MethodEvent, type MethodPorts, type MethodRelayMessage } from '../src/index.js'

/** A manual clock: timers fire only when `advance` passes their time. */
class ManualTimers {
  now = 0
  readonly #timers = new Map<number, { at: number; fire: () => void }>()
  #next = 1
  set(ms: number, fire: () => void): unknown {
    const id = this.#next++
    this.#timers.set(id, { at: this.now + ms, fire })
    return id
  }
  clear(handle: unknown): void {
    this.#timers.delete(handle as number)
  }
  get size(): number {
    return this.#timers.size
  }
  advance(ms: number): void {
    this.now += ms
    for (const [id, t] of [...this.#timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at > this.now) continue
      this.#timers.delete(id)
      t.fire()
    }
  }
}

let counter = 0
const random = { bytes: (n: number) => new Uint8Array(n).fill(++counter % 256) }

interface Process {
  readonly methods: DirectMethods
  readonly timers: ManualTimers
  readonly sent: { topic: string; payload: string }[]
  readonly published: MethodRelayMessage[]
  readonly events: MethodEvent[]
  /** The device's connection here, when it is connected and subscribed. */
  connection: object | undefined
}

function process(origin: string, relay?: (from: Process, message: MethodRelayMessage) => void): Process {
  const timers = new ManualTimers()
  const p: Process = {
    timers,
    sent: [],
    published: [],
    events: [],
    connection: undefined,
    methods: undefined as unknown as DirectMethods,
  }
  const ports: MethodPorts = {
    timers,
    random,
    origin,
    deliver: (_hostName, _deviceId, message) => {
      if (p.connection === undefined) return undefined
      p.sent.push(message)
      return p.connection
    },
    ...(relay === undefined ? {} : { publish: (message: MethodRelayMessage) => (p.published.push(message), relay(p, message)) }),
    onEvent: (event) => p.events.push(event),
  }
  ;(p as { methods: DirectMethods }).methods = new DirectMethods(ports, { relayGraceMs: 2000 })
  return p
}

const call = (body: Record<string, unknown>): DirectMethodCall => validateDirectMethodCall({ methodName: 'reboot', ...body })
const ridOf = (topic: string) => /\?\$rid=(\w+)$/.exec(topic)![1]!
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value))

async function rejection(promise: Promise<unknown>): Promise<ProvisioError> {
  try {
    await promise
  } catch (error) {
    return error as ProvisioError
  }
  throw new Error('resolved; a rejection was expected')
}

describe('DirectMethods in one process', () => {
  it('delivers to a connected device and resolves with its status and payload', async () => {
    const p = process('a')
    p.connection = {}
    const result = p.methods.invoke('hub.example', 'dev', call({ payload: { on: true } }))
    expect(p.sent).toHaveLength(1)
    expect(p.sent[0]!.topic).toMatch(/^\$iothub\/methods\/POST\/reboot\/\?\$rid=[0-9a-f]{24}$/)
    expect(p.sent[0]!.payload).toBe('{"on":true}')
    // Another device cannot answer it.
    p.methods.respond('hub.example', 'other', ridOf(p.sent[0]!.topic), 200, json({}))
    p.methods.respond('HUB.example', 'DEV', ridOf(p.sent[0]!.topic), 201, json({ done: 1 }))
    expect(await result).toEqual({ status: 201, payload: { done: 1 } })
    expect(p.events.map((e) => e.type)).toEqual(['invoked', 'unmatched', 'answered'])
    expect(p.methods.pending + p.methods.held + p.timers.size).toBe(0)
  })

  it('waits up to the connect timeout for the device, then DEVICE_NOT_ONLINE (at once with 0)', async () => {
    const p = process('a')
    expect((await rejection(p.methods.invoke('hub.example', 'dev', call({}))))).toMatchObject({ code: 'DEVICE_NOT_ONLINE', errorCode: 404103 })
    const waiting = p.methods.invoke('hub.example', 'dev', call({ connectTimeoutInSeconds: 5 }))
    p.timers.advance(4999)
    p.connection = {}
    p.methods.deviceReady('hub.example', 'dev')
    p.methods.respond('hub.example', 'dev', ridOf(p.sent[0]!.topic), 200, new Uint8Array())
    expect(await waiting).toEqual({ status: 200, payload: null })
    p.connection = undefined
    const late = p.methods.invoke('hub.example', 'dev', call({ connectTimeoutInSeconds: 5 }))
    p.timers.advance(5000)
    expect((await rejection(late)).reason).toContain('within 5 s')
    expect(p.methods.pending + p.methods.held + p.timers.size).toBe(0)
  })

  it('times out with GATEWAY_TIMEOUT when the device does not answer, and drops its late answer', async () => {
    const p = process('a')
    p.connection = {}
    const silent = p.methods.invoke('hub.example', 'dev', call({ responseTimeoutInSeconds: 5 }))
    p.timers.advance(5000)
    expect(await rejection(silent)).toMatchObject({ code: 'GATEWAY_TIMEOUT', errorCode: 504101 })
    p.methods.respond('hub.example', 'dev', ridOf(p.sent[0]!.topic), 200, json(1))
    expect(p.events.at(-1)).toMatchObject({ type: 'unmatched' })
    expect(p.methods.pending + p.methods.held + p.timers.size).toBe(0)
  })

  it('cleans a call up when the device disconnects, the caller goes away or the server stops', async () => {
    const p = process('a')
    const connection = {}
    p.connection = connection
    const left = p.methods.invoke('hub.example', 'dev', call({}))
    p.methods.deviceGone('hub.example', 'dev', {})
    expect(p.methods.pending).toBe(1)
    p.methods.deviceGone('hub.example', 'dev', connection)
    expect(await rejection(left)).toMatchObject({ code: 'DEVICE_NOT_ONLINE', errorCode: 404103, deviceMessage: 'The device disconnected before it answered.' })

    let goAway!: () => void
    const abandoned = new Promise<void>((resolve) => (goAway = resolve))
    const dropped = p.methods.invoke('hub.example', 'dev', call({}), abandoned)
    goAway()
    expect(await rejection(dropped)).toBeInstanceOf(ProvisioError)
    expect(p.events.at(-1)).toMatchObject({ type: 'failed', outcome: 'cancelled' })

    p.connection = undefined
    const stopped = p.methods.invoke('hub.example', 'dev', call({ connectTimeoutInSeconds: 300 }))
    p.methods.stop()
    expect(await rejection(stopped)).toMatchObject({ code: 'SERVICE_UNAVAILABLE' })
    expect(await rejection(p.methods.invoke('hub.example', 'dev', call({})))).toMatchObject({ code: 'SERVICE_UNAVAILABLE' })
    expect(p.methods.pending + p.methods.held + p.timers.size).toBe(0)
  })

  it('refuses calls past maxCalls with SERVICE_THROTTLED', async () => {
    const timers = new ManualTimers()
    const methods = new DirectMethods({ timers, random, origin: 'a', deliver: () => ({}) }, { maxCalls: 1 })
    void methods.invoke('hub.example', 'dev', call({})).catch(() => undefined)
    expect(await rejection(methods.invoke('hub.example', 'dev', call({})))).toMatchObject({ code: 'SERVICE_THROTTLED' })
    methods.stop()
  })
})

describe('DirectMethods across processes', () => {
  /** Two processes whose relay delivers each published message to the other. */
  function pair(): [Process, Process] {
    const procs: Process[] = []
    const relay = (from: Process, message: MethodRelayMessage) => {
      for (const p of procs) if (p !== from) p.methods.receive(message)
    }
    procs.push(process('a', relay), process('b', relay))
    return procs as [Process, Process]
  }

  it('a call made on A reaches the device on B and B answers A', async () => {
    const [a, b] = pair()
    b.connection = {}
    const result = a.methods.invoke('hub.example', 'dev', call({ payload: 'hi' }))
    expect(b.sent).toHaveLength(1)
    expect(b.published.map((m) => m.kind)).toEqual(['dispatched'])
    b.methods.respond('hub.example', 'dev', ridOf(b.sent[0]!.topic), 200, json('ok'))
    expect(await result).toEqual({ status: 200, payload: 'ok' })
    expect([a.methods.pending, a.methods.held, b.methods.held, a.timers.size, b.timers.size]).toEqual([0, 0, 0, 0, 0])
  })

  it('waits on every process for the device; the first to deliver wins and the others drop their copy', async () => {
    const [a, b] = pair()
    const result = a.methods.invoke('hub.example', 'dev', call({ connectTimeoutInSeconds: 10 }))
    expect(b.methods.held).toBe(1)
    b.connection = {}
    b.methods.deviceReady('hub.example', 'dev')
    // A's own waiting copy is gone: a connection of the device on A later gets nothing.
    a.connection = {}
    a.methods.deviceReady('hub.example', 'dev')
    expect(a.sent).toHaveLength(0)
    b.methods.deviceGone('hub.example', 'dev', b.connection)
    expect(await rejection(result)).toMatchObject({ code: 'DEVICE_NOT_ONLINE' })
    expect(a.events.at(-1)).toMatchObject({ type: 'failed', outcome: 'disconnected' })
  })

  it('with a relay, a connect timeout of 0 waits the relay grace for another process to deliver', async () => {
    const [a] = pair()
    const result = a.methods.invoke('hub.example', 'dev', call({}))
    a.timers.advance(1999)
    expect(a.methods.pending).toBe(1)
    a.timers.advance(1)
    expect(await rejection(result)).toMatchObject({ code: 'DEVICE_NOT_ONLINE' })
    expect(a.published.map((m) => m.kind)).toEqual(['request', 'cancel'])
  })
})
