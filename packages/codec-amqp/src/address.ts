/** The registration a link address or a SASL PLAIN authcid names (docs/protocol.md §4). */

/** The device-API address of a link: `{idScope}/registrations/{registrationId}`, relative or absolute. */
export function parseRegistrationAddress(address: unknown): { idScope: string; registrationId: string } | undefined {
  if (typeof address !== 'string' || address.length > 512) return undefined
  let path = address
  const scheme = /^amqps?:\/\/[^/]*\//i.exec(path)
  if (scheme) path = path.slice(scheme[0].length)
  else if (path.startsWith('/')) path = path.slice(1)
  const m = /^([^/]+)\/registrations\/([^/]+)$/.exec(path)
  if (!m) return undefined
  return { idScope: m[1]!, registrationId: m[2]! }
}
