import type { Server } from 'node:net'

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
