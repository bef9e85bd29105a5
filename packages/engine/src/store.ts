/**
 * The `Store` port: everything the engine persists, keyed by ID scope. Implementations: the
 * in-memory store here, @provisio/store-sqlite, and later PostgreSQL. Every method is atomic on
 * its own; the few multi-row writes the engine needs are single methods with compare-and-set
 * semantics (begin/finish/take over an operation), so a store needs no transaction API and the
 * SQL stays portable (docs/architecture.md §8).
 *
 * Values handed to and returned by a store are treated as immutable by the engine: it never
 * mutates a record it has read or written, so the in-memory store may keep references.
 *
 * Ids are compared case-insensitively: DPS registration ids are case-insensitive
 * (docs/protocol.md §0, §10 item 1), and so are enrollment group ids here. Stores key rows by
 * `id.toLowerCase()` and keep the spelling of the latest write.
 */
import type { IssuedCertificate } from './certificates.js'
import type {
  DeviceRegistrationResult,
  EnrollmentGroup,
  IndividualEnrollment,
  JsonObject,
} from '@provisio/protocol'
import { etagMatches } from '@provisio/protocol'
import type { HubDeviceAuth } from './ports.js'

/** Condition of a conditional write (RFC 9110 §13.1.1-2 semantics). */
export interface WriteCondition {
  /** Write only if the current etag matches (`*` = any existing row). */
  readonly ifMatch?: string
  /** `true`: write only if no row exists (create). */
  readonly ifNoneExists?: boolean
}

/** Outcome of a conditional write or delete. */
export type WriteResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'notFound' | 'exists' | 'etagMismatch'; readonly currentEtag?: string }

const WRITE_OK: WriteResult = Object.freeze({ ok: true as const })

/**
 * The one conditional-write check of every store (memory, SQLite, PostgreSQL): given the etag of
 * the row as it is now, may the write go ahead? `exists` defaults to "there is an etag"; a store
 * whose rows may lack one passes it. `If-Match` is compared by @provisio/protocol's
 * `etagMatches`, so `*`, `"*"`, quoted, unquoted and `W/` tags behave alike in every store.
 */
export function checkWriteCondition(
  currentEtag: string | undefined,
  condition: WriteCondition | undefined,
  exists: boolean = currentEtag !== undefined,
): WriteResult {
  if (condition === undefined) return WRITE_OK
  if (condition.ifNoneExists === true && exists) return currentEtag === undefined ? { ok: false, reason: 'exists' } : { ok: false, reason: 'exists', currentEtag }
  if (condition.ifMatch !== undefined) {
    if (!exists) return { ok: false, reason: 'notFound' }
    if (!etagMatches(condition.ifMatch, currentEtag)) {
      return currentEtag === undefined ? { ok: false, reason: 'etagMismatch' } : { ok: false, reason: 'etagMismatch', currentEtag }
    }
  }
  return WRITE_OK
}

/** A page request: rows whose lower-cased key sorts after `after`, at most `limit` of them. */
export interface PageRequest {
  readonly after?: string
  readonly limit: number
}

/** Registration record: the service view plus what the engine needs to reprovision later. */
export interface RegistrationRecord {
  /** The DPS view (DeviceRegistrationResult: state + attestation sub-object); `etag` is set. */
  readonly state: DeviceRegistrationResult & { etag: string }
  /** Group that admitted the device, when any (query by group, §7 `/registrations/{groupId}/query`). */
  readonly enrollmentGroupId?: string
  /** Hub of the first successful assignment (substatus `reprovisionedToInitialAssignment`). */
  readonly initialHub?: string
  /**
   * Where the device identity lives now (hub host name and device id), kept even when a later
   * attempt failed, so reprovisioning knows what to migrate and which identity to remove.
   */
  readonly lastAssignment?: { readonly hub: string; readonly deviceId: string }
  /** The certificate last issued to the device from its `csr` (docs/protocol.md §1.7). */
  readonly issuedCertificate?: IssuedCertificate
  /**
   * `createdDateTimeUtc` of the enrollment (individual or group) that admitted the device at its
   * last assignment. An enrollment deleted and created again under the same id has a new one, so
   * its devices start afresh (substatus initialAssignment, its own initial twin) instead of
   * inheriting the history of the enrollment that went before.
   */
  readonly enrollmentCreated?: string
  /** Last refused attempt of an existing device, with the detailed reason. */
  readonly lastRefusal?: { readonly atMs: number; readonly errorCode: number; readonly reason: string }
}

