/**
 * The few globals that every JavaScript runtime we target (Node >= 20.19, browsers, workers)
 * provides and that pure packages (layers 0-4 of docs/architecture.md §1) may use. Pure packages compile with
 * `lib: ["ES2022"]` and `types: []`, so Node's and the DOM's globals are type errors there; this
 * file declares only what is universal and side-effect free. Clocks, randomness, timers, fetch
 * and sockets are *not* here on purpose: they are passed in as ports.
 */

declare class TextEncoder {
  readonly encoding: string
  encode(input?: string): Uint8Array
  encodeInto(source: string, destination: Uint8Array): { read: number; written: number }
}

declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean })
  readonly encoding: string
  decode(input?: ArrayBufferView | ArrayBuffer, options?: { stream?: boolean }): string
}

declare namespace WebAssembly {
  type AnyFunction = (...args: never[]) => unknown
  type ImportValue = AnyFunction | Global | Memory | Table | number | bigint
  type Imports = Record<string, Record<string, ImportValue>>
  type ExportValue = AnyFunction | Global | Memory | Table
  type Exports = Record<string, ExportValue>
  type BufferSource = ArrayBufferView | ArrayBuffer

  class Module {
    constructor(bytes: BufferSource)
  }
  class Instance {
    constructor(module: Module, importObject?: Imports)
    readonly exports: Exports
  }
  class Memory {
    constructor(descriptor: { initial: number; maximum?: number; shared?: boolean })
    readonly buffer: ArrayBuffer
    grow(delta: number): number
  }
  class Global {
    constructor(descriptor: { value: string; mutable?: boolean }, v?: unknown)
    value: unknown
    valueOf(): unknown
  }
  class Table {
    readonly length: number
  }
  interface WebAssemblyInstantiatedSource {
    instance: Instance
    module: Module
  }
  function validate(bytes: BufferSource): boolean
  function compile(bytes: BufferSource): Promise<Module>
  function instantiate(module: Module, importObject?: Imports): Promise<Instance>
}
