/**
 * Attestation dispatch (docs/architecture.md §3): the engine hands the device's
 * evidence to the verifier registered for its kind and gets back either the enrollment that admits
 * the device, with the credentials the hub identity must carry, or a refusal with a detailed
 * reason. Verifiers for X.509 and TPM live in their own packages and plug in here.
 */
import type {
  DeviceRegistrationResult,
  EnrollmentGroup,
  Evidence,
  IndividualEnrollment,
  ProvisioError,
} from '@provisio/protocol'
import type { EnrollmentRef } from './events.js'
import type { InstanceConfig } from './instances.js'
import type { HubDeviceAuth } from './ports.js'
import type { AssignmentRequest, Store } from './store.js'

/** What a device presents (the codecs' contract, @provisio/protocol api.ts). */
export type { Evidence }

/** Verifier kinds, named after AttestationMechanism.type. */
export type VerifierKind = 'symmetricKey' | 'x509' | 'tpm'

/** Verifier kind that handles a piece of evidence. */
export function verifierKindOf(evidence: Evidence): VerifierKind {
  switch (evidence.type) {
    case 'sas':
      return 'symmetricKey'
    case 'x509':
      return 'x509'
    case 'tpm':
      return 'tpm'
  }
}

/** The enrollment that admitted a device. */
export type MatchedEnrollment =
  | { readonly kind: 'individual'; readonly value: IndividualEnrollment }
  | { readonly kind: 'group'; readonly value: EnrollmentGroup }

/** What a verifier is given. */
export interface AttestationContext {
  readonly idScope: string
  /** As the device sent it. */
  readonly registrationId: string
  /** Lower-cased (registration ids are case-insensitive, §0). */
  readonly registrationKey: string
  readonly evidence: Evidence
  readonly instance: InstanceConfig
  readonly store: Store
  readonly nowMs: number
  /** Allowed clock skew for token expiry (D-access warns about drift). */
  readonly clockSkewSeconds: number
}

/** A verifier's verdict. */
export type AttestationOutcome =
  | {
      readonly ok: true
      readonly enrollment: MatchedEnrollment
      /** Credentials of the hub identity (§2.2: the device's own, possibly derived, key). */
      readonly auth: HubDeviceAuth
      /** Attestation sub-object of the DeviceRegistrationResult (§1.3). */
      readonly attestation: Pick<DeviceRegistrationResult, 'symmetricKey' | 'x509' | 'tpm'>
      /** Detail for events, e.g. "individual enrollment 'dev1', secondary key". */
      readonly detail: string
    }
  | {
      readonly ok: false
      /** Device sees `errorCode` (401002 …); `reason` explains it (which enrollment, which key, why). */
      readonly error: ProvisioError
      /** The enrollment concerned, when one was identified. */
      readonly enrollment?: EnrollmentRef
      /** The device proved its identity but its enrollment is disabled: its record becomes `disabled`. */
      readonly disabled?: boolean
      /** TPM first leg: the challenge to send back with HTTP 401 (§5.2). */
      readonly challenge?: { readonly authenticationKey: string; readonly keyName: string }
    }

/** A pluggable attestation verifier. */
export interface AttestationVerifier {
  readonly kind: VerifierKind
  /** Finds the enrollment that admits the device, or explains why none does. Never throws for bad evidence. */
  attest(context: AttestationContext): Promise<AttestationOutcome>
  /**
   * Re-authenticates a device polling an operation this verifier admitted, from what the
   * operation recorded (cheaper than a full `attest`). Returns undefined when the evidence is
   * good. Without it the engine runs `attest` again.
   */
  verifyRepeat?(context: AttestationContext, request: AssignmentRequest): Promise<ProvisioError | undefined>
}
