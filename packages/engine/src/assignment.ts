/**
 * Running one assignment: allocation, reprovisioning, hub identity, registration record
 * (docs/protocol.md §7 ReprovisionPolicy, §8, §10 item 8; docs/architecture.md §3).
 *
 * Reprovisioning on a repeat registration of an assigned device:
 *
 * | reprovisionPolicy                          | hub                        | device data on a hub change            | substatus on a hub change |
 * |--------------------------------------------|----------------------------|----------------------------------------|---------------------------|
 * | updateHubAssignment + migrateDeviceData    | re-allocated               | twin (tags, desired) read and carried  | deviceDataMigrated        |
 * | updateHubAssignment, no migrateDeviceData  | re-allocated               | reset to the enrollment's initial twin | deviceDataReset           |
 * | neither ("never reprovision")              | kept (forceRegistration re-allocates) | —                           | unchanged                 |
 *
 * Moving back to the hub of the first assignment reports `reprovisionedToInitialAssignment`. On a
 * hub change the old identity is deleted after the new one exists. Staying on the same hub keeps
 * the data and the substatus. A webhook's initialTwin overrides migration (§8).
 */
import { ProvisioError, isProvisioError } from '@provisio/protocol'
import type {
  DeviceRegistrationResult,
  DeviceRuntimeContext,
  IndividualEnrollment,
  InitialTwin,
  JsonObject,
  RegistrationSubstatus,
} from '@provisio/protocol'
import type { MatchedEnrollment } from './attestation.js'
import type { EngineContext } from './context.js'
import { issueFromCsr } from './certificates.js'
import { newEtag } from './ids.js'
import type { InstanceConfig, LinkedHub } from './instances.js'
import type { HubTarget, Twin } from './ports.js'
import { hideKeys } from './service.js'
import type { OperationRecord, RegistrationRecord } from './store.js'
import { formatDpsTimestamp } from '@provisio/protocol'

/** Result of runAssignment: the final operation, or undefined when the lease was lost. */
export type AssignmentOutcome = OperationRecord | undefined

function findHub(instance: InstanceConfig, hostName: string | undefined): LinkedHub | undefined {
  if (hostName === undefined) return undefined
  const wanted = hostName.toLowerCase()
  return instance.linkedHubs.find((h) => h.hostName.toLowerCase() === wanted)
}

function target(hub: LinkedHub): HubTarget {
  return { hostName: hub.hostName, connectionString: hub.connectionString }
}

/** Tags and desired properties of a twin: what migration carries (reported properties belong to the device). */
function migratable(twin: Twin): Twin {
  const out: Twin = {}
  if (twin.tags !== undefined) out.tags = twin.tags
  if (twin.properties?.desired !== undefined) out.properties = { desired: stripTwinMetadata(twin.properties.desired) }
  return out
}

/** `$metadata` and `$version` are hub bookkeeping, not data to copy. */
function stripTwinMetadata(desired: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(desired)) if (k !== '$metadata' && k !== '$version') out[k] = v
  return out
}

async function loadEnrollment(ctx: EngineContext, idScope: string, op: OperationRecord): Promise<MatchedEnrollment | undefined> {
  const ref = op.request.enrollment
  if (ref.kind === 'individual') {
    const value = await ctx.store.getEnrollment(idScope, ref.id)
    return value && { kind: 'individual', value }
  }
  const value = await ctx.store.getGroup(idScope, ref.id)
  return value && { kind: 'group', value }
}

/**
 * How the final state is written: `finish` completes an operation stored (and leased) before the
 * assignment; `inline` commits operation and record in one store call after an assignment that
 * ran inside `register` with nothing written before (one transaction per register on SQLite).
 */
export type PersistMode = 'finish' | 'inline'

/**
 * Runs the assignment of `op` (which this engine leases as `leaseOwner`) and stores the final
 * operation and registration record. Never throws: failures become a `failed` operation.
 */
