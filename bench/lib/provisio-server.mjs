// The `provisio serve` every e2e suite measures: in-process, SQLite in a temp dir, dev PKI,
// ephemeral ports, assignments answered at once (200 assigned), the DPS rate limit off, and one
// symmetric-key enrollment group whose devices the suite registers. Also hands out the dev PKI's
// CA, certificate and key, which the bare baselines serve with.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDeviceKey } from '@provisio/crypto'
import { buildSasToken } from '@provisio/protocol'
import { DEFAULT_CONFIG, createLogger, startServer } from '@provisio/server'

/**
 * @param {string} label  suffix of the temp dir and of the group id
 * @param {string} groupKey base64 group key
 */
export async function startBenchServer(label, groupKey) {
  const dir = mkdtempSync(join(tmpdir(), `provisio-bench-${label}-`))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const server = await startServer(
    { ...DEFAULT_CONFIG, dataDir: dir, httpsPort: 0, mqttPort: 0, amqpPort: 0, assignmentBudgetMs: 5000, logLevel: 'error', retryAfterSeconds: 1, registrationsPerMinute: 0 },
    createLogger('error'),
  )
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: `${label}-fleet`,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: groupKey, secondaryKey: groupKey } },
  })
  return {
    server,
    dir,
    ca: readFileSync(server.endpoints.caCertificate, 'utf8'),
    cert: readFileSync(join(dir, 'server.pem'), 'utf8'),
    key: readFileSync(join(dir, 'server-key.pem'), 'utf8'),
  }
}

/**
 * A device SAS token of a group member, shaped like Microsoft's Node symmetric-key client's
 * (raw `sr`, fields sr, sig, skn, se), signed with the key derived from `groupKey` (§2.2).
 */
export function groupDeviceToken(idScope, registrationId, groupKey) {
  return buildSasToken({
    resource: `${idScope}/registrations/${registrationId}`,
    key: deriveDeviceKey(groupKey, registrationId),
    keyName: 'registration',
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
    encodeResource: 'raw',
    fieldOrder: ['sr', 'sig', 'skn', 'se'],
  })
}

/** Runs `one()` `count` times with at most `concurrency` calls in flight. */
export async function runPool(count, concurrency, one) {
  let started = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < count) {
        started++
        await one()
      }
    }),
  )
}
