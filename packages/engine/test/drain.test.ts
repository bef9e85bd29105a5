import { describe, expect, it } from 'vitest'
import type { HubDeviceSpec } from '../src/index.js'
import { deviceToken, key, RecordingHubGateway } from './helpers/fakes.js'
import { ID_SCOPE, setup } from './helpers/setup.js'

/** A gateway whose writes wait until released: an assignment stays in flight after the 202. */
class HeldGateway extends RecordingHubGateway {
  release!: () => void
  readonly #gate = new Promise<void>((resolve) => (this.release = resolve))
  override async createOrUpdateDevice(spec: HubDeviceSpec): Promise<void> {
    await this.#gate
    return super.createOrUpdateDevice(spec)
  }
}

describe('drain (graceful shutdown)', () => {
  it('resolves only after the assignments started by register have finished', async () => {
    const hub = new HeldGateway()
    const { engine, nowSeconds } = setup({ assignmentBudgetMs: 0, hubGateway: hub })
    const primaryKey = key(32, 9)
    await engine.createOrUpdateEnrollment(ID_SCOPE, {
      registrationId: 'drained',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey: key(32, 10) } },
    })
    const reply = await engine.register({
      idScope: ID_SCOPE,
      registrationId: 'drained',
      evidence: { type: 'sas', token: deviceToken(ID_SCOPE, 'drained', primaryKey, nowSeconds() + 600) },
      apiVersion: '2021-10-01',
    })
    expect(reply.status).toBe(202)
    let drained = false
    const waiting = engine.drain().then(() => (drained = true))
    await new Promise((r) => setTimeout(r, 20))
    expect(drained).toBe(false)
    hub.release()
    await waiting
    expect(hub.calls.flatMap((c) => (c.op === 'createOrUpdateDevice' ? [c.spec.deviceId] : []))).toEqual(['drained'])
    expect((await engine.getRegistrationState(ID_SCOPE, 'drained')).status).toBe('assigned')
  })

  it('resolves at once when nothing is running', async () => {
    const { engine } = setup({})
    await expect(engine.drain()).resolves.toBeUndefined()
  })
})
