import { describe, expect, it } from 'vitest'
import { desiredPushMessage } from '@provisio/protocol'
import { MemoryHubSessions } from '../src/index.js'

describe('MemoryHubSessions', () => {
  it('keeps a clean-session-0 session for the next connection, and only that', () => {
    const sessions = new MemoryHubSessions()
    const a = {}
    const first = sessions.open('Hub.example', 'dev', false, a)
    expect(first.present).toBe(false)
    first.state.subscriptions.set('$iothub/twin/PATCH/properties/desired/#', 1)
    sessions.close('hub.example', 'dev', a)
    const b = {}
    const second = sessions.open('hub.example', 'DEV', false, b)
    expect(second).toMatchObject({ present: true })
    expect(second.state).toBe(first.state)
    expect(second.state.owner).toBe(b)
    // The older connection ending after a take-over does not release the newer one's session.
    sessions.close('hub.example', 'dev', a)
    expect(second.state.owner).toBe(b)
    sessions.close('hub.example', 'dev', b)
    // Clean session 1 starts empty and is forgotten when it ends.
    const clean = sessions.open('hub.example', 'dev', true, {})
    expect(clean.present).toBe(false)
    expect(clean.state.subscriptions.size).toBe(0)
    sessions.close('hub.example', 'dev', clean.state.owner!)
    expect(sessions.size).toBe(0)
  })

  it('queues QoS 1 messages for a disconnected device that subscribed at QoS 1, bounded, oldest dropped', () => {
    const sessions = new MemoryHubSessions({ maxQueued: 2 })
    const owner = {}
    const { state } = sessions.open('h', 'd', false, owner)
    state.subscriptions.set('$iothub/twin/PATCH/properties/desired/#', 1)
    expect(sessions.offer('h', 'd', desiredPushMessage({ a: 1 }, 2))).toBe(false)
    sessions.close('h', 'd', owner)
    for (let v = 2; v <= 4; v++) expect(sessions.offer('h', 'd', desiredPushMessage({ v }, v))).toBe(true)
    expect(sessions.offer('h', 'd', { topic: '$iothub/methods/POST/m/?$rid=1', payload: '{}' })).toBe(false)
    expect(state.queued.map((m) => m.topic)).toEqual(['$iothub/twin/PATCH/properties/desired/?$version=3', '$iothub/twin/PATCH/properties/desired/?$version=4'])
    expect(state.dropped).toBe(1)
    sessions.forget('h', 'd')
    expect(sessions.offer('h', 'd', desiredPushMessage({ v: 5 }, 5))).toBe(false)
  })

  it('forgets the least recently used disconnected session beyond maxSessions', () => {
    const sessions = new MemoryHubSessions({ maxSessions: 2 })
    for (const id of ['a', 'b', 'c']) {
      const owner = {}
      sessions.open('h', id, false, owner)
      sessions.close('h', id, owner)
    }
    expect(sessions.size).toBe(2)
    expect(sessions.open('h', 'a', false, {}).present).toBe(false)
  })
})
