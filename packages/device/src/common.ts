/** What the Node and browser entries of @provisio/device share. */
export { DeviceError, isDeviceError, isTransientStatus, type DeviceErrorCode, type DeviceErrorOptions } from './errors.js'
export { backoffDelay, type RetryPolicy } from './retry.js'
export {
  symmetricKey,
  tpm,
  softwareTpm,
  SAS_LIFETIME_SECONDS,
  type SymmetricKeyOptions,
  type SymmetricKeySecurity,
  type X509Security,
  type TpmSecurity,
  type TpmOptions,
  type DeviceTpm,
  type SecurityProvider,
} from './security.js'
export { TRANSPORTS, type TransportName, type FetchLike, type TlsOptions } from './transport.js'
export {
  DEFAULT_GLOBAL_ENDPOINT,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_POLLING_INTERVAL_MS,
  USER_AGENT,
  defaultPort,
  type ProvisioningClientOptions,
  type RegisterOptions,
  type RegisterEvents,
  type RegistrationResult,
  type RegistrationState,
} from './client.js'
export { ready } from '@provisio/crypto'
export {
  HUB_API_VERSION,
  telemetryTopic,
  parseTwinResponseTopic,
  type HubClient,
  type HubClientOptions,
  type DeviceTwinDocument,
  type TelemetryOptions,
  type MethodHandler,
  type MethodRequest,
  type MethodResponse,
} from './hub.js'
export { commandTpm, TpmResponseError, type TpmExecute } from './tpm-commands.js'
export { createCertificateRequest, certificateChainPem, type CertificateKeyType, type CertificateRequest } from './certificate-request.js'
