/**
 * A TCP front for the software TPM (@provisio/tpm) that speaks the Microsoft TPM 2.0 simulator
 * protocol (docs/protocol.md §11), so Microsoft's TPM client (tss.js in azure-iot-security-tpm)
 * and other simulator clients can use it:
 *
 * - command port (default 2321): every request starts with a big-endian UINT32 code.
 *   HandShake (15): UINT32 client version → UINT32 server version (1), UINT32 TPM properties, ack 0.
 *   SendCommand (8): UINT8 locality, UINT32 size, command bytes → UINT32 size, response, ack 0.
 *   SessionEnd (20) and Stop (21): ack 0 (Stop also stops the listeners), then the connection ends.
 * - platform port (command port + 1): SignalPowerOn (1), SignalPowerOff (2), SignalNvOn (11),
 *   SignalNvOff (12), SignalReset… each answered with ack 0; power on after power off restarts the
 *   TPM (transient state lost, persistent objects kept).
 *
 * Sizes are bounded by MAX_COMMAND_SIZE; an unknown request code or an oversized command ends the
 * connection (the simulator does the same).
 *
 * The TPM behind the front is a backend: our software TPM by default, or `swtpmBackend`, a bridge
 * to swtpm's raw command socket (swtpm speaks plain TPM commands, not the simulator protocol,
 * §11), so simulator clients can use a real TPM 2.0 implementation.
 */
import { connect, createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { MAX_COMMAND_SIZE, SoftwareTpm, TPM_SIMULATOR, TPM_SIMULATOR_VERSION, encodeSendCommandAnswer, uint32s } from '@provisio/tpm'

const { SIGNAL_POWER_ON, SIGNAL_POWER_OFF, SEND_COMMAND, SIGNAL_NV_ON, SIGNAL_NV_OFF, HAND_SHAKE, SIGNAL_RESET, SESSION_END, STOP } = TPM_SIMULATOR
/** TPM properties bits of the handshake: the simulator reports "TPM in simulator" style flags; 0 is accepted. */
const TPM_PROPERTIES = 0

/** The TPM behind the front: executes one TPM 2.0 command, returns its response. */
export interface TpmBackend {
  execute(command: Uint8Array): Uint8Array | Promise<Uint8Array>
  /** Platform power cycle (transient state lost). */
  restart?(): void
  close?(): void
}

/** Options of startTpmSimulator. */
export interface TpmSimulatorOptions {
  /** Another TPM to serve (e.g. swtpmBackend); `tpm`/`seed` are ignored then. */
  readonly backend?: TpmBackend
  /** The software TPM to serve; a fresh one from `seed` when omitted. */
  readonly tpm?: SoftwareTpm
  /** Seed of a fresh TPM (≥ 16 bytes). */
  readonly seed?: Uint8Array
  /** Command port; 0 picks a free pair (command, command + 1). Default 2321. */
  readonly port?: number
  readonly host?: string
}

/** A running simulator front. */
export interface TpmSimulator {
  /** The software TPM served, unless another backend was given. */
  readonly tpm: SoftwareTpm | undefined
  readonly host: string
  /** Command port; the platform port is `port + 1`. */
  readonly port: number
  close(): Promise<void>
}

/** Reads big-endian framed requests from a socket; `handle` returns false to stop. */
function framed(socket: Socket, handle: (take: (n: number) => Buffer | undefined) => boolean | 'wait'): void {
  let buffered = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    for (;;) {
      let used = 0
      let short = false
      const take = (n: number): Buffer | undefined => {
        if (buffered.length - used < n) {
          short = true
          return undefined
        }
        const out = buffered.subarray(used, used + n)
        used += n
        return out
      }
      const verdict = handle(take)
      if (short || verdict === 'wait') return
      buffered = buffered.subarray(used)
      if (verdict === false) {
        socket.end()
        return
      }
      if (buffered.length === 0) return
    }
  })
  socket.on('error', () => socket.destroy())
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

