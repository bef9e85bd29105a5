/**
 * A real custom-allocation webhook on loopback (docs/protocol.md §8) for interop tests: it records
 * each request's device payload and answers with the first linked hub and `{ echo: payload }` as
 * the payload, so a test can see the device's payload travel to the webhook and back.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface EchoWebhook {
  /** `http://127.0.0.1:<port>/allocate` */
  readonly url: string
  /** Device payloads received, in order. */
  readonly seen: unknown[]
  close(): Promise<void>
}

export async function startEchoWebhook(): Promise<EchoWebhook> {
  const seen: unknown[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      const request = JSON.parse(body) as { deviceRuntimeContext: { payload?: unknown }; linkedHubs: string[] }
      seen.push(request.deviceRuntimeContext.payload)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ iotHubHostName: request.linkedHubs[0], payload: { echo: request.deviceRuntimeContext.payload } }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/allocate`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
