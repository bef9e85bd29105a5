import { describe, expect, it } from 'vitest'
import { ProvisioError } from '@provisio/protocol'
import type { AttestationVerifier } from '../src/index.js'
import { HUB_A, ID_SCOPE, setup } from './helpers/setup.js'

/** A stand-in TPM verifier: challenge without a token, admit with the right one. */
const fakeTpm: AttestationVerifier = {
  kind: 'tpm',
  async attest(ctx) {
    if (ctx.evidence.type !== 'tpm') throw new Error('dispatch bug')
    const e = await ctx.store.getEnrollment(ctx.idScope, ctx.registrationId)
    if (!e || e.attestation.type !== 'tpm') return { ok: false, error: new ProvisioError('ENROLLMENT_NOT_FOUND', 'no TPM enrollment') }
    if (ctx.evidence.token === undefined) return { ok: false, error: new ProvisioError('CREDENTIALS_MISSING', 'first leg'), challenge: { authenticationKey: 'YmxvYg==', keyName: 'registration' } }
    if (ctx.evidence.token !== 'proof') return { ok: false, error: new ProvisioError('SAS_BAD_SIGNATURE', 'wrong proof'), enrollment: { kind: 'individual', id: e.registrationId } }
    return {
      ok: true,
      enrollment: { kind: 'individual', value: e },
      auth: { type: 'sas', primaryKey: 'aHViLWtleS0x', secondaryKey: 'aHViLWtleS0y' },
      attestation: { tpm: { authenticationKey: 'ZW5jcnlwdGVk' } },
      detail: 'fake tpm',
    }
  },
}

/** A stand-in X.509 verifier: the leaf's first byte picks the thumbprint. */
const fakeX509: AttestationVerifier = {
  kind: 'x509',
  async attest(ctx) {
    if (ctx.evidence.type !== 'x509') throw new Error('dispatch bug')
    const g = await ctx.store.getGroup(ctx.idScope, 'cas')
    if (!g) return { ok: false, error: new ProvisioError('ENROLLMENT_NOT_FOUND', 'no group') }
    return {
      ok: true,
      enrollment: { kind: 'group', value: g },
      auth: { type: 'certificateAuthority' },
      attestation: { x509: { enrollmentGroupId: 'cas' } },
      detail: `leaf ${ctx.evidence.chain[0]?.[0]}`,
    }
  },
}

describe('pluggable verifiers', () => {
  it('dispatches TPM evidence, surfaces the challenge, then assigns with the verifier credentials', async () => {
    const { engine, raw, hubs } = setup({ verifiers: [fakeTpm] })
    await engine.createOrUpdateEnrollment(ID_SCOPE, { registrationId: 'tpm-1', attestation: { type: 'tpm', tpm: { endorsementKey: 'AAEAAQ==' } }, iotHubHostName: HUB_A, allocationPolicy: 'static' })
    const first = await raw.register({ idScope: ID_SCOPE, registrationId: 'tpm-1', evidence: { type: 'tpm', endorsementKey: 'AAEAAQ==' }, apiVersion: '2021-06-01' })
    expect(first).toEqual({ status: 401, challenge: { authenticationKey: 'YmxvYg==', keyName: 'registration' } })
    const bad = await engine.register({ idScope: ID_SCOPE, registrationId: 'tpm-1', evidence: { type: 'tpm', endorsementKey: 'AAEAAQ==', token: 'nope' }, apiVersion: '2021-06-01' }).catch((e: unknown) => e)
    expect((bad as ProvisioError).errorCode).toBe(401002)
    const ok = await engine.register({ idScope: ID_SCOPE, registrationId: 'tpm-1', evidence: { type: 'tpm', endorsementKey: 'AAEAAQ==', token: 'proof' }, apiVersion: '2021-06-01' })
    expect(ok.body.registrationState).toMatchObject({ assignedHub: HUB_A, tpm: { authenticationKey: 'ZW5jcnlwdGVk' } })
    expect(hubs.device(HUB_A, 'tpm-1')?.auth).toEqual({ type: 'sas', primaryKey: 'aHViLWtleS0x', secondaryKey: 'aHViLWtleS0y' })
    // the service view never shows the activation blob
    expect(await engine.getRegistrationState(ID_SCOPE, 'tpm-1')).not.toHaveProperty('tpm')
  })

  it('dispatches X.509 evidence and creates a CA-authenticated identity', async () => {
    const { engine, hubs } = setup({ verifiers: [fakeX509] })
    await engine.createOrUpdateEnrollmentGroup(ID_SCOPE, { enrollmentGroupId: 'cas', attestation: { type: 'x509', x509: { caReferences: { primary: 'root' } } }, iotHubs: [HUB_A] })
    const r = await engine.register({ idScope: ID_SCOPE, registrationId: 'cert-dev', evidence: { type: 'x509', chain: [new Uint8Array([0x30])] }, apiVersion: '2021-10-01' })
    expect(r.body.registrationState).toMatchObject({ assignedHub: HUB_A, x509: { enrollmentGroupId: 'cas' } })
    expect(hubs.device(HUB_A, 'cert-dev')?.auth).toEqual({ type: 'certificateAuthority' })
  })
})
