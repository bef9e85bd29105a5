/**
 * The small DPS service API client of `provisio simulate` (simulate.ts): PUTs of enrollments and
 * enrollment groups over HTTPS, signed with the service SAS of a connection string.
 *
 * Connections are kept alive between calls. A kept connection can be closed by the server (its
 * keep-alive timeout) at the moment the client reuses it; the client only learns it once its
 * request is on the wire, as "socket hang up" (ECONNRESET). That happens whenever the event loop
 * was busy past the server's idle timeout (software TPMs and certificates are made on it between
 * calls), so a request that failed that way on a reused connection is sent again, once, on a
 * connection of its own: every call here is an idempotent PUT.
 */
import { Agent, request } from 'node:https'
import { buildSasToken, parseDpsServiceConnectionString } from '@provisio/protocol'

/** Service API version of the calls. */
const SERVICE_API_VERSION = '2021-10-01'
/** Longest wait for one answer. */
const REQUEST_TIMEOUT_MS = 30_000

export interface ServiceClientOptions {
  readonly host: string
  readonly port: number
  /** PEM of the CA to trust (Provisio's dev CA); absent: the system's. */
  readonly ca?: string
  readonly connectionString: string
}

/** PUT `path` with `body` as JSON; rejects with the status and body of an answer ≥ 300. */
export type ServicePut = (path: string, body: unknown) => Promise<void>

export interface ServiceClient {
  readonly put: ServicePut
  /** Closes the kept connections. */
  close(): void
}

interface Answer {
  readonly status: number
  readonly body: string
}

export function createServiceClient(options: ServiceClientOptions): ServiceClient {
  const cs = parseDpsServiceConnectionString(options.connectionString)
  const agent = new Agent({ keepAlive: true, maxSockets: 16, ...(options.ca === undefined ? {} : { ca: options.ca }) })
  /** One request, on a kept connection or (`fresh`) a new one of its own. */
  const send = (path: string, text: string, token: string, fresh: boolean): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          host: options.host,
          port: options.port,
          method: 'PUT',
          path: `${path}?api-version=${SERVICE_API_VERSION}`,
          ...(fresh ? { agent: false as const, ...(options.ca === undefined ? {} : { ca: options.ca }) } : { agent }),
          timeout: REQUEST_TIMEOUT_MS,
          headers: { authorization: token, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8').slice(0, 2000) }))
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)))
      req.on('error', (error: NodeJS.ErrnoException) => reject(Object.assign(error, { reusedSocket: req.reusedSocket })))
      req.end(text)
    })
  return {
    async put(path, body) {
      const token = buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt: Math.floor(Date.now() / 1000) + 600 })
      const text = JSON.stringify(body)
      let answer: Answer
      try {
        answer = await send(path, text, token, false)
      } catch (error) {
        const e = error as NodeJS.ErrnoException & { reusedSocket?: boolean }
        // The server closed the kept connection as the request went out: nothing was served.
        if (e.reusedSocket !== true || e.code !== 'ECONNRESET') throw new Error(`service API PUT ${path} failed: ${e.message}`, { cause: error })
        answer = await send(path, text, token, true).catch((again: unknown) => {
          throw new Error(`service API PUT ${path} failed: ${(again as Error).message}`, { cause: again })
        })
      }
      if (answer.status >= 300) throw new Error(`service API PUT ${path} answered ${answer.status}: ${answer.body}`)
    },
    close: () => agent.destroy(),
  }
}
