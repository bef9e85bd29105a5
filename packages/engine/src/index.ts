/**
 * @provisio/engine — the transport-free provisioning service: enrollments, registrations,
 * attestation, allocation, reprovisioning, operations, rate limits, fault injection, events.
 */
export { createEngine, type Engine, type EngineOptions, type ServiceAuthorization } from './engine.js'
export type { Clock, Random, Fetch, FetchRequestInit, FetchResponse, Timers, HubGateway, HubTarget, HubDeviceAuth, HubDeviceSpec, Twin, CertificateAuthorities, IssuingAuthority, CredentialPolicy, IssuerSignatureAlgorithm } from './ports.js'
export { checkCsr, issueFromCsr, type IssuedCertificate } from './certificates.js'
export type {
  Store,
  EnrollmentForAttestation,
  EnrollmentPut,
  WriteCondition,
  WriteResult,
  PageRequest,
  RegistrationRecord,
  OperationRecord,
  OperationStatus,
  AssignmentRequest,
  BeginOperationResult,
  CaCertificateRecord,
  TpmChallengeRecord,
  TpmChallengeBody,
} from './store.js'
export { checkWriteCondition, tpmChallengeBody, tpmChallengeFromRow } from './store.js'
export { MemoryStore } from './memory-store.js'
export type {
  Evidence,
  VerifierKind,
  AttestationVerifier,
  AttestationContext,
  AttestationOutcome,
  MatchedEnrollment,
} from './attestation.js'
export { verifierKindOf } from './attestation.js'
export { createSymmetricKeyVerifier, type SymmetricKeyVerifierOptions } from './symmetric-key.js'
export { createTpmVerifier, type TpmVerifierOptions } from './tpm-verifier.js'
export { createX509Verifier, type X509VerifierOptions } from './x509-verifier.js'
export { createCaCertificateApi, trustedCaCertificates, MAX_CA_CERTIFICATES, type CaCertificateApiOptions } from './ca-certificates.js'
export type { Allocator, AllocationCall, AllocationVerdict } from './allocation-port.js'
export type { AllocationExplanation } from '@provisio/allocation'
export type { RegisterRequest, OperationStatusRequest, RegistrationStatusRequest, DeviceResponse, TpmChallengeResponse } from './device.js'
export type { ConditionalOptions, EnrollmentCreateResult } from './service.js'
export { BULK_MAX_ITEMS } from './service.js'
export type { QueryOptions, QueryPage } from './query.js'
export {
  SERVICE_PERMISSIONS,
  type ServicePermission,
  type ServiceAccessPolicy,
  type LinkedHub,
  type InstanceConfig,
} from './instances.js'
export { DPS_DEFAULT_RATE_LIMITS, TokenBuckets, type RateLimit, type RateLimitOptions, type TakeResult } from './rate-limit.js'
export type { FaultProfile, FaultSchedule } from './faults.js'
export {
  TypedEmitter,
  type EngineEventMap,
  type Listener,
  type RegistrationAttemptedEvent,
  type RegistrationAssignedEvent,
  type RegistrationFailedEvent,
  type EnrollmentChangedEvent,
  type RegistrationDeletedEvent,
  type ListenerErrorEvent,
  type EnrollmentRef,
  type EvidenceType,
} from './events.js'
export { formatDpsTimestamp } from '@provisio/protocol'
export { newOperationId, newEtag, newSymmetricKey, etagMatches } from './ids.js'