/** Status of an operation (§1.3 EnrollmentStatus restricted to what operations reach). */
export type OperationStatus = 'assigning' | 'assigned' | 'failed' | 'disabled'

/** Everything needed to run (or, after a crash, re-run) an assignment. */
export interface AssignmentRequest {
  readonly enrollment: { readonly kind: 'individual' | 'group'; readonly id: string }
  readonly auth: HubDeviceAuth
  /** Attestation part of the result (`symmetricKey`, `x509` or `tpm` sub-object, §1.3). */
  readonly attestation: Pick<DeviceRegistrationResult, 'symmetricKey' | 'x509' | 'tpm'>
  readonly payload?: JsonObject
  readonly forceRegistration: boolean
  readonly apiVersion: string
  /** The checked `csr` (base64 DER) to issue a certificate for (docs/protocol.md §1.7). */
  readonly csr?: string
}

/** One registration operation. A store keeps at most one per device (the latest). */
export interface OperationRecord {
  readonly operationId: string
  /** As the device sent it. */
  readonly registrationId: string
  readonly status: OperationStatus
  readonly createdAtMs: number
  readonly updatedAtMs: number
  /** While `assigning`: who runs the assignment, and until when; after that anyone may take over. */
  readonly leaseOwner: string
  readonly assigningUntilMs: number
  readonly request: AssignmentRequest
  /** Set once final. */
  readonly result?: DeviceRegistrationResult
}

/** Result of beginOperation. */
export type BeginOperationResult =
  | {
      readonly created: true
      /**
       * The device's registration record, read in the same statement as the begin (optional: stores
       * with a round trip per call return it so the assignment need not read it again; `registration`
       * undefined inside means there is none).
       */
      readonly prefetched?: { readonly registration: RegistrationRecord | undefined }
    }
  | { readonly created: false; readonly existing: OperationRecord }

/** A CA certificate registered at the instance (X.509 `caReferences`, §6); used by the x509 verifier. */
export interface CaCertificateRecord {
  readonly name: string
  /** PEM or base64 DER. */
  readonly certificate: string
  readonly isVerified: boolean
  /**
   * Proof-of-possession code issued by generateVerificationCode (§6 D-pop) and not yet used: the
   * CA is verified by a certificate whose subject CN is this code, signed by the CA's key.
   */
  readonly verificationCode?: string
  readonly etag: string
  readonly createdAtMs: number
  readonly updatedAtMs: number
}

/**
 * A TPM challenge issued by a first leg (tpm-verifier.ts, docs/protocol.md §5.2): the HMAC key K
 * the activation blob carries, the EK and SRK it was built for, and — once a second leg answered
 * it — the one token it admits. Kept in the store so that both legs of a device may reach
 * different server processes (`--workers`, several instances on PostgreSQL).
 */
export interface TpmChallengeRecord {
  /** Unique id (random). */
  readonly challengeId: string
  /** As the device sent it. */
  readonly registrationId: string
  /** K, base64: the second leg's SAS must be HMAC-SHA256 with it. */
  readonly key: string
  /** The EK and SRK (base64 TPM2B_PUBLIC, as the device sent them) the blob was built for. */
  readonly endorsementKey: string
  readonly storageRootKey: string
  readonly issuedAtMs: number
  /** An unanswered challenge can be answered until then. */
  readonly expiresAtMs: number
  /** Set once answered: when, and the exact token that answered it. */
  readonly answeredAtMs?: number
  readonly answeredToken?: string
  /**
   * Until when the store keeps the record (`expiresAtMs` while unanswered; the answer's lifetime
   * after): a record whose `keepUntilMs` is not after "now" is never returned and may be deleted.
   */
  readonly keepUntilMs: number
}

/** The part of a TPM challenge that never changes: what SQL stores keep as the row's JSON body. */
export type TpmChallengeBody = Omit<TpmChallengeRecord, 'answeredAtMs' | 'answeredToken' | 'keepUntilMs'>

