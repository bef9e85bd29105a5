/**
 * MQTT 3.1.1 topic filters (§4.7): levels split on `/`, `+` one whole level, `#` the last level
 * and everything below it (its parent too), and topics starting with `$` not matched by a filter
 * whose first level is a wildcard (MQTT-4.7.2-1).
 */

/** Why a topic filter is not one (MQTT-4.7.1-2, -3, 4.7.3-1), or undefined when it is valid. */
export function topicFilterError(filter: string): string | undefined {
  if (filter.length === 0) return 'a topic filter must be at least one character (MQTT-4.7.3-1)'
  if (filter.includes('\u0000')) return 'a topic filter must not contain U+0000 (MQTT-4.7.3-2)'
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '"#" must be a whole level and the last one (MQTT-4.7.1-2)'
    if (level.includes('+') && level !== '+') return '"+" must be a whole level (MQTT-4.7.1-3)'
  }
  return undefined
}

/**
 * Whether a topic filter matches a topic name, as MQTT 3.1.1 defines it. `topic` levels may be
 * given as `undefined` where any value of that level is possible (see {@link topicFilterCovers}).
 */
export function topicMatches(filter: string, topic: string): boolean {
  return matchLevels(filter.split('/'), topic.split('/'))
}

/**
 * Whether some topic of a family matches the filter: `pattern` is the family's levels, a string
 * for a fixed level and `undefined` for a level whose value varies (a status, a query string).
 */
export function topicFilterCovers(filter: string, pattern: readonly (string | undefined)[]): boolean {
  return matchLevels(filter.split('/'), pattern)
}

function matchLevels(filter: readonly string[], topic: readonly (string | undefined)[]): boolean {
  const first = topic[0]
  if ((filter[0] === '+' || filter[0] === '#') && first !== undefined && first.startsWith('$')) return false
  for (let i = 0; i < filter.length; i++) {
    const f = filter[i]!
    // "sport/#" matches "sport" too: "#" stands for the parent level and any number of children.
    if (f === '#') return true
    if (i >= topic.length) return false
    const t = topic[i]
    if (f !== '+' && t !== undefined && f !== t) return false
  }
  return filter.length === topic.length
}

/** The QoS a message on `topic` is delivered with: the highest granted by a matching subscription (MQTT-3.3.5-1), or undefined when none matches. */
export function deliveryQos(subscriptions: ReadonlyMap<string, 0 | 1>, topic: string): 0 | 1 | undefined {
  let qos: 0 | 1 | undefined
  for (const [filter, granted] of subscriptions) {
    if (topicMatches(filter, topic)) qos = qos === undefined ? granted : (Math.max(qos, granted) as 0 | 1)
  }
  return qos
}
