// Types of native-client.mjs (used from TypeScript by test/bench).
import type { ChildProcess } from 'node:child_process'

export interface NativeTarget {
  readonly port: number
  /** PEM of the CA the server's certificate chains to (written to a temporary file)… */
  readonly ca?: string
  /** …or the path of such a PEM file. */
  readonly caFile?: string
}

/** The Node load client's batch message, limited to what the native client does. */
export interface NativeBatch {
  readonly cmd: 'batch'
  readonly transport: 'https' | 'mqtt'
  readonly targets: readonly NativeTarget[]
  readonly idScope: string
  /** Registration ids are `${prefix}${8-digit sequence}`, counted per prefix from 1. */
  readonly prefix: string
  readonly count: number
  readonly concurrency: number
  readonly credential?: 'sas'
  /** Base64 enrollment-group key; each device's key is derived from it. */
  readonly groupKey: string
  /** Offer the last TLS session ticket of each target (true) or do a full handshake each time. */
  readonly resume: boolean
  /** Per step (connect, CONNACK, SUBACK, answer); default 20,000 ms. */
  readonly timeoutMs?: number
  readonly [other: string]: unknown
}

export interface NativeAnswer {
  /** ms per device, from the start of its connect to its close. */
  readonly samples: number[]
  /** Handshakes of the batch that resumed a TLS session. */
  readonly resumed: number
  /** user + system CPU ms of the client process so far. */
  readonly cpuMs: number
}

export interface NativeClient {
  readonly child: ChildProcess
  ask(message: NativeBatch): Promise<NativeAnswer>
  cpuMs(): number | undefined
  stop(): Promise<void>
  describe(): string
}

/** Builds bench/native/dps-load.c if needed (cached by source hash); returns the binary's path. */
export function buildNativeClient(): string
export function startNativeClient(): NativeClient
