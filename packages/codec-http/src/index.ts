/**
 * @provisio/codec-http — the sans-IO HTTP codec of the DPS device and service APIs: a request
 * (method, target, headers, body, client certificates) in, a DeviceApi/ServiceApi call, a
 * response out. The Node adapter in @provisio/server only moves bytes.
 */
export { bodyLimitFor, createDpsHttpHandler, type DpsHttpOptions, type DpsHttpHandler } from './handler.js'
export {
  DEFAULT_HTTP_LIMITS,
  parseTarget,
  header,
  type HttpRequest,
  type HttpResponse,
  type HttpLimits,
  type ParsedTarget,
} from './message.js'
export { errorResponse, jsonResponse } from './response.js'
export { HeaderBlockMeter, type HeaderMeterVerdict } from './header-meter.js'
export { deviceEvidence } from './device.js'
export { SERVICE_ROOTS } from './service.js'
export { CERTIFICATES_ROOT, serveCertificates } from './certificates.js'
export { HUB_ROOTS, serveHubRegistry, hubErrorResponse } from './hub-registry.js'
export { MAX_TELEMETRY_BYTES, isDeviceTelemetryRoute, serveHubDeviceTelemetry, type HubDeviceHttpEvent } from './hub-device.js'