/** A TPM challenge split for a SQL row: the unchanging body (to serialise) and the columns an answer updates. */
export function tpmChallengeBody(c: TpmChallengeRecord): TpmChallengeBody {
  return { challengeId: c.challengeId, registrationId: c.registrationId, key: c.key, endorsementKey: c.endorsementKey, storageRootKey: c.storageRootKey, issuedAtMs: c.issuedAtMs, expiresAtMs: c.expiresAtMs }
}

/**
 * A TPM challenge back from a SQL row: the parsed body plus the columns (numbers, or their
 * decimal strings as node-postgres returns BIGINT).
 */
export function tpmChallengeFromRow(row: { readonly body: string; readonly keep_until: number | string; readonly answered_at: number | string | null; readonly answered_token: string | null }): TpmChallengeRecord {
  const body = JSON.parse(row.body) as TpmChallengeBody
  return {
    ...body,
    ...(row.answered_token === null ? {} : { answeredAtMs: Number(row.answered_at), answeredToken: row.answered_token }),
    keepUntilMs: Number(row.keep_until),
  }
}

/** {@link Store.getEnrollmentForAttestation}'s answer. */
export interface EnrollmentForAttestation {
  readonly enrollment: IndividualEnrollment | undefined
  readonly groupsRevision: number
}

/** One enrollment of a {@link Store.putEnrollments} batch and the condition its write is under. */
export interface EnrollmentPut {
  /** `enrollment.etag` is the new etag, already set by the engine. */
  readonly enrollment: IndividualEnrollment
  readonly condition?: WriteCondition
}

/** Persistence port of the engine. All methods are atomic individually. */
export interface Store {
  // Individual enrollments (key: registrationId, case-insensitive)
  getEnrollment(idScope: string, registrationId: string): Promise<IndividualEnrollment | undefined>
  /** `enrollment.etag` is the new etag, already set by the engine. */
  putEnrollment(idScope: string, enrollment: IndividualEnrollment, condition?: WriteCondition): Promise<WriteResult>
  deleteEnrollment(idScope: string, registrationId: string, condition?: WriteCondition): Promise<WriteResult>
  /**
   * Many enrollments in one transaction (the import and bulk-create path, docs/architecture.md
   * §8). Each item's condition is checked against the rows as they are at that point of the batch
   * (earlier items included: the second of two creates of one id answers `exists`); an item whose
   * condition fails is not written, and the others still are. The batch commits as a whole, or —
   * when the store fails — not at all (the promise rejects and nothing of it stays). Results are in
   * item order. Optional: without it the engine writes the items one by one with `putEnrollment`.
   */
  putEnrollments?(idScope: string, items: readonly EnrollmentPut[]): Promise<WriteResult[]>
  /** Ordered by lower-cased registrationId. */
  listEnrollments(idScope: string, page: PageRequest): Promise<IndividualEnrollment[]>

  // Enrollment groups (key: enrollmentGroupId, case-insensitive)
  getGroup(idScope: string, enrollmentGroupId: string): Promise<EnrollmentGroup | undefined>
  putGroup(idScope: string, group: EnrollmentGroup, condition?: WriteCondition): Promise<WriteResult>
  deleteGroup(idScope: string, enrollmentGroupId: string, condition?: WriteCondition): Promise<WriteResult>
  /** Ordered by lower-cased enrollmentGroupId. */
  listGroups(idScope: string, page: PageRequest): Promise<EnrollmentGroup[]>
  /**
   * A number that changes whenever any group of the scope is written or deleted, so callers may
   * cache derived data (group key schedules) and re-read groups only when it moves.
   */
  groupsRevision(idScope: string): Promise<number>
  /**
   * What attestation reads first, in one read: the device's individual enrollment (if any) and
   * the scope's groups revision. Optional: a store that pays a round trip per call (PostgreSQL)
   * implements it; without it the engine calls `getEnrollment`, then `groupsRevision` if needed.
   */
  getEnrollmentForAttestation?(idScope: string, registrationId: string): Promise<EnrollmentForAttestation>

