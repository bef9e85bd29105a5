/**
 * The enrollment groups of one attestation type, per ID scope, reloaded only when the store's
 * groups revision moves (any group write bumps it). Each verifier owns one: a register never pays
 * for listing the groups again while nobody changed them.
 */
import { normalizeRegistrationId } from '@provisio/protocol'
import type { AttestationType, EnrollmentGroup, IndividualEnrollment } from '@provisio/protocol'
import type { AttestationContext } from './attestation.js'

const PAGE = 500

export function groupsOfType(type: AttestationType): (ctx: AttestationContext, knownRevision?: number) => Promise<EnrollmentGroup[]> {
  const cache = new Map<string, { readonly revision: number; readonly groups: EnrollmentGroup[] }>()
  return async (ctx, knownRevision) => {
    const revision = knownRevision ?? (await ctx.store.groupsRevision(ctx.idScope))
    const cached = cache.get(ctx.idScope)
    if (cached && cached.revision === revision) return cached.groups
    const groups: EnrollmentGroup[] = []
    let after: string | undefined
    for (;;) {
      const page = await ctx.store.listGroups(ctx.idScope, { after, limit: PAGE })
      for (const g of page) if (g.attestation.type === type) groups.push(g)
      if (page.length < PAGE) break
      after = normalizeRegistrationId(page[page.length - 1]!.enrollmentGroupId)
    }
    cache.set(ctx.idScope, { revision, groups })
    return groups
  }
}

/**
 * Attestation's first read: the device's individual enrollment, and the groups revision when the
 * store gives both in one read (then the groups lookup that may follow needs no read of its own).
 */
export async function individualEnrollment(ctx: AttestationContext): Promise<{ readonly enrollment: IndividualEnrollment | undefined; readonly groupsRevision?: number }> {
  const store = ctx.store
  if (store.getEnrollmentForAttestation !== undefined) return store.getEnrollmentForAttestation(ctx.idScope, ctx.registrationId)
  return { enrollment: await store.getEnrollment(ctx.idScope, ctx.registrationId) }
}
