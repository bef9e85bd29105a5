/**
 * The slice of rhea's internal codecs this package uses (rhea ships typings only for its
 * container API, not for lib/frames.js, lib/types.js, lib/message.js). Buffers rhea hands out are
 * Node Buffers; they are declared as Uint8Array so this package never names the Node global.
 */
declare module 'rhea/lib/types.js' {
  /** A typed AMQP value as rhea holds it. */
  export interface Typed {
    readonly typecode: number
    readonly value: unknown
    readonly descriptor?: { readonly value: unknown }
  }
  const types: {
    wrap_binary(bytes: Uint8Array): Typed
    wrap_string(s: string): Typed
    wrap_symbol(s: string): Typed
    wrap_ulong(n: number): Typed
    unwrap(o: unknown): unknown
    wrap_error(fields: { condition: string; description?: string; info?: Record<string, unknown> }): Typed
  }
  export default types
}

declare module 'rhea/lib/util.js' {
  const util: { allocate_buffer(size: number): Uint8Array }
  export default util
}

declare module 'rhea/lib/frames.js' {
  /** A decoded performative: a composite whose fields read through accessors. */
  export interface Performative {
    readonly value: unknown[]
    readonly [field: string]: unknown
  }
  export interface Frame {
    readonly size: number
    readonly type: number
    readonly channel: number
    readonly performative?: Performative
    readonly payload?: Uint8Array
  }
  export interface FrameSpec {
    readonly channel: number
    readonly type: number
    readonly performative: Performative
    readonly payload?: Uint8Array
  }
  const frames: {
    read_frame(buffer: Uint8Array): Frame | null
    write_frame(frame: FrameSpec): Uint8Array
    amqp_frame(channel: number, performative: Performative, payload?: Uint8Array): FrameSpec
    sasl_frame(performative: Performative): FrameSpec
    open(fields: Record<string, unknown>): Performative
    begin(fields: Record<string, unknown>): Performative
    attach(fields: Record<string, unknown>): Performative
    flow(fields: Record<string, unknown>): Performative
    transfer(fields: Record<string, unknown>): Performative
    disposition(fields: Record<string, unknown>): Performative
    detach(fields: Record<string, unknown>): Performative
    end(fields: Record<string, unknown>): Performative
    close(fields: Record<string, unknown>): Performative
    sasl_mechanisms(fields: Record<string, unknown>): Performative
    sasl_init(fields: Record<string, unknown>): Performative
    sasl_challenge(fields: Record<string, unknown>): Performative
    sasl_response(fields: Record<string, unknown>): Performative
    sasl_outcome(fields: Record<string, unknown>): Performative
  }
  export default frames
}

declare module 'rhea/lib/terminus.js' {
  const terminus: {
    unwrap(field: unknown): { readonly address?: unknown } | null
    source(fields: Record<string, unknown>): { described(): unknown }
    target(fields: Record<string, unknown>): { described(): unknown }
  }
  export default terminus
}

declare module 'rhea/lib/message.js' {
  /** A body section as rhea decodes it (data sections: typecode 0x75). */
  export interface Section {
    readonly typecode: number
    readonly content: unknown
    readonly multiple?: boolean
  }
  export interface DecodedMessage {
    readonly correlation_id?: unknown
    readonly message_id?: unknown
    readonly application_properties?: Record<string, unknown>
    readonly message_annotations?: Record<string, unknown>
    readonly body?: unknown
  }
  const message: {
    encode(msg: Record<string, unknown>): Uint8Array
    decode(buffer: Uint8Array): DecodedMessage
    data_section(data: Uint8Array): unknown
    accepted(): { described(): unknown }
    rejected(fields: { error?: unknown }): { described(): unknown }
  }
  export default message
}
