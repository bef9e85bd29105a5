import type { Server } from 'node:net'
import type { Server as TlsServer, TLSSocket, TlsOptions } from 'node:tls'

/** Oldest TLS version a listener accepts (`--min-tls-version`). */
export type MinTlsVersion = '1.2' | '1.3'

/**
 * The TLS settings every listener shares (HTTPS, MQTTS, AMQPS): TLS 1.2 or newer (1.3 only with
 * `minTlsVersion` 1.3); a client
 * certificate requested but judged by the X.509 verifier, not by TLS (DPS devices may present
 * none, or one chaining to a CA only the enrollment knows); a handshake cut after
 * `handshakeTimeoutMs`; session-ticket keys shared by the processes on a port (`--workers`).
 */
export function serverTlsOptions(o: { readonly key: string; readonly cert: string; readonly ticketKeys?: Buffer; readonly handshakeTimeoutMs?: number; readonly minTlsVersion?: MinTlsVersion }): TlsOptions {
  return {
    key: o.key,
    cert: o.cert,
    ...(o.ticketKeys === undefined ? {} : { ticketKeys: o.ticketKeys }),
    minVersion: o.minTlsVersion === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: o.handshakeTimeoutMs ?? 10_000,
  }
}

/**
 * Starts `server` on `host:port`; a failure says which protocol, which address, and which flag
 * picks another port (EADDRINUSE, EACCES for ports below 1024 without the capability).
 */
export function listenOn(server: Server, port: number, host: string, what: { readonly protocol: string; readonly flag: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const hint =
        error.code === 'EADDRINUSE'
          ? `port ${port} is in use; choose another with ${what.flag}`
          : error.code === 'EACCES'
            ? `port ${port} needs root or CAP_NET_BIND_SERVICE; choose one above 1023 with ${what.flag}`
            : error.message
      reject(new Error(`cannot listen for ${what.protocol} on ${host}:${port}: ${hint}`, { cause: error }))
    }
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
}

/**
 * Closes a TLS connection right after its handshake when `refuse` names a reason for it, judged
 * by the host name the client asked for (SNI: the DPS host or a hub's) and its address. Runs
 * before the listener's own connection handler, so nothing the client sends is read.
 */
export function guardConnections(server: TlsServer, refuse: (servername: string | undefined, address: string) => string | undefined, onRefused: (reason: string, address: string) => void): void {
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    const address = socket.remoteAddress ?? ''
    const servername = typeof socket.servername === 'string' ? socket.servername : undefined
    const reason = refuse(servername, address)
    if (reason === undefined) return
    onRefused(reason, address)
    socket.destroy()
  })
}
