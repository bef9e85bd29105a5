// End-to-end HTTPS registrations (issue 5 "Bench"): a real `provisio serve` (SQLite store, dev
// PKI, TLS 1.3 on loopback) registering brand-new group devices with N concurrent keep-alive
// connections, beside a bare TLS request/response baseline in the same run: a node:https server
// that answers a fixed 200 JSON to the same PUT, over the same client and agent settings. The
// ratio ours/baseline says how much of the TLS + HTTP round trip our service work costs.
//
// One operation = one PUT …/register answered `200 assigned` (the server is started with an
// assignment budget, so the assignment completes inside the request; a real device would then
// skip its first poll). Client and server share this process and the machine's two cores.
import { request, Agent, createServer } from 'node:https'
import { groupDeviceToken, runPool, startBenchServer } from '../lib/provisio-server.mjs'

const CONCURRENCY = 32
const BATCH = 256
const GROUP_KEY = Buffer.alloc(64, 0x5a).toString('base64')

const state = { server: undefined, baseline: undefined, agent: undefined, baselineAgent: undefined, next: 0, dir: undefined, ca: undefined }

function put(agent, port, path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = request({ host: 'localhost', port, method: 'PUT', path, agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Runs `count` requests with at most CONCURRENCY in flight. */
function deviceRequest() {
  const { idScope } = state.server.endpoints
  const id = `e2e-device-${String(state.next++).padStart(8, '0')}-0123456789`
  const token = groupDeviceToken(idScope, id, GROUP_KEY)
  return {
    path: `/${idScope}/registrations/${id}/register?api-version=2019-03-31`,
    headers: { authorization: token, 'content-type': 'application/json; charset=utf-8', accept: 'application/json' },
    body: JSON.stringify({ registrationId: id }),
  }
}

async function setup() {
  if (state.server) return
  const started = await startBenchServer('e2e', GROUP_KEY)
  state.server = started.server
  state.dir = started.dir
  state.ca = started.ca
  state.agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: state.ca })
  // Baseline: the same certificate and key, a handler that only reads the body and answers.
  const { cert, key } = started
  const reply = JSON.stringify({ operationId: '4.0123456789abcdef.00000000-0000-0000-0000-000000000000', status: 'assigned' })
  state.baseline = createServer({ cert, key, minVersion: 'TLSv1.2' }, (req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(reply) })
      res.end(reply)
    })
  })
  state.baseline.keepAliveTimeout = 5000
  await new Promise((resolve) => state.baseline.listen(0, '127.0.0.1', resolve))
  state.baselineAgent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: state.ca })
}

async function ours() {
  await runPool(BATCH, CONCURRENCY, async () => {
    const r = deviceRequest()
    const res = await put(state.agent, state.server.endpoints.ports.https, r.path, r.headers, r.body)
    if (res.status !== 200) throw new Error(`e2e bench: register answered ${res.status} ${res.body}`)
  })
}

async function baseline() {
  const port = state.baseline.address().port
  await runPool(BATCH, CONCURRENCY, async () => {
    const r = deviceRequest()
    const res = await put(state.baselineAgent, port, r.path, r.headers, r.body)
    if (res.status !== 200) throw new Error(`e2e bench: baseline answered ${res.status}`)
  })
}

export default {
  file: 'e2e',
  title: 'End to end: HTTPS registrations on loopback',
  notes:
    `A real \`provisio serve\` (SQLite in a temp dir, dev PKI) and a bare node:https baseline, both on loopback; ${CONCURRENCY} keep-alive ` +
    `connections, ${BATCH} registrations per call, each a brand-new device of a symmetric-key group (SAS built per device by the client). ` +
    'Client and servers share this process and the 2 cores, so absolute rates are a floor; the ratio is what compares.',
  cases: [
    {
      name: `HTTPS register → 200 assigned, ${CONCURRENCY} concurrent devices`,
      unit: 'ops',
      opsPerCall: BATCH,
      async: true,
      setup,
      async check() {
        await setup()
        const r = deviceRequest()
        const res = await put(state.agent, state.server.endpoints.ports.https, r.path, r.headers, r.body)
        const body = JSON.parse(res.body)
        if (res.status !== 200 || body.status !== 'assigned') throw new Error(`e2e bench check: ${res.status} ${res.body}`)
      },
      ours,
      peers: { 'bare TLS request/response (node:https)': baseline },
    },
  ],
}
