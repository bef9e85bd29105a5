// SAS token verification (parse + HMAC + compare), the hot path of every device registration
// and hub connect (docs/protocol.md §2.1). Target: at least 500,000 verifications/s.
//
// Ours: @provisio/protocol parseAndVerifySasToken with a prepared key (@provisio/crypto
// createHmacSha256Key; a server keeps enrollment keys prepared). Peers do the same work:
// - node:crypto: a straightforward parse (split on '&' and '='; decodeURIComponent), createHmac
//   with a KeyObject made once, timingSafeEqual, the same resource and expiry checks;
// - azure-iot-common: Microsoft's SharedAccessSignature.parse, then the same node:crypto check.
// Every run cycles through 1,024 distinct tokens (distinct registration ids, one key) so no
// peer can win by caching one string.
import { createHmac, createSecretKey, timingSafeEqual } from 'node:crypto'
import { strict as assert } from 'node:assert'
import common from 'azure-iot-common'
import { createHmacSha256Key } from '@provisio/crypto'
import { DEVICE_SAS_KEY_NAME, buildSasToken, parseAndVerifySasToken } from '@provisio/protocol'

const { SharedAccessSignature } = common

const ID_SCOPE = '0ne00000A0A'
const KEY_BYTES = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff))
const KEY_B64 = KEY_BYTES.toString('base64')
const NOW = 1_800_000_000
const N = 1024

// Realistic 64-character resources: "0ne00000A0A/registrations/" (26) + a 38-character id.
const RESOURCES = Array.from({ length: N }, (_, i) => `${ID_SCOPE}/registrations/sn-${String(i).padStart(6, '0')}-mac-a1-b2-c3-d4-e5-f6-`.padEnd(64, '0'))
assert.equal(RESOURCES[0].length, 64)

/** Tokens in the shape of Microsoft's Node symmetric-key client: raw sr, fields sr,sig,skn,se. */
const RAW_TOKENS = RESOURCES.map((resource) =>
  buildSasToken({ resource, key: KEY_B64, expiresAt: NOW + 3600, keyName: 'registration', encodeResource: 'raw', fieldOrder: ['sr', 'sig', 'skn', 'se'] }),
)
/** The shape of the TPM path, C, Python and .NET: %2F-encoded sr, fields sr,sig,se,skn. */
const ENCODED_TOKENS = RESOURCES.map((resource) => buildSasToken({ resource, key: KEY_B64, expiresAt: NOW + 3600, keyName: 'registration' }))

const PREPARED = createHmacSha256Key(new Uint8Array(KEY_BYTES))
const NODE_KEY = createSecretKey(KEY_BYTES)
const SKEW = 300

let i = 0
let sink = 0

function ours(tokens) {
  const j = i++ & (N - 1)
  const r = parseAndVerifySasToken(tokens[j], {
    keys: PREPARED,
    expectedResource: RESOURCES[j],
    nowSeconds: NOW,
    keyName: DEVICE_SAS_KEY_NAME,
  })
  return r.ok
}

/** The same checks, written the obvious way on node:crypto. */
function nodeVerify(token, expectedResource) {
  if (!token.startsWith('SharedAccessSignature ')) return false
  const fields = {}
  for (const part of token.slice(22).split('&')) {
    const eq = part.indexOf('=')
    if (eq <= 0) return false
    const name = part.slice(0, eq)
    if (name in fields) return false
    fields[name] = part.slice(eq + 1)
  }
  const { sr, sig, se, skn } = fields
  if (sr === undefined || sig === undefined || se === undefined) return false
  if (skn !== 'registration') return false
  let expected
  try {
    expected = Buffer.from(decodeURIComponent(sig), 'base64')
  } catch {
    return false
  }
  const mac = createHmac('sha256', NODE_KEY).update(sr + '\n' + se).digest()
  if (expected.length !== mac.length || !timingSafeEqual(mac, expected)) return false
  if (decodeURIComponent(sr).toLowerCase() !== expectedResource.toLowerCase()) return false
  return Number(se) + SKEW > NOW
}

/** Microsoft's parser, then the same node:crypto checks. */
function azureVerify(token, expectedResource) {
  let sas
  try {
    sas = SharedAccessSignature.parse(token, ['sr', 'sig', 'se'])
  } catch {
    return false
  }
  if (sas.skn !== 'registration') return false
  const expected = Buffer.from(decodeURIComponent(sas.sig), 'base64')
  const mac = createHmac('sha256', NODE_KEY).update(sas.sr + '\n' + sas.se).digest()
  if (expected.length !== mac.length || !timingSafeEqual(mac, expected)) return false
  if (decodeURIComponent(sas.sr).toLowerCase() !== expectedResource.toLowerCase()) return false
  return Number(sas.se) + SKEW > NOW
}

/** All three must accept every token and reject a forged one, or the speeds mean nothing. */
function check(tokens) {
  for (let j = 0; j < N; j++) {
    i = j
    assert.equal(ours(tokens), true, `ours rejected token ${j}`)
    assert.equal(nodeVerify(tokens[j], RESOURCES[j]), true, `node:crypto peer rejected token ${j}`)
    assert.equal(azureVerify(tokens[j], RESOURCES[j]), true, `azure-iot-common peer rejected token ${j}`)
  }
  const forged = tokens[0].replace(/sig=[^&]+/, 'sig=' + encodeURIComponent(Buffer.alloc(32).toString('base64')))
  const r = parseAndVerifySasToken(forged, { keys: PREPARED, expectedResource: RESOURCES[0], nowSeconds: NOW, keyName: 'registration' })
  assert.equal(r.ok, false)
  assert.equal(nodeVerify(forged, RESOURCES[0]), false)
  assert.equal(azureVerify(forged, RESOURCES[0]), false)
  i = 0
}

function caseFor(name, tokens, target) {
  return {
    name,
    unit: 'ops',
    ...(target ? { target } : {}),
    check: () => check(tokens),
    ours() {
      if (ours(tokens)) sink++
    },
    peers: {
      'node:crypto': () => {
        const j = i++ & (N - 1)
        if (nodeVerify(tokens[j], RESOURCES[j])) sink++
      },
      'azure-iot-common parse + node:crypto': () => {
        const j = i++ & (N - 1)
        if (azureVerify(tokens[j], RESOURCES[j])) sink++
      },
    },
  }
}

export default {
  file: 'crypto',
  title: '@provisio/protocol SAS verification',
  notes: 'Device tokens with a 64-character resource, one prepared key; 1,024 distinct tokens cycled. ' +
    'Each verification: parse (fields in any order, limits, percent-decoding), HMAC-SHA256 over sr as sent, ' +
    'constant-time compare, case-insensitive resource compare, expiry with skew.',
  cases: [
    caseFor('SAS verification (parse + HMAC + compare)', RAW_TOKENS, '≥500,000/s'),
    caseFor('SAS verification, %2F-encoded sr (TPM/C/Python/.NET shape)', ENCODED_TOKENS),
  ],
}

// Keep the sink observable so no engine can drop the work.
process.on('exit', () => {
  if (sink === -1) console.log(sink)
})
