/**
 * The enrollment groups of one attestation type, per ID scope, reloaded only when the store's
 * groups revision moves (any group write bumps it). Each verifier owns one: a register never pays
 * for listing the groups again while nobody changed them.
 */
import { normalizeRegistrationId } from '@provisio/protocol'
import type { AttestationType, EnrollmentGroup } from '@provisio/protocol'
import type { AttestationContext } from './attestation.js'

const PAGE = 500

export function groupsOfType(type: AttestationType): (ctx: AttestationContext) => Promise<EnrollmentGroup[]> {
  const cache = new Map<string, { readonly revision: number; readonly groups: EnrollmentGroup[] }>()
  return async (ctx) => {
    const revision = await ctx.store.groupsRevision(ctx.idScope)
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
