/**
 * The DPS HTTP handler: one function from {@link HttpRequest} to {@link HttpResponse}, serving
 * the device API (§1) and the service API (§7) on one listener. Paths tell them apart: the
 * service API's first segment is `enrollments`, `enrollmentGroups` or `registrations`; device
 * paths start with an ID scope.
 *
 * Sans-IO: no sockets, no timers, no clock of its own. Every failure becomes the DPS error body
 * (§1.5); nothing thrown escapes.
 */
import { ProvisioError, isProvisioError } from '@provisio/protocol'
import type { CaCertificateApi, DeviceApi, ServiceApi } from '@provisio/protocol'
import { CERTIFICATES_ROOT, serveCertificates } from './certificates.js'
import { serveDevice } from './device.js'
import { HUB_ROOTS, hubErrorResponse, isMethodRoute, serveHubRegistry } from './hub-registry.js'
import { isDeviceTelemetryRoute, isTelemetryPath, serveHubDeviceTelemetry, type HubDeviceHttpEvent } from './hub-device.js'
import type { HubDeviceApi, HubRegistryApi } from '@provisio/protocol'
import { DEFAULT_HTTP_LIMITS, parseTarget, type HttpLimits, type HttpRequest, type HttpResponse } from './message.js'
import { errorResponse } from './response.js'
import { SERVICE_ROOTS, serveService } from './service.js'

/** What the handler needs. */
export interface DpsHttpOptions {
  readonly device: DeviceApi
  readonly service: ServiceApi
  /** The registry REST API of embedded hubs (`/devices`, `/twins`), when this server embeds hubs. */
  readonly hub?: HubRegistryApi
  /**
   * The device side of embedded hubs, for their HTTPS device API (`POST /devices/{id}/messages/events`,
   * hub-device.ts); omitted: not served.
   */
  readonly hubDevice?: HubDeviceApi
  /** Told of every hub device request served or refused (metrics, logs). */
  readonly onHubDeviceEvent?: (event: HubDeviceHttpEvent) => void
  /** CA certificates with proof of possession (`/certificates/…`, certificates.ts); omitted: not served. */
  readonly certificates?: CaCertificateApi
  /** Milliseconds since the epoch, for error-body timestamps. */
  readonly clock: { now(): number }
  /** A fresh tracking id per request (`x-ms-request-id`, error body `trackingId`). */
  readonly trackingId: () => string
  readonly limits?: Partial<HttpLimits>
}

/** A request handler; it never rejects. */
export type DpsHttpHandler = (request: HttpRequest) => Promise<HttpResponse>

const KNOWN_METHODS = new Set(['GET', 'PUT', 'POST', 'DELETE', 'PATCH'])

/**
 * The body limit of the route a request target names, for the adapter that reads the body before
 * the handler runs: a direct method call may carry IoT Hub's 128 KB payload, every other route
 * (and a target that does not parse, which the handler refuses) the common limit.
 */
export function bodyLimitFor(target: string, limits: HttpLimits = DEFAULT_HTTP_LIMITS): number {
  try {
    const segments = parseTarget(target, limits).segments
    if (isTelemetryPath(segments)) return limits.maxTelemetryBodyBytes
    return isMethodRoute(segments) ? limits.maxMethodBodyBytes : limits.maxBodyBytes
  } catch {
    return limits.maxBodyBytes
  }
}

/** Creates the handler. */
export function createDpsHttpHandler(options: DpsHttpOptions): DpsHttpHandler {
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...options.limits }
  return async (request) => {
    const trackingId = options.trackingId()
    let hubRoute = false
    let serviceRoute = false
    try {
      if (!KNOWN_METHODS.has(request.method)) {
        const reason = `method ${JSON.stringify(request.method.slice(0, 20))} is not served`
        throw new ProvisioError('METHOD_NOT_ALLOWED', reason, { deviceMessage: reason })
      }
      const target = parseTarget(request.target, limits)
      if (target.segments.length === 0) throw new ProvisioError('NOT_FOUND', 'no resource at "/"')
      const root = target.segments[0]!.toLowerCase()
      const hubDeviceRoute = options.hubDevice !== undefined && isDeviceTelemetryRoute(request.method, target.segments)
      hubRoute = hubDeviceRoute || (options.hub !== undefined && HUB_ROOTS.has(root))
      const maxBody = hubDeviceRoute ? limits.maxTelemetryBodyBytes : hubRoute && isMethodRoute(target.segments) ? limits.maxMethodBodyBytes : limits.maxBodyBytes
      if (request.body.length > maxBody) {
        const reason = `request body is ${request.body.length} bytes, over the limit of ${maxBody}`
        throw new ProvisioError('PAYLOAD_TOO_LARGE', reason, { deviceMessage: reason })
      }
      serviceRoute = SERVICE_ROOTS.has(root) || root === CERTIFICATES_ROOT
      const served = hubDeviceRoute
        ? await serveHubDeviceTelemetry(options.hubDevice!, request, target, options.onHubDeviceEvent)
        : hubRoute
        ? await serveHubRegistry(options.hub!, request, target, limits)
        : root === CERTIFICATES_ROOT && options.certificates !== undefined
          ? await serveCertificates(options.service, options.certificates, request, target, limits)
          : SERVICE_ROOTS.has(root)
            ? await serveService(options.service, request, target, limits)
            : await serveDevice(options.device, request, target, limits)
      if (served === undefined) throw new ProvisioError('NOT_FOUND', `no route for ${request.method} ${describePath(target.segments)}`)
      if (served === 'method') {
        const reason = `${request.method} is not served on ${describePath(target.segments)}`
        throw new ProvisioError('METHOD_NOT_ALLOWED', reason, { deviceMessage: reason })
      }
      served.headers['x-ms-request-id'] = trackingId
      return served
    } catch (error) {
      if (hubRoute) return hubErrorResponse(error, trackingId, options.clock.now())
      return errorResponse(serviceRoute ? withOwnReason(error) : error, trackingId, options.clock.now())
    }
  }
}

/**
 * Service API callers hold a service key; a 400 about their own request body tells them which
 * field and rule failed (device refusals stay generic, protocol errors.ts).
 */
function withOwnReason(error: unknown): unknown {
  if (!isProvisioError(error) || error.httpStatus !== 400 || error.deviceMessage !== undefined) return error
  return new ProvisioError(error.code, error.message, {
    deviceMessage: error.message.slice(0, 500),
    ...(error.info === undefined ? {} : { info: error.info }),
    cause: error,
  })
}

/** A route shape for messages: ids are elided so logs never carry them twice. */
function describePath(segments: readonly string[]): string {
  return '/' + segments.map((s, i) => (i === 0 || /^[a-z]+$/i.test(s) ? s.slice(0, 32) : '{…}')).join('/')
}
