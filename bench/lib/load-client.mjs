// The e2e bench's device fleet, run as a child process of the bench (bench/lib/load.mjs forks
// it) so that the servers measured and the devices loading them are separate processes, each
// with its own event loop: the servers can use a core while the devices use the other.
//
// Messages (IPC), each answered with { id, ok, ... } or { id, ok: false, error }:
//   { cmd: 'x509', count }   make an X.509 root and `count` device identities → { rootPem }
//   { cmd: 'batch', transport, targets: [{ port, ca }], idScope, prefix, count, concurrency,
//     credential: 'sas' | 'x509', groupKey, resume, fresh, poolKey }
//       registers `count` brand-new devices (ids `${prefix}${n}`), `concurrency` at a time, each
//       "connect, one register request, close", device i on targets[i % targets.length];
//       → { samples: [ms per device] (from the start of its connect to its connection closed),
//           x509Reused: X.509 registrations so far that reused an identity of the pool }
import { performance } from 'node:perf_hooks'
import { deriveDeviceKey } from '@provisio/crypto'
import { buildSasToken } from '@provisio/protocol'
import { openDevice } from './device-clients.mjs'
import { createX509Fleet } from './x509-devices.mjs'

const sessions = new Map() // TLS tickets per host:port, kept across batches (devices reconnecting)
const counters = new Map()
let x509 = { identities: [], used: new Map(), reused: 0 }

function sasToken(idScope, registrationId, groupKey) {
  return buildSasToken({
    resource: `${idScope}/registrations/${registrationId}`,
    key: deriveDeviceKey(groupKey, registrationId),
    keyName: 'registration',
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
    encodeResource: 'raw',
    fieldOrder: ['sr', 'sig', 'skn', 'se'],
  })
}

async function registerOne(job, n) {
  const target = job.targets[n % job.targets.length]
  let registrationId
  let credential
  if (job.credential === 'x509') {
    // Identities are made up front. Provisio gets a fresh one per registration (wrapping around,
    // i.e. re-registering, only if a case outlasts the pool); the baseline knows no devices and
    // cycles through the pool.
    // Counted per pool key (one per server configuration: a fresh database knows none of them).
    const used = x509.used.get(job.poolKey) ?? 0
    if (job.fresh) x509.used.set(job.poolKey, used + 1)
    if (job.fresh && used >= x509.identities.length) x509.reused++
    const identity = job.fresh ? x509.identities[used % x509.identities.length] : x509.identities[n % x509.identities.length]
    registrationId = identity.registrationId
    credential = { cert: identity.cert, key: identity.key }
  } else {
    const seq = (counters.get(job.prefix) ?? 0) + 1
    counters.set(job.prefix, seq)
    registrationId = `${job.prefix}${String(seq).padStart(8, '0')}`
    credential = { sas: sasToken(job.idScope, registrationId, job.groupKey) }
  }
  const start = performance.now()
  const device = await openDevice({
    transport: job.transport,
    port: target.port,
    ca: target.ca,
    idScope: job.idScope,
    registrationId,
    ...credential,
    ...(job.resume ? { tlsSessions: sessions } : {}),
  })
  let answer
  try {
    answer = await device.register()
  } finally {
    device.close()
  }
  const ms = performance.now() - start
  if (answer.status !== 200 || answer.body.status !== 'assigned') throw new Error(`${job.transport} ${registrationId}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`)
  return ms
}

async function batch(job) {
  const samples = []
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(job.concurrency, job.count) }, async () => {
      while (next < job.count) {
        const n = next++
        samples.push(await registerOne(job, n))
      }
    }),
  )
  // x509Reused: registrations that had to reuse an identity (the pool ran out): re-registrations.
  return { samples, x509Reused: x509.reused }
}

process.on('message', async (msg) => {
  try {
    let out
    if (msg.cmd === 'batch') out = await batch(msg)
    else if (msg.cmd === 'x509') {
      const fleet = await createX509Fleet()
      const identities = []
      for (let i = 0; i < msg.count; i++) {
        const registrationId = `${msg.prefix}${String(i).padStart(6, '0')}`
        identities.push({ registrationId, ...(await fleet.issue(registrationId)) })
      }
      x509 = { identities, used: new Map(), reused: 0 }
      out = { rootPem: fleet.rootPem }
    } else throw new Error(`unknown command ${msg.cmd}`)
    process.send({ id: msg.id, ok: true, ...out })
  } catch (error) {
    process.send({ id: msg.id, ok: false, error: String(error?.stack ?? error) })
  }
})
