/**
 * DPS requests and answers as AMQP messages (docs/protocol.md §4, §11): a request's
 * `iotdps-operation-type` becomes a DeviceApi call; an answer is one data section holding the
 * RegistrationOperationStatus JSON with the request's correlation-id and both `retry-after` and
 * `Retry-After`; a refusal is the rejected outcome's error (catalog condition, JSON error body).
 * Delivery, credit and settlement stay with the session (session.ts).
 */
import {
  ERROR_CATALOG,
  ProvisioError,
  acceptApiVersion,
  formatDpsTimestamp,
  readRegisterBody,
  toErrorBody,
  wrapUnknown,
  type DeviceApi,
  type DeviceResponse,
  type Evidence,
  type RegistrationOperationStatus,
} from '@provisio/protocol'
import message from 'rhea/lib/message.js'
import types from 'rhea/lib/types.js'
import { AmqpCodecError, reasonOf } from './errors.js'
import type { Link } from './links.js'
import type { Identity } from './sasl.js'
import { checkEncoding, concat, toRheaBytes } from './wire.js'

const DATA_SECTION = 0x75
const utf8 = new TextEncoder()

export type DpsRequestMessage = ReturnType<typeof message.decode>

/** The error of a rejected outcome. */
export interface Rejection {
  condition: string
  description: string
  info?: Record<string, unknown>
}

/** Decodes the sections of a request message after checking their encoding. */
export function decodeRequest(bytes: Uint8Array): DpsRequestMessage {
  checkEncoding(bytes, 0, bytes.length)
  try {
    return message.decode(toRheaBytes(bytes))
  } catch (error) {
    throw new AmqpCodecError('DECODE_ERROR', `message sections do not decode: ${reasonOf(error)}`)
  }
}

/** The evidence a request on `link` carries: the SASL credential, else the TLS client certificate chain. */
export function evidenceOf(identity: Identity | undefined, clientCertificates: readonly Uint8Array[] | undefined, link: Link): Evidence {
  if (identity?.kind === 'credential') return identity.evidence
  const chain = clientCertificates ?? []
  if (chain.length > 0) return { type: 'x509', chain }
  throw new ProvisioError('CREDENTIALS_MISSING', `connection for ${link.idScope}/registrations/${link.registrationId} presented no SASL credentials and no TLS client certificate`)
}

/** Answers one request message: register or operation status on the device API (§4). */
export async function answerRequest(device: DeviceApi, link: Link, evidence: Evidence, msg: DpsRequestMessage): Promise<DeviceResponse<RegistrationOperationStatus>> {
  const props = msg.application_properties ?? {}
  const operation = props['iotdps-operation-type']
  if (operation === 'iotdps-register') {
    const apiVersion = acceptApiVersion(link.apiVersion, 'device').version
    const registration = readRegisterBody(bodyBytes(msg.body), link.registrationId, { idFrom: 'link address' })
    const force = props['iotdps-forceRegistration']
    const answer = await device.register({
      idScope: link.idScope,
      registrationId: link.registrationId,
      evidence,
      apiVersion,
      ...(registration.payload === undefined ? {} : { payload: registration.payload }),
      ...(registration.csr === undefined ? {} : { csr: registration.csr }),
      ...(force === true || force === 'true' ? { forceRegistration: true } : {}),
    })
    if (answer.status === 401) throw new ProvisioError('ATTESTATION_MISMATCH', 'register produced a TPM challenge on a connection that finished SASL; TPM devices use the TPM SASL mechanism (§5.3)')
    return answer
  }
  if (operation === 'iotdps-get-operationstatus') {
    const operationId = props['iotdps-operation-id']
    if (typeof operationId !== 'string' || operationId === '') throw new ProvisioError('BAD_REQUEST', 'iotdps-get-operationstatus without an iotdps-operation-id string property')
    return device.operationStatus({ idScope: link.idScope, registrationId: link.registrationId, operationId, evidence })
  }
  throw new ProvisioError('BAD_REQUEST', `application property iotdps-operation-type is ${JSON.stringify(String(operation).slice(0, 60))}; expected iotdps-register or iotdps-get-operationstatus`)
}

/** The answer message: status JSON in one data section, correlation-id echoed, Retry-After both ways. */
export function encodeAnswer(correlationId: unknown, response: DeviceResponse<RegistrationOperationStatus>): Uint8Array {
  const properties: Record<string, unknown> = {}
  if (response.retryAfterSeconds !== undefined) {
    const seconds = Math.max(1, Math.ceil(response.retryAfterSeconds))
    // Node and C read `retry-after`, .NET reads `Retry-After` (§4): both.
    properties['retry-after'] = seconds
    properties['Retry-After'] = seconds
  }
  const msg: Record<string, unknown> = {
    application_properties: properties,
    body: message.data_section(toRheaBytes(utf8.encode(JSON.stringify(response.body)))),
  }
  const cid = wrapCorrelationId(correlationId)
  if (cid !== undefined) msg['correlation_id'] = cid
  return message.encode(msg)
}

/** The rejected outcome's error (§4): catalog condition, JSON error body, Retry-After in info. */
export function rejectionOf(error: unknown, trackingId: string, now: number): Rejection {
  const err = wrapUnknown(error)
  const entry = ERROR_CATALOG[err.code]
  const body = toErrorBody(err, trackingId, formatDpsTimestamp(now))
  const out: Rejection = { condition: entry.amqpCondition, description: JSON.stringify(body) }
  if (entry.transient) {
    const seconds = Math.max(1, Math.ceil(err.retryAfterSeconds ?? 1))
    out.info = { 'retry-after': seconds, 'Retry-After': seconds }
  }
  return out
}

/** The request body as bytes: data section(s) (Node, C), or an amqp-value string (.NET/Node polls). */
function bodyBytes(body: unknown): Uint8Array {
  if (body === undefined || body === null) return new Uint8Array(0)
  if (typeof body === 'string') return body.trimStart().startsWith('{') ? utf8.encode(body) : new Uint8Array(0)
  const section = body as { typecode?: unknown; content?: unknown; multiple?: unknown }
  if (section.typecode === DATA_SECTION) {
    if (section.multiple === true && Array.isArray(section.content)) {
      let all: Uint8Array = new Uint8Array(0)
      for (const part of section.content) if (part instanceof Uint8Array) all = concat(all, part)
      return all
    }
    if (section.content instanceof Uint8Array) return section.content
  }
  throw new ProvisioError('VALIDATION_FAILED', 'request body is neither a data section nor an amqp-value string (§4)')
}

/** Re-wraps a decoded correlation-id so it goes back with its type (string, ulong, uuid, binary). */
function wrapCorrelationId(value: unknown): unknown {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string' || typeof value === 'number') return value
  if (value instanceof Uint8Array) return value.length === 16 ? value : types.wrap_binary(value)
  return undefined
}
