/**
 * Etag comparison for If-Match (RFC 9110 §13.1.1), shared by the engine, its stores and the hub:
 * `*` matches any existing resource; otherwise the opaque values are compared, tolerating a
 * missing pair of quotes and a weak `W/` prefix, which some clients add or drop.
 */
export function etagMatches(ifMatch: string, current: string | undefined): boolean {
  if (current === undefined) return false
  const want = normaliseEtag(ifMatch)
  // `*` is the wildcard; Azure SDKs send it quoted (azure-iothub `_ensureQuoted('*')` → `"*"`).
  if (want === '*') return true
  return want === normaliseEtag(current)
}

function normaliseEtag(tag: string): string {
  let t = tag.trim()
  if (t.startsWith('W/')) t = t.slice(2)
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) t = t.slice(1, -1)
  return t
}