/** Starts the command and platform listeners over a software TPM. */
export async function startTpmSimulator(options: TpmSimulatorOptions = {}): Promise<TpmSimulator> {
  const tpm = options.backend ? undefined : (options.tpm ?? new SoftwareTpm({ seed: options.seed ?? new Uint8Array(32) }))
  const backend: TpmBackend = options.backend ?? {
    execute: (command) => tpm!.execute(command),
    restart: () => tpm!.restart(),
  }
  const host = options.host ?? '127.0.0.1'
  const sockets = new Set<Socket>()
  let powered = true

  const command = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    // Commands of one connection run one after another, answers in order.
    let queue: Promise<void> = Promise.resolve()
    framed(socket, (take) => {
      const code = take(4)?.readUInt32BE(0)
      if (code === undefined) return 'wait'
      switch (code) {
        case HAND_SHAKE: {
          if (take(4) === undefined) return 'wait'
          socket.write(uint32s(TPM_SIMULATOR_VERSION, TPM_PROPERTIES, 0))
          return true
        }
        case SEND_COMMAND: {
          const head = take(5)
          if (head === undefined) return 'wait'
          const size = head.readUInt32BE(1)
          if (size > MAX_COMMAND_SIZE) return false
          const body = take(size)
          if (body === undefined) return 'wait'
          const bytes = new Uint8Array(body)
          queue = queue.then(async () => {
            try {
              const response = await backend.execute(bytes)
              if (!socket.destroyed) socket.write(encodeSendCommandAnswer(response))
            } catch {
              socket.destroy()
            }
          })
          return true
        }
        case SESSION_END:
          return false
        case STOP:
          socket.write(uint32s(0))
          void close()
          return false
        default:
          return false
      }
    })
  })

  const platform = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    framed(socket, (take) => {
      const code = take(4)?.readUInt32BE(0)
      if (code === undefined) return 'wait'
      switch (code) {
        case SIGNAL_POWER_ON:
          if (!powered) backend.restart?.()
          powered = true
          break
        case SIGNAL_POWER_OFF:
          powered = false
          break
        case SIGNAL_RESET:
          backend.restart?.()
          break
        case SIGNAL_NV_ON:
        case SIGNAL_NV_OFF:
          break
        case SESSION_END:
          return false
        default:
          return false
      }
      socket.write(uint32s(0))
      return true
    })
  })

  const wanted = options.port ?? 2321
  let port = await listen(command, wanted, host)
  try {
    await listen(platform, port + 1, host)
  } catch (error) {
    if (wanted !== 0) {
      command.close()
      throw error
    }
    // Port 0: the neighbour of the picked port was taken; try a few other pairs.
    let bound = false
    for (let i = 0; i < 20 && !bound; i++) {
      command.close()
      port = await listen(command, 0, host)
      bound = await listen(platform, port + 1, host).then(
        () => true,
        () => false,
      )
    }
    if (!bound) throw error
  }

  let closing: Promise<void> | undefined
  function close(): Promise<void> {
    closing ??= (async () => {
      for (const s of sockets) s.destroy()
      backend.close?.()
      await Promise.all([command, platform].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
    })()
    return closing
  }

  return { tpm, host, port, close }
}

/**
 * A backend that forwards each command to swtpm's raw TPM socket (`swtpm socket --server
 * type=tcp,port=N`): write the command, read the 10-byte response header, then the rest of the
 * size it announces (TPM 2.0 Part 1 §18). One command at a time over one connection.
 */
export function swtpmBackend(options: { host?: string; port: number }): TpmBackend {
  const socket = connect(options.port, options.host ?? '127.0.0.1')
  let buffered = Buffer.alloc(0)
  let waiting: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | undefined
  let failure: Error | undefined
  let queue: Promise<unknown> = Promise.resolve()
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    if (waiting === undefined || buffered.length < 10) return
    const size = buffered.readUInt32BE(2)
    if (size < 10 || size > MAX_COMMAND_SIZE) {
      waiting.reject(new Error(`swtpm answered a response of size ${size}`))
      waiting = undefined
      return
    }
    if (buffered.length < size) return
    const response = new Uint8Array(buffered.subarray(0, size))
    buffered = buffered.subarray(size)
    const w = waiting
    waiting = undefined
    w.resolve(response)
  })
  const fail = (error: Error) => {
    failure = error
    waiting?.reject(error)
    waiting = undefined
  }
  socket.on('error', fail)
  socket.on('close', () => fail(new Error('swtpm connection closed')))
  return {
    execute(command) {
      const run = queue.then(
        () =>
          new Promise<Uint8Array>((resolve, reject) => {
            if (failure) return reject(failure)
            waiting = { resolve, reject }
            socket.write(command)
          }),
      )
      queue = run.catch(() => undefined)
      return run
    },
    close() {
      socket.destroy()
    },
  }
}
