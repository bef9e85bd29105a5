/**
 * The ports through which the engine reaches the outside world (docs/architecture.md §1: layers 0-4 take clock,
 * randomness, fetch and stores as arguments). Node adapters (layer 5) implement them; tests pass
 * deterministic fakes.
 */

import type { IssuerSignatureAlgorithm } from '@provisio/x509'

/** Wall clock. */
export interface Clock {
  /** Milliseconds since the Unix epoch; fractions are allowed and give 100 ns timestamps. */
  now(): number
}

/** Cryptographically strong randomness (keys, operation ids, etags). */
export interface Random {
  /** `n` fresh random bytes. */
  bytes(n: number): Uint8Array
}

/** Minimal request shape the engine needs from a `fetch` implementation (custom allocation webhooks). */
export interface FetchRequestInit {
  method: 'POST'
  headers: Record<string, string>
  body: string
  /** Milliseconds after which the implementation must abort and reject. */
  timeoutMs: number
}

/** Minimal response shape the engine reads. */
export interface FetchResponse {
  readonly status: number
  text(): Promise<string>
}

/** An HTTP client: the WHATWG `fetch` subset above, with a timeout the implementation enforces. */
export type Fetch = (url: string, init: FetchRequestInit) => Promise<FetchResponse>

/**
 * Optional timers port. Only used to bound how long `register` waits for an assignment before it
 * answers 202 `assigning` (EngineOptions.assignmentBudgetMs); without it the engine either waits
 * for the assignment to finish (budget > 0) or never waits (budget 0).
 */
export interface Timers {
  /**
   * Resolves after `ms` milliseconds. `until`, when given, settles once nobody waits for the delay
   * any more (the assignment finished first); an implementation should then drop its timer, or
   * every register would leave one pending for the whole budget.
   */
  delay(ms: number, until?: Promise<unknown>): Promise<void>
}

/** The hub port and its shapes live in @provisio/protocol (hub.ts), shared with @provisio/hub's REST gateway. */
export type { HubTarget, HubDeviceAuth, Twin, HubDeviceSpec, HubGateway } from '@provisio/protocol'

/** Signature algorithms of an issuing CA (the x509 package builds the certificate it signs). */
export type { IssuerSignatureAlgorithm }

/** What an instance's CA issues (docs/protocol.md §1.7): the credential policy. */
export interface CredentialPolicy {
  /** Validity of issued certificates, whole days, 7-90. */
  readonly validityDays: number
  /** Key types accepted in CSRs: `ecdsa-p256`, `ecdsa-p384`, `rsa` (2048-4096 bits). */
  readonly keyTypes: readonly ('ecdsa-p256' | 'ecdsa-p384' | 'rsa')[]
}

/**
 * The issuing certificate authority of one DPS instance (docs/protocol.md §1.7). The engine builds
 * each certificate; only `sign` touches the CA's key, which stays with the implementation.
 */
export interface IssuingAuthority {
  /** DER: the issuing CA's certificate first, then its issuers up to and including the root. */
  readonly chain: readonly Uint8Array[]
  readonly signatureAlgorithm: IssuerSignatureAlgorithm
  readonly policy: CredentialPolicy
  /** Signs a DER TBSCertificate; the signature value as X.509 carries it (ECDSA: DER r, s). */
  sign(tbs: Uint8Array): Promise<Uint8Array>
}

/** Which CA issues for which instance. */
export interface CertificateAuthorities {
  /** The CA of `idScope`, or undefined when that instance issues no certificates. */
  forInstance(idScope: string): IssuingAuthority | undefined
}