  // Registration records (key: registrationId, case-insensitive)
  getRegistration(idScope: string, registrationId: string): Promise<RegistrationRecord | undefined>
  putRegistration(idScope: string, record: RegistrationRecord, condition?: WriteCondition): Promise<WriteResult>
  deleteRegistration(idScope: string, registrationId: string, condition?: WriteCondition): Promise<WriteResult>
  /** Records admitted by a group (case-insensitive group id), ordered by lower-cased registrationId. */
  listRegistrationsByGroup(idScope: string, enrollmentGroupId: string, page: PageRequest): Promise<RegistrationRecord[]>
  /** All records, ordered by lower-cased registrationId. */
  listRegistrations(idScope: string, page: PageRequest): Promise<RegistrationRecord[]>

  // Operations
  getOperation(idScope: string, operationId: string): Promise<OperationRecord | undefined>
  /** The device's latest operation. */
  getDeviceOperation(idScope: string, registrationId: string): Promise<OperationRecord | undefined>
  /**
   * The id of the device's operation if it is `assigning` under a lease unexpired at `nowMs`
   * (a cheap check on the register hot path; no record is materialised).
   */
  getActiveOperationId(idScope: string, registrationId: string, nowMs: number): Promise<string | undefined>
  /**
   * Atomically: if the device's latest operation is `assigning` with a lease that has not expired
   * at `nowMs`, return it (idempotent re-register); otherwise make `operation` the device's
   * operation (replacing any previous one).
   */
  beginOperation(idScope: string, operation: OperationRecord, nowMs: number): Promise<BeginOperationResult>
  /**
   * Atomically: if operation `final.operationId` is still `assigning` and leased by `leaseOwner`,
   * store `final` and, when given, write `registration` (unconditionally). Returns false when the
   * lease was lost (another instance took over), in which case nothing is written.
   */
  finishOperation(idScope: string, final: OperationRecord, leaseOwner: string, registration?: RegistrationRecord): Promise<boolean>
  /**
   * One-transaction register (the assignment ran inline, nothing was written before): atomically,
   * unless the device's current operation is another one still `assigning` under an unexpired
   * lease at `nowMs`, make `final` the device's operation and write `registration`. Returns false
   * (writing nothing) when another operation holds the device.
   */
  commitOperation(idScope: string, final: OperationRecord, registration: RegistrationRecord | undefined, nowMs: number): Promise<boolean>
  /**
   * Atomically: if the operation is `assigning` and leased by `expectedOwner`, lease it to
   * `newOwner` until `assigningUntilMs` (take-over after a crash, or renewal). Returns the updated
   * record or undefined when the condition failed.
   */
  leaseOperation(
    idScope: string,
    operationId: string,
    expectedOwner: string,
    newOwner: string,
    assigningUntilMs: number,
    nowMs: number,
  ): Promise<OperationRecord | undefined>

  // TPM challenges (keyed by challengeId; listed per device, registrationId case-insensitive)
  /**
   * Keeps `challenge` (not yet answered). Atomically with it: the device's kept challenges beyond
   * the newest `perDevice` (by issue time, this one included) are dropped, and so may be any
   * record, of any device, whose `keepUntilMs` is not after `nowMs`.
   */
  addTpmChallenge(idScope: string, challenge: TpmChallengeRecord, perDevice: number, nowMs: number): Promise<void>
  /** The device's challenges kept at `nowMs` (`keepUntilMs > nowMs`), oldest issued first. */
  listTpmChallenges(idScope: string, registrationId: string, nowMs: number): Promise<TpmChallengeRecord[]>
  /**
   * Atomically: if the challenge is kept at `nowMs` and not answered yet, record `token` as its
   * answer (at `nowMs`) and keep it until `keepUntilMs`. Returns the record as it is afterwards —
   * answered by this call, or earlier by another token (compare `answeredToken`) — or undefined
   * when it is not kept (unknown, expired, or its answer lapsed).
   */
  answerTpmChallenge(idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number): Promise<TpmChallengeRecord | undefined>

  // CA certificates (placeholder for the x509 verifier's `caReferences`)
  getCaCertificate(idScope: string, name: string): Promise<CaCertificateRecord | undefined>
  putCaCertificate(idScope: string, record: CaCertificateRecord, condition?: WriteCondition): Promise<WriteResult>
  deleteCaCertificate(idScope: string, name: string, condition?: WriteCondition): Promise<WriteResult>
  listCaCertificates(idScope: string): Promise<CaCertificateRecord[]>
}
