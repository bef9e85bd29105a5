import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { deriveKey, deviceToken, key } from './helpers/fakes.js'
import { HUB_A, HUB_B, ID_SCOPE, setup } from './helpers/setup.js'

/** Registration ids per the DPS grammar (§0): ASCII alnum and - . _ :, ending alnum or '-'. */
const registrationId = fc
  .tuple(fc.stringMatching(/^[A-Za-z0-9\-._:]{0,40}$/), fc.stringMatching(/^[A-Za-z0-9-]$/))
  .map(([body, last]) => body + last)

describe('register properties', () => {
  it('any valid id admitted by a group lands on a linked hub, the same one again on re-register, and is found case-insensitively', async () => {
    const { engine, hubs, nowSeconds } = setup({ rateLimits: { registrationsPerScope: false, pollsPerDevice: false } })
    const groupKey = key(64, 3)
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'prop', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64, 4) } } })
    const seen = new Set<string>()
    await fc.assert(
      fc.asyncProperty(registrationId, async (id) => {
        fc.pre(!seen.has(id.toLowerCase()))
        seen.add(id.toLowerCase())
        const evidence = { type: 'sas', token: deviceToken(ID_SCOPE, id, deriveKey(groupKey, id), nowSeconds() + 60) } as const
        const first = await engine.register({ idScope: ID_SCOPE, registrationId: id, evidence, apiVersion: '2021-10-01' })
        const hub = first.body.registrationState?.assignedHub
        expect([HUB_A, HUB_B]).toContain(hub)
        expect(hubs.device(hub!, id)).toBeDefined()
        const again = await engine.register({ idScope: ID_SCOPE, registrationId: id, evidence, apiVersion: '2021-10-01' })
        expect(again.body.registrationState).toMatchObject({ assignedHub: hub, substatus: 'initialAssignment', deviceId: id })
        expect((await engine.getRegistrationState(ID_SCOPE, id.toUpperCase())).assignedHub).toBe(hub)
      }),
      { numRuns: 150 },
    )
  })

  it('a token signed with any other key is refused with 401002', async () => {
    const { engine, nowSeconds } = setup()
    const groupKey = key(64, 5)
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'prop2', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: key(64, 6) } } })
    await fc.assert(
      fc.asyncProperty(registrationId, fc.uint8Array({ minLength: 16, maxLength: 64 }), async (id, wrong) => {
        const wrongKey = Buffer.from(wrong).toString('base64')
        fc.pre(wrongKey !== deriveKey(groupKey, id) && wrongKey !== deriveKey(key(64, 6), id))
        const error = await engine
          .register({ idScope: ID_SCOPE, registrationId: id, evidence: { type: 'sas', token: deviceToken(ID_SCOPE, id, wrongKey, nowSeconds() + 60) }, apiVersion: '2021-10-01' })
          .catch((e: unknown) => e as { errorCode?: number })
        expect((error as { errorCode?: number }).errorCode).toBe(401002)
      }),
      { numRuns: 100 },
    )
  })
})
