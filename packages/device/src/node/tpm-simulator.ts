/**
 * A TPM behind the Microsoft TPM 2.0 simulator TCP protocol (what azure-iot-security-tpm's tss.js
 * speaks; Provisio's `startTpmSimulator` serves it, in front of the software TPM or swtpm):
 *
 * - platform port (command port + 1): SignalPowerOn (1) and SignalNvOn (11), each acknowledged with
 *   a UINT32 0;
 * - command port: HandShake (15, UINT32 client version 1) → UINT32 server version, UINT32 TPM
 *   properties, UINT32 0; SendCommand (8, UINT8 locality, UINT32 size, command) → UINT32 size,
 *   response, UINT32 0; SessionEnd (20) when closing.
 *
 * Commands go one at a time (the protocol has no request ids).
 */
import { connect, type Socket } from 'node:net'
import { TPM_SIMULATOR, TPM_SIMULATOR_VERSION, encodeSendCommand, uint32s } from '@provisio/tpm'
import { DeviceError } from '../errors.js'
import type { DeviceTpm } from '../security.js'
import { commandTpm } from '../tpm-commands.js'

const MAX_RESPONSE = 8192

/** Options of {@link tpmSimulator}. */
export interface TpmSimulatorOptions {
  /** Default 127.0.0.1. */
  readonly host?: string
  /** Command port (default 2321); the platform port is the next one. */
  readonly port?: number
  /** Skip the power-on signals on the platform port (for a simulator that is already on). */
  readonly skipPowerOn?: boolean
}

/** A socket read as a stream of exact-length chunks. */
class Channel {
  #buffer = Buffer.alloc(0)
  #waiting: { n: number; resolve(b: Buffer): void; reject(e: unknown): void } | undefined
  #error: DeviceError | undefined

  constructor(readonly socket: Socket, where: string) {
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk])
      this.#drain()
    })
    const fail = (why: string) => {
      this.#error ??= new DeviceError('TPM', `TPM simulator ${where}: ${why}`)
      this.#waiting?.reject(this.#error)
      this.#waiting = undefined
    }
    socket.on('error', (e) => fail(e.message))
    socket.on('close', () => fail('connection closed'))
  }

  #drain(): void {
    const w = this.#waiting
    if (w === undefined || this.#buffer.length < w.n) return
    const out = this.#buffer.subarray(0, w.n)
    this.#buffer = this.#buffer.subarray(w.n)
    this.#waiting = undefined
    w.resolve(Buffer.from(out))
  }

  read(n: number): Promise<Buffer> {
    if (this.#error !== undefined) return Promise.reject(this.#error)
    return new Promise((resolve, reject) => {
      this.#waiting = { n, resolve, reject }
      this.#drain()
    })
  }

  async u32(): Promise<number> {
    return (await this.read(4)).readUInt32BE(0)
  }

  async ack(what: string): Promise<void> {
    const code = await this.u32()
    if (code !== 0) throw new DeviceError('TPM', `TPM simulator: ${what} answered ${code}`)
  }
}

function open(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port }, () => {
      socket.off('error', reject)
      resolve(socket)
    })
    socket.once('error', (e) => reject(new DeviceError('TPM', `cannot reach the TPM simulator at ${host}:${port}: ${e.message}`, { cause: e })))
  })
}

/**
 * Connects to a TPM simulator (lazily, on first use) and returns it as a DeviceTpm. `close()` ends
 * the session.
 */
export function tpmSimulator(options: TpmSimulatorOptions = {}): DeviceTpm {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 2321
  let channel: Promise<Channel> | undefined
  let queue: Promise<unknown> = Promise.resolve()

  const connectOnce = () =>
    (channel ??= (async () => {
      if (options.skipPowerOn !== true) {
        const platform = await open(host, port + 1)
        const pc = new Channel(platform, `${host}:${port + 1}`)
        try {
          platform.write(uint32s(TPM_SIMULATOR.SIGNAL_POWER_ON))
          await pc.ack('SignalPowerOn')
          platform.write(uint32s(TPM_SIMULATOR.SIGNAL_NV_ON))
          await pc.ack('SignalNvOn')
        } finally {
          platform.end()
        }
      }
      const socket = await open(host, port)
      const c = new Channel(socket, `${host}:${port}`)
      socket.write(uint32s(TPM_SIMULATOR.HAND_SHAKE, TPM_SIMULATOR_VERSION))
      const serverVersion = await c.u32()
      if (serverVersion < 1) throw new DeviceError('TPM', `TPM simulator speaks protocol version ${serverVersion}`)
      await c.u32() // TPM properties
      await c.ack('HandShake')
      return c
    })())

  const execute = (command: Uint8Array): Promise<Uint8Array> => {
    const run = async () => {
      const c = await connectOnce()
      c.socket.write(encodeSendCommand(command))
      const size = await c.u32()
      if (size > MAX_RESPONSE) throw new DeviceError('TPM', `TPM simulator response of ${size} bytes is over the limit`)
      const response = await c.read(size)
      await c.ack('SendCommand')
      return new Uint8Array(response)
    }
    const result = queue.then(run, run)
    queue = result.catch(() => undefined)
    return result
  }

  return commandTpm(execute, async () => {
    if (channel === undefined) return
    const c = await channel.catch(() => undefined)
    if (c === undefined) return
    await queue
    c.socket.end(uint32s(TPM_SIMULATOR.SESSION_END))
  })
}
