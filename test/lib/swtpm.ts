/**
 * Debian's swtpm (libtpms, a real TPM 2.0 implementation) for tests: one instance on a free
 * port pair with a temporary state directory, started cleared (`not-need-init,startup-clear`).
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** True when a command is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** swtpm is installed (CI installs it; tests skip without it only outside CI). */
export const swtpmAvailable = hasCommand('swtpm')

function freePortPair(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => {
        const t = createServer()
        t.once('error', () => resolve(freePortPair()))
        t.listen(port + 1, '127.0.0.1', () => t.close(() => resolve(port)))
      })
    })
    s.on('error', reject)
  })
}

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy()
      resolve(true)
    })
    s.on('error', () => resolve(false))
  })
}

export interface Swtpm {
  /** Raw TPM command port (the control port is port + 1). */
  readonly port: number
  stop(): void
}

/** Starts swtpm and waits until its command port accepts connections. */
export async function startSwtpm(): Promise<Swtpm> {
  const dir = mkdtempSync(join(tmpdir(), 'provisio-swtpm-'))
  const port = await freePortPair()
  const child = spawn(
    'swtpm',
    ['socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, '--flags', 'not-need-init,startup-clear'],
    { stdio: 'ignore' },
  )
  let up = false
  for (let i = 0; i < 100 && !up; i++) {
    up = await reachable(port)
    if (!up) await new Promise((r) => setTimeout(r, 100))
  }
  const stop = () => {
    child.kill()
    rmSync(dir, { recursive: true, force: true })
  }
  if (!up) {
    stop()
    throw new Error(`swtpm did not open port ${port}`)
  }
  return { port, stop }
}
