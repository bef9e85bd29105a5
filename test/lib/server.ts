/**
 * Starts a real `provisio serve` in-process for a test: temporary data directory, an ephemeral
 * HTTPS port on loopback, the dev PKI. Microsoft's Node HTTP clients connect to port 443 of the
 * host they are given (docs/protocol.md §11), so `useAsDefaultHttpsAgent` points Node's global
 * https agent at our port and trusts our CA — the clients themselves stay unmodified.
 */
import type * as HttpsModule from 'node:https'
import { createRequire } from 'node:module'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_CONFIG, createLogger, startServer, type RunningServer, type ServeConfig } from '@provisio/server'

// The CommonJS exports object of node:https: `globalAgent` is replaced on it (an ES namespace is read-only).
const https = createRequire(import.meta.url)('node:https') as typeof HttpsModule

export interface TestServer extends RunningServer {
  readonly dataDir: string
  readonly caPem: string
  readonly port: number
  /** Route every default-port https request of this process to the server, trusting its CA. */
  useAsDefaultHttpsAgent(): void
  stop(): Promise<void>
}

export async function startTestServer(overrides: Partial<ServeConfig> = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'provisio-test-'))
  const logs: string[] = []
  const server = await startServer(
    { ...DEFAULT_CONFIG, dataDir, httpsPort: 0, amqpPort: 0, mqttPort: 0, retryAfterSeconds: 1, logLevel: 'debug', ...overrides },
    createLogger('debug', (line) => void logs.push(line)),
  )
  const caPem = readFileSync(server.endpoints.caCertificate, 'utf8')
  const port = server.endpoints.ports.https
  const previous = https.globalAgent
  return Object.assign(Object.create(null) as object, server, {
    dataDir,
    caPem,
    port,
    logs,
    close: server.close,
    useAsDefaultHttpsAgent() {
      // timeout as on Node's default global agent: with it the agent honours the server's
      // Keep-Alive hint and never reuses a socket the server is closing (ECONNRESET otherwise).
      const agent = new https.Agent({ ca: caPem, keepAlive: true, timeout: 5_000 })
      // https.Agent fixes defaultPort to 443 in its constructor; the property is what requests read.
      ;(agent as unknown as { defaultPort: number }).defaultPort = port
      https.globalAgent = agent
    },
    async stop() {
      https.globalAgent.destroy()
      https.globalAgent = previous
      await server.close()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }) as TestServer & { logs: string[] }
}
