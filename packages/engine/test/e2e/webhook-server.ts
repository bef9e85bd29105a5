/**
 * A real custom-allocation webhook (docs/protocol.md §8) on a loopback node:http server: it reads
 * the AllocationRequest, records it, and answers with the hub named in the device payload
 * (`target`), an initialTwin on first assignments only, and a payload echo.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { AllocationRequest } from '@provisio/protocol'
import type { Fetch } from '../../src/index.js'

export interface WebhookServer {
  readonly url: string
  readonly requests: AllocationRequest[]
  /** Status to answer with instead of 200 (undefined = 200). */
  failWith: number | undefined
  close(): Promise<void>
}

export async function startWebhook(): Promise<WebhookServer> {
  const requests: AllocationRequest[] = []
  const state = { failWith: undefined as number | undefined }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AllocationRequest
      requests.push(body)
      if (state.failWith !== undefined) {
        res.writeHead(state.failWith, { 'content-type': 'text/plain' }).end('nope')
        return
      }
      const ctx = body.deviceRuntimeContext
      const target = typeof ctx.payload?.['target'] === 'string' ? (ctx.payload['target'] as string) : body.linkedHubs[0]!
      const answer = {
        iotHubHostName: target,
        // A webhook twin overrides migration (§8): give one only on first assignment so the
        // reprovisioning policy decides on later ones.
        ...(ctx.currentIotHubHostName === undefined ? { initialTwin: { tags: { from: 'webhook' }, properties: { desired: { webhook: true } } } } : {}),
        payload: { echo: ctx.registrationId, url: req.url },
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/api/allocate?code=function-key`,
    requests,
    get failWith() {
      return state.failWith
    },
    set failWith(v) {
      state.failWith = v
    },
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  }
}

/** The engine's Fetch port over Node's global fetch, with the timeout it asks for. */
export const nodeFetch: Fetch = async (url, init) => {
  const response = await fetch(url, { method: init.method, headers: init.headers, body: init.body, signal: AbortSignal.timeout(init.timeoutMs) })
  return { status: response.status, text: () => response.text() }
}
