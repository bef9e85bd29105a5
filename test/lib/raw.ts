/**
 * Raw bytes at a real TLS socket, for the hostile-input suites: write what a broken or malicious
 * peer would, collect whatever comes back until the server closes the connection (or a deadline),
 * and split HTTP/1.1 answers out of the bytes.
 */
import { connect, type TLSSocket } from 'node:tls'

export interface RawResult {
  readonly bytes: Buffer
  /** The server closed (or reset) the connection before the deadline. */
  readonly closedByServer: boolean
  readonly error?: string
}

export interface RawOptions {
  /** Give up waiting for the server to close after this (then the client closes). Default 10 s. */
  readonly deadlineMs?: number
  /** Half-close the client's side after writing. */
  readonly endAfterWrite?: boolean
  /** Pause between chunks. */
  readonly gapMs?: number
  /** Stop (the client closes) as soon as the bytes received so far satisfy this. */
  readonly until?: (received: Buffer) => boolean
}

/** Opens TLS to `port`, writes `chunks` in order and collects the answer. */
export function rawTls(port: number, ca: string, chunks: readonly (Buffer | string)[], options: RawOptions = {}): Promise<RawResult> {
  return new Promise((resolve) => {
    const received: Buffer[] = []
    let done = false
    let error: string | undefined
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      void (async () => {
        for (const c of chunks) {
          if (socket.destroyed) return
          socket.write(c)
          if (options.gapMs !== undefined) await new Promise((r) => setTimeout(r, options.gapMs))
        }
        if (options.endAfterWrite === true && !socket.destroyed) socket.end()
      })()
    })
    const finish = (closedByServer: boolean) => {
      if (done) return
      done = true
      clearTimeout(deadline)
      socket.destroy()
      resolve({ bytes: Buffer.concat(received), closedByServer, ...(error === undefined ? {} : { error }) })
    }
    const deadline = setTimeout(() => finish(false), options.deadlineMs ?? 10_000)
    socket.on('data', (c: Buffer) => {
      received.push(c)
      if (options.until?.(Buffer.concat(received)) === true) finish(false)
    })
    socket.on('error', (e) => (error = e.message))
    socket.on('end', () => finish(true))
    socket.on('close', () => finish(true))
  })
}

export interface RawHttpAnswer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/** Splits the HTTP/1.1 answers (Content-Length framed, as our server writes them) out of `bytes`. */
export function parseHttpAnswers(bytes: Buffer): RawHttpAnswer[] {
  const answers: RawHttpAnswer[] = []
  let pos = 0
  while (pos < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', pos, 'latin1')
    if (end < 0) throw new Error(`incomplete HTTP head: ${JSON.stringify(bytes.subarray(pos, pos + 200).toString('latin1'))}`)
    const [statusLine, ...lines] = bytes.toString('latin1', pos, end).split('\r\n')
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)
    if (!m) throw new Error(`not an HTTP status line: ${JSON.stringify(statusLine)}`)
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    const length = Number(headers['content-length'] ?? 0)
    const bodyStart = end + 4
    answers.push({ status: Number(m[1]), headers, body: bytes.toString('utf8', bodyStart, bodyStart + length) })
    pos = bodyStart + length
  }
  return answers
}

export interface RawWsResult extends RawResult {
  readonly closeCode?: number
  readonly closeReason?: string
}

/**
 * Opens a WebSocket to `/$iothub/websocket` with `subprotocol`, sends `messages` as binary
 * messages and collects the binary messages received until the server closes it (or a deadline).
 */
export async function rawWs(port: number, ca: string, subprotocol: string, messages: readonly Buffer[], options: RawOptions = {}): Promise<RawWsResult> {
  const { default: WebSocket } = await import('ws')
  return new Promise((resolve) => {
    const received: Buffer[] = []
    let done = false
    let error: string | undefined
    const ws = new WebSocket(`wss://localhost:${port}/$iothub/websocket`, [subprotocol], { ca })
    const finish = (closedByServer: boolean, closeCode?: number, closeReason?: string) => {
      if (done) return
      done = true
      clearTimeout(deadline)
      ws.terminate()
      resolve({ bytes: Buffer.concat(received), closedByServer, ...(closeCode === undefined ? {} : { closeCode }), ...(closeReason === undefined ? {} : { closeReason }), ...(error === undefined ? {} : { error }) })
    }
    const deadline = setTimeout(() => finish(false), options.deadlineMs ?? 10_000)
    ws.on('open', () => {
      void (async () => {
        for (const m of messages) {
          if (ws.readyState !== ws.OPEN) return
          ws.send(m)
          if (options.gapMs !== undefined) await new Promise((r) => setTimeout(r, options.gapMs))
        }
      })()
    })
    ws.on('message', (data: Buffer) => received.push(Buffer.from(data)))
    ws.on('error', (e) => (error = e.message))
    ws.on('close', (code, reason) => finish(true, code, reason.toString()))
  })
}