export async function runAssignment(
  ctx: EngineContext,
  instance: InstanceConfig,
  op: OperationRecord,
  leaseOwner: string,
  matched?: MatchedEnrollment,
  mode: PersistMode = 'finish',
  prefetched?: { readonly registration: RegistrationRecord | undefined },
): Promise<AssignmentOutcome> {
  const idScope = instance.idScope
  let record: RegistrationRecord | undefined
  let enrollment: MatchedEnrollment | undefined
  try {
    enrollment = matched ?? (await loadEnrollment(ctx, idScope, op))
    // The record as the store read it with the operation's begin, when it did (one round trip less).
    record = prefetched !== undefined ? prefetched.registration : await ctx.store.getRegistration(idScope, op.registrationId)
    if (!enrollment) {
      throw new ProvisioError('ENROLLMENT_NOT_FOUND', `${op.request.enrollment.kind} enrollment '${op.request.enrollment.id}' was deleted before the assignment ran`)
    }
    return await assign(ctx, instance, op, leaseOwner, enrollment, record, mode)
  } catch (error) {
    const e = isProvisioError(error)
      ? error
      : new ProvisioError('INTERNAL_ERROR', `assignment failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    return fail(ctx, instance, op, leaseOwner, record, enrollment, e, e.deviceMessage ?? e.reason, mode)
  }
}

async function assign(
  ctx: EngineContext,
  instance: InstanceConfig,
  op: OperationRecord,
  leaseOwner: string,
  enrollment: MatchedEnrollment,
  record: RegistrationRecord | undefined,
  mode: PersistMode,
): Promise<AssignmentOutcome> {
  const idScope = instance.idScope
  const e = enrollment.value
  const individual = enrollment.kind === 'individual' ? (e as IndividualEnrollment) : undefined
  if (record !== undefined && leftByEarlierEnrollment(record, enrollment)) record = undefined
  const previous = record?.lastAssignment
  // deviceId: the enrollment's deviceId, else the registrationId (§0); a group device keeps the
  // spelling of its first registration so case variants do not create a second identity.
  const deviceId = individual ? (individual.deviceId ?? individual.registrationId) : (previous?.deviceId ?? record?.state.deviceId ?? op.registrationId)
  const reprovision = e.reprovisionPolicy ?? { updateHubAssignment: true, migrateDeviceData: true }
  const previousHub = findHub(instance, previous?.hub)

  let hub: LinkedHub
  let substatus: RegistrationSubstatus
  let initialTwin: InitialTwin | undefined
  let migratedTwin: Twin | undefined
  let payload: JsonObject | undefined
  let moving = false

  const keep = previous !== undefined && previousHub !== undefined && !reprovision.updateHubAssignment && !op.request.forceRegistration
  if (keep) {
    hub = previousHub
    substatus = record?.state.substatus ?? 'initialAssignment'
  } else {
    const policy = e.allocationPolicy ?? instance.allocationPolicy ?? 'hashed'
    const faults = instance.faults
    const runtime: DeviceRuntimeContext = {
      registrationId: op.registrationId,
      ...(previous ? { currentIotHubHostName: previous.hub, currentDeviceId: previous.deviceId } : {}),
      // Public attestation details only: never the TPM activation blob.
      ...(op.request.attestation.symmetricKey !== undefined ? { symmetricKey: op.request.attestation.symmetricKey } : {}),
      ...(op.request.attestation.x509 !== undefined ? { x509: op.request.attestation.x509 } : {}),
      ...(op.request.payload !== undefined ? { payload: op.request.payload } : {}),
    }
    const verdict = await ctx.allocator({
      policy,
      instance,
      linkedHubs: instance.linkedHubs,
      // The webhook sees the enrollment without secrets (§8); other policies never send it.
      enrollment: policy !== 'custom' ? enrollment : enrollment.kind === 'individual' ? { kind: 'individual', value: hideKeys(enrollment.value) } : { kind: 'group', value: hideKeys(enrollment.value) },
      runtime,
      ...(ctx.fetch ? { fetch: ctx.fetch } : {}),
      ...(faults?.webhookFailureStatus !== undefined ? { forcedWebhookStatus: faults.webhookFailureStatus } : {}),
    })
    if (!verdict.ok) {
      throw new ProvisioError(verdict.code, verdict.reason, { deviceMessage: verdict.errorMessage })
    }
    const chosen = findHub(instance, verdict.hostName)
    if (!chosen) {
      throw new ProvisioError('NO_HUB_ASSIGNABLE', `allocation (${policy}) chose ${verdict.hostName}, which is not linked to ID scope ${idScope}`)
    }
    hub = chosen
    payload = verdict.payload
    const sameHub = previous !== undefined && previous.hub.toLowerCase() === hub.hostName.toLowerCase() && previous.deviceId === deviceId
    if (!previous) {
      substatus = 'initialAssignment'
      initialTwin = verdict.initialTwin ?? e.initialTwin
    } else if (sameHub) {
      substatus = record?.state.substatus ?? 'initialAssignment'
      initialTwin = verdict.initialTwin // the webhook's twin always applies (§8)
    } else {
      moving = true
      if (verdict.initialTwin !== undefined) {
        initialTwin = verdict.initialTwin
        substatus = 'deviceDataReset'
      } else if (reprovision.migrateDeviceData && previousHub) {
        const twin = await ctx.hubGateway.getTwin({ hub: target(previousHub), deviceId: previous.deviceId })
        if (twin) migratedTwin = migratable(twin)
        else initialTwin = e.initialTwin // nothing to migrate: start from the enrollment
        substatus = 'deviceDataMigrated'
      } else {
        initialTwin = e.initialTwin
        substatus = 'deviceDataReset'
      }
      if (record?.initialHub !== undefined && record.initialHub.toLowerCase() === hub.hostName.toLowerCase()) {
        substatus = 'reprovisionedToInitialAssignment'
      }
    }
  }

  await ctx.hubGateway.createOrUpdateDevice({
    hub: target(hub),
    deviceId,
    auth: op.request.auth,
    iotEdge: e.capabilities?.iotEdge ?? false,
    ...(initialTwin !== undefined ? { initialTwin } : {}),
    ...(migratedTwin !== undefined ? { migratedTwin } : {}),
    // No earlier assignment on record: the identity is most likely new on this hub.
    ...(previous === undefined ? { expectNew: true } : {}),
  })
  if (moving && previous && previousHub) {
    // The old identity goes only after the new one exists: a crash between the two leaves the device reachable.
    await ctx.hubGateway.deleteDevice({ hub: target(previousHub), deviceId: previous.deviceId })
  }

  const now = ctx.clock.now()
  const issued = op.request.csr !== undefined ? await issue(ctx, idScope, op.registrationId, op.request.csr, now) : undefined
  const stamp = formatDpsTimestamp(now)
  const result: DeviceRegistrationResult & { etag: string } = {
    registrationId: op.registrationId,
    createdDateTimeUtc: record?.state.createdDateTimeUtc ?? stamp,
    assignedHub: hub.hostName,
    deviceId,
    status: 'assigned',
    substatus,
    lastUpdatedDateTimeUtc: stamp,
    etag: newEtag(ctx.random),
    ...op.request.attestation,
    ...(payload !== undefined ? { payload } : {}),
  }
  const groupId = enrollment.kind === 'group' ? enrollment.value.enrollmentGroupId : undefined
  const registration: RegistrationRecord = {
    // The chain belongs to the assigned answer only, never to a status lookup (§1.3).
    state: result,
    ...(groupId !== undefined ? { enrollmentGroupId: groupId } : {}),
    initialHub: record?.initialHub ?? hub.hostName,
    lastAssignment: { hub: hub.hostName, deviceId },
    ...(issued !== undefined ? { issuedCertificate: issued.issued } : record?.issuedCertificate !== undefined ? { issuedCertificate: record.issuedCertificate } : {}),
    ...(e.createdDateTimeUtc !== undefined ? { enrollmentCreated: e.createdDateTimeUtc } : {}),
  }
  const final: OperationRecord = {
    ...op,
    status: 'assigned',
    updatedAtMs: now,
    result: issued !== undefined ? { ...result, issuedCertificateChain: issued.chain } : result,
  }
  const kept = await persist(ctx, idScope, final, leaseOwner, registration, now, mode)
  if (!kept) return undefined
  ctx.emit('registrationAssigned', {
    idScope,
    registrationId: op.registrationId,
    operationId: op.operationId,
    assignedHub: hub.hostName,
    deviceId,
    substatus,
    enrollment: op.request.enrollment,
    atMs: now,
  })
  return final
}

/** Issues the certificate for the operation's `csr`; a CA gone since the register call is a failure. */
async function issue(ctx: EngineContext, idScope: string, registrationId: string, csr: string, nowMs: number): Promise<Awaited<ReturnType<typeof issueFromCsr>>> {
  const authority = ctx.certificateAuthorities?.forInstance(idScope)
  if (authority === undefined) throw new ProvisioError('CSR_INVALID', `ID scope ${idScope} issues no certificates (no certificate authority is configured)`)
  try {
    return await issueFromCsr(authority, ctx.random, registrationId, csr, nowMs)
  } catch (error) {
    if (isProvisioError(error)) throw error
    throw new ProvisioError('INTERNAL_ERROR', `certificate issuance failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
}

/**
 * Whether the record was written for an earlier enrollment of the same kind and id, one since
 * deleted and created again (its `createdDateTimeUtc` differs): then the new enrollment's devices
 * start afresh, as if no record were there (docs/protocol.md §13.3). Records from before the
 * stamp was kept, and records of another enrollment, keep their history.
 */
function leftByEarlierEnrollment(record: RegistrationRecord, enrollment: MatchedEnrollment): boolean {
  const created = enrollment.value.createdDateTimeUtc
  if (record.enrollmentCreated === undefined || created === undefined || record.enrollmentCreated === created) return false
  if (enrollment.kind === 'individual') return record.enrollmentGroupId === undefined
  return record.enrollmentGroupId !== undefined && record.enrollmentGroupId.toLowerCase() === enrollment.value.enrollmentGroupId.toLowerCase()
}

async function fail(
  ctx: EngineContext,
  instance: InstanceConfig,
  op: OperationRecord,
  leaseOwner: string,
  record: RegistrationRecord | undefined,
  enrollment: MatchedEnrollment | undefined,
  error: ProvisioError,
  errorMessage: string,
  mode: PersistMode,
): Promise<AssignmentOutcome> {
  const now = ctx.clock.now()
  const stamp = formatDpsTimestamp(now)
  const result: DeviceRegistrationResult & { etag: string } = {
    registrationId: op.registrationId,
    createdDateTimeUtc: record?.state.createdDateTimeUtc ?? stamp,
    status: 'failed',
    errorCode: error.errorCode,
    errorMessage,
    lastUpdatedDateTimeUtc: stamp,
    etag: newEtag(ctx.random),
  }
  const groupId = enrollment?.kind === 'group' ? enrollment.value.enrollmentGroupId : record?.enrollmentGroupId
  const registration: RegistrationRecord = {
    state: result,
    ...(groupId !== undefined ? { enrollmentGroupId: groupId } : {}),
    ...(record?.initialHub !== undefined ? { initialHub: record.initialHub } : {}),
    ...(record?.lastAssignment !== undefined ? { lastAssignment: record.lastAssignment } : {}),
    ...(record?.enrollmentCreated !== undefined ? { enrollmentCreated: record.enrollmentCreated } : {}),
  }
  const final: OperationRecord = { ...op, status: 'failed', updatedAtMs: now, result }
  let kept = false
  try {
    kept = await persist(ctx, instance.idScope, final, leaseOwner, registration, now, mode)
  } catch {
    // The store itself failed: the operation stays `assigning` until its lease expires and a
    // poll takes it over (docs/architecture.md §8).
    return undefined
  }
  if (!kept) return undefined
  ctx.emit('registrationFailed', {
    idScope: instance.idScope,
    registrationId: op.registrationId,
    operationId: op.operationId,
    stage: 'assignment',
    errorCode: error.errorCode,
    reason: error.reason,
    enrollment: op.request.enrollment,
    atMs: now,
  })
  return final
}

function persist(
  ctx: EngineContext,
  idScope: string,
  final: OperationRecord,
  leaseOwner: string,
  registration: RegistrationRecord,
  nowMs: number,
  mode: PersistMode,
): Promise<boolean> {
  return mode === 'inline'
    ? ctx.store.commitOperation(idScope, final, registration, nowMs)
    : ctx.store.finishOperation(idScope, final, leaseOwner, registration)
}
