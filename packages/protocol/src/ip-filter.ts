/**
 * IP filter rules of a DPS instance or an IoT hub, as Azure defines them: an ordered list of
 * `{filterName, action: Accept | Reject, ipMask}` where `ipMask` is an IPv4 address or CIDR
 * range; the first rule that matches the client's address decides, and an address no rule
 * matches is accepted. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are matched as IPv4; other
 * IPv6 addresses match no rule, as Azure's IPv4 rules.
 */
import { ProvisioError } from './errors.js'

export interface IpFilterRule {
  readonly filterName: string
  readonly action: 'Accept' | 'Reject'
  /** `a.b.c.d` or `a.b.c.d/n`. */
  readonly ipMask: string
}

/** Azure's limit of rules per hub or DPS instance. */
export const MAX_IP_FILTER_RULES = 100

/** The verdict on one address: the action, and the rule that decided (none: no rule matched). */
export interface IpFilterVerdict {
  readonly action: 'Accept' | 'Reject'
  readonly rule?: string
}

function ipv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text)
  if (m === null) return undefined
  let n = 0
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i])
    if (octet > 255) return undefined
    n = n * 256 + octet
  }
  return n
}

/** `[network, prefix length]` of an ipMask, or undefined when it is not one. */
function range(ipMask: string): readonly [number, number] | undefined {
  const [address = '', bits, ...rest] = ipMask.split('/')
  if (rest.length > 0) return undefined
  const n = ipv4(address)
  const prefix = bits === undefined ? 32 : /^\d{1,2}$/.test(bits) ? Number(bits) : NaN
  if (n === undefined || !(prefix >= 0 && prefix <= 32)) return undefined
  return [n, prefix]
}

function inRange(address: number, [network, prefix]: readonly [number, number]): boolean {
  if (prefix === 0) return true
  const size = 2 ** (32 - prefix)
  return Math.floor(address / size) === Math.floor(network / size)
}

/**
 * Checks a rule list (from a config file) and returns it typed.
 * @throws ProvisioError VALIDATION_FAILED naming the rule and what is wrong.
 */
export function parseIpFilterRules(raw: unknown, where = 'ipFilter'): IpFilterRule[] {
  if (!Array.isArray(raw)) throw new ProvisioError('VALIDATION_FAILED', `${where} must be a list of rules`)
  if (raw.length > MAX_IP_FILTER_RULES) throw new ProvisioError('VALIDATION_FAILED', `${where} may hold at most ${MAX_IP_FILTER_RULES} rules, got ${raw.length}`)
  const names = new Set<string>()
  return raw.map((item: unknown, i) => {
    const at = `${where}[${i}]`
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new ProvisioError('VALIDATION_FAILED', `${at} must be an object with filterName, action and ipMask`)
    const { filterName, action, ipMask, ...rest } = item as Record<string, unknown>
    if (Object.keys(rest).length > 0) throw new ProvisioError('VALIDATION_FAILED', `${at} has unknown member "${Object.keys(rest)[0]!.slice(0, 40)}"`)
    if (typeof filterName !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(filterName)) throw new ProvisioError('VALIDATION_FAILED', `${at}.filterName must be 1-128 letters, digits, '-', '_' or '.'`)
    if (names.has(filterName.toLowerCase())) throw new ProvisioError('VALIDATION_FAILED', `${at}.filterName ${filterName} is used twice`)
    names.add(filterName.toLowerCase())
    if (action !== 'Accept' && action !== 'Reject') throw new ProvisioError('VALIDATION_FAILED', `${at}.action must be Accept or Reject`)
    if (typeof ipMask !== 'string' || range(ipMask) === undefined) {
      throw new ProvisioError('VALIDATION_FAILED', `${at}.ipMask must be an IPv4 address or CIDR range (a.b.c.d/n), got ${JSON.stringify(String(ipMask).slice(0, 60))}`)
    }
    return { filterName, action, ipMask }
  })
}

/** The first rule matching `address` decides; no match accepts. */
export function ipFilterVerdict(rules: readonly IpFilterRule[], address: string): IpFilterVerdict {
  const text = address.toLowerCase().startsWith('::ffff:') ? address.slice(7) : address
  const n = ipv4(text)
  if (n === undefined) return { action: 'Accept' }
  for (const rule of rules) {
    const r = range(rule.ipMask)
    if (r !== undefined && inRange(n, r)) return { action: rule.action, rule: rule.filterName }
  }
  return { action: 'Accept' }
}
