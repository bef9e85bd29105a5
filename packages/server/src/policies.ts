/**
 * `provisio policies`: the shared access policies of the DPS instance and of the embedded hubs,
 * kept in `<data-dir>/state.json` (state.ts). A running `provisio serve` on that directory (every
 * worker of it) reads the file again at its next request, so an added policy or a regenerated key
 * counts at once, without a restart. With `--store postgres://…` the change reaches the instance
 * serving this data directory; the other instances keep the policies they started with.
 *
 *   list                                      every policy, its rights and connection strings
 *   add <name> --rights A,B [--hub <host>]    a new policy with fresh keys
 *   rights <name> --rights A,B [--hub <host>] replace the rights of a policy
 *   remove <name> [--hub <host>]              remove a policy (not the owner policy)
 *   regenerate <name> --key primary|secondary [--hub <host>]
 */
import { DPS_OWNER_POLICY, DPS_RIGHTS, HUB_RIGHTS, formatSharedAccessKeyConnectionString, parseRights } from '@provisio/protocol'
import { POLICY_NAME } from './config.js'
import { generateKey, readState, writeState, type PolicyState, type ServerState } from './state.js'

export const POLICIES_USAGE = [
  'Usage: provisio policies <action> [name] [--hub <host>] [--rights A,B] [--key primary|secondary] [--data-dir <dir>]',
  '  list                 every policy of the DPS instance and the hubs, with rights and connection strings',
  '  add <name>           a policy with fresh keys and --rights',
  '  rights <name>        replace the rights of a policy',
  '  remove <name>        remove a policy',
  '  regenerate <name>    a new --key primary|secondary; tokens signed with the old key are refused at once',
  `  DPS rights: ${DPS_RIGHTS.join(', ')}`,
  `  Hub rights (with --hub): ${HUB_RIGHTS.join(', ')}`,
].join('\n')

/** A refusal of `provisio policies`: bad arguments or a rule of the policies. */
export class PoliciesError extends Error {
  override readonly name = 'PoliciesError'
  readonly code = 'POLICIES_INVALID'
}

export interface PoliciesOptions {
  readonly dataDir: string
  readonly action: string
  readonly name?: string
  /** Host name of an embedded hub; without it the DPS instance's policies. */
  readonly hub?: string
  readonly rights?: string
  readonly key?: string
  /** DPS host name for the connection strings `list` prints (default localhost). */
  readonly host?: string
}

/** Runs one action on the state of `options.dataDir`; returns the lines to print. */
export function runPolicies(options: PoliciesOptions): string[] {
  const state = readState(options.dataDir)
  if (state === undefined) throw new PoliciesError(`no state.json in ${options.dataDir}: start provisio serve there once first`)
  if (options.action === 'list') return listPolicies(state, options.host ?? 'localhost')
  const name = options.name
  if (name === undefined || !POLICY_NAME.test(name)) throw new PoliciesError(`${options.action} needs a policy name of 1-64 letters, digits, '-', '_' or '.'`)
  const hubIndex = options.hub === undefined ? -1 : state.hubs.findIndex((h) => h.hostName.toLowerCase() === options.hub!.toLowerCase())
  if (options.hub !== undefined && hubIndex < 0) throw new PoliciesError(`no embedded hub ${options.hub} in ${options.dataDir} (hubs: ${state.hubs.map((h) => h.hostName).join(', ')})`)
  const owner = hubIndex < 0 ? DPS_OWNER_POLICY : 'iothubowner'
  const where = hubIndex < 0 ? `the DPS instance ${state.idScope}` : `hub ${state.hubs[hubIndex]!.hostName}`
  const policies = [...(hubIndex < 0 ? state.servicePolicies : state.hubs[hubIndex]!.policies)]
  const at = policies.findIndex((p) => p.name === name)
  const rights = (): string[] => {
    if (options.rights === undefined) throw new PoliciesError(`${options.action} needs --rights`)
    try {
      return parseRights<string>(options.rights, hubIndex < 0 ? DPS_RIGHTS : HUB_RIGHTS)
    } catch (error) {
      throw new PoliciesError((error as { reason?: string }).reason ?? String(error))
    }
  }
  const existing = (): PolicyState => {
    if (at < 0) throw new PoliciesError(`${where} has no policy ${name}`)
    return policies[at]!
  }
  let done: string
  switch (options.action) {
    case 'add':
      if (at >= 0) throw new PoliciesError(`${where} already has a policy ${name}`)
      policies.push({ name, primaryKey: generateKey(), secondaryKey: generateKey(), rights: rights() })
      done = `added policy ${name} to ${where}`
      break
    case 'rights':
      if (name === owner) throw new PoliciesError(`${owner} keeps every right`)
      policies[at] = { ...existing(), rights: rights() }
      done = `policy ${name} of ${where} now has ${policies[at].rights.join(', ')}`
      break
    case 'remove':
      if (name === owner) throw new PoliciesError(`${owner} cannot be removed`)
      existing()
      policies.splice(at, 1)
      done = `removed policy ${name} from ${where}`
      break
    case 'regenerate': {
      if (options.key !== 'primary' && options.key !== 'secondary') throw new PoliciesError('regenerate needs --key primary or --key secondary')
      policies[at] = { ...existing(), [options.key === 'primary' ? 'primaryKey' : 'secondaryKey']: generateKey() }
      done = `regenerated the ${options.key} key of policy ${name} of ${where}`
      break
    }
    default:
      throw new PoliciesError(`unknown action ${JSON.stringify(options.action.slice(0, 40))}`)
  }
  const next: ServerState =
    hubIndex < 0 ? { ...state, servicePolicies: policies } : { ...state, hubs: state.hubs.map((h, i) => (i === hubIndex ? { ...h, policies } : h)) }
  writeState(options.dataDir, next)
  return [done]
}

function listPolicies(state: ServerState, host: string): string[] {
  const rows = (hostName: string, policies: readonly PolicyState[]) =>
    policies.flatMap((p) => [
      `  ${p.name}  ${p.rights.join(', ')}`,
      `    primary    ${formatSharedAccessKeyConnectionString({ hostName, sharedAccessKeyName: p.name, sharedAccessKey: p.primaryKey })}`,
      `    secondary  ${formatSharedAccessKeyConnectionString({ hostName, sharedAccessKeyName: p.name, sharedAccessKey: p.secondaryKey })}`,
    ])
  return [`DPS ${state.idScope} (${host})`, ...rows(host, state.servicePolicies), ...state.hubs.flatMap((h) => [`Hub ${h.hostName}`, ...rows(h.hostName, h.policies)])]
}
